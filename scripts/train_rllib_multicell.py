"""Train PPO with RLlib's multi-agent API on a multi-cell preset, then score it against the references.

    pip install -e ".[rllib,multicell]"     # Ray pins gymnasium 1.2.2: a venv of its own (docs/INTEGRATIONS.md)
    python scripts/train_rllib_multicell.py --preset two-heterogeneous --iterations 20 --num-env-runners 2
    python scripts/train_rllib_multicell.py --policies per-cell ...   # one module per cell instead of one shared
    python scripts/train_rllib_multicell.py --address auto ...        # on a running Ray cluster

The distributed option for the multi-cell env (docs/INTEGRATIONS.md, "Several cells on RLlib"): RLlib's env
runners sample the PettingZoo env in parallel Ray actors through :class:`sdedge_agents.rllib.ActingCells`, a
turn-based ``MultiAgentEnv`` in which a cell observes and acts only when its uplink is free; RLlib adds the
rewards of the epochs in between to the cell's next transition. ``--policies shared`` (the default) maps every
cell to one module (parameter sharing), ``per-cell`` gives each cell its own. The team reward (every agent gets
the sum of the cells' rewards, the common objective) is the default; ``--own-reward`` rewards each cell with
its own cost. RLlib's default PPO module reads no action masks: a batch size above the tasks left is clipped
by the env. Then, on the protocol's held-out test episodes (seeds 500.., ``--episodes`` of them), the greedy
joint policy's mean latency against the references (:func:`sdedge_agents.multicell.reference_latencies`), the
same table as ``scripts/train_multicell_ppo.py``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: agents, sdedge_gym

import numpy as np

from sdedge_agents.multicell import play_episode, reference_latencies, score_table
from sdedge_agents.protocol import TEST_SEEDS
from sdedge_gym.multicell import MULTICELL_PRESETS

ENV_NAME = "sdedge-gym-multicell"
POLICY_LAYOUTS = ("shared", "per-cell")  # sdedge_agents.rllib.POLICY_LAYOUTS (importable without Ray here)



def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python scripts/train_rllib_multicell.py",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=sorted(MULTICELL_PRESETS), default="two-heterogeneous")
    parser.add_argument("--action-mode", choices=("discrete", "hybrid", "dict"), default="discrete")
    parser.add_argument("--policies", choices=POLICY_LAYOUTS, default="shared",
                        help="one module shared by every cell, or one per cell")
    parser.add_argument("--own-reward", action="store_true", help="each cell its own cost, not the team's")
    parser.add_argument("--iterations", type=int, default=20, help="RLlib training iterations (algo.train())")
    parser.add_argument("--num-env-runners", type=int, default=2, help="parallel sampling actors")
    parser.add_argument("--train-batch-size", type=int, default=1024, help="agent steps per iteration")
    parser.add_argument("--minibatch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=10, help="SGD passes over each iteration's batch")
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--gamma", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sample-timeout", type=float, default=600.0,
                        help="seconds an iteration waits for the env runners' samples (the first includes numba's "
                             "compile in each runner)")
    parser.add_argument("--address", default=None,
                        help="a Ray cluster to join ('auto' or host:port); default: start a local instance")
    parser.add_argument("--checkpoint", default=None, help="save the trained algorithm to this directory")
    parser.add_argument("--episodes", type=int, default=20, help="held-out test episodes (seeds 500..); 0 skips")
    args = parser.parse_args(argv)
    if args.sample_timeout <= 0:
        parser.error(f"--sample-timeout = {args.sample_timeout} is invalid; allowed: a number of seconds > 0")
    if not 0 <= args.episodes <= len(TEST_SEEDS):
        parser.error(f"--episodes = {args.episodes} is invalid; allowed: 0..{len(TEST_SEEDS)}")
    for name in ("iterations", "num_env_runners", "train_batch_size", "minibatch_size", "epochs"):
        if getattr(args, name) < (0 if name == "num_env_runners" else 1):
            parser.error(f"--{name.replace('_', '-')} = {getattr(args, name)} is invalid; allowed: an integer >= "
                         f"{0 if name == 'num_env_runners' else 1}")
    return args


def build_config(args: argparse.Namespace):
    """PPO on the new API stack with RLlib's multi-agent API: the policies and their mapping from the cells."""
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec
    from ray.tune.registry import register_env

    from sdedge_agents.rllib import SHARED_POLICY, ActingCells, multicell_env_creator, policy_mapping

    register_env(ENV_NAME, multicell_env_creator)
    env_config = {"preset": args.preset, "action_mode": args.action_mode, "team_reward": not args.own_reward}
    cells = ActingCells(env_config).possible_agents
    policies = [SHARED_POLICY] if args.policies == "shared" else cells
    return (PPOConfig()
            .environment(ENV_NAME, env_config=env_config)
            .multi_agent(policies=set(policies), policy_mapping_fn=policy_mapping(args.policies))
            .rl_module(rl_module_spec=MultiRLModuleSpec(rl_module_specs={p: RLModuleSpec() for p in policies}))
            .env_runners(num_env_runners=args.num_env_runners, sample_timeout_s=args.sample_timeout)
            .training(train_batch_size_per_learner=args.train_batch_size, minibatch_size=args.minibatch_size,
                      num_epochs=args.epochs, lr=args.lr, gamma=args.gamma)
            .debugging(seed=args.seed))


def train(args: argparse.Namespace, progress: bool = True):
    """Build, train ``args.iterations`` iterations and return (algorithm, last result)."""
    from sdedge_agents.rllib import train_iterations

    algo = build_config(args).build_algo()
    return algo, train_iterations(algo, args.iterations, progress)


def score(algo, args: argparse.Namespace) -> dict[str, np.ndarray]:
    """Per-episode mean latency of the greedy joint policy and of the references on the test episodes."""
    from sdedge_agents.rllib import greedy_cells

    seeds = list(TEST_SEEDS[:args.episodes])
    policy = greedy_cells(algo, args.preset, args.policies, args.action_mode)
    results = {"rllib-ppo": np.array([play_episode(policy, args.preset, seed, args.action_mode) for seed in seeds])}
    rows = [reference_latencies(args.preset, seed) for seed in seeds]
    return results | {name: np.array([row[name] for row in rows]) for name in rows[0]}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import ray

    if args.address is None:  # a local instance with one CPU per env runner and one for the learner
        ray.init(num_cpus=args.num_env_runners + 1, include_dashboard=False, log_to_driver=False)
    else:
        ray.init(address=args.address, log_to_driver=False)
    try:
        algo, _ = train(args)
        if args.checkpoint:
            print(f"checkpoint: {algo.save_to_path(str(Path(args.checkpoint).resolve()))}")
        if args.episodes > 0:
            print(f"{args.preset} ({args.policies} policies): mean latency on test seeds {TEST_SEEDS[0]}.."
                  f"{TEST_SEEDS[args.episodes - 1]}, 95 % t-interval\n\n{score_table(score(algo, args))}")
        algo.stop()
    finally:
        ray.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
