"""Print the multi-cell references on the presets: lower bound, exact optimum (small instances), planners.

    python scripts/multicell_bounds.py [--seeds 3] [--exact-tasks 3]

For every multi-cell preset (sdedge_gym/multicell.py) and seed: the contention-free and the MBS-capacity
lower bounds (docs/MODEL.md §17), the uncoordinated cells (solo-optimal plans, best constant actions), the
centralised planner, each as the mean latency over all tasks in s; then, on two-cell instances of
``--exact-tasks`` tasks per cell (l <= 2), the exact joint optimum. Means over the seeds.
"""

from __future__ import annotations

import argparse

import numpy as np

from sdedge_agents.multicell import (
    centralised_plan,
    contention_free_bound,
    joint_optimum,
    mbs_capacity_bound,
    uncoordinated_plans,
)
from sdedge_gym.multicell import MULTICELL_PRESETS, MultiCellTwinEnv, make_multicell


def episodes_of(config, seed):
    env = MultiCellTwinEnv(config)
    env.reset(seed=seed)
    return [e.model for e in env.core.cell_envs], [e.episode for e in env.core.cell_envs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--exact-tasks", type=int, default=3)
    args = parser.parse_args()
    columns = ("contention-free bound", "MBS-capacity bound", "uncoordinated oracle", "uncoordinated best-constant",
               "centralised planner")
    print(f"| preset (K per cell) | {' | '.join(columns)} |\n|---|" + "---:|" * len(columns))
    for preset in MULTICELL_PRESETS:
        config = make_multicell(preset)
        rows = []
        for seed in range(args.seeds):
            models, episodes = episodes_of(config, seed)
            rows.append([contention_free_bound(models, episodes), mbs_capacity_bound(models, episodes),
                         uncoordinated_plans(models, episodes).mean_latency,
                         uncoordinated_plans(models, episodes, "best-constant").mean_latency,
                         centralised_plan(models, episodes).mean_latency])
        mean = np.mean(rows, axis=0)
        print(f"| {preset} ({config.cells[0].num_tasks}) | " + " | ".join(f"{x:.4f}" for x in mean) + " |")
    print(f"\n| preset ({args.exact_tasks} tasks per cell, l <= 2) | contention-free bound | MBS-capacity bound | "
          "exact optimum | uncoordinated oracle | centralised planner | joint plans played |\n"
          "|---|---:|---:|---:|---:|---:|---:|")
    for preset in ("two-identical", "two-heterogeneous"):
        config = make_multicell(preset, num_tasks=args.exact_tasks, max_speculation=2)
        rows = []
        for seed in range(args.seeds):
            models, episodes = episodes_of(config, seed)
            optimum = joint_optimum(models, episodes)
            rows.append([contention_free_bound(models, episodes), mbs_capacity_bound(models, episodes),
                         optimum.mean_latency,
                         uncoordinated_plans(models, episodes).mean_latency,
                         centralised_plan(models, episodes).mean_latency, optimum.evaluated])
        mean = np.mean(rows, axis=0)
        print(f"| {preset} | " + " | ".join(f"{x:.4f}" for x in mean[:5]) + f" | {mean[5]:.0f} |")


if __name__ == "__main__":
    main()
