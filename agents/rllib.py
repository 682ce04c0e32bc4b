"""RLlib (Ray) pieces that the env runners import by name: the greedy policy of a trained module and the
multi-cell env under RLlib's multi-agent API (needs the ``rllib`` extra; the multi-cell env also ``multicell``).

Ray pins gymnasium 1.2.2, so these run in a venv of their own (docs/INTEGRATIONS.md). Everything an env runner
must rebuild lives here, in an importable module, because Ray's workers import functions by module name: a
creator defined in a script would not unpickle there.

**The multi-cell env on RLlib** (:class:`ActingCells`): RLlib's multi-agent episodes are turn-based, so a cell's
agent observes, and so acts, only at the decision epochs where its uplink is free (the PettingZoo env's
``acting``). Its rewards at the epochs in between reach RLlib without an observation, and RLlib adds them to the
agent's next transition: each agent's return is still its cell's cost (or, with ``team_reward``, every cell's).
An agent's last step is the epoch at which the MBS has accepted all its batches; it gets its last observation
there. Nothing is truncated. Policies: one module shared by every cell (``"shared"``, parameter sharing), or one
module per cell (``"per-cell"``), mapped by :func:`policy_mapping`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

try:
    from ray.rllib.env.multi_agent_env import MultiAgentEnv
except ImportError as error:  # an optional extra: say how to get it
    raise ImportError("sdedge_agents.rllib needs Ray RLlib: pip install 'sdedge-gym[rllib]' "
                      "(in a venv of its own: docs/INTEGRATIONS.md)") from error

POLICY_LAYOUTS = ("shared", "per-cell")
SHARED_POLICY = "shared"


class RLlibGreedyPolicy:
    """An RLlib RLModule with SB3's ``predict`` for :func:`sdedge_agents.evaluate.evaluate`: its greedy action
    in ``action_space`` (the env's)."""

    def __init__(self, module, action_space) -> None:
        self.module, self.action_space = module, action_space
        self.dist_class = module.get_inference_action_dist_cls()

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        import torch
        import tree  # dm-tree, an RLlib dependency
        from ray.rllib.utils.spaces.space_utils import unsquash_action

        with torch.no_grad():
            out = self.module.forward_inference({"obs": torch.as_tensor(observation)[None]})
            action = self.dist_class.from_logits(out["action_dist_inputs"]).to_deterministic().sample()
        action = tree.map_structure(lambda value: value[0].numpy(), action)  # a dict of tensors in the dict mode
        # As RLlib's env runners do (normalize_actions, the default): Box entries come out of the module in
        # [-1, 1] and are mapped (and clipped) to the space's bounds; discrete entries pass unchanged.
        return unsquash_action(action, self.action_space), state


class ActingCells(MultiAgentEnv):
    """The multi-cell PettingZoo env (:class:`sdedge_gym.multicell_pz.MultiCellParallelEnv`) as an RLlib
    ``MultiAgentEnv`` in which only acting cells observe (module docstring).

    ``config``: ``preset`` (a :data:`sdedge_gym.multicell.MULTICELL_PRESETS` name, default "two-heterogeneous"),
    ``action_mode`` ("discrete" | "hybrid" | "dict", default "discrete") and ``team_reward`` (default True:
    every agent is rewarded with the sum of the cells' rewards, the common objective).
    """

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        from sdedge_gym.multicell_pz import MultiCellParallelEnv

        super().__init__()
        config = dict(config or {})
        unknown = set(config) - {"preset", "action_mode", "team_reward"}
        if unknown:
            raise ValueError(f"ActingCells config keys {sorted(unknown)} are invalid; allowed: preset, action_mode, "
                             "team_reward")
        self.env = MultiCellParallelEnv(config.get("preset", "two-heterogeneous"),
                                        config.get("action_mode", "discrete"))
        self.team_reward = bool(config.get("team_reward", True))
        self.possible_agents = list(self.env.possible_agents)
        self.agents = list(self.possible_agents)
        self.observation_spaces = {a: self.env.observation_space(a) for a in self.possible_agents}
        self.action_spaces = {a: self.env.action_space(a) for a in self.possible_agents}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        observations, infos = self.env.reset(seed=seed, options=options)
        self.agents = list(self.env.agents)
        acting = [a for a in self.agents if infos[a]["acting"]]
        return {a: observations[a] for a in acting}, {a: infos[a] for a in acting}

    def step(self, action_dict: dict[str, Any]):
        observations, rewards, terminations, _, infos = self.env.step(action_dict)
        if self.team_reward:
            team = float(sum(rewards.values()))
            rewards = dict.fromkeys(rewards, team)
        # Acting cells observe; a cell that ends here gets its last observation too.
        seen = [a for a in observations if infos[a]["acting"] or terminations[a]]
        self.agents = list(self.env.agents)
        terminateds = {a: bool(done) for a, done in terminations.items()}
        terminateds["__all__"] = not self.env.agents
        return ({a: observations[a] for a in seen}, rewards, terminateds, {"__all__": False},
                {a: infos[a] for a in seen})


def train_iterations(algo, iterations: int, progress: bool = True) -> dict[str, Any]:
    """``algo.train()`` ``iterations`` times, a line of progress each; the last result."""
    result: dict[str, Any] = {}
    for iteration in range(1, iterations + 1):
        result = algo.train()
        runners = result.get("env_runners", {})
        if progress:
            print(f"iteration {iteration}/{iterations}  env steps {result.get('num_env_steps_sampled_lifetime')}"
                  f"  mean episode return {runners.get('episode_return_mean', float('nan')):.3f}", flush=True)
    return result


def add_ppo_arguments(parser, steps: str) -> None:
    """The scripts' shared flags: iterations, env runners, PPO's batch, minibatch, epochs, lr, gamma and seed,
    the sample timeout, the cluster address and the checkpoint directory (``steps``: what a batch counts)."""
    parser.add_argument("--iterations", type=int, default=20, help="RLlib training iterations (algo.train())")
    parser.add_argument("--num-env-runners", type=int, default=2, help="parallel sampling actors")
    parser.add_argument("--train-batch-size", type=int, default=1024, help=f"{steps} per iteration")
    parser.add_argument("--minibatch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=10, help="SGD passes over each iteration's batch")
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--gamma", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    # RLlib's default is 60 s; an env runner's first sample includes the kernel's first numba compile in that
    # process (tens of seconds on a loaded 2-core machine), and a timeout returns no samples at all.
    parser.add_argument("--sample-timeout", type=float, default=600.0,
                        help="seconds an iteration waits for the env runners' samples")
    parser.add_argument("--address", default=None,
                        help="a Ray cluster to join ('auto' or host:port); default: start a local instance")
    parser.add_argument("--checkpoint", default=None, help="save the trained algorithm to this directory")


def check_ppo_arguments(parser, args, counts: tuple[str, ...] = ()) -> None:
    """``parser.error`` naming the flag for a bad shared value (and for the script's own ``counts``, >= 1)."""
    if args.sample_timeout <= 0:
        parser.error(f"--sample-timeout = {args.sample_timeout} is invalid; allowed: a number of seconds > 0")
    for name in ("num_env_runners", "iterations", "train_batch_size", "minibatch_size", "epochs", *counts):
        low = 0 if name == "num_env_runners" else 1
        if getattr(args, name) < low:
            parser.error(f"--{name.replace('_', '-')} = {getattr(args, name)} is invalid; allowed: an integer >= {low}")


def ppo_settings(config, args):
    """The scripts' shared PPO settings on an RLlib ``PPOConfig``: batch, minibatch, epochs, lr, gamma, seed."""
    return (config
            .training(train_batch_size_per_learner=args.train_batch_size, minibatch_size=args.minibatch_size,
                      num_epochs=args.epochs, lr=args.lr, gamma=args.gamma)
            .debugging(seed=args.seed))


def build_and_train(config, iterations: int, progress: bool = True):
    """``config.build_algo()`` trained ``iterations`` iterations: (algorithm, last result)."""
    algo = config.build_algo()
    return algo, train_iterations(algo, iterations, progress)


def run_on_ray(args, build_config: Callable[[Any], Any], report: Callable[[Any], None]) -> int:
    """The scripts' main: a local Ray instance (one CPU per env runner and one for the learner) or the cluster at
    ``args.address``; ``build_config(args).build_algo()`` trained ``args.iterations`` iterations, saved to
    ``args.checkpoint`` if given, then ``report(algo)``; Ray shut down whatever happens."""
    import ray

    if args.address is None:
        ray.init(num_cpus=args.num_env_runners + 1, include_dashboard=False, log_to_driver=False)
    else:
        ray.init(address=args.address, log_to_driver=False)
    try:
        algo, _ = build_and_train(build_config(args), args.iterations)
        if args.checkpoint:
            print(f"checkpoint: {algo.save_to_path(str(Path(args.checkpoint).resolve()))}")
        report(algo)
        algo.stop()
    finally:
        ray.shutdown()
    return 0


def multicell_env_creator(env_config: dict[str, Any]) -> ActingCells:
    """``ray.tune.registry.register_env`` creator of :class:`ActingCells` (its ``config`` keys)."""
    return ActingCells(dict(env_config))


def policy_mapping(layout: str):
    """RLlib's ``policy_mapping_fn`` for ``layout``: every cell to one shared module, or each to its own."""
    if layout == "shared":
        return lambda agent_id, episode, **kwargs: SHARED_POLICY
    if layout == "per-cell":
        return lambda agent_id, episode, **kwargs: agent_id
    raise ValueError(f"policies = {layout!r} is invalid; allowed: {' | '.join(POLICY_LAYOUTS)}")


def greedy_cells(algo, preset: str, layout: str, action_mode: str = "discrete"):
    """The trained algorithm's greedy joint policy as ``policy(agent, observation) -> action`` for
    :func:`sdedge_agents.multicell.play_episode`."""
    env = ActingCells({"preset": preset, "action_mode": action_mode})
    mapping = policy_mapping(layout)
    policies = {a: RLlibGreedyPolicy(algo.get_module(mapping(a, None)), env.action_spaces[a])
                for a in env.possible_agents}
    return lambda agent, observation: policies[agent].predict(np.asarray(observation))[0]
