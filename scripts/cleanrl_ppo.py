"""CleanRL-style single-file PPO with action masking on the native vector env (torch only, no SB3).

    python scripts/cleanrl_ppo.py --env-id sdedge/EdgeSD-Small-v0 --total-timesteps 200000 --num-envs 16
    python scripts/cleanrl_ppo.py --total-timesteps 512 --num-envs 4 --num-steps 64 --eval-episodes 5

The path fast research code takes: ``gym.make_vec(id, vectorization_mode="vector_entry_point")`` builds
:class:`sdedge_gym.vector_env.EdgeSDVectorEnv` (numpy across envs), wrapped in Gymnasium's vector
``RecordEpisodeStatistics`` and ``NormalizeReward``. The env runs with ``autoreset_mode="SameStep"``:
after a terminal step the returned observation (and ``infos["action_mask"]``) already belong to the next
episode, which is the transition layout CleanRL's GAE loop assumes (``next_done`` cuts the bootstrap).
With the default ``NEXT_STEP`` the step after a termination would be a dummy transition to mask out.

The policy is a factorised categorical over the discrete mode's ``MultiDiscrete([n_max, l_max + 1])``
(``[n - 1, l]``); invalid batch sizes get logit -1e8 from the env's mask (MaskablePPO's layout: the first
n_max entries are the batch sizes, the rest the speculation lengths). The reward is minus the batch's
share of the mean latency, so ``gamma = 1`` (the default) optimises the objective itself.

At the end the greedy policy is evaluated with the project's harness (``sdedge_agents.evaluate``) on the same
seeded episodes as the oracle and the baselines, and the table is printed.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: agents, sdedge_gym

import sdedge_gym  # registers the ids
from sdedge_agents.evaluate import evaluate, format_table

MASKED_LOGIT = -1e8


@dataclass(frozen=True)
class Args:
    env_id: str = "sdedge/EdgeSD-Small-v0"
    seed: int = 1
    total_timesteps: int = 100_000
    num_envs: int = 8
    num_steps: int = 128  # rollout length per env per update
    learning_rate: float = 2.5e-4
    anneal_lr: bool = True
    gamma: float = 1.0
    gae_lambda: float = 0.95
    num_minibatches: int = 4
    update_epochs: int = 4
    clip_coef: float = 0.2
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    eval_episodes: int = 20  # 0 skips the evaluation
    eval_seed: int = 10_000  # evaluation episodes use seeds the training never drew from its first resets

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches


def parse_args(argv: list[str] | None = None) -> Args:
    parser = argparse.ArgumentParser(prog="python scripts/cleanrl_ppo.py", description=__doc__.split("\n\n")[0])
    for name, default in Args.__dataclass_fields__.items():
        value = default.default
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            parser.add_argument(flag, type=lambda s: s.lower() in ("1", "true", "yes"), default=value,
                                help=f"(default {value})")
        else:
            parser.add_argument(flag, type=type(value), default=value, help=f"(default {value})")
    args = Args(**vars(parser.parse_args(argv)))
    if args.env_id not in sdedge_gym.SINGLE_CELL_ENV_IDS or "Hybrid" in args.env_id or "Dict" in args.env_id:
        parser.error(f"--env-id {args.env_id!r} is invalid; allowed: a registered single-cell discrete-mode id "
                     "(sdedge/EdgeSD-*-v0 without -Hybrid/-Dict or -MultiCell-)")
    if args.batch_size % args.num_minibatches:
        parser.error(f"--num-envs x --num-steps ({args.batch_size}) must be divisible by --num-minibatches")
    return args


def make_envs(args: Args) -> gym.vector.VectorEnv:
    envs = gym.make_vec(args.env_id, num_envs=args.num_envs, vectorization_mode="vector_entry_point",
                        autoreset_mode="SameStep")
    envs = gym.wrappers.vector.RecordEpisodeStatistics(envs)
    return gym.wrappers.vector.NormalizeReward(envs, gamma=args.gamma)


def layer_init(layer: nn.Linear, std: float = np.sqrt(2), bias_const: float = 0.0) -> nn.Linear:
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, bias_const)
    return layer


class Agent(nn.Module):
    """Critic and masked factorised-categorical actor over ``[n - 1, l]``."""

    def __init__(self, observation_size: int, nvec: np.ndarray) -> None:
        super().__init__()
        self.nvec = [int(n) for n in nvec]
        self.critic = nn.Sequential(layer_init(nn.Linear(observation_size, 64)), nn.Tanh(),
                                    layer_init(nn.Linear(64, 64)), nn.Tanh(), layer_init(nn.Linear(64, 1), std=1.0))
        self.actor = nn.Sequential(layer_init(nn.Linear(observation_size, 64)), nn.Tanh(),
                                   layer_init(nn.Linear(64, 64)), nn.Tanh(),
                                   layer_init(nn.Linear(64, sum(self.nvec)), std=0.01))

    def get_value(self, x: torch.Tensor) -> torch.Tensor:
        return self.critic(x)

    def get_action_and_value(self, x: torch.Tensor, mask: torch.Tensor, action: torch.Tensor | None = None,
                             greedy: bool = False):
        logits = torch.where(mask, self.actor(x), torch.tensor(MASKED_LOGIT))
        dists = [Categorical(logits=part) for part in torch.split(logits, self.nvec, dim=-1)]
        if action is None:
            action = torch.stack([d.probs.argmax(-1) if greedy else d.sample() for d in dists], dim=-1)
        log_prob = torch.stack([d.log_prob(a) for d, a in zip(dists, action.unbind(-1), strict=True)]).sum(0)
        entropy = torch.stack([d.entropy() for d in dists]).sum(0)
        return action, log_prob, entropy, self.critic(x)


class GreedyAgentPolicy:
    """The trained agent with SB3's ``predict`` for :func:`sdedge_agents.evaluate.evaluate` (reads the env's mask)."""

    def __init__(self, agent: Agent, env) -> None:
        self.agent, self.env = agent, env

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        mask = torch.as_tensor(self.env.unwrapped.action_masks())[None]
        with torch.no_grad():
            action, *_ = self.agent.get_action_and_value(torch.as_tensor(observation)[None], mask, greedy=True)
        return action[0].numpy(), state


def train(args: Args) -> tuple[Agent, list[float]]:
    """PPO as CleanRL's ppo.py, with masks; returns the agent and the episode returns seen in training."""
    torch.manual_seed(args.seed)
    envs = make_envs(args)
    single_space = envs.single_action_space
    observation_size = int(np.prod(envs.single_observation_space.shape))
    agent = Agent(observation_size, single_space.nvec)
    optimizer = torch.optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5)
    mask_width = int(sum(single_space.nvec))

    obs = torch.zeros((args.num_steps, args.num_envs, observation_size))
    masks = torch.zeros((args.num_steps, args.num_envs, mask_width), dtype=torch.bool)
    actions = torch.zeros((args.num_steps, args.num_envs, len(single_space.nvec)), dtype=torch.long)
    logprobs = torch.zeros((args.num_steps, args.num_envs))
    rewards = torch.zeros((args.num_steps, args.num_envs))
    dones = torch.zeros((args.num_steps, args.num_envs))
    values = torch.zeros((args.num_steps, args.num_envs))

    next_obs_np, infos = envs.reset(seed=args.seed)
    next_obs = torch.as_tensor(next_obs_np)
    next_mask = torch.as_tensor(infos["action_mask"])
    next_done = torch.zeros(args.num_envs)
    episode_returns: list[float] = []
    num_updates = max(1, args.total_timesteps // args.batch_size)
    start, global_step = time.perf_counter(), 0
    for update in range(1, num_updates + 1):
        if args.anneal_lr:
            optimizer.param_groups[0]["lr"] = (1.0 - (update - 1.0) / num_updates) * args.learning_rate
        for step in range(args.num_steps):
            global_step += args.num_envs
            obs[step], masks[step], dones[step] = next_obs, next_mask, next_done
            with torch.no_grad():
                action, logprob, _, value = agent.get_action_and_value(next_obs, next_mask)
            values[step], actions[step], logprobs[step] = value.flatten(), action, logprob
            next_obs_np, reward, terminated, truncated, infos = envs.step(action.numpy())
            rewards[step] = torch.as_tensor(reward, dtype=torch.float32)
            next_obs = torch.as_tensor(next_obs_np)
            next_mask = torch.as_tensor(infos["action_mask"])  # SameStep: already the next episode's mask
            next_done = torch.as_tensor(np.logical_or(terminated, truncated), dtype=torch.float32)
            if "episode" in infos:
                episode_returns.extend(float(r) for r in infos["episode"]["r"][infos["_episode"]])

        with torch.no_grad():  # GAE, bootstrapping from the value of the observation after the rollout
            next_value = agent.get_value(next_obs).reshape(1, -1)
            advantages = torch.zeros_like(rewards)
            last = torch.zeros(args.num_envs)
            for t in reversed(range(args.num_steps)):
                not_done = 1.0 - (next_done if t == args.num_steps - 1 else dones[t + 1])
                following = next_value if t == args.num_steps - 1 else values[t + 1]
                delta = rewards[t] + args.gamma * following * not_done - values[t]
                last = delta + args.gamma * args.gae_lambda * not_done * last
                advantages[t] = last
            returns = advantages + values

        b_obs, b_masks = obs.reshape(-1, observation_size), masks.reshape(-1, mask_width)
        b_actions, b_logprobs = actions.reshape(-1, actions.shape[-1]), logprobs.reshape(-1)
        b_advantages, b_returns = advantages.reshape(-1), returns.reshape(-1)
        order = np.arange(args.batch_size)
        for _ in range(args.update_epochs):
            np.random.default_rng(args.seed + update).shuffle(order)
            for begin in range(0, args.batch_size, args.minibatch_size):
                mb = order[begin: begin + args.minibatch_size]
                _, new_logprob, entropy, new_value = agent.get_action_and_value(b_obs[mb], b_masks[mb], b_actions[mb])
                ratio = (new_logprob - b_logprobs[mb]).exp()
                mb_adv = b_advantages[mb]
                mb_adv = (mb_adv - mb_adv.mean()) / (mb_adv.std() + 1e-8)
                pg_loss = torch.max(-mb_adv * ratio,
                                    -mb_adv * torch.clamp(ratio, 1 - args.clip_coef, 1 + args.clip_coef)).mean()
                v_loss = 0.5 * ((new_value.view(-1) - b_returns[mb]) ** 2).mean()
                loss = pg_loss - args.ent_coef * entropy.mean() + args.vf_coef * v_loss
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
                optimizer.step()
        recent = episode_returns[-20:]
        print(f"update {update}/{num_updates}  steps {global_step}  "
              f"mean episode return (last {len(recent)}) {np.mean(recent) if recent else float('nan'):.3f}  "
              f"steps/s {global_step / (time.perf_counter() - start):.0f}", flush=True)
    envs.close()
    return agent, episode_returns


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    agent, _ = train(args)
    if args.eval_episodes > 0:
        results = evaluate(args.env_id, args.eval_episodes, args.eval_seed,
                           policies=["cleanrl-ppo", "best-constant"], progress=False,
                           factories={"cleanrl-ppo": lambda env: GreedyAgentPolicy(agent, env)})
        print(f"{args.env_id}: {args.eval_episodes} episodes, seeds {args.eval_seed}.."
              f"{args.eval_seed + args.eval_episodes - 1}")
        print(format_table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
