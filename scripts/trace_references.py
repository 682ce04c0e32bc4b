"""The references on the trace ids: mean, p50/p95/p99 latency and SLO attainment on held-out test windows.

    nice -n 5 python scripts/trace_references.py                    # both trace ids, test seeds 500..599
    python scripts/trace_references.py --episodes 5 --env sdedge/EdgeSD-Online-AzureCode-v0   # a quick look

Episode i is ``reset(seed=S + i)`` (S = 500, the protocol's test seeds) on the id made with
``sdedge_agents.protocol.held_out_env_kwargs``: a window of the trace's last 30 %. Each figure is the mean over
the episodes of the episode's own statistic (from the last step's ``info``), ± the 95 % t-interval half-width.
max-batch-timeout-tuned chooses its timeout on training windows (``sdedge_agents.online.tune_timeout``).
"""

from __future__ import annotations

import argparse
import sys

import gymnasium as gym
import numpy as np

from sdedge_agents.evaluate import make_policy
from sdedge_agents.protocol import TEST_SEEDS, held_out_env_kwargs
from sdedge_agents.statistics import mean_interval
from sdedge_gym.registration import TRACE_IDS

POLICIES = ("oracle", "planner", "max-batch-timeout-tuned", "max-batch-timeout", "dispatch-immediately",
            "autoregressive")
KPIS = ("mean_latency", "p50_latency", "p95_latency", "p99_latency", "slo_attainment")


def kpis_of(env_id: str, policy_name: str, seeds: list[int]) -> dict[str, list[float]]:
    """The last-step KPIs of ``policy_name`` on each seeded test episode of ``env_id``."""
    env = gym.make(env_id, disable_env_checker=True, **held_out_env_kwargs(env_id))
    policy = make_policy(policy_name, env)
    out: dict[str, list[float]] = {key: [] for key in KPIS}
    for seed in seeds:
        observation, _ = env.reset(seed=seed)
        terminated, state, start = False, None, True
        while not terminated:
            action, state = policy.predict(observation, state=state, episode_start=np.array([start]),
                                           deterministic=True)
            observation, _, terminated, _, info = env.step(action)
            start = False
        for key in KPIS:
            out[key].append(float(info[key]))
    env.close()
    return out


def interval(values: list[float]) -> str:
    mean, half = mean_interval(values)
    return f"{mean:.2f}" if len(values) < 2 else f"{mean:.2f} ± {half:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ids = [f"sdedge/EdgeSD-Online-{infix}-v0" for infix in TRACE_IDS.values()]
    parser.add_argument("--env", choices=ids, action="append", default=None, help="a trace id (default: both)")
    parser.add_argument("--policies", default=",".join(POLICIES))
    parser.add_argument("--episodes", type=int, default=len(TEST_SEEDS))
    parser.add_argument("--seed", type=int, default=TEST_SEEDS[0])
    args = parser.parse_args(argv)
    if args.episodes < 1:
        parser.error(f"--episodes {args.episodes} is invalid; allowed: an integer >= 1")
    seeds = list(range(args.seed, args.seed + args.episodes))
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    print("| id | policy | mean latency (s) | p50 (s) | p95 (s) | p99 (s) | SLO attainment (%) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for env_id in args.env or ids:
        for name in policies:
            kpis = kpis_of(env_id, name, seeds)
            kpis["slo_attainment"] = [100.0 * v for v in kpis["slo_attainment"]]
            print(f"| `{env_id}` | {name} | " + " | ".join(interval(kpis[key]) for key in KPIS) + " |")
            sys.stdout.flush()
    print(f"\n{len(seeds)} test windows per id, seeds {seeds[0]}..{seeds[-1]}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
