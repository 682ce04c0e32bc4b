"""The benchmark protocol's seeds, in one place (docs/BENCHMARK.md).

* Training: run r of an (id, algorithm) uses ``--seed TRAINING_SEEDS[r]``; its n_envs training envs are
  reset first with seeds seed .. seed + n_envs - 1 and then continue those random streams.
* Validation (``VALIDATION_SEEDS``, 900000..900099; a run uses the first ``--eval-episodes``): the
  episodes the evaluation callback scores during training (the oracle-gap learning curves) and
  ``sdedge_agents.train``'s final evaluation. Never trained on.
* Test (``TEST_SEEDS``, 500..599): the held-out episodes of the results table; no training env and no
  validation episode uses them, so choosing a checkpoint on validation never sees them.
* Deep fades (``deep_fade_seeds``): the first 100 seeds from 100000 (validation: from 200000) whose episode
  holds a user in a deep fade, one whose upload alone over the whole band takes longer than DEEP_FADE_SLOT
  (30 s; ~2 % of episodes on the paper preset, none among the test seeds 500..599). A stress set for the rare
  event that the test episodes happen not to sample (docs/BENCHMARK.md, "Rare events: deep fades"); training
  runs seeded below 100000 never reset to them.
* The tuned baselines search their constant action on episodes of their own
  (``sdedge_agents.baselines.TUNING_SEEDS``, 1000000..1000002).
* Trace ids (``sdedge/EdgeSD-Online-Azure*``): training and validation episodes are windows of the trace's
  first 70 % (the ids' default ``trace_window="train"``); the test episodes are windows of its last 30 %
  (``held_out_env_kwargs``), so a test score measures generalisation to later traffic. The tuned timeout
  of max-batch-timeout-tuned is chosen on training windows.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

TRAINING_SEEDS: tuple[int, ...] = (1000, 2000, 3000)
VALIDATION_SEED_BASE = 900_000
VALIDATION_SEEDS: range = range(VALIDATION_SEED_BASE, VALIDATION_SEED_BASE + 100)
TEST_SEEDS: range = range(500, 600)
DEEP_FADE_SEED_BASE = 100_000  # the deep-fade test episodes are the first qualifying seeds from here
DEEP_FADE_VALIDATION_BASE = 200_000  # ... and the deep-fade validation episodes from here
DEEP_FADE_SLOT = 30.0  # s: a user whose upload alone over the whole band is longer is in a deep fade
DEEP_FADE_SEARCH = 200_000  # seeds searched at most (~30 s): a scenario without fading has no such episode


def deep_fade_seeds(env_id: str, count: int = 100, base: int = DEEP_FADE_SEED_BASE) -> list[int]:
    """The first ``count`` seeds from ``base`` whose episode of ``env_id`` holds a user in a deep fade: its
    upload alone over the whole band, payload / rate(B), longer than DEEP_FADE_SLOT. A ValueError if fewer than
    ``count`` of the DEEP_FADE_SEARCH seeds from ``base`` qualify."""
    import gymnasium as gym

    from sdedge_gym.uplink import user_rate

    env = gym.make(env_id, disable_env_checker=True)
    uplink = env.unwrapped.scenario.uplink
    seeds, seed = [], base
    while len(seeds) < count:
        if seed >= base + DEEP_FADE_SEARCH:
            env.close()
            raise ValueError(f"{env_id!r} has {len(seeds)} deep-fade episodes among seeds {base}..{seed - 1}, fewer "
                             f"than count = {count}; allowed: a count it reaches (its users rarely or never take "
                             f"longer than {DEEP_FADE_SLOT:g} s to upload alone)")
        env.reset(seed=seed)
        episode = env.unwrapped.episode
        solo = episode.workload.payload_bits / user_rate(uplink.bandwidth, episode.channel, uplink.rate_model)
        if solo.max() > DEEP_FADE_SLOT:
            seeds.append(seed)
        seed += 1
    env.close()
    return seeds


def seeded_rows(items: list[str], flag: str = "--row") -> list[tuple[str, list[tuple[int, Path]]]]:
    """The result scripts' ``LABEL=PATH`` rows, ``{seed}`` in PATH standing for each of TRAINING_SEEDS:
    (label, [(seed, path), ...]) per row; a bad item exits naming ``flag``."""
    rows = []
    for item in items:
        label, sep, pattern = item.rpartition("=")
        if not sep or "{seed}" not in pattern:
            raise SystemExit(f"{flag} {item!r} is invalid; allowed: LABEL=PATH with {{seed}} in PATH")
        rows.append((label, [(seed, Path(pattern.format(seed=seed))) for seed in TRAINING_SEEDS]))
    return rows


def ensemble_rows(items: list[str], flag: str = "--ensemble") -> list[tuple[str, list[tuple[int, str | None]]]]:
    """The result scripts' ``LABEL=PATH[+PATH...]`` ensembles (``{seed}`` in every PATH standing for each of
    TRAINING_SEEDS; a seed's members are its MaskablePPO model.zip under each PATH; :mod:`sdedge_agents.ensemble`),
    as two rows of policy specs: the three ensembles of two seeds' members (each named by the seed it leaves out,
    so that the row has a value per training seed, as any other row), and the ensemble of all three seeds'
    members. A spec is None where a member is missing."""
    rows = []
    for item in items:
        label, sep, patterns = item.rpartition("=")
        if not sep or not all("{seed}" in pattern for pattern in patterns.split("+")):
            raise SystemExit(f"{flag} {item!r} is invalid; allowed: LABEL=PATH[+PATH...] with {{seed}} in every PATH")
        members = {seed: [Path(pattern.format(seed=seed)) for pattern in patterns.split("+")]
                   for seed in TRAINING_SEEDS}
        pairs = [(left_out, _ensemble_spec([path for seed in TRAINING_SEEDS if seed != left_out
                                            for path in members[seed]]))
                 for left_out in TRAINING_SEEDS]
        rows.append((f"{label}: ensembles of two seeds (the seed left out)", pairs))
        every = _ensemble_spec([path for seed in TRAINING_SEEDS for path in members[seed]])
        rows.append((f"{label}: ensemble of the three seeds", [(TRAINING_SEEDS[0], every)]))
    return rows


def _ensemble_spec(paths: list[Path]) -> str | None:
    """``ensemble:PATH+PATH...`` (sdedge_agents.evaluate's name), None if a model is missing."""
    return "ensemble:" + "+".join(map(str, paths)) if all(path.exists() for path in paths) else None


def chain_rows(rows: list[tuple[str, list[tuple[int, str | None]]]]) -> list[tuple[str, list[tuple[int, str | None]]]]:
    """The result scripts' rows (label, [(seed, policy spec or None)]), each followed by the same agents with the
    service-chain speculation length (``chain-l:SPEC``, :mod:`sdedge_agents.service_chain`)."""
    from sdedge_agents.service_chain import PREFIX  # that module imports the planners: only when asked for

    return [row for label, runs in rows for row in (
        (label, runs), (f"{label}, service-chain l", [(seed, spec and PREFIX + spec) for seed, spec in runs]))]


def add_row_arguments(parser: argparse.ArgumentParser) -> None:
    """The result scripts' ``--row``, ``--ensemble`` and ``--chain-l`` (read back by :func:`policy_rows`)."""
    parser.add_argument("--row", action="append", default=[], help="LABEL=PATH with {seed} in PATH")
    parser.add_argument("--ensemble", action="append", default=[],
                        help="LABEL=PATH[+PATH...], {seed} in every PATH: ensembles of the seeds' models (two rows)")
    parser.add_argument("--chain-l", action="store_true",
                        help="follow every row with its agents' batch sizes at the service-chain speculation length")


def policy_rows(args: argparse.Namespace, spec_of: Callable[[Path], str | None]
                ) -> list[tuple[str, list[tuple[int, str | None]]]]:
    """The rows of :func:`add_row_arguments`' arguments: (label, [(seed, policy spec, None where a model is
    missing)]), a ``--row``'s spec ``spec_of(path)``; exits unless at least one --row or --ensemble is given."""
    if not args.row and not args.ensemble:
        raise SystemExit("give at least one --row or --ensemble")
    rows = [(label, [(seed, spec_of(path)) for seed, path in runs]) for label, runs in seeded_rows(args.row)]
    rows += ensemble_rows(args.ensemble)
    return chain_rows(rows) if args.chain_l else rows


def evaluation_env_kwargs(spec: str) -> dict:
    """The ``gymnasium.make`` keyword arguments a trained agent's ``spec`` is evaluated with: the --env-kwargs of
    the run that saved its model (the run.json in a parent directory; an ensemble's first member's, the members
    sharing an env; a ``chain-l:`` spec's inner model's), without ``reward``, since a test scores the objective.
    Options that change what the agent sees or plays (``observe_queue=True``, ``speculation="service_chain"``)
    are kept. Nothing for a reference policy or a model without a run.json."""
    from sdedge_agents.evaluate import ensemble_members
    from sdedge_agents.service_chain import PREFIX as CHAIN_PREFIX

    spec = spec.removeprefix(CHAIN_PREFIX)
    if spec.startswith("ensemble:"):
        model = ensemble_members(spec)[0]  # a model.zip or pretrained:NAME
    elif spec.startswith(("sb3:", "composed:")):
        model = spec.split(":", 2)[-1]
    else:  # a reference policy
        return {}
    if model.startswith("pretrained:"):  # a shipped agent plays in the default env (sdedge_agents.pretrained)
        return {}
    for directory in Path(model).parents:
        if (directory / "run.json").exists():
            config = json.loads((directory / "run.json").read_text())["config"]
            return {name: value for name, value in config.get("env_kwargs", []) if name != "reward"}
    return {}


def held_out_env_kwargs(env_id: str) -> dict:
    """``gymnasium.make`` keyword arguments of the test episodes of ``env_id``: the test part of a trace id's
    trace (a trace id's ``arrivals`` kwargs with ``trace_window="test"``); nothing for the other ids."""
    import gymnasium as gym

    arrivals = gym.spec(env_id).kwargs.get("arrivals") or {}
    if arrivals.get("process") != "trace":
        return {}
    return {"arrivals": {**arrivals, "trace_window": "test"}}


def training_seeds_overlap(seed: int, n_envs: int) -> str | None:
    """Why training seeds seed .. seed + n_envs - 1 would touch held-out episodes, or None when they do not."""
    last = seed + n_envs - 1
    if seed <= TEST_SEEDS[-1] and last >= TEST_SEEDS[0]:
        return f"they overlap the test seeds {TEST_SEEDS[0]}..{TEST_SEEDS[-1]}"
    if last >= VALIDATION_SEED_BASE:
        return f"they reach the validation seeds (>= {VALIDATION_SEED_BASE})"
    return None
