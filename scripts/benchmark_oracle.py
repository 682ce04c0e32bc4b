"""Oracle solve time for K = 10, 100, 1000 with the paper preset's batch limits, printed as a table.

    python scripts/benchmark_oracle.py [--sizes 10,100,1000] [--seeds 3]

Times the two stages separately: the segment tables (every batch's slot, duration and completion sum)
and the Pareto DP over batch boundaries; "labels" is the number of Pareto labels the DP kept.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from agents.oracle import solve
from sdedge_gym import Episode, ServingModel, make_scenario
from sdedge_gym.segments import segment_tables


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--objective", default="mean_latency", choices=("mean_latency", "makespan"))
    args = parser.parse_args()
    print("| K | n_max | l_max | tables (s) | DP (s) | total (s) | labels | objective (s) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in (int(s) for s in args.sizes.split(",")):
        model = ServingModel.of(make_scenario("paper", num_tasks=size, objective=args.objective))
        rows = []
        for seed in range(args.seeds if size <= 100 else 1):
            episode = Episode.draw(model, np.random.default_rng(seed))
            start = time.perf_counter()
            tables = segment_tables(model, episode)
            middle = time.perf_counter()
            plan = solve(tables, args.objective, size)
            rows.append((middle - start, time.perf_counter() - middle, plan.labels, plan.cost))
        tab, dp, labels, cost = (float(np.mean(c)) for c in zip(*rows, strict=True))
        print(f"| {size} | {model.batch_limit} | {model.config.max_speculation} | {tab:.2f} | {dp:.2f} | "
              f"{tab + dp:.2f} | {labels:.0f} | {cost:.3f} |", flush=True)


if __name__ == "__main__":
    main()
