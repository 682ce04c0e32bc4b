"""Train PPO with RLlib (Ray) on an sdedge id, then evaluate it against the oracle with sdedge_agents.evaluate.

    pip install -e ".[rllib]"     # Ray pins gymnasium 1.2.2: best in a venv of its own (docs/INTEGRATIONS.md)
    python scripts/train_rllib.py --env sdedge/EdgeSD-Small-v0 --iterations 50 --num-env-runners 2
    python scripts/train_rllib.py --address auto ...          # on a running Ray cluster instead of a local one

For users who outgrow one machine: RLlib's env runners sample in parallel Ray actors (on a cluster when
``--address`` names one) and the learner updates a torch RLModule, on RLlib's new API stack. The env is
registered with ``ray.tune.registry.register_env`` under ``ENV_NAME`` with the package's creator
``sdedge_gym.registration.env_creator``: workers unpickle it by importing sdedge_gym (which registers the
ids there) and it calls ``gymnasium.make(id, **env_kwargs)``. A bare ``"sdedge/..."`` string would fail in
the workers (``Namespace sdedge not found``: they have not imported the package).

RLlib's default PPO module does not read action masks: an invalid batch size is clipped by the env to
the largest valid one (``info["action_clipped"]``), which is the env's documented behaviour. The reward is
minus the batch's share of the mean latency, so ``--gamma 1`` (the default) optimises the objective.

The trained module then acts greedily (its distribution's deterministic action,
:class:`sdedge_agents.rllib.RLlibGreedyPolicy`) through :func:`sdedge_agents.evaluate.evaluate` on the same
seeded episodes as the oracle and the baselines. The multi-cell env has its own script,
``scripts/train_rllib_multicell.py`` (RLlib's multi-agent API).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: agents, sdedge_gym

import sdedge_gym  # registers the ids in the driver
from sdedge_agents.evaluate import evaluate, format_table
from sdedge_agents.rllib import (
    RLlibGreedyPolicy,
    add_ppo_arguments,
    build_and_train,
    check_ppo_arguments,
    ppo_settings,
    run_on_ray,
)
from sdedge_gym.registration import env_creator

ENV_NAME = "sdedge-gym"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python scripts/train_rllib.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="sdedge/EdgeSD-Small-v0",
                        help="a registered single-cell id (sdedge_gym.SINGLE_CELL_ENV_IDS)")
    parser.add_argument("--env-kwargs", default="{}", type=json.loads,
                        help='JSON keyword arguments for gymnasium.make, e.g. \'{"num_tasks": 20}\'')
    parser.add_argument("--envs-per-runner", type=int, default=1)
    add_ppo_arguments(parser, "env steps")
    parser.add_argument("--eval-episodes", type=int, default=20, help="0 skips the evaluation")
    parser.add_argument("--eval-seed", type=int, default=10_000)
    args = parser.parse_args(argv)
    if args.env not in sdedge_gym.SINGLE_CELL_ENV_IDS:
        parser.error(f"--env {args.env!r} is not a registered single-cell id; allowed: "
                     f"{', '.join(sdedge_gym.SINGLE_CELL_ENV_IDS)}")
    check_ppo_arguments(parser, args, ("envs_per_runner",))
    return args


def build_config(args: argparse.Namespace):
    """PPO on the new API stack (RLModule, Learner, EnvRunner: RLlib's default for PPO) with env runners."""
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.tune.registry import register_env

    register_env(ENV_NAME, env_creator)
    return ppo_settings(PPOConfig()
                        .environment(ENV_NAME, env_config={"env_id": args.env, "env_kwargs": args.env_kwargs})
                        .env_runners(num_env_runners=args.num_env_runners,
                                     num_envs_per_env_runner=args.envs_per_runner,
                                     sample_timeout_s=args.sample_timeout), args)


def train(args: argparse.Namespace, progress: bool = True):
    """Build, train ``args.iterations`` iterations and return (algorithm, last result)."""
    return build_and_train(build_config(args), args.iterations, progress)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    def report(algo) -> None:
        if args.eval_episodes > 0:
            module = algo.get_module()
            results = evaluate(args.env, args.eval_episodes, args.eval_seed, policies=["rllib-ppo", "best-constant"],
                               progress=False, env_kwargs=args.env_kwargs,
                               factories={"rllib-ppo": lambda env: RLlibGreedyPolicy(module, env.action_space)})
            print(f"{args.env}: {args.eval_episodes} episodes, seeds {args.eval_seed}.."
                  f"{args.eval_seed + args.eval_episodes - 1}")
            print(format_table(results))

    return run_on_ray(args, build_config, report)


if __name__ == "__main__":
    raise SystemExit(main())
