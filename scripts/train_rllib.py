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
from sdedge_gym.registration import env_creator

ENV_NAME = "sdedge-gym"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python scripts/train_rllib.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="sdedge/EdgeSD-Small-v0",
                        help="a registered single-cell id (sdedge_gym.SINGLE_CELL_ENV_IDS)")
    parser.add_argument("--env-kwargs", default="{}", type=json.loads,
                        help='JSON keyword arguments for gymnasium.make, e.g. \'{"num_tasks": 20}\'')
    parser.add_argument("--iterations", type=int, default=20, help="RLlib training iterations (algo.train())")
    parser.add_argument("--num-env-runners", type=int, default=2, help="parallel sampling actors")
    parser.add_argument("--envs-per-runner", type=int, default=1)
    parser.add_argument("--train-batch-size", type=int, default=1024, help="env steps per iteration")
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
    parser.add_argument("--eval-episodes", type=int, default=20, help="0 skips the evaluation")
    parser.add_argument("--eval-seed", type=int, default=10_000)
    args = parser.parse_args(argv)
    if args.env not in sdedge_gym.SINGLE_CELL_ENV_IDS:
        parser.error(f"--env {args.env!r} is not a registered single-cell id; allowed: "
                     f"{', '.join(sdedge_gym.SINGLE_CELL_ENV_IDS)}")
    if args.sample_timeout <= 0:
        parser.error(f"--sample-timeout = {args.sample_timeout} is invalid; allowed: a number of seconds > 0")
    for name in ("iterations", "num_env_runners", "envs_per_runner", "train_batch_size", "minibatch_size", "epochs"):
        if getattr(args, name) < (0 if name == "num_env_runners" else 1):
            parser.error(f"--{name.replace('_', '-')} = {getattr(args, name)} is invalid; allowed: an integer >= 1")
    return args


def build_config(args: argparse.Namespace):
    """PPO on the new API stack (RLModule, Learner, EnvRunner: RLlib's default for PPO) with env runners."""
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.tune.registry import register_env

    register_env(ENV_NAME, env_creator)
    return (PPOConfig()
            .environment(ENV_NAME, env_config={"env_id": args.env, "env_kwargs": args.env_kwargs})
            .env_runners(num_env_runners=args.num_env_runners, num_envs_per_env_runner=args.envs_per_runner,
                         sample_timeout_s=args.sample_timeout)
            .training(train_batch_size_per_learner=args.train_batch_size, minibatch_size=args.minibatch_size,
                      num_epochs=args.epochs, lr=args.lr, gamma=args.gamma)
            .debugging(seed=args.seed))


def train(args: argparse.Namespace, progress: bool = True):
    """Build, train ``args.iterations`` iterations and return (algorithm, last result)."""
    from sdedge_agents.rllib import train_iterations

    algo = build_config(args).build_algo()
    return algo, train_iterations(algo, args.iterations, progress)


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
        if args.eval_episodes > 0:
            from sdedge_agents.rllib import RLlibGreedyPolicy

            module = algo.get_module()
            results = evaluate(args.env, args.eval_episodes, args.eval_seed, policies=["rllib-ppo", "best-constant"],
                               progress=False, env_kwargs=args.env_kwargs,
                               factories={"rllib-ppo": lambda env: RLlibGreedyPolicy(module, env.action_space)})
            print(f"{args.env}: {args.eval_episodes} episodes, seeds {args.eval_seed}.."
                  f"{args.eval_seed + args.eval_episodes - 1}")
            print(format_table(results))
        algo.stop()
    finally:
        ray.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
