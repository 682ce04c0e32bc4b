"""Learning curves: the oracle gap against env steps, mean and band over training seeds, from sdedge_agents.train runs.

    python scripts/plot_training.py runs/small/seed1000 runs/small/seed2000 runs/small/seed3000 \\
        --out docs/figures/training_small.png
    python scripts/plot_training.py --group "default reward" runs/a/seed1000 runs/a/seed2000 \\
        --group "reference reward" runs/b/seed1000 runs/b/seed2000 --out docs/figures/ablation.png --ymax 12

Several ``--group LABEL DIR ...`` draw one curve and band per group (an ablation), on the same axes.

Each run directory is an ``sdedge_agents.train --eval-every N``, ``sdedge_agents.group_ppo --eval-every N`` or
``sdedge_agents.imitate`` run (same id, same validation episodes): its ``evaluations.csv`` holds the oracle gap
of the deterministic policy on the validation episodes at every evaluation. The curve is the mean over runs and
the band their min..max (3 seeds are too few for a standard deviation), on the first run's evaluation steps (the
others interpolated onto them). Reference lines, on the same validation episodes: the oracle (0 %), the MPC
planner and the best fixed baseline (best constant, max batch, autoregressive), evaluated here with
sdedge_agents.evaluate, and for imitation runs their teacher.
"""

from __future__ import annotations

import argparse
import csv
import json
import textwrap
from pathlib import Path

import numpy as np

from sdedge_agents.evaluate import FIXED_BASELINES, evaluate
from sdedge_agents.protocol import VALIDATION_SEEDS
from sdedge_gym.registration import ONLINE_ENV_IDS

# The online family's deployable fixed heuristics (sdedge_agents.online)
ONLINE_FIXED_BASELINES = ("max-batch-timeout", "dispatch-immediately", "autoregressive")


def read_run(run_dir: Path) -> tuple[dict, np.ndarray, np.ndarray]:
    """(run.json, steps, oracle gap %) of one run."""
    path = run_dir / "evaluations.csv"
    if not path.exists():
        raise ValueError(f"{path} is missing; allowed: run directories of sdedge_agents.train --eval-every N")
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    steps = np.array([int(r["timesteps"]) for r in rows])
    gaps = np.array([float(r["oracle_gap_percent"]) for r in rows])
    return json.loads((run_dir / "run.json").read_text()), steps, gaps


def reference_gaps(env_id: str, episodes: int, teacher: str | None = None) -> dict[str, float]:
    """Gap to the oracle of the planner and the best fixed baseline on the validation episodes (online ids:
    the fixed online heuristics), and of the ``teacher`` of an imitation run."""
    baselines = ONLINE_FIXED_BASELINES if env_id in ONLINE_ENV_IDS else FIXED_BASELINES
    extra = [teacher] if teacher and teacher != "planner" else []
    results = {r.policy: r for r in evaluate(env_id, episodes, VALIDATION_SEEDS[0], ["planner", *baselines, *extra],
                                             progress=False)}
    best = min(baselines, key=lambda b: results[b].mean)
    gaps = {"planner": results["planner"].gap_percent, f"best baseline ({best})": results[best].gap_percent}
    return gaps | {f"{name} (the teacher)": results[name].gap_percent for name in extra}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="*", type=Path,
                        help="sdedge_agents.train run directories (one per training seed)")
    parser.add_argument("--group", nargs="+", action="append", default=[], metavar="LABEL DIR",
                        help="a label and its run directories; repeat for one curve per group")
    parser.add_argument("--ymax", type=float, default=None, help="top of the y axis in %% (default: from the data)")
    parser.add_argument("--out", type=Path, required=True, help="PNG path, e.g. docs/figures/training_small.png")
    parser.add_argument("--title", default=None)
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [(None, args.runs)] if args.runs else []
    for label, *dirs in args.group:
        if not dirs:
            raise ValueError(f"--group {label!r} has no run directories; allowed: --group LABEL DIR [DIR ...]")
        groups.append((label, [Path(d) for d in dirs]))
    if not groups:
        raise ValueError("no runs; allowed: run directories, or --group LABEL DIR [DIR ...]")
    read = [(label, [read_run(r) for r in dirs]) for label, dirs in groups]
    runs = [run for _, group in read for run in group]
    # sdedge_agents.imitate runs: the x axis counts teacher-labelled env steps, and the teacher is a reference line
    teacher = runs[0][0]["config"].get("teacher")
    configs = {(run["config"]["env_id"], run["config"]["algo"], run["config"]["eval_episodes"]) for run, _, _ in runs}
    if len(configs) != 1:
        raise ValueError(f"the runs differ in (env, algo, eval_episodes): {sorted(configs)}; allowed: runs of one "
                         "(id, algorithm) on the same validation episodes")
    env_id, algo, episodes = configs.pop()
    several = len(read) > 1  # an ablation: a wider figure with the legend beside the axes
    fig, ax = plt.subplots(figsize=(11, 4.6) if several else (7, 4.2), dpi=120)
    lowest, highest = np.inf, -np.inf
    for label, group in read:
        steps = group[0][1]
        curves = np.array([np.interp(steps, s, g) for _, s, g in group])
        mean = curves.mean(axis=0)
        lowest, highest = min(lowest, float(curves.min())), max(highest, float(curves.max()))
        name = label or f"{algo}{' (DAgger)' if teacher else ''}"
        line, = ax.plot(steps, mean, lw=2, marker="o" if teacher else None, label=f"{name}: mean over seeds")
        ax.fill_between(steps, curves.min(axis=0), curves.max(axis=0), alpha=0.2, color=line.get_color(),
                        label=f"{name}: min..max over {len(group)} seeds")
        print(f"{name}: final mean gap {mean[-1]:+.2f} % at {steps[-1]} steps over {len(group)} runs")
    ax.axhline(0.0, color="black", lw=1, label="oracle (0 %)")
    styles = iter(("--", ":", "-."))
    references = reference_gaps(env_id, episodes, teacher)
    for name, gap in references.items():
        ax.axhline(gap, color="grey", ls=next(styles), lw=1.2, label=f"{name}: {gap:+.1f} %")
    ax.set_xlabel("env steps (labelled by the teacher, one point per DAgger iteration)" if teacher else "env steps")
    ax.set_ylabel("gap to the oracle (%), lower is better")
    seeds = f"{VALIDATION_SEEDS[0]}..{VALIDATION_SEEDS[0] + episodes - 1}"
    ax.set_title(textwrap.fill(args.title or f"{env_id}: oracle gap on validation episodes {seeds}", 80), fontsize=9)
    top = max(highest, min(max(references.values()), 3.0 * highest), 1.0) if args.ymax is None else args.ymax
    ax.set_ylim(min(-0.5, lowest - 0.5), top * 1.05)
    ax.grid(alpha=0.3)
    if several:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        ax.legend(fontsize=8)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
