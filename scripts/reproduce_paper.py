"""Reproduce the seed paper's comparisons with the exact oracle and the paper's benchmark schemes.

    nice -n 19 python scripts/reproduce_paper.py                 # full sweep -> docs/figures/
    python scripts/reproduce_paper.py --quick                    # smoke test, about a minute -> runs/reproduce-quick/
    python scripts/reproduce_paper.py --ray [--ray-address auto]  # every episode a Ray task (local or a cluster)

Four sweeps around the ``paper`` preset (K = 100 requests, LLaMA-68M on an RTX 3080 SBS drafting for
LLaMA-7B on an RTX 4500 Ada MBS, 1 MHz of uplink):

* ``tasks``      number of requests K = 10 .. 100;
* ``bandwidth``  total uplink band B;
* ``acceptance`` a narrow acceptance-rate range alpha_k ~ U[a - 0.05, a + 0.05] centred on each value a;
* ``models``     the draft -> target pairs 68M -> 7B, 68M -> 13B, 1.1B -> 7B, 1.1B -> 13B. LLaMA-13B in
                 FP16 (26 GB) does not fit in the RTX 4500 Ada's 24 GB, so 13B targets use INT8 weights
                 (``bytes_per_param = 1``; the K/V cache stays FP16).

Every point is served by each scheme on the same seeded episodes (seeds 0 .. S-1), and every scheme is
scored exactly from the episode's segment tables (:mod:`sdedge_gym.segments`):

* ``oracle``          joint optimisation: the exact DP over batch boundaries and per-batch speculation
                      lengths, closed-form band split (:func:`sdedge_agents.oracle.solve`);
* ``uniform``         the same DP with every batch's band split equally (the paper's benchmark split);
* ``autoregressive``  AD serving: l = 0 (no draft model), the DP's best batching;
* ``fixed_l2``, ``fixed_l6``  fixed speculation length l = 2 or 6, the DP's best batching;
* ``max_batch``       max batching: always the largest batch memory and the action space allow, with the
                      single l that is best for the episode, closed-form split;
* ``best_constant``   the single (n, l) that is best for the episode, closed-form split.

The two constant-action schemes pick their (n, l) in hindsight on the episode they are scored on, which
favours them; the reported reductions are therefore lower bounds of what a tuned constant would give.

Outputs in ``--out``: one PNG per sweep, ``reproduction.json`` (every number, per seed, with the
settings) and ``reproduction.csv`` (one row per sweep point, scheme and seed). The script ends by
printing the largest reduction of the oracle against each scheme over all sweep points next to the
paper's claim.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sdedge_agents.baselines import constant_action_cost
from sdedge_agents.evaluate import progress_counter
from sdedge_agents.oracle import solve
from sdedge_agents.statistics import mean_interval
from sdedge_gym.catalogue import MODELS
from sdedge_gym.config import ScenarioConfig
from sdedge_gym.episode import Episode, ServingModel
from sdedge_gym.scenarios import make_scenario
from sdedge_gym.segments import SegmentTables, segment_tables

SCHEMES = ("oracle", "uniform", "max_batch", "best_constant", "fixed_l6", "fixed_l2", "autoregressive")
SCHEME_LABELS = {
    "oracle": "joint optimisation (oracle)",
    "uniform": "uniform bandwidth",
    "max_batch": "max batching (best l)",
    "best_constant": "best constant (n, l)",
    "fixed_l6": "fixed l = 6",
    "fixed_l2": "fixed l = 2",
    "autoregressive": "AD serving (l = 0)",
}
FIXED_LENGTHS = {"fixed_l2": 2, "fixed_l6": 6}

# The seed paper's headline claims, scheme -> reduction of the joint optimisation against it (None: the
# paper states only the direction).
PAPER_CLAIMS: dict[str, tuple[float | None, str]] = {
    "uniform": (0.449, "up to 44.9 % lower latency than uniform bandwidth allocation"),
    "max_batch": (0.214, "up to 21.4 % lower latency than max batching"),
    "autoregressive": (None, "speculative decoding serves with lower latency than autoregressive decoding"),
}

ACCEPTANCE_HALF_WIDTH = 0.05  # alpha_k ~ U[a - 0.05, a + 0.05] in the acceptance sweep
MODEL_PAIRS = (("llama-68m", "llama-7b"), ("llama-68m", "llama-13b"), ("tinyllama-1.1b", "llama-7b"),
               ("tinyllama-1.1b", "llama-13b"))
PAIR_LABELS = {"llama-68m": "68M", "tinyllama-1.1b": "1.1B", "llama-7b": "7B", "llama-13b": "13B"}


@dataclass(frozen=True)
class SweepPlan:
    """The points and seeds of one run (full or quick)."""

    seeds: tuple[int, ...]
    task_counts: tuple[int, ...]
    bandwidths: tuple[float, ...]  # Hz
    acceptance_centres: tuple[float, ...]
    other_sweeps_tasks: int  # K of the bandwidth, acceptance and model sweeps


FULL = SweepPlan(seeds=(0, 1, 2, 3, 4), task_counts=(10, 20, 30, 40, 50, 60, 70, 80, 90, 100),
                 bandwidths=(0.25e6, 0.5e6, 1e6, 2e6, 4e6, 8e6), acceptance_centres=(0.35, 0.5, 0.65, 0.8, 0.9),
                 other_sweeps_tasks=100)
QUICK = SweepPlan(seeds=(0, 1), task_counts=(10, 20), bandwidths=(0.5e6, 2e6), acceptance_centres=(0.4, 0.8),
                  other_sweeps_tasks=20)


@dataclass
class Point:
    """One sweep point: its scenario and, once run, every scheme's episode costs (one per seed)."""

    sweep: str
    x: float
    label: str
    scenario: ScenarioConfig
    costs: dict[str, list[float]] = field(default_factory=dict)  # scheme -> mean latency per seed, s
    details: list[dict[str, Any]] = field(default_factory=list)  # per seed: the schemes' chosen actions


@dataclass(frozen=True)
class Sweep:
    """A named sweep and how to label its axis."""

    name: str
    parameter: str
    axis_label: str
    points: list[Point]


def pair_scenario(base: ScenarioConfig, draft: str, target: str) -> ScenarioConfig:
    """``base`` with another draft/target pair; a 13B target gets INT8 weights so that it fits in 24 GB."""
    bytes_per_param = 1.0 if target == "llama-13b" else base.target.bytes_per_param
    return base.replace(draft=base.draft.replace(model=MODELS[draft]),
                        target=base.target.replace(model=MODELS[target], bytes_per_param=bytes_per_param))


def build_sweeps(plan: SweepPlan) -> list[Sweep]:
    """The four sweeps of ``plan`` around the paper preset."""
    k = plan.other_sweeps_tasks
    base = make_scenario("paper", num_tasks=k)
    tasks = [Point("tasks", float(n), str(n), make_scenario("paper", num_tasks=n)) for n in plan.task_counts]
    bandwidth = [Point("bandwidth", b / 1e6, f"{b / 1e6:g}",
                       make_scenario("paper", config={"uplink": {"bandwidth": b}}, num_tasks=k))
                 for b in plan.bandwidths]
    acceptance = [
        Point("acceptance", a, f"{a:g}",
              make_scenario("paper", config={"workload": {"alpha_min": round(a - ACCEPTANCE_HALF_WIDTH, 6),
                                                          "alpha_max": round(a + ACCEPTANCE_HALF_WIDTH, 6)}},
                            num_tasks=k))
        for a in plan.acceptance_centres]
    models = [Point("models", float(i), f"{PAIR_LABELS[d]}→{PAIR_LABELS[t]}", pair_scenario(base, d, t))
              for i, (d, t) in enumerate(MODEL_PAIRS)]
    return [
        Sweep("tasks", "number of requests K", "number of requests K", tasks),
        Sweep("bandwidth", "uplink bandwidth B (MHz)", "total uplink bandwidth B (MHz)", bandwidth),
        Sweep("acceptance", "acceptance-rate centre a",
              f"acceptance rate α (α_k ~ U[a − {ACCEPTANCE_HALF_WIDTH}, a + {ACCEPTANCE_HALF_WIDTH}])", acceptance),
        Sweep("models", "draft → target pair", "draft → target model (SBS RTX 3080 → MBS RTX 4500 Ada)", models),
    ]


# ------------------------------------------------------------------------------------------- schemes


def with_one_length(tables: SegmentTables, speculation_length: int) -> SegmentTables:
    """The tables restricted to one speculation length, so that the DP optimises the batching only."""
    keep = slice(speculation_length, speculation_length + 1)
    return SegmentTables(tables.uplink_slot, tables.duration[..., keep], tables.completion_sum[..., keep],
                         tables.allocation)


def constant_costs(tables: SegmentTables, objective: str) -> np.ndarray:
    """(N, L + 1): the episode's cost under every constant action (n, l)."""
    return np.array([[constant_action_cost(tables, objective, n, l) for l in range(tables.max_speculation + 1)]
                     for n in range(1, tables.batch_limit + 1)])


def episode_costs(scenario: ScenarioConfig, seed: int) -> tuple[dict[str, float], dict[str, Any]]:
    """Every scheme's objective (mean latency, s) on the episode of ``seed``, and the actions they chose."""
    model = ServingModel.of(scenario)
    episode = Episode.draw(model, np.random.default_rng(seed))
    objective, num_tasks = scenario.objective, episode.num_tasks
    closed_form = segment_tables(model, episode, "closed_form")
    uniform = segment_tables(model, episode, "uniform")
    oracle = solve(closed_form, objective, num_tasks)
    costs = {"oracle": oracle.cost, "uniform": solve(uniform, objective, num_tasks).cost,
             "autoregressive": solve(with_one_length(closed_form, 0), objective, num_tasks).cost}
    for name, length in FIXED_LENGTHS.items():
        costs[name] = solve(with_one_length(closed_form, length), objective, num_tasks).cost
    constant = constant_costs(closed_form, objective)
    max_batch_length = int(np.argmin(constant[-1]))  # the last row is n = the largest valid batch
    costs["max_batch"] = float(constant[-1, max_batch_length])
    best_n, best_l = np.unravel_index(int(np.argmin(constant)), constant.shape)
    costs["best_constant"] = float(constant[best_n, best_l])
    sizes = [n for n, _ in oracle.batches]
    lengths = [l for _, l in oracle.batches]
    details = {
        "seed": seed,
        "batch_limit": closed_form.batch_limit,
        "oracle_batches": len(oracle.batches),
        "oracle_mean_batch_size": float(np.mean(sizes)),
        "oracle_mean_speculation_length": float(np.average(lengths, weights=sizes)),
        "oracle_plan": [[int(n), int(l)] for n, l in oracle.batches],
        "max_batch_speculation_length": max_batch_length,
        "best_constant_action": [int(best_n) + 1, int(best_l)],
    }
    return costs, details


# ------------------------------------------------------------------------------------------- statistics


def reductions(point: Point, scheme: str) -> list[float]:
    """Per seed: (scheme - oracle) / scheme, the oracle's latency reduction against ``scheme``.

    Paired on the same episode, so that the spread between episodes (some draw far longer outputs than
    others) does not hide the comparison.
    """
    return [(s - o) / s for s, o in zip(point.costs[scheme], point.costs["oracle"], strict=True)]


def reduction(point: Point, scheme: str) -> float:
    """The oracle's mean reduction against ``scheme`` at ``point`` (mean over seeds of the paired ratio)."""
    return float(np.mean(reductions(point, scheme)))


def up_to(sweeps: Iterable[Sweep], scheme: str) -> dict[str, Any]:
    """The largest reduction against ``scheme`` over every sweep point, and where it occurs."""
    best: dict[str, Any] = {"reduction": -math.inf}
    for sweep in sweeps:
        for point in sweep.points:
            r = reduction(point, scheme)
            if r > best["reduction"]:
                best = {"reduction": r, "sweep": sweep.name, "point": point.label}
    return best


def paper_point(sweeps: Iterable[Sweep]) -> Point:
    """The paper's own setting (its model pair at the sweeps' K, 1 MHz, the preset's acceptance rates)."""
    models = next(sweep for sweep in sweeps if sweep.name == "models")
    return models.points[MODEL_PAIRS.index(("llama-68m", "llama-7b"))]


# ------------------------------------------------------------------------------------------- running


def run_sweeps(sweeps: list[Sweep], seeds: Sequence[int], progress: bool = True,
               mapper: Callable[[list[tuple[ScenarioConfig, int]]], list[Any]] | None = None) -> None:
    """Fill every point's costs. A scenario shared by several sweeps (the paper point) is solved once.

    ``mapper`` (e.g. :func:`ray_mapper`) computes ``episode_costs`` of every unique (scenario, seed) at
    once, in parallel; without it they are computed one after the other in this process.
    """
    cache: dict[tuple[ScenarioConfig, int], tuple[dict[str, float], dict[str, Any]]] = {}
    unique = list(dict.fromkeys((p.scenario, s) for sweep in sweeps for p in sweep.points for s in seeds))
    if mapper is not None:
        cache.update(zip(unique, mapper(unique), strict=True))
    bar = progress_counter(len(unique), progress and mapper is None)
    try:
        for sweep in sweeps:
            for point in sweep.points:
                if bar is not None:
                    bar.set_description(f"{sweep.name} {point.label}")
                point.costs = {scheme: [] for scheme in SCHEMES}
                point.details = []
                for seed in seeds:
                    key = (point.scenario, seed)
                    if key not in cache:
                        cache[key] = episode_costs(point.scenario, seed)
                        if bar is not None:
                            bar.update(1)
                    costs, details = cache[key]
                    for scheme in SCHEMES:
                        point.costs[scheme].append(costs[scheme])
                    point.details.append(details)
    finally:
        if bar is not None:
            bar.close()


def ray_mapper(address: str | None = None) -> Callable[[list[tuple[ScenarioConfig, int]]], list[Any]]:
    """A ``run_sweeps`` mapper that runs each episode as a Ray task: a local instance, or ``address``'s cluster.

    The nodes need sdedge-gym importable (installed, or this repository on PYTHONPATH).
    """
    import ray

    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    if __name__ != "__main__":  # imported as a module (tests): ship this file's functions by value
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    remote_costs = ray.remote(episode_costs)

    def mapper(keys: list[tuple[ScenarioConfig, int]]) -> list[Any]:
        return ray.get([remote_costs.remote(scenario, seed) for scenario, seed in keys])

    return mapper


# ------------------------------------------------------------------------------------------- outputs

_STYLE = {
    "oracle": {"color": "black", "marker": "o", "linewidth": 2.2},
    "uniform": {"color": "tab:red", "marker": "s"},
    "max_batch": {"color": "tab:blue", "marker": "^"},
    "best_constant": {"color": "tab:cyan", "marker": "v"},
    "fixed_l6": {"color": "tab:olive", "marker": "D"},
    "fixed_l2": {"color": "tab:green", "marker": "d"},
    "autoregressive": {"color": "tab:purple", "marker": "x"},
}


def plot_sweep(sweep: Sweep, path: Path) -> None:
    """Mean latency of every scheme along the sweep, with 95 % intervals over the seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax_gap) = plt.subplots(1, 2, figsize=(12, 4.6), gridspec_kw={"width_ratios": [1.4, 1]})
    categorical = sweep.name == "models"
    xs = np.arange(len(sweep.points)) if categorical else np.array([p.x for p in sweep.points])
    width = 0.8 / len(SCHEMES)
    for i, scheme in enumerate(SCHEMES):
        stats_ = [mean_interval(p.costs[scheme]) for p in sweep.points]
        means = np.array([m for m, _ in stats_])
        halves = np.array([h for _, h in stats_])
        style = _STYLE[scheme]
        if categorical:
            ax.bar(xs + (i - (len(SCHEMES) - 1) / 2) * width, means, width, yerr=halves, capsize=2,
                   color=style["color"], label=SCHEME_LABELS[scheme])
        else:
            ax.errorbar(xs, means, yerr=halves, capsize=3, label=SCHEME_LABELS[scheme], markersize=5,
                        linewidth=style.get("linewidth", 1.3), color=style["color"], marker=style["marker"])
        if scheme != "oracle":
            gaps = [mean_interval(reductions(p, scheme)) for p in sweep.points]
            ax_gap.errorbar(xs, [100 * m for m, _ in gaps], yerr=[100 * h for _, h in gaps], capsize=3,
                            color=style["color"], marker=style["marker"], markersize=5)
    for axis in (ax, ax_gap):
        axis.set_xlabel(sweep.axis_label)
        axis.grid(alpha=0.3)
        if categorical:
            axis.set_xticks(xs, [p.label for p in sweep.points])
        if sweep.name == "bandwidth":
            axis.set_xscale("log", base=2)
            axis.set_xticks(xs, [p.label for p in sweep.points])
    ax.set_ylabel("mean request latency (s)")
    ax.set_title("Mean latency (95 % interval over episodes)")
    ax_gap.set_ylabel("oracle's latency reduction vs scheme (%)")
    ax_gap.set_title("(scheme − oracle) / scheme, paired per episode")
    ax_gap.axhline(0, color="grey", linewidth=0.8)
    ax_gap.set_ylim(bottom=min(0.0, ax_gap.get_ylim()[0]))
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(SCHEMES) // 2 + 1, fontsize=9, frameon=False)
    fig.suptitle(f"Sweep over {sweep.parameter}: {len(sweep.points[0].costs['oracle'])} episodes per point")
    fig.tight_layout(rect=(0, 0.09, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def scenario_summary(scenario: ScenarioConfig) -> dict[str, Any]:
    """The settings a reader needs to place a point (the full config is make_scenario's)."""
    return {
        "num_tasks": scenario.num_tasks,
        "draft": f"{scenario.draft.model.name} on {scenario.draft.gpu.name}",
        "target": f"{scenario.target.model.name} on {scenario.target.gpu.name}",
        "target_bytes_per_param": scenario.target.bytes_per_param,
        "bandwidth_hz": scenario.uplink.bandwidth,
        "alpha_range": [scenario.workload.alpha_min, scenario.workload.alpha_max],
        "max_batch": scenario.max_batch,
        "max_speculation": scenario.max_speculation,
        "objective": scenario.objective,
    }


def results_dict(sweeps: list[Sweep], seeds: Sequence[int], meta: dict[str, Any]) -> dict[str, Any]:
    """Every number of the run, ready for JSON."""
    out: dict[str, Any] = {"meta": {**meta, "seeds": list(seeds), "schemes": SCHEME_LABELS}, "sweeps": {}}
    for sweep in sweeps:
        points = []
        for p in sweep.points:
            schemes = {}
            for scheme in SCHEMES:
                mean, half = mean_interval(p.costs[scheme])
                schemes[scheme] = {"values": p.costs[scheme], "mean": mean, "half_width_95": half}
                if scheme != "oracle":
                    gap, gap_half = mean_interval(reductions(p, scheme))
                    schemes[scheme].update({"reduction": gap, "reduction_half_width_95": gap_half})
            points.append({"x": p.x, "label": p.label, "scenario": scenario_summary(p.scenario),
                           "schemes": schemes, "details": p.details})
        out["sweeps"][sweep.name] = {"parameter": sweep.parameter, "points": points}
    reference = paper_point(sweeps)
    out["paper_point"] = {"label": f"K = {reference.scenario.num_tasks}, "
                                   f"B = {reference.scenario.uplink.bandwidth / 1e6:g} MHz, {reference.label}",
                          "scenario": scenario_summary(reference.scenario)}
    out["up_to"] = {}
    for scheme in SCHEMES[1:]:
        at_paper, at_paper_half = mean_interval(reductions(reference, scheme))
        out["up_to"][scheme] = {**up_to(sweeps, scheme), "at_paper_point": at_paper,
                                "at_paper_point_half_width_95": at_paper_half,
                                "paper": PAPER_CLAIMS.get(scheme, (None, ""))[0],
                                "paper_claim": PAPER_CLAIMS.get(scheme, (None, ""))[1]}
    return out


def write_csv(sweeps: list[Sweep], path: Path) -> None:
    """One row per (sweep point, scheme, seed): the episode's mean latency."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sweep", "x", "label", "scheme", "seed", "mean_latency_s"])
        for sweep in sweeps:
            for p in sweep.points:
                for scheme in SCHEMES:
                    for details, value in zip(p.details, p.costs[scheme], strict=True):
                        writer.writerow([sweep.name, p.x, p.label, scheme, details["seed"], f"{value:.6f}"])


def up_to_table(results: dict[str, Any]) -> str:
    """The "up to" reductions next to the paper's, as a Markdown table."""
    lines = [f"| oracle's reduction vs | ours: up to | where | ours at the paper point "
             f"({results['paper_point']['label']}) | paper: up to |", "|---|---:|---|---:|---|"]
    for scheme, row in results["up_to"].items():
        paper = "—" if row["paper"] is None else f"{100 * row['paper']:.1f} %"
        if row["paper"] is None and row["paper_claim"]:
            paper = "lower (direction only)"
        at_paper = f"{100 * row['at_paper_point']:.1f} ± {100 * row['at_paper_point_half_width_95']:.1f} %"
        lines.append(f"| {SCHEME_LABELS[scheme]} | {100 * row['reduction']:.1f} % | {row['sweep']} = {row['point']} "
                     f"| {at_paper} | {paper} |")
    return "\n".join(lines)


FULL_OUT = "docs/figures"  # the committed figures and data
QUICK_OUT = "runs/reproduce-quick"  # runs/ is git-ignored


def main(argv: Sequence[str] | None = None, progress: bool = True,
         printer: Callable[[str], None] = print, prog: str | None = None) -> dict[str, Any]:
    """Run the sweeps, write the figures, JSON and CSV to ``--out``; return the results dict."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few points, two seeds, K <= 20: well under a minute")
    parser.add_argument("--out", default=None,
                        help=f"output directory (created if missing); default {FULL_OUT} for the full run and "
                             f"{QUICK_OUT} for --quick, so that a quick run never replaces the committed figures")
    parser.add_argument("--ray", action="store_true", help="run every episode as a Ray task (needs ray)")
    parser.add_argument("--ray-address", default=None, help="with --ray: a cluster to join; default a local instance")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    out = Path(args.out if args.out is not None else QUICK_OUT if args.quick else FULL_OUT)
    out.mkdir(parents=True, exist_ok=True)
    sweeps = build_sweeps(plan)
    start, cpu_start = time.perf_counter(), time.process_time()
    run_sweeps(sweeps, plan.seeds, progress, ray_mapper(args.ray_address) if args.ray else None)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    command = "python scripts/reproduce_paper.py " + " ".join(sys.argv[1:] if argv is None else argv)
    meta = {"command": command.strip(), "quick": args.quick, "wall_time_s": round(wall, 1), "cpu_time_s": round(cpu, 1),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
            "numpy": np.__version__, "ray": args.ray}  # with Ray, cpu_time_s is this driver process's only
    results = results_dict(sweeps, plan.seeds, meta)
    for sweep in sweeps:
        plot_sweep(sweep, out / f"sweep_{sweep.name}.png")
    (out / "reproduction.json").write_text(json.dumps(results, indent=1) + "\n")
    write_csv(sweeps, out / "reproduction.csv")
    printer(f"{len(plan.seeds)} seeds per point, {sum(len(s.points) for s in sweeps)} points, "
            f"{wall:.0f} s of sweeps ({cpu:.0f} s CPU); figures, reproduction.json and reproduction.csv in {out}/")
    printer(up_to_table(results))
    return results


if __name__ == "__main__":
    main()
