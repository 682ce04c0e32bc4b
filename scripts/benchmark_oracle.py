"""Oracle solve time on the paper preset (n_max = 22, l_max = 8), K = 100, 1000 and 10,000, as a table.

    python scripts/benchmark_oracle.py [--sizes 100,1000,10000] [--seeds 1] [--objective mean_latency]
                                       [--preset paper] [--allocation closed_form] [--reference-max 1000]

One process. First the JIT: the compiled DP's first call on a K = 10 episode (it compiles, or loads numba's
cache; run with ``NUMBA_CACHE_DIR=$(mktemp -d)`` to see the cold compile). Then for each K, on episode
seeds 0, 1, ...: the segment tables, the bound-pruned DP (what the oracle runs) and, up to K =
--reference-max, the same DP with ``prune=False`` (dominance only) as the reference measured in the same
run; "labels" is the number of Pareto labels each kept. Times are means over the seeds. Peak RSS is the
process's maximum resident set size so far (``resource.getrusage``), read after the row's solves.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from sdedge_agents.oracle import solve
from sdedge_gym import Episode, ServingModel, make_scenario
from sdedge_gym.segments import ALLOCATIONS, segment_tables


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--objective", default="mean_latency", choices=("mean_latency", "makespan"))
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--allocation", default="closed_form", choices=ALLOCATIONS,
                        help="band split of the tables (uniform: the uniform-shares baseline's DP)")
    parser.add_argument("--reference-max", type=int, default=1000,
                        help="largest K at which the unpruned DP runs as the reference")
    args = parser.parse_args()

    model = ServingModel.of(make_scenario(args.preset, num_tasks=10, objective=args.objective))
    tables = segment_tables(model, Episode.draw(model, np.random.default_rng(0)), args.allocation)
    start = time.perf_counter()
    solve(tables, args.objective)
    print(f"JIT: first DP call {time.perf_counter() - start:.2f} s (compile, or load numba's cache)\n")

    print(f"{args.preset} preset, n_max = {model.batch_limit}, l_max = {model.config.max_speculation}, "
          f"{args.allocation} band split, {args.objective}\n")
    print("| K | tables (s) | DP (s) | total (s) | labels | unpruned DP (s) | unpruned labels | DP speed-up "
          "| peak RSS (MiB) | objective (s) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in (int(s) for s in args.sizes.split(",")):
        model = ServingModel.of(make_scenario(args.preset, num_tasks=size, objective=args.objective))
        rows = []
        for seed in range(args.seeds):
            episode = Episode.draw(model, np.random.default_rng(seed))
            start = time.perf_counter()
            tables = segment_tables(model, episode, args.allocation)
            middle = time.perf_counter()
            plan = solve(tables, args.objective, size)
            end = time.perf_counter()
            reference = (np.nan, np.nan)
            if size <= args.reference_max:
                unpruned = solve(tables, args.objective, size, prune=False)
                reference = (time.perf_counter() - end, unpruned.labels)
                assert abs(unpruned.cost - plan.cost) <= 1e-9 * abs(unpruned.cost), (unpruned.cost, plan.cost)
            rows.append((middle - start, end - middle, plan.labels, *reference, plan.cost))
        tab, dp, labels, ref_dp, ref_labels, cost = (float(np.mean(c)) for c in zip(*rows, strict=True))
        reference_cells = ("— | — | —" if np.isnan(ref_dp) else
                           f"{ref_dp:.3f} | {ref_labels:,.0f} | {ref_dp / dp:.0f}x")
        print(f"| {size:,} | {tab:.2f} | {dp:.3f} | {tab + dp:.2f} | {labels:,.0f} | {reference_cells} | "
              f"{peak_rss_mib():.0f} | {cost:.3f} |", flush=True)


if __name__ == "__main__":
    main()
