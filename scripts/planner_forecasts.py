"""The online planner's three forecasts side by side, and the one its tuning keeps.

    nice -n 5 python scripts/planner_forecasts.py                # Online-v0 and both trace ids, 100 test episodes

"slack" waits when the planned batch would be uploaded more than one expected inter-arrival time before the
MBS frees up; "phantom" plans the arrived tasks with n_lim expected ones arriving at the mean rate and waits
when the plan's first batch holds one; "none" never waits for arrivals (``sdedge_agents.online.OnlinePlanner``).
The default planner keeps the forecast with the least mean latency on three tuning episodes (training
windows on a trace, ``tune_forecast``); the table scores all three on the held-out test episodes 500..599
(mean latency over episodes ± the 95 % t-interval half-width).
"""

from __future__ import annotations

import argparse
import math

import gymnasium as gym
import numpy as np
from scipy import stats

import sdedge_gym  # noqa: F401 (registers the ids)
from sdedge_agents.online import FORECASTS, OnlinePlanner
from sdedge_agents.protocol import TEST_SEEDS, held_out_env_kwargs

IDS = ("sdedge/EdgeSD-Online-v0", "sdedge/EdgeSD-Online-AzureConv-v0", "sdedge/EdgeSD-Online-AzureCode-v0")


def mean_latencies(env, planner: OnlinePlanner, seeds: list[int]) -> list[float]:
    out = []
    for seed in seeds:
        observation, _ = env.reset(seed=seed)
        terminated = False
        while not terminated:
            observation, _, terminated, _, info = env.step(planner.predict(observation)[0])
        out.append(float(info["mean_latency"]))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=len(TEST_SEEDS))
    args = parser.parse_args(argv)
    seeds = list(range(TEST_SEEDS[0], TEST_SEEDS[0] + args.episodes))
    print("| id | " + " | ".join(f"{f} (s)" for f in FORECASTS) + " | kept by tuning |")
    print("|---|" + "---:|" * len(FORECASTS) + "---|")
    for env_id in IDS:
        env = gym.make(env_id, disable_env_checker=True, **held_out_env_kwargs(env_id))
        cells = []
        for forecast in FORECASTS:
            values = mean_latencies(env, OnlinePlanner(env, forecast=forecast), seeds)
            half = stats.t.ppf(0.975, len(values) - 1) * np.std(values, ddof=1) / math.sqrt(len(values)) \
                if len(values) > 1 else 0.0
            cells.append(f"{np.mean(values):.2f} ± {half:.2f}")
        print(f"| `{env_id}` | " + " | ".join(cells) + f" | {OnlinePlanner(env).forecast} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
