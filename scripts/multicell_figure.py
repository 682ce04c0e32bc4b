"""Mean latency per task against the number of cells sharing the MBS, for the multi-cell references.

    nice -n 5 python scripts/multicell_figure.py        # -> docs/figures/multicell_references.{png,csv}

C = 1..6 (--max-cells) copies of the paper's small cell (RTX 3080, LLaMA-68M, 1 MHz; the ``small`` preset, K = 8
tasks a cell) verified by the one MBS. For each C and seed: the two lower bounds (contention-free: every cell
with an MBS of its own; MBS capacity: the MBS's serial work, docs/MODEL.md §17), the uncoordinated cells (each
plays its solo-optimal plan, or its best constant action, in the shared network) and the centralised planner;
the mean over all tasks of all cells, averaged over the seeds. The gap between the lower bounds and the others
brackets the price of sharing the MBS; the gap between the uncoordinated oracles and the centralised planner is
what coordination wins back. With ``--agents PATTERN``, the twin agents trained by ``scripts/train_multicell_twin.py
--cells C`` on the same seeds (their greedy mean latency; a C without a model is left out).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from sdedge_agents.multicell import (
    centralised_plan,
    contention_free_bound,
    masked_greedy,
    mbs_capacity_bound,
    play_twin_episode,
    uncoordinated_plans,
)
from sdedge_gym.multicell import MultiCellTwinEnv, identical_cells

FIGURES = Path(__file__).resolve().parents[1] / "docs" / "figures"
REFERENCES = ("contention-free bound", "MBS-capacity bound", "uncoordinated oracle", "uncoordinated best-constant",
              "centralised planner")
STYLE = {"contention-free bound": ("k", "o", ":"), "MBS-capacity bound": ("k", "^", "-"),
         "uncoordinated oracle": ("tab:orange", "v", "-"),
         "uncoordinated best-constant": ("tab:red", "D", "-"), "centralised planner": ("tab:blue", "s", "--")}
AGENT = "twin MaskablePPO (reference reward)"


def references(cells: int, seed: int) -> list[float]:
    env = MultiCellTwinEnv(identical_cells(cells))
    env.reset(seed=seed)
    models = [e.model for e in env.core.cell_envs]
    episodes = [e.episode for e in env.core.cell_envs]
    return [contention_free_bound(models, episodes), mbs_capacity_bound(models, episodes),
            uncoordinated_plans(models, episodes).mean_latency,
            uncoordinated_plans(models, episodes, "best-constant").mean_latency,
            centralised_plan(models, episodes).mean_latency]


def agent_latency(pattern: str | None, cells: int, seeds: int) -> float:
    """The twin agent's greedy mean latency for C cells over the figure's seeds (nan without a model)."""
    path = Path(pattern.format(cells=cells)) if pattern else None
    if path is None or not path.exists():
        return float("nan")
    from sb3_contrib import MaskablePPO

    policy = masked_greedy(MaskablePPO.load(path, device="cpu"))
    return float(np.mean([play_twin_episode(policy, identical_cells(cells), seed) for seed in range(seeds)]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--max-cells", type=int, default=6)  # the centralised planner grows exponentially in C
    parser.add_argument("--out", type=Path, default=FIGURES)
    parser.add_argument("--replot", action="store_true", help="only redraw the figure from the CSV in --out")
    parser.add_argument("--agents", default=None, metavar="PATTERN",
                        help="twin agents' models, {cells} standing for C (e.g. runs/multicell_twin/"
                             "{cells}-identical-reference-seed1000/model.zip): their greedy mean latency where one "
                             "exists (scripts/train_multicell_twin.py --cells C)")
    args = parser.parse_args(argv)
    if args.replot:
        with open(args.out / "multicell_references.csv") as handle:
            rows = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]
        plot(rows, args.out / "multicell_references.png", args.seeds)
        return 0
    counts = list(range(1, args.max_cells + 1))
    rows = []
    for cells in counts:
        mean = np.mean([references(cells, seed) for seed in range(args.seeds)], axis=0)
        rows.append({"cells": cells, **{name: float(value) for name, value in zip(REFERENCES, mean, strict=True)},
                     AGENT: agent_latency(args.agents, cells, args.seeds)})
        print(f"| {cells} | " + " | ".join(f"{rows[-1][name]:.3f}" for name in (*REFERENCES, AGENT)) + " |",
              flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "multicell_references.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, args.out / "multicell_references.png", args.seeds)
    return 0


def plot(rows: list[dict], path: Path, seeds: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    counts = [int(r["cells"]) for r in rows]
    for name in REFERENCES:  # the planner dashed on top: on identical cells it equals the uncoordinated oracle
        colour, marker, line = STYLE[name]
        ax.plot(counts, [r[name] for r in rows], marker=marker, color=colour, linestyle=line, label=name,
                markersize=9 if name == "uncoordinated oracle" else 6)
    agent = [(c, r.get(AGENT, float("nan"))) for c, r in zip(counts, rows, strict=True)]
    agent = [(c, value) for c, value in agent if np.isfinite(value)]
    if agent:
        ax.plot(*zip(*agent, strict=True), marker="*", color="tab:green", linestyle="-", label=AGENT, markersize=10)
    ax.set_xlabel("cells sharing the MBS (identical small cells, K = 8 each)")
    ax.set_ylabel("mean latency per task (s)")
    ax.set_title(f"Multi-cell references, {seeds} seeds per point")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
