"""The evaluation harness: table, JSON, reference policies, no torch on the base path."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from sdedge_agents.evaluate import evaluate, format_table, main, make_policy


def test_evaluate_table_and_json(tmp_path, capsys):
    out = tmp_path / "results.json"
    assert main(["--env", "sdedge/EdgeSD-Small-v0", "--episodes", "3", "--seed", "5", "--policies",
                 "best-constant,fixed:2:3,uniform-shares", "--json", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "| oracle |" in text and "| random |" in text and "uniform-shares (dict)" in text
    data = json.loads(out.read_text())
    results = {r["policy"]: r for r in data["results"]}
    assert set(results) == {"oracle", "random", "best-constant", "fixed:2:3", "uniform-shares"}
    assert results["oracle"]["gap_percent"] == pytest.approx(0.0)
    assert results["oracle"]["score"] == pytest.approx(1.0) and results["random"]["score"] == pytest.approx(0.0)
    for r in results.values():
        assert len(r["values"]) == 3
        assert r["mean"] >= results["oracle"]["mean"] * (1 - 1e-9)


def test_same_seeds_give_the_same_numbers():
    a = evaluate("sdedge/EdgeSD-Small-Stochastic-v0", 2, 11, ["planner"], progress=False)
    b = evaluate("sdedge/EdgeSD-Small-Stochastic-v0", 2, 11, ["planner"], progress=False)
    assert [r.values for r in a] == [r.values for r in b]
    assert "planner" in format_table(a)


def test_bad_arguments_are_clear():
    import gymnasium as gym

    env = gym.make("sdedge/EdgeSD-Small-v0")
    with pytest.raises(ValueError, match="unknown"):
        make_policy("greedy", env)
    with pytest.raises(ValueError, match="fixed:N:L"):
        make_policy("fixed:2", env)
    with pytest.raises(SystemExit):
        main(["--env", "sdedge/Nope-v0"])


def test_base_path_does_not_import_torch():
    code = ("import sys, sdedge_agents.evaluate as e; e.evaluate('sdedge/EdgeSD-Small-v0', 1, 0, ['oracle'], False); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_shipped_agent_is_a_policy_choice():
    pytest.importorskip("sb3_contrib", reason="needs the train extra (sb3-contrib, torch)")
    results = {r.policy: r for r in evaluate("sdedge/EdgeSD-Small-v0", 5, 0, ["pretrained:maskable-ppo-small"],
                                             progress=False)}
    agent, oracle = results["pretrained:maskable-ppo-small"], results["oracle"]
    assert len(agent.values) == 5 and agent.mean >= oracle.mean * (1 - 1e-9)
    assert agent.mean < results["random"].mean  # a trained agent, not a random one
    import gymnasium as gym

    with pytest.raises(ValueError, match="maskable-ppo-small"):  # the error lists the shipped agents
        make_policy("pretrained:nope", gym.make("sdedge/EdgeSD-Small-v0"))


def test_benchmark_rows_for_a_class_policy_match_the_evaluation(capsys):
    from sdedge_agents.evaluate import benchmark_rows

    rows = benchmark_rows("sdedge/EdgeSD-Small-v0", ["sdedge_agents.baselines:MaxBatch", "oracle"], episodes=3,
                          seed=500, progress=False)
    policies = ["sdedge_agents.baselines:MaxBatch", "planner", "best-constant", "max-batch", "autoregressive"]
    results = {r.policy: r for r in evaluate("sdedge/EdgeSD-Small-v0", 3, 500, policies, progress=False)}
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    mine = results["sdedge_agents.baselines:MaxBatch"]
    best = min(results[b].mean for b in ("best-constant", "max-batch", "autoregressive"))
    assert cells[:2] == ["`sdedge/EdgeSD-Small-v0`", "sdedge_agents.baselines:MaxBatch"]
    assert cells[2] == f"{mine.mean:.3f} ± {mine.half_width:.3f}"
    assert cells[3] == f"{mine.gap_percent:+.1f} %" and cells[4] == f"{100 * (mine.mean / best - 1):+.1f} %"
    assert cells[7] == "500..502"
    # the class is the same policy as the named max-batch baseline
    assert mine.values == results["max-batch"].values
    assert [c.strip() for c in rows[1].strip("|").split("|")][3] == "+0.0 %"  # the oracle's own row
    assert main(["--benchmark", "--env", "sdedge/EdgeSD-Small-v0", "--policies", "max-batch", "--episodes", "2",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("| id | policy |") and "| 500..501 |" in out


def test_a_class_path_that_does_not_import_is_a_clear_error():
    import gymnasium as gym

    with pytest.raises(ValueError, match=r"cannot import Nope from sdedge_agents\.baselines"):
        make_policy("sdedge_agents.baselines:Nope", gym.make("sdedge/EdgeSD-Small-v0"))
