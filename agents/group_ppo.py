"""PPO with a group baseline instead of a critic: groups of rollouts replay one episode, and each rollout's
advantage is its return minus its group's mean return.

Why: under the default reward the return's spread from one episode to the next (12-16 s on
``sdedge/EdgeSD-v0``) is three times what the whole action choice is worth (~4 s), and a critic that sees
only the task window cannot predict it (docs/BENCHMARK.md, "Why the default reward stalls"). Rollouts of
the *same* episode share that difficulty, so the group's mean return is a per-instance baseline that removes
it exactly (Kool et al., ICLR 2019; POMO, Kwon et al., NeurIPS 2020; the group-relative advantages of GRPO,
Shao et al., 2024). The envs replay an episode with ``reset(options={"episode": e})``. On the online ids
the replayed episode carries its arrival times, so a group shares its input whatever the actions' timing:
the group's mean is then an input-driven baseline (Mao et al., ICLR 2019).

One update:

1. ``--episodes`` fresh training episodes (leader env i draws its episodes from the stream seeded
   ``seed + i``, as ``sdedge_agents.train`` seeds its envs), each played ``--group-size`` times by the
   stochastic policy;
2. rollout g of episode b gets the advantage A = R_bg - mean_g' R_bg' (R: the return under the run's
   reward; with the default reward minus the episode's objective), divided by the update's standard
   deviation of A (with ``--relative-advantage``, each group's A first divided by its mean |R|, so that every
   episode weighs alike whatever its latencies); every step of the rollout carries its rollout's A (the whole
   return: gamma = 1);
3. ``--epochs`` passes of PPO's clipped surrogate over the update's steps in minibatches of
   ``--batch-size``, with the log-probabilities of the collecting policy as the old ones.

A group that plays identically teaches nothing: once the policy is deterministic its rollouts agree, every
advantage is zero and learning stops (measured: one seed on ``sdedge/EdgeSD-Paper-Stochastic-v0`` stayed at the
best constant action from 33k steps on). ``--ent-coef 0.01`` keeps the policy stochastic enough to avoid it.
``--init MODEL`` starts from a saved sequence-policy agent (its network and weights, a new optimiser), e.g. a
DAgger agent: RL from a good start. ``--replay F`` replays a fraction F of every update's groups from the training
episodes on which the policy was furthest from the oracle (prioritised episode replay,
:mod:`sdedge_agents.episode_replay`: a curriculum for rare costly events such as deep fades; offline ids), and
logs its buffer in ``replay.csv``.

The network is the sequence policy of :mod:`sdedge_agents.slot_policy` (``MaskableSlotPolicy``, on the online
ids ``OnlineMaskableSlotPolicy``; its critic is built but never trained or used), saved as a ``MaskablePPO``
zip: every tool that loads ``sb3:MaskablePPO:PATH`` (evaluate, ablation_summary, pretrained) plays it. The run
directory is ``sdedge_agents.train``'s: ``run.json``, ``checkpoints/``, ``model.zip``, ``evaluations.csv``
(the oracle gap on validation episodes every ``--eval-every`` steps) and ``progress.csv`` (one row per
update). Ctrl-C or SIGTERM saves ``checkpoints/interrupted_<steps>.zip`` and marks run.json "interrupted";
there is no ``--resume`` (the episode streams would restart): a new run starts from scratch.

    python -m sdedge_agents.group_ppo --env sdedge/EdgeSD-v0 --seed 1000 --out runs/group/seed1000 \\
        --timesteps 1000000 --eval-every 20000
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sb3_contrib import MaskablePPO
from stable_baselines3.common.vec_env import DummyVecEnv

from sdedge_agents.episode_replay import EpisodeReplay, ReplayEntry
from sdedge_agents.hyperparameters import parse_schedule
from sdedge_agents.protocol import VALIDATION_SEEDS
from sdedge_agents.runs import check_int, write_run
from sdedge_agents.slot_policy import MaskableSlotPolicy
from sdedge_agents.train import (
    CHECKPOINT_PREFIX,
    EVALUATIONS_HEADER,
    INTERRUPTED_PREFIX,
    MAX_TRAINING_SEED,
    StopRequest,
    TrainConfig,
    add_torch_threads,
    append_evaluation,
    check_torch_threads,
    evaluate_model,
    make_single_env,
    name_values,
    oracle_values,
    parse_loads,
    policy_class,
    raise_if_stopped,
    run_stoppable,
)
from sdedge_gym.registration import ENV_TABLE

# replay.csv (with --replay): per update, the groups replayed, the buffer's size and its highest and median score
# (the policy's gap to the oracle on the episode, a fraction).
REPLAY_HEADER = "timesteps,replayed_groups,buffer,top_score,median_score\n"
REPLAY_STREAM = 0x5E1A7  # the replay draws' stream, apart from the update's minibatch shuffling
PROGRESS_HEADER = ("timesteps,updates,mean_objective,mean_group_spread,policy_loss,entropy,approx_kl,clip_fraction,"
                   "learning_rate,wall_time_s\n")


def check_env_id(env_id: str) -> None:
    """ValueError unless ``env_id`` is an id in discrete action mode, offline or online (the ones played here)."""
    if env_id not in ENV_TABLE or ENV_TABLE[env_id]["action_mode"] != "discrete":
        raise ValueError(f"--env = {env_id!r} is invalid; allowed: an id in discrete action mode, e.g. "
                         "sdedge/EdgeSD-v0 or sdedge/EdgeSD-Online-v0 (the hybrid ids need a Gaussian policy)")


@dataclass(frozen=True)
class GroupConfig:
    """One run's arguments (the CLI's, validated). ``run`` is the harness's config: the id, the seed, the
    run directory, the env options and the evaluations, checked as ``sdedge_agents.train`` checks them."""

    run: TrainConfig
    episodes: int = 16  # episodes per update
    group_size: int = 8  # rollouts per episode
    epochs: int = 4
    batch_size: int = 512
    learning_rate: float | str = "lin_3e-4"  # a number, or rl-zoo3's "lin_<number>" (decays linearly to 0)
    clip_range: float = 0.2
    ent_coef: float = 0.0
    max_grad_norm: float = 0.5
    slot_width: int = 64
    net_arch: tuple[int, ...] = (128, 128)
    speculation_context: bool = False  # MaskableSlotPolicy's: l also reads the most likely batch's tasks
    init: str | None = None  # a MaskablePPO zip to start from (its network: the three fields above are ignored)
    replay: float = 0.0  # fraction of an update's groups replayed by oracle gap (sdedge_agents.episode_replay)
    relative_advantage: bool = False  # a group's advantages divided by its mean |return|

    def __post_init__(self) -> None:
        check_env_id(self.run.env_id)
        if not (isinstance(self.replay, int | float) and 0.0 <= self.replay < 1.0):
            raise ValueError(f"--replay = {self.replay!r} is invalid; allowed: a number in [0, 1)")
        if self.replay > 0 and "arrivals" in ENV_TABLE[self.run.env_id]:
            raise ValueError(f"--replay = {self.replay!r} is invalid for the online id {self.run.env_id!r}; allowed: "
                             "0 (episode replay scores episodes by the offline oracle)")
        check_int("--episodes", self.episodes, 1)
        check_int("--group-size", self.group_size, 2)
        check_int("--epochs", self.epochs, 1)
        check_int("--batch-size", self.batch_size, 1)
        check_int("--slot-width", self.slot_width, 1)
        parse_schedule(self.learning_rate, "--learning-rate")
        if self.init is not None and not Path(self.init).is_file():
            raise ValueError(f"--init = {self.init!r} is invalid; allowed: the path of a MaskablePPO model zip")
        for name, value, low in (("--clip-range", self.clip_range, 0.0), ("--ent-coef", self.ent_coef, 0.0),
                                 ("--max-grad-norm", self.max_grad_norm, 0.0)):
            if not (isinstance(value, int | float) and value >= low and np.isfinite(value)):
                raise ValueError(f"{name} = {value!r} is invalid; allowed: a finite number >= {low}")

    def learning_rate_at(self, progress_remaining: float) -> float:
        """The learning rate when ``progress_remaining`` (1 -> 0) of the run is left, SB3's schedule convention."""
        schedule = parse_schedule(self.learning_rate, "--learning-rate")
        return schedule(progress_remaining) if callable(schedule) else schedule


@dataclass
class Rollouts:
    """One update's steps: what the clipped surrogate needs, one row per env step."""

    observations: np.ndarray
    masks: np.ndarray
    actions: np.ndarray
    log_probs: np.ndarray
    advantages: np.ndarray
    objectives: np.ndarray  # per rollout: minus its default-reward return (the objective), for the log
    group_spread: float  # mean over episodes of the std of the group's returns


class GroupCollector:
    """``episodes x group_size`` envs; envs ``b * group_size .. (b + 1) * group_size - 1`` play episode b."""

    def __init__(self, config: GroupConfig, replay: EpisodeReplay | None = None) -> None:
        self.config, self.replay = config, replay
        self.replayed: list[ReplayEntry | None] = [None] * config.episodes  # this update's replayed groups
        # A group's envs share the leader's index, and so its load on an online id trained --loads.
        self.envs = [make_single_env(config.run, index=i // config.group_size)
                     for i in range(config.episodes * config.group_size)]
        self.leaders_seeded = False

    def close(self) -> None:
        for env in self.envs:
            env.close()

    def _reset(self) -> list[np.ndarray]:
        size, episodes = self.config.group_size, self.config.episodes
        drawn = self.replay.draw(episodes) if self.replay is not None else []
        # The last groups replay; the others' leaders draw fresh episodes from their streams.
        self.replayed = [None] * (episodes - len(drawn)) + drawn
        observations = []
        for b in range(episodes):
            leader = self.envs[b * size]
            if self.replayed[b] is None:
                seed = self.config.run.seed + b if not self.leaders_seeded else None
                observation, _ = leader.reset(seed=seed)
            else:
                observation, _ = leader.reset(options={"episode": self.replayed[b].episode})
            observations.append(observation)
            episode = leader.unwrapped.episode
            for env in self.envs[b * size + 1:(b + 1) * size]:
                observations.append(env.reset(options={"episode": episode})[0])
        self.leaders_seeded = True
        return observations

    def collect(self, policy: MaskableSlotPolicy) -> Rollouts:
        observations = self._reset()
        count = len(self.envs)
        active = list(range(count))
        returns = np.zeros(count)
        objectives = np.zeros(count)
        rows: dict[str, list[np.ndarray]] = {"obs": [], "mask": [], "action": [], "log_prob": [], "rollout": []}
        while active:
            obs = np.stack([observations[i] for i in active]).astype(np.float32)
            mask = np.stack([self.envs[i].unwrapped.action_masks() for i in active])
            with torch.no_grad():
                distribution = policy.get_distribution(torch.as_tensor(obs), action_masks=mask)
                actions = distribution.get_actions(deterministic=False)
                log_probs = distribution.log_prob(actions)
            actions_np = actions.numpy()
            rows["obs"].append(obs)
            rows["mask"].append(mask)
            rows["action"].append(actions_np)
            rows["log_prob"].append(log_probs.numpy())
            rows["rollout"].append(np.asarray(active))
            still = []
            for row, i in enumerate(active):
                observation, reward, terminated, truncated, info = self.envs[i].step(actions_np[row])
                returns[i] += float(reward)
                observations[i] = observation
                if terminated or truncated:
                    objectives[i] = float(info[self.envs[i].unwrapped.scenario.objective])
                else:
                    still.append(i)
            active = still
        groups = returns.reshape(self.config.episodes, self.config.group_size)
        if self.replay is not None:
            for b, objective in enumerate(objectives.reshape(groups.shape).mean(axis=1)):
                leader = self.envs[b * self.config.group_size].unwrapped
                self.replay.record(leader.model, leader.episode, float(objective), self.replayed[b])
        baseline = groups.mean(axis=1, keepdims=True)
        advantage = groups - baseline
        if self.config.relative_advantage:  # in fractions of the episode's mean return: every episode on one scale
            advantage = advantage / np.maximum(np.abs(baseline), 1e-12)
        advantage = advantage.reshape(-1)
        advantage = advantage / (advantage.std() + 1e-8)
        rollout = np.concatenate(rows["rollout"])
        return Rollouts(observations=np.concatenate(rows["obs"]), masks=np.concatenate(rows["mask"]),
                        actions=np.concatenate(rows["action"]), log_probs=np.concatenate(rows["log_prob"]),
                        advantages=advantage[rollout], objectives=objectives,
                        group_spread=float(groups.std(axis=1).mean()))


def update(policy: MaskableSlotPolicy, rollouts: Rollouts, config: GroupConfig, learning_rate: float,
           rng: np.random.Generator) -> dict[str, float]:
    """``config.epochs`` passes of the clipped surrogate over ``rollouts``; returns the means of its minibatches'
    statistics."""
    for group in policy.optimizer.param_groups:
        group["lr"] = learning_rate
    steps = len(rollouts.actions)
    tensors = [torch.as_tensor(x) for x in (rollouts.observations, rollouts.actions, rollouts.log_probs,
                                            rollouts.advantages)]
    stats: dict[str, list[float]] = {"policy_loss": [], "entropy": [], "approx_kl": [], "clip_fraction": []}
    for _ in range(config.epochs):
        order = rng.permutation(steps)
        for start in range(0, steps, config.batch_size):
            index = order[start:start + config.batch_size]
            obs, actions, old_log_probs, advantages = (t[index] for t in tensors)
            distribution = policy.get_distribution(obs, action_masks=rollouts.masks[index])
            log_probs = distribution.log_prob(actions)
            entropy = distribution.entropy().mean()
            ratio = torch.exp(log_probs - old_log_probs)
            clipped = torch.clamp(ratio, 1.0 - config.clip_range, 1.0 + config.clip_range)
            policy_loss = -torch.min(ratio * advantages, clipped * advantages).mean()
            loss = policy_loss - config.ent_coef * entropy
            policy.optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), config.max_grad_norm)
            policy.optimizer.step()
            with torch.no_grad():
                log_ratio = log_probs - old_log_probs
                stats["approx_kl"].append(float(((torch.exp(log_ratio) - 1) - log_ratio).mean()))
                stats["clip_fraction"].append(float(((ratio - 1).abs() > config.clip_range).float().mean()))
            stats["policy_loss"].append(float(policy_loss.detach()))
            stats["entropy"].append(float(entropy.detach()))
    return {name: float(np.mean(values)) for name, values in stats.items()}


def build_model(config: GroupConfig) -> MaskablePPO:
    """The MaskablePPO that holds the policy (its optimiser is the one the updates step) and saves the zip; with
    ``config.init``, a fresh one with that model's policy class, network and weights (a new optimiser)."""
    env = DummyVecEnv([lambda: make_single_env(config.run)])
    policy_kwargs = {"net_arch": list(config.net_arch), "slot_width": config.slot_width,
                     "speculation_context": config.speculation_context}
    init = None
    if config.init is not None:
        init = MaskablePPO.load(config.init, device="cpu")
        if init.observation_space != env.observation_space or init.action_space != env.action_space:
            raise ValueError(f"--init = {config.init!r} was trained on other spaces ({init.observation_space}, "
                             f"{init.action_space}); allowed: a model of {config.run.env_id}'s spaces")
        if not isinstance(init.policy, MaskableSlotPolicy):
            raise ValueError(f"--init = {config.init!r} holds a {type(init.policy).__name__}; allowed: a model of "
                             "the sequence policy (sdedge_agents.slot_policy.MaskableSlotPolicy)")
        saved = init.policy._get_constructor_parameters()
        policy_kwargs = {name: saved[name] for name in ("net_arch", "slot_width", "speculation_context")}
    model = MaskablePPO(type(init.policy) if init else policy_class(config.run), env, seed=config.run.seed,
                        device="cpu", gamma=1.0, learning_rate=config.learning_rate_at, policy_kwargs=policy_kwargs)
    if init is not None:
        model.policy.load_state_dict(init.policy.state_dict())
    return model


def save_model(model: MaskablePPO, path: Path) -> None:
    """``model.save`` without the optimiser's moments: no run resumes from them (``--init`` starts a new
    optimiser), and Adam's two moments per weight would triple the zip."""
    state = model.policy.optimizer.state_dict()
    model.policy.optimizer.state.clear()
    model.save(path)
    model.policy.optimizer.load_state_dict(state)


def train(config: GroupConfig, stop: StopRequest | None = None) -> dict[str, Any]:
    """Run ``config``; returns the final run.json record (see the module docstring)."""
    run = config.run
    out_dir, checkpoint_dir = run.out_dir, run.checkpoint_dir
    if (out_dir / "model.zip").exists() or (checkpoint_dir.is_dir() and any(checkpoint_dir.iterdir())):
        raise ValueError(f"--out = {str(out_dir)!r} already holds a run; allowed: a new --out directory")
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    model = build_model(config)
    policy = model.policy
    # Its own stream, so that a run without replay draws exactly what it drew before replay existed.
    replay = None
    if config.replay > 0:
        replay = EpisodeReplay(config.replay, rng=np.random.default_rng([run.seed, REPLAY_STREAM]))
    collector = GroupCollector(config, replay)
    rng = np.random.default_rng(run.seed)
    seeds = list(VALIDATION_SEEDS[: run.eval_episodes])
    oracle = float(np.mean(oracle_values(run, seeds))) if run.eval_every > 0 else None
    # sdedge_agents.train's run.json layout, so that every reader of a run directory reads this one too: the
    # harness's config, and this trainer's own settings as its hyperparameters.
    settings = {name: value for name, value in asdict(config).items() if name != "run"}
    # With --init the network is the init model's (the config's three network fields are ignored): record that one.
    network = policy._get_constructor_parameters()
    settings.update({name: network[name] for name in ("net_arch", "slot_width", "speculation_context")})
    record: dict[str, Any] = {
        "config": asdict(run),
        "algorithm": "group_ppo",
        "hyperparameters": settings,
        "vectorisation": f"sdedge_agents.group_ppo: {config.episodes} episodes x {config.group_size} rollouts, "
                         "gym.make",
        "status": "running",
        "steps": 0,
        "wall_time_s": 0.0,
        "evaluation": None,
    }
    write_run(out_dir, record)
    (out_dir / "progress.csv").write_text(PROGRESS_HEADER)
    if oracle is not None:
        (out_dir / "evaluations.csv").write_text(EVALUATIONS_HEADER)
    if replay is not None:
        (out_dir / "replay.csv").write_text(REPLAY_HEADER)
    start = time.perf_counter()
    steps, updates = 0, 0
    next_eval, next_checkpoint = 0, run.checkpoint_every

    def evaluate() -> dict[str, Any]:
        evaluation = evaluate_model(model, run, seeds)
        append_evaluation(out_dir / "evaluations.csv", steps, evaluation["mean"], oracle, time.perf_counter() - start)
        return evaluation

    try:
        while steps < run.timesteps:
            if oracle is not None and steps >= next_eval:
                evaluate()
                next_eval = (steps // run.eval_every + 1) * run.eval_every
            rollouts = collector.collect(policy)
            learning_rate = config.learning_rate_at(max(1.0 - steps / run.timesteps, 0.0))
            stats = update(policy, rollouts, config, learning_rate, rng)
            steps += len(rollouts.actions)
            updates += 1
            model.num_timesteps = steps
            with (out_dir / "progress.csv").open("a") as handle:
                handle.write(f"{steps},{updates},{float(rollouts.objectives.mean())!r},{rollouts.group_spread!r},"
                             f"{stats['policy_loss']!r},{stats['entropy']!r},{stats['approx_kl']!r},"
                             f"{stats['clip_fraction']!r},{learning_rate!r},{time.perf_counter() - start:.3f}\n")
            if replay is not None:
                scores = replay.scores()
                with (out_dir / "replay.csv").open("a") as handle:
                    handle.write(f"{steps},{sum(e is not None for e in collector.replayed)},{len(scores)},"
                                 f"{float(scores[0])!r},{float(np.median(scores))!r}\n")
            if steps >= next_checkpoint:
                save_model(model, checkpoint_dir / f"{CHECKPOINT_PREFIX}_{steps}_steps.zip")
                next_checkpoint = (steps // run.checkpoint_every + 1) * run.checkpoint_every
            raise_if_stopped(stop)
    except KeyboardInterrupt:
        save_model(model, checkpoint_dir / f"{INTERRUPTED_PREFIX}_{steps}.zip")
        record.update(status="interrupted", steps=steps, wall_time_s=time.perf_counter() - start)
        write_run(out_dir, record)
        raise
    finally:
        collector.close()
    # The last curve point and run.json's evaluation are the same deterministic episodes: played once.
    final = evaluate() if oracle is not None else None
    save_model(model, out_dir / "model.zip")
    record.update(steps=steps, updates=updates, wall_time_s=time.perf_counter() - start)
    if run.eval_episodes > 0:
        record["evaluation"] = final if final is not None else evaluate_model(model, run, seeds)
    record["status"] = "completed"
    write_run(out_dir, record)
    return record


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sdedge_agents.group_ppo", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", required=True, help="an offline discrete id, e.g. sdedge/EdgeSD-v0")
    parser.add_argument("--timesteps", type=int, required=True, help="env steps to reach (whole updates)")
    parser.add_argument("--seed", type=int, default=0,
                        help=f"training seed: leader env i draws from seed + i (seed + episodes - 1 <= "
                             f"{MAX_TRAINING_SEED}, avoiding the held-out seeds 500..599)")
    parser.add_argument("--out", required=True, help="run directory (checkpoints/, model.zip, run.json)")
    parser.add_argument("--episodes", type=int, default=16, help="episodes per update (default 16)")
    parser.add_argument("--group-size", type=int, default=8, help="rollouts per episode (default 8)")
    parser.add_argument("--epochs", type=int, default=4, help="passes over an update's steps (default 4)")
    parser.add_argument("--batch-size", type=int, default=512, help="minibatch size in steps (default 512)")
    parser.add_argument("--learning-rate", default="lin_3e-4",
                        help="a number or lin_<number> (decayed linearly to 0 over --timesteps; default lin_3e-4)")
    parser.add_argument("--clip-range", type=float, default=0.2)
    parser.add_argument("--ent-coef", type=float, default=0.0)
    parser.add_argument("--slot-width", type=int, default=64, help="the per-task networks' width (default 64)")
    parser.add_argument("--speculation-context", action="store_true",
                        help="the speculation-length head also reads the mean encoding of the batch the most likely "
                             "batch size forms (MaskableSlotPolicy's speculation_context)")
    parser.add_argument("--init", default=None, metavar="MODEL_ZIP",
                        help="start from this MaskablePPO model (its network and weights; a new optimiser), e.g. a "
                             "DAgger agent: RL from a good start")
    parser.add_argument("--eval-episodes", type=int, default=20, help="validation episodes (0: none)")
    parser.add_argument("--eval-every", type=int, default=0, help="env steps between oracle-gap evaluations (0: none)")
    parser.add_argument("--checkpoint-every", type=int, default=50_000, help="env steps between checkpoints")
    parser.add_argument("--env-kwargs", nargs="+", default=[], metavar="NAME=VALUE",
                        help="gymnasium.make keyword arguments of the training envs, e.g. reward=reference")
    parser.add_argument("--loads", default="", metavar="L1,L2,...",
                        help="online Poisson ids: the leader env of episode i (and its group) at load L[i mod len] x "
                             "the max-batch capacity, e.g. 0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0 (the evaluations stay at "
                             "the id's load)")
    parser.add_argument("--replay", type=float, default=0.0, metavar="FRACTION",
                        help="replay this fraction of each update's groups from the training episodes with the "
                             "largest gap to the oracle (prioritised episode replay, sdedge_agents.episode_replay; "
                             "offline ids; default 0: every episode fresh)")
    parser.add_argument("--relative-advantage", action="store_true",
                        help="divide each group's advantages by its mean |return| before the update's "
                             "normalisation, so that an episode whose latencies run to hours (a deep fade) does not "
                             "outweigh the others (default: the returns' own scale)")
    add_torch_threads(parser)
    return parser


def learning_rate(text: str) -> float | str:
    """--learning-rate's value: a number, or the "lin_<number>" string as it is (checked by GroupConfig)."""
    try:
        return float(text)
    except ValueError:
        return text


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_env_id(args.env)
        run = TrainConfig(env_id=args.env, algo="maskable_ppo", timesteps=args.timesteps, n_envs=args.episodes,
                          seed=args.seed, out=args.out, eval_episodes=args.eval_episodes,
                          checkpoint_every=args.checkpoint_every, eval_every=args.eval_every,
                          env_kwargs=name_values("--env-kwargs", args.env_kwargs), policy="slot",
                          loads=parse_loads(args.loads))
        config = GroupConfig(run=run, episodes=args.episodes, group_size=args.group_size, epochs=args.epochs,
                             batch_size=args.batch_size, learning_rate=learning_rate(args.learning_rate),
                             clip_range=args.clip_range, ent_coef=args.ent_coef, slot_width=args.slot_width,
                             speculation_context=args.speculation_context, init=args.init, replay=args.replay,
                             relative_advantage=args.relative_advantage)
    except ValueError as error:
        parser.error(str(error))
    check_torch_threads(parser, args.torch_threads)
    torch.set_num_threads(args.torch_threads)
    record = run_stoppable(lambda stop: train(config, stop),
                           lambda: f"interrupted: saved {config.run.checkpoint_dir} (a new run starts over)")
    if isinstance(record, int):
        return record
    evaluation = record["evaluation"]
    summary = f"trained {record['steps']} steps in {record['wall_time_s']:.1f} s -> {config.run.out_dir / 'model.zip'}"
    if evaluation is not None:
        summary += (f"; {evaluation['objective']} {evaluation['mean']:.4f} s over {evaluation['episodes']} "
                    "validation episodes")
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
