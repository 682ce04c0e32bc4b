"""scripts/load_curves.py end to end on a tiny setting: the CSV rows, their values and the figure."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "load_curves.py"


def test_load_curves_writes_the_table_and_the_figure(tmp_path):
    pytest.importorskip("matplotlib", reason="the figure needs matplotlib (the render extra)")
    spec = importlib.util.spec_from_file_location("load_curves", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--episodes", "1", "--loads", "0.3,1.2", "--policies",
                        "max-batch-timeout,dispatch-immediately", "--out", str(tmp_path)]) == 0
    with open(tmp_path / "load_curves.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["policy"], float(r["load"])) for r in rows] == [
        ("max-batch-timeout", 0.3), ("dispatch-immediately", 0.3), ("max-batch-timeout", 1.2),
        ("dispatch-immediately", 1.2)]
    for row in rows:
        assert 0 < float(row["mean_latency"]) <= float(row["p99_latency"])
    assert float(rows[2]["arrival_rate"]) == pytest.approx(4 * float(rows[0]["arrival_rate"]), rel=1e-5)
    assert (tmp_path / "load_curves.png").stat().st_size > 10_000
    with pytest.raises(SystemExit):
        module.main(["--loads", "0,1"])


def test_load_curves_on_a_trace_rescale_its_test_windows(tmp_path):
    pytest.importorskip("matplotlib", reason="the figure needs matplotlib (the render extra)")
    spec = importlib.util.spec_from_file_location("load_curves", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--trace", "azure-code", "--episodes", "1", "--loads", "0.5,1.0", "--policies",
                        "dispatch-immediately", "--out", str(tmp_path)]) == 0
    with open(tmp_path / "load_curves_azure-code.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [float(r["load"]) for r in rows] == [0.5, 1.0]
    assert float(rows[1]["arrival_rate"]) == pytest.approx(2 * float(rows[0]["arrival_rate"]), rel=1e-5)
    # The same window at twice the rate: requests queue longer behind each other.
    assert float(rows[1]["mean_latency"]) > float(rows[0]["mean_latency"])
    assert (tmp_path / "load_curves_azure-code.png").stat().st_size > 10_000
