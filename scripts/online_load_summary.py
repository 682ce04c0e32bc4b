"""Online agents against the references at several loads: the held-out test episodes, the protocol's statistics.

    python scripts/online_load_summary.py --loads 0.3,0.5,0.7,0.9 --json runs/ablation/online-test.json \\
        --out runs/ablation/online-table.md --figure docs/figures/online_reference_loads.png \\
        --row "reference reward=runs/ablation/online-reference-loads/seed{seed}/model.zip" \\
        --row "default reward=runs/ablation/online-latency-loads/seed{seed}/model.zip"

A row is ``LABEL=PATH`` with ``{seed}`` standing for each training seed (1000, 2000, 3000): a MaskablePPO model of
``sdedge/EdgeSD-Online-v0``. ``--ensemble LABEL=PATH[+PATH...]`` (``{seed}`` in every PATH) adds two rows of
ensembles of those models (:mod:`sdedge_agents.ensemble`): the three of two seeds' models, one per seed left out,
and the one of all three seeds' models. ``--chain-l`` follows every row with the same agents playing their batch
sizes (and waits) with the service-chain speculation length (``chain-l:``, :mod:`sdedge_agents.service_chain`).
At each load (x the paper preset's max-batch capacity, as ``scripts/load_curves.py``) every model and the
references (oracle, planner, max-batch-timeout, random, and any ``--reference`` policy, e.g. ``chain-l:planner``)
play the test episodes 500..599 (``sdedge_agents.evaluate``; the same workloads and Poisson gaps at every load),
each model with its run's --env-kwargs but ``reward`` (``sdedge_agents.protocol.evaluation_env_kwargs``).
Per row and load: each seed's mean latency, and the paired differences of mean latency against the planner,
max-batch-timeout and every ``--reference`` (the seeds' mean per episode minus the reference's on that episode,
averaged over the episodes, with a bootstrap 95 % interval over episodes). Results are cached in ``--json`` (key
"load|policy"); ``--figure`` draws mean latency against load (the rows as the mean over their seeds, with the
seeds' range).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import gymnasium as gym
import numpy as np

import sdedge_gym  # noqa: F401  (registers the ids)
from sdedge_agents.evaluate import evaluate
from sdedge_agents.protocol import TEST_SEEDS, add_row_arguments, evaluation_env_kwargs, policy_rows
from sdedge_agents.statistics import paired_difference
from sdedge_gym.online_env import max_batch_capacity

ONLINE = "sdedge/EdgeSD-Online-v0"
REFERENCES = ("oracle", "planner", "max-batch-timeout")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_row_arguments(parser)
    parser.add_argument("--reference", action="append", default=[],
                        help="another reference policy of sdedge_agents.evaluate (e.g. chain-l:planner), listed "
                             "beside the planner")
    parser.add_argument("--loads", default="0.3,0.5,0.7,0.9", help="loads (default: %(default)s)")
    parser.add_argument("--json", required=True, help="per-episode results, reused for what is already evaluated")
    parser.add_argument("--out", required=True, help="the markdown table")
    parser.add_argument("--figure", default=None, help="a PNG of mean latency against load")
    args = parser.parse_args()
    rows = policy_rows(args, lambda path: f"sb3:MaskablePPO:{path}" if path.exists() else None)
    references = (*REFERENCES, *args.reference)
    try:
        loads = [float(x) for x in args.loads.split(",")]
    except ValueError:
        raise SystemExit(f"--loads = {args.loads!r} is invalid; allowed: numbers separated by commas") from None
    capacity = max_batch_capacity(gym.make(ONLINE).unwrapped.scenario)
    cache_path = Path(args.json)
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    for load in loads:
        specs = [spec for _, runs in rows for _, spec in runs if spec is not None]
        missing = [spec for spec in (*references, *specs) if f"{load}|{spec}" not in cache]
        if not missing:
            continue
        # Each model with its run's --env-kwargs but reward (e.g. speculation="service_chain"); the same episodes.
        by_kwargs: dict[str, list[str]] = {}
        for spec in missing:
            by_kwargs.setdefault(json.dumps(evaluation_env_kwargs(spec)), []).append(spec)
        for kwargs, specs in by_kwargs.items():
            env_kwargs = {**json.loads(kwargs), "config": {"arrivals": {"arrival_rate": load * capacity}}}
            for result in evaluate(ONLINE, episodes=len(TEST_SEEDS), seed=TEST_SEEDS[0], policies=specs,
                                   progress=False, env_kwargs=env_kwargs):
                if result.policy in specs or kwargs == "{}":  # evaluate's oracle and random: in the default env only
                    cache[f"{load}|{result.policy}"] = result.values
            cache_path.write_text(json.dumps(cache) + "\n")

    def latencies(load: float, spec: str) -> np.ndarray:  # per test episode, s
        return np.array(cache[f"{load}|{spec}"])

    versus_names = ("planner", "max-batch-timeout", *args.reference)  # a paired column each
    blank = " |" * len(versus_names)
    lines = [f"Test episodes {TEST_SEEDS[0]}..{TEST_SEEDS[-1]} of `{ONLINE}` at each load (x {capacity:.4f} "
             "requests/s); mean latency in s, paired differences in s with bootstrap 95 % intervals.", "",
             "| load | row | mean latency per seed (1000, 2000, 3000) | "
             + " | ".join(f"vs {name} [95 % CI]" for name in versus_names) + " |",
             "|---:|---|---|" + "---:|" * len(versus_names)]
    curves: dict[str, list[tuple[float, float, float, float]]] = {}
    for load in loads:
        for name in references:
            value = latencies(load, name).mean()
            lines.append(f"| {load} | {name} | {value:.2f} |{blank}")
            curves.setdefault(name, []).append((load, value, value, value))
        for label, runs in rows:
            present = [latencies(load, spec) for _, spec in runs if f"{load}|{spec}" in cache]
            if not present:
                lines.append(f"| {load} | {label} | not trained |{blank}")
                continue
            per_episode = np.mean(present, axis=0)
            versus = [paired_difference(per_episode, latencies(load, name)) for name in versus_names]
            means = [v.mean() for v in present]
            note = "" if len(present) == len(runs) else f" ({len(present)} of {len(runs)} seeds)"
            lines.append(f"| {load} | {label}{note} | {', '.join(f'{m:.2f}' for m in means)} | "
                         + " | ".join(f"{d:+.2f} [{lo:+.2f}, {hi:+.2f}]" for d, lo, hi in versus) + " |")
            curves.setdefault(label, []).append((load, float(np.mean(means)), min(means), max(means)))
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if args.figure:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, axis = plt.subplots(figsize=(6.4, 4.2))
        for label, points in curves.items():
            x, mean, low, high = (np.array(v) for v in zip(*points, strict=True))
            line = axis.plot(x, mean, marker="o", label=label)[0]
            if label not in references:
                axis.fill_between(x, low, high, color=line.get_color(), alpha=0.2)
        axis.set_xlabel("load (arrival rate / max-batch capacity)")
        axis.set_ylabel("mean latency (s), test episodes 500..599")
        axis.set_title(f"{ONLINE}: agents trained across loads 0.3-1.0")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
        figure.tight_layout()
        figure.savefig(args.figure, dpi=120)
        print(f"wrote {args.figure}")


if __name__ == "__main__":
    main()
