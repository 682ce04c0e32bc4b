"""The reward ablation's table: every row's models on the held-out test episodes, with the protocol's statistics.

    python scripts/ablation_summary.py \\
        --row "default, 300k=runs/ablation/latency-lambda1/seed{seed}/model.zip" \\
        --row "reference, 300k=runs/ablation/reference-lambda0.9/seed{seed}/checkpoints/model_300000_steps.zip" \\
        --json runs/ablation/test.json --out runs/ablation/table.md

A row is ``LABEL=PATH`` with ``{seed}`` standing for each training seed (1000, 2000, 3000; a missing model is
reported as missing): a MaskablePPO ``model.zip``, or on the hybrid ids a composed agent's directory
(``sdedge_agents.band_split``). ``--ensemble LABEL=PATH[+PATH...]`` (``{seed}`` in every PATH, MaskablePPO models)
adds two rows of ensembles of those models (``sdedge_agents.ensemble``): the three of two seeds' models, one per
seed left out, and the one of all three seeds' models. ``--chain-l`` follows every row with the same agents playing
their batch sizes with the service-chain speculation length (``chain-l:`` in ``sdedge_agents.evaluate``,
``sdedge_agents.service_chain``). Every model and the references (oracle, random,
best-constant, planner, window-planner, rollout, posterior-planner, posterior-window-planner) play the same test
episodes 500..599 of ``--env`` (default sdedge/EdgeSD-v0; one ``--json`` per id; ``sdedge_agents.evaluate``). Per
row: each seed's gap to the oracle, the interquartile mean of the normalised score over the seeds with its
stratified bootstrap 95 % interval (``agents/statistics.py``), and the paired differences in mean latency against
the best constant action and the planner (the seeds' mean per episode minus the reference's on that episode,
averaged over the episodes, with a bootstrap 95 % interval over episodes). ``--episodes deep-fades`` plays the
protocol's deep-fade test episodes instead (``sdedge_agents.protocol.deep_fade_seeds``: 100 episodes that each
hold a user in a deep fade, which the test episodes happen not to sample; ``deep-fades-validation``: 50 others,
for choosing); there every figure is on each episode's own gap to the oracle (a fade's upload can last hours, so a
mean latency over those episodes is the worst one's), the paired differences in percentage points.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import sdedge_gym
from sdedge_agents.evaluate import evaluate
from sdedge_agents.protocol import (
    DEEP_FADE_VALIDATION_BASE,
    TEST_SEEDS,
    add_row_arguments,
    deep_fade_seeds,
    evaluation_env_kwargs,
    policy_rows,
)
from sdedge_agents.statistics import episode_gaps, interquartile_mean, paired_difference, stratified_bootstrap_ci

EPISODE_SETS = ("test", "deep-fades", "deep-fades-validation")
REFERENCES = ("best-constant", "planner", "window-planner", "rollout", "posterior-planner", "posterior-window-planner")


def policy_spec(path: Path) -> str | None:
    """A composed agent's directory (sdedge_agents.band_split, the hybrid ids) or a MaskablePPO model.zip; None
    if it is missing."""
    if not path.exists():
        return None
    return f"composed:{path}" if path.suffix != ".zip" else f"sb3:MaskablePPO:{path}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_row_arguments(parser)
    parser.add_argument("--env", default="sdedge/EdgeSD-v0", help="an offline id (default: %(default)s)")
    parser.add_argument("--json", required=True, help="per-episode results, reused for models already evaluated")
    parser.add_argument("--out", required=True, help="the markdown table")
    parser.add_argument("--episodes", choices=EPISODE_SETS, default="test",
                        help="the test episodes 500..599 (default), or the deep-fade test or validation episodes")
    args = parser.parse_args()
    rows = policy_rows(args, policy_spec)
    env_id = args.env
    if env_id not in sdedge_gym.ENV_IDS or env_id in sdedge_gym.ONLINE_ENV_IDS + sdedge_gym.MULTICELL_ENV_IDS:
        raise SystemExit(f"--env {env_id!r} is invalid; allowed: an offline single-cell id, e.g. sdedge/EdgeSD-v0")
    if args.episodes == "test":
        seeds, described = list(TEST_SEEDS), f"Test episodes {TEST_SEEDS[0]}..{TEST_SEEDS[-1]}"
    elif args.episodes == "deep-fades":
        seeds, described = deep_fade_seeds(env_id), "The 100 deep-fade test episodes (sdedge_agents.protocol)"
    else:
        seeds = deep_fade_seeds(env_id, 50, DEEP_FADE_VALIDATION_BASE)
        described = "The 50 deep-fade validation episodes (sdedge_agents.protocol)"
    cache_path = Path(args.json)
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    if cache.setdefault("episode_seeds", seeds) != seeds:  # a cache of other episodes would mix the two
        raise SystemExit(f"--json {args.json!r} holds other episodes than --episodes {args.episodes}; allowed: a new "
                         "file per episode set")
    # Models are evaluated with their run's --env-kwargs but reward (e.g. observe_reference=True changes the
    # observation); the episodes are the same whatever those are.
    by_kwargs: dict[str, list[str]] = {}
    for _, runs in rows:
        for _, spec in runs:
            if spec is not None and spec not in cache:
                by_kwargs.setdefault(json.dumps(evaluation_env_kwargs(spec)), []).append(spec)
    references = [name for name in REFERENCES if name not in cache]
    if references or "oracle" not in cache:
        by_kwargs.setdefault("{}", []).extend(references)
    for kwargs, specs in by_kwargs.items():
        results = evaluate(env_id, policies=specs, progress=False, env_kwargs=json.loads(kwargs), seeds=seeds)
        for result in results:
            if result.policy not in ("oracle", "random") or kwargs == "{}":
                cache[result.policy] = result.values
        cache_path.write_text(json.dumps(cache) + "\n")
    oracle = np.array(cache["oracle"])
    # A deep fade's upload can last hours (a Rayleigh gain near zero), so a sum of latencies over those episodes is
    # the worst one's: there every statistic is taken on each episode's own gap to the oracle, 100 (v_e / o_e - 1) %,
    # every episode weighing the same. On the test episodes, on the latencies (s), as everywhere else.
    relative = args.episodes != "test"

    def measure(values) -> np.ndarray:
        return episode_gaps(values, oracle) if relative else np.asarray(values, dtype=float)

    random = measure(cache["random"])

    def gap(values: np.ndarray) -> float:
        return float(measure(values).mean()) if relative else 100.0 * (values.mean() / oracle.mean() - 1.0)

    def score(values: np.ndarray) -> float:  # on mean returns (= minus mean latencies), as sdedge_agents.evaluate
        best = 0.0 if relative else oracle.mean()
        return float((random.mean() - measure(values).mean()) / (random.mean() - best))

    unit = "points" if relative else "s"
    heading = (f"oracle {np.median(oracle):.3f} s median, {oracle.mean():.1f} s mean; every figure on the per-episode "
               "gaps" if relative else f"oracle {oracle.mean():.3f} s")
    lines = [f"{described} of `{env_id}`; {heading}.", "",
             f"| row | gap to oracle per seed (1000, 2000, 3000) | IQM score [95 % CI] | vs best constant ({unit}) "
             f"[95 % CI] | vs planner ({unit}) [95 % CI] |",
             "|---|---|---:|---:|---:|"]

    def versus(values: np.ndarray, itself: str | None = None) -> str:
        """The paired differences against the best constant and the planner (blank against ``itself``)."""
        cells = []
        for reference in ("best-constant", "planner"):
            if reference == itself:
                cells.append("")
                continue
            difference, low, high = paired_difference(measure(values), measure(cache[reference]))
            cells.append(f"{difference:+.2f} [{low:+.2f}, {high:+.2f}]")
        return " | ".join(cells)

    for name in REFERENCES:
        values = np.array(cache[name])
        lines.append(f"| {name} | {gap(values):+.1f} % | {score(values):.3f} | {versus(values, name)} |")
    for label, runs in rows:
        present = [(seed, np.array(cache[spec])) for seed, spec in runs if spec in cache]
        if not present:
            lines.append(f"| {label} | not trained | | | |")
            continue
        gaps = ", ".join(f"{gap(v):+.1f} %" for _, v in present)
        scores = [score(v) for _, v in present]
        _, low, high = stratified_bootstrap_ci({env_id: scores})
        mean_per_episode = np.mean([v for _, v in present], axis=0)
        note = "" if len(present) == len(runs) else f" ({len(present)} of {len(runs)} seeds)"
        lines.append(f"| {label}{note} | {gaps} | {interquartile_mean(scores):.3f} [{low:.3f}, {high:.3f}] | "
                     f"{versus(mean_per_episode)} |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
