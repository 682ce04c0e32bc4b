"""The multi-cell twin agents' table over training seeds, from their runs' results.json (held-out test episodes).

    python scripts/multicell_twin_summary.py \\
        --row "reference reward=runs/multicell_twin/two-heterogeneous-reference-seed{seed}" \\
        --row "default reward=runs/multicell_twin/two-heterogeneous-latency-seed{seed}"

A row is ``LABEL=DIR`` with ``{seed}`` standing for each training seed (1000, 2000, 3000; a missing run is
reported as missing). Every run of ``scripts/train_multicell_twin.py`` scores its agent and the references on the
same test episodes (seeds 500..); per row: each seed's mean latency, and the paired differences (s, the seeds'
mean per episode minus the reference's on that episode, averaged over the episodes, bootstrap 95 % interval)
against the uncoordinated best-constant cells, the uncoordinated oracles and the centralised planner.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from sdedge_agents.protocol import TRAINING_SEEDS
from sdedge_agents.statistics import paired_difference

REFERENCES = ("uncoordinated best-constant", "uncoordinated oracle", "centralised planner")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--row", action="append", required=True, metavar="LABEL=DIR")
    args = parser.parse_args(argv)
    rows, references, seeds = [], None, None
    for spec in args.row:
        if "=" not in spec or "{seed}" not in spec:
            parser.error(f"--row {spec!r} is invalid; allowed: LABEL=DIR with {{seed}} in DIR")
        label, pattern = spec.split("=", 1)
        runs = {}
        for seed in TRAINING_SEEDS:
            path = Path(pattern.format(seed=seed)) / "results.json"
            if path.exists():
                runs[seed] = json.loads(path.read_text())
        if not runs:
            rows.append((label, "missing", None))
            continue
        agent = {seed: np.array(next(v for k, v in run["per_episode"].items() if k.startswith("twin")))
                 for seed, run in runs.items()}
        first = next(iter(runs.values()))
        if references is None:
            references = {name: np.array(first["per_episode"][name]) for name in ("lower bound", *REFERENCES)}
            seeds = first["test_seeds"]
        if any(run["test_seeds"] != seeds for run in runs.values()):
            parser.error(f"--row {label!r}: its runs were scored on other test episodes than the first row's")
        per_seed = ", ".join(f"{values.mean():.3f}" for values in agent.values())
        mean = np.mean(list(agent.values()), axis=0)  # the seeds' mean per episode
        rows.append((label, f"{per_seed} ({len(agent)} of {len(TRAINING_SEEDS)} seeds)",
                     [paired_difference(mean, references[name]) for name in REFERENCES]))
    print(f"Test episodes {seeds[0]}..{seeds[-1]}; mean latency (s): " + ", ".join(
        f"{name} {values.mean():.3f}" for name, values in references.items()) + "\n")
    print("| row | mean latency per seed (s) | " + " | ".join(f"paired vs {name} (s) [95 % CI]" for name in REFERENCES)
          + " |\n|---|---|" + "---:|" * len(REFERENCES))
    for label, per_seed, paired in rows:
        cells = ["" for _ in REFERENCES] if paired is None else [f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]"
                                                                  for d, lo, hi in paired]
        print(f"| {label} | {per_seed} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
