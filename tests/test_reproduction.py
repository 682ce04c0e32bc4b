"""The paper-reproduction script (scripts/reproduce_paper.py): quick mode end to end, and its schemes."""

from __future__ import annotations

import csv
import importlib.util
import itertools
import json
import math
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="scripts/reproduce_paper.py draws its figures with matplotlib (render extra)")

from sdedge_agents.baselines import constant_action_cost
from sdedge_agents.oracle import solve
from sdedge_gym.episode import Episode, ServingModel
from sdedge_gym.scenarios import make_scenario
from sdedge_gym.segments import SegmentTables, segment_tables

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "reproduce_paper.py"


def _load_script() -> ModuleType:
    """Import the script as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("reproduce_paper", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


reproduce = _load_script()


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path, list[str]]:
    """One quick run, in-process, into a temporary directory."""
    out = tmp_path_factory.mktemp("figures")
    printed: list[str] = []
    results = reproduce.main(["--quick", "--out", str(out)], progress=False, printer=printed.append)
    return results, out, printed


def _points(results: dict):
    for sweep, data in results["sweeps"].items():
        for point in data["points"]:
            yield sweep, point


def test_quick_mode_writes_every_output(quick_run) -> None:
    results, out, printed = quick_run
    for sweep in ("tasks", "bandwidth", "acceptance", "models"):
        png = out / f"sweep_{sweep}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "reproduction.json").read_text()) == json.loads(json.dumps(results))
    with (out / "reproduction.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    seeds = len(results["meta"]["seeds"])
    points = sum(len(data["points"]) for data in results["sweeps"].values())
    assert len(rows) == points * len(reproduce.SCHEMES) * seeds
    assert all(math.isfinite(float(row["mean_latency_s"])) and float(row["mean_latency_s"]) > 0 for row in rows)
    table = printed[-1]
    assert "44.9 %" in table and "21.4 %" in table  # the paper's claims are printed beside ours


def test_the_oracle_is_never_above_any_scheme(quick_run) -> None:
    results, _, _ = quick_run
    for sweep, point in _points(results):
        oracle = np.array(point["schemes"]["oracle"]["values"])
        for scheme in reproduce.SCHEMES:
            values = np.array(point["schemes"][scheme]["values"])
            assert np.all(oracle <= values * (1 + 1e-9)), (sweep, point["label"], scheme)


@pytest.mark.parametrize("scheme", ["uniform", "max_batch", "autoregressive"])
def test_the_papers_claims_hold_in_direction_at_every_point(quick_run, scheme: str) -> None:
    """Closed form below uniform, joint optimisation below max batching, SD below AD: strictly, everywhere."""
    results, _, _ = quick_run
    for sweep, point in _points(results):
        assert point["schemes"][scheme]["reduction"] > 0.005, (sweep, point["label"], scheme)
    assert results["up_to"][scheme]["reduction"] > 0.01


def test_speculation_at_its_best_length_beats_autoregressive_decoding(quick_run) -> None:
    """SD below AD at the best fixed l (not only with per-batch l): min over l in {2, 6} < l = 0."""
    results, _, _ = quick_run
    for sweep, point in _points(results):
        schemes = point["schemes"]
        best_fixed = np.minimum(schemes["fixed_l2"]["values"], schemes["fixed_l6"]["values"])
        assert np.all(best_fixed < np.array(schemes["autoregressive"]["values"])), (sweep, point["label"])


def test_the_13b_pairs_use_int8_weights_and_fit(quick_run) -> None:
    results, _, _ = quick_run
    for point in results["sweeps"]["models"]["points"]:
        scenario = point["scenario"]
        expected = 1.0 if scenario["target"].startswith("llama-13b") else 2.0
        assert scenario["target_bytes_per_param"] == expected
        assert all(d["batch_limit"] >= 1 for d in point["details"])


# ------------------------------------------------------------------------------- the schemes' building blocks


def _plan_cost(tables: SegmentTables, batches: list[tuple[int, int]]) -> float:
    """Mean latency of committing ``batches`` (n, l) in order, from the tables (the episode's recurrence)."""
    uplink_end = inference_end = cost = 0.0
    j = 0
    for n, l in batches:
        uplink_end += tables.uplink_slot[j, n - 1]
        begin = max(uplink_end, inference_end)
        inference_end = begin + tables.duration[j, n - 1, l]
        cost += (n * begin + tables.completion_sum[j, n - 1, l]) / tables.num_tasks
        j += n
    return cost


def _compositions(total: int, largest: int):
    """Every ordered way of cutting ``total`` tasks into batches of at most ``largest``."""
    for cuts in itertools.product((False, True), repeat=total - 1):
        sizes, size = [], 1
        for cut in cuts:
            if cut:
                sizes.append(size)
                size = 1
            else:
                size += 1
        sizes.append(size)
        if max(sizes) <= largest:
            yield sizes


@pytest.mark.parametrize("speculation_length", [0, 2])
def test_one_length_tables_give_the_best_batching_at_that_length(speculation_length: int) -> None:
    """The fixed-l and AD schemes: the DP on tables cut to one l equals exhaustive search over batchings."""
    model = ServingModel.of(make_scenario("small", num_tasks=7))
    episode = Episode.draw(model, np.random.default_rng(3))
    tables = segment_tables(model, episode)
    cut = reproduce.with_one_length(tables, speculation_length)
    plan = solve(cut, "mean_latency", episode.num_tasks)
    brute = min(_plan_cost(tables, [(n, speculation_length) for n in sizes])
                for sizes in _compositions(episode.num_tasks, tables.batch_limit))
    assert plan.cost == pytest.approx(brute, rel=1e-12)
    assert all(l == 0 for _, l in plan.batches)  # the cut tables index their one length as 0
    for n in range(1, tables.batch_limit + 1):  # a constant batch size is one of the batchings
        assert plan.cost <= constant_action_cost(tables, "mean_latency", n, speculation_length) * (1 + 1e-12)
