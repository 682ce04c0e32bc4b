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
from sdedge_agents.rllib import (
    POLICY_LAYOUTS,
    SHARED_POLICY,
    ActingCells,
    add_ppo_arguments,
    build_and_train,
    check_ppo_arguments,
    greedy_cells,
    multicell_env_creator,
    policy_mapping,
    ppo_settings,
    run_on_ray,
)
from sdedge_gym.multicell import MULTICELL_PRESETS

ENV_NAME = "sdedge-gym-multicell"



def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python scripts/train_rllib_multicell.py",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=sorted(MULTICELL_PRESETS), default="two-heterogeneous")
    parser.add_argument("--action-mode", choices=("discrete", "hybrid", "dict"), default="discrete")
    parser.add_argument("--policies", choices=POLICY_LAYOUTS, default="shared",
                        help="one module shared by every cell, or one per cell")
    parser.add_argument("--own-reward", action="store_true", help="each cell its own cost, not the team's")
    add_ppo_arguments(parser, "agent steps")
    parser.add_argument("--episodes", type=int, default=20, help="held-out test episodes (seeds 500..); 0 skips")
    args = parser.parse_args(argv)
    check_ppo_arguments(parser, args)
    if not 0 <= args.episodes <= len(TEST_SEEDS):
        parser.error(f"--episodes = {args.episodes} is invalid; allowed: 0..{len(TEST_SEEDS)}")
    return args


def build_config(args: argparse.Namespace):
    """PPO on the new API stack with RLlib's multi-agent API: the policies and their mapping from the cells."""
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec
    from ray.tune.registry import register_env

    register_env(ENV_NAME, multicell_env_creator)
    env_config = {"preset": args.preset, "action_mode": args.action_mode, "team_reward": not args.own_reward}
    cells = ActingCells(env_config).possible_agents
    policies = [SHARED_POLICY] if args.policies == "shared" else cells
    config = (PPOConfig()
              .environment(ENV_NAME, env_config=env_config)
              .multi_agent(policies=set(policies), policy_mapping_fn=policy_mapping(args.policies))
              .rl_module(rl_module_spec=MultiRLModuleSpec(rl_module_specs={p: RLModuleSpec() for p in policies}))
              .env_runners(num_env_runners=args.num_env_runners, sample_timeout_s=args.sample_timeout))
    return ppo_settings(config, args)


def train(args: argparse.Namespace, progress: bool = True):
    """Build, train ``args.iterations`` iterations and return (algorithm, last result)."""
    return build_and_train(build_config(args), args.iterations, progress)


def score(algo, args: argparse.Namespace) -> dict[str, np.ndarray]:
    """Per-episode mean latency of the greedy joint policy and of the references on the test episodes."""
    seeds = list(TEST_SEEDS[:args.episodes])
    policy = greedy_cells(algo, args.preset, args.policies, args.action_mode)
    results = {"rllib-ppo": np.array([play_episode(policy, args.preset, seed, args.action_mode) for seed in seeds])}
    rows = [reference_latencies(args.preset, seed) for seed in seeds]
    return results | {name: np.array([row[name] for row in rows]) for name in rows[0]}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    def report(algo) -> None:
        if args.episodes > 0:
            print(f"{args.preset} ({args.policies} policies): mean latency on test seeds {TEST_SEEDS[0]}.."
                  f"{TEST_SEEDS[args.episodes - 1]}, 95 % t-interval\n\n{score_table(score(algo, args))}")

    return run_on_ray(args, build_config, report)


if __name__ == "__main__":
    raise SystemExit(main())
