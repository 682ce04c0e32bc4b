"""The shipped multi-cell agents (sdedge_agents.pretrained.MULTICELL_PRETRAINED): built, carded, reproducible."""

from __future__ import annotations

import numpy as np
import pytest

from sdedge_agents.multicell import play_twin_episode
from sdedge_agents.pretrained import MULTICELL_PRETRAINED, load_multicell_pretrained

pytest.importorskip("sb3_contrib", reason="needs the train extra (sb3-contrib, torch)")


@pytest.mark.parametrize("name", sorted(MULTICELL_PRETRAINED))
def test_a_shipped_multicell_agent_replays_its_card_and_beats_the_uncoordinated_cells(name):
    agent = MULTICELL_PRETRAINED[name]
    assert agent.model_path.stat().st_size < 2_000_000
    card = agent.card()
    assert card["name"] == name and card["preset"] == agent.preset and card["command"].startswith("python ")
    row = next(key for key in card["per_episode"] if key.startswith("twin"))
    recorded = card["per_episode"][row]
    policy = load_multicell_pretrained(name)
    first = card["test_seeds"][:2]
    values = [play_twin_episode(policy, agent.preset, seed) for seed in first]
    # The same model and episodes; a tolerance because the env's float operations may be reordered.
    np.testing.assert_allclose(values, recorded[:2], rtol=1e-6)
    summary = card["summary"]
    assert summary[row]["mean"] < summary["uncoordinated best-constant"]["mean"]
    assert summary[row]["mean"] >= summary["lower bound"]["mean"]


def test_an_unknown_multicell_agent_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown; allowed: maskable-ppo-twin-two-heterogeneous"):
        load_multicell_pretrained("no-such-agent")


def test_ship_multicell_copies_the_run_and_writes_its_card(tmp_path, monkeypatch, capsys):
    import json
    import shutil

    import sdedge_agents.pretrained as pretrained

    name = "maskable-ppo-twin-two-heterogeneous"
    shipped = MULTICELL_PRETRAINED[name]
    run = tmp_path / "run"
    run.mkdir()
    shutil.copyfile(shipped.model_path, run / "model.zip")
    model_bytes = shipped.model_path.read_bytes()
    results = {k: v for k, v in shipped.card().items() if k not in ("name", "algo", "env", "command")}
    (run / "results.json").write_text(json.dumps(results))
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", tmp_path / "shipped")
    (tmp_path / "shipped").mkdir()
    assert pretrained.main(["ship-multicell", name, "--run", str(run), "--command", "python train.py"]) == 0
    card = json.loads((tmp_path / "shipped" / shipped.card_file).read_text())
    assert card["command"] == "python train.py" and card["summary"] == results["summary"]
    assert (tmp_path / "shipped" / shipped.model_file).read_bytes() == model_bytes
    assert pretrained.main(["list"]) == 0
    assert f"{name}: multi-cell two-heterogeneous, mean latency" in capsys.readouterr().out
    results["preset"] = "four-heterogeneous"
    (run / "results.json").write_text(json.dumps(results))
    with pytest.raises(ValueError, match="preset 'four-heterogeneous'; allowed: 'two-heterogeneous'"):
        pretrained.ship_multicell(name, run, "python train.py")
