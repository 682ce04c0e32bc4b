"""The evaluation harness: table, JSON, reference policies, no torch on the base path."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
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


def test_deep_fade_seeds_are_exactly_the_episodes_with_a_user_in_a_deep_fade():
    import gymnasium as gym

    from sdedge_agents.protocol import DEEP_FADE_SLOT, deep_fade_seeds
    from sdedge_gym.uplink import user_rate

    env_id = "sdedge/EdgeSD-v0"
    seeds = deep_fade_seeds(env_id, 3, base=600)
    env = gym.make(env_id)
    uplink = env.unwrapped.scenario.uplink
    for seed in range(600, seeds[-1] + 1):  # every seed in the range is in the list if and only if it qualifies
        env.reset(seed=seed)
        episode = env.unwrapped.episode
        solo = episode.workload.payload_bits / user_rate(uplink.bandwidth, episode.channel, uplink.rate_model)
        assert (solo.max() > DEEP_FADE_SLOT) == (seed in seeds)
    assert deep_fade_seeds(env_id, 1, base=500)[0] > 599  # the test episodes 500..599 hold none


def test_evaluate_on_given_seeds_plays_those_episodes():
    given = evaluate("sdedge/EdgeSD-Small-v0", policies=["best-constant"], progress=False, seeds=[11, 4])
    one_by_one = [evaluate("sdedge/EdgeSD-Small-v0", episodes=1, seed=s, policies=["best-constant"], progress=False)
                  for s in (11, 4)]
    for result in (r for r in given if r.policy != "random"):  # random's stream runs on across episodes
        expected = [next(r for r in results if r.policy == result.policy).values[0] for results in one_by_one]
        assert result.values == expected


def test_the_deep_fades_flag_plays_the_protocols_deep_fade_episodes(tmp_path, capsys):
    from sdedge_agents.protocol import deep_fade_seeds

    out = tmp_path / "fades.json"
    assert main(["--env", "sdedge/EdgeSD-v0", "--deep-fades", "--episodes", "2", "--policies", "best-constant",
                 "--json", str(out), "--no-progress"]) == 0
    seeds = deep_fade_seeds("sdedge/EdgeSD-v0", 2)
    text = capsys.readouterr().out
    assert f"2 deep-fade episodes (protocol.deep_fade_seeds), seeds {seeds[0]}..{seeds[1]}" in text
    assert "| oracle | +0.00 % | +0.00 % | 0 of 2 | +0.0 % |" in text  # the per-episode table follows
    assert json.loads(out.read_text())["seeds"] == seeds
    for argv in (["--seed", "3"], ["--benchmark"], ["--env", "sdedge/EdgeSD-Online-v0"]):
        with pytest.raises(SystemExit):
            main(["--deep-fades", *argv])


def test_episode_gaps_weigh_every_episode_the_same():
    from sdedge_agents.evaluate import PolicyResult, format_episode_gaps

    def result(name, values):
        return PolicyResult(name, "mean_latency", values, [-v for v in values], float(np.mean(values)), 0.0, 0.0,
                            0.0, 0.0, "discrete")

    # The mean of the ratios, not the ratio of the means (which would be 1 / 110 = +0.9 %).
    text = format_episode_gaps([result("oracle", [10.0, 100.0]), result("agent", [11.0, 100.0])])
    assert text.splitlines()[-1] == "| agent | +5.00 % | +5.00 % | 1 of 2 | +10.0 % |"


def test_deep_fade_seeds_give_up_with_a_clear_error(monkeypatch):
    from sdedge_agents import protocol

    monkeypatch.setattr(protocol, "DEEP_FADE_SEARCH", 50)  # fewer seeds than it takes to find 10 (~2 % qualify)
    with pytest.raises(ValueError, match=r"deep-fade episodes among seeds 100000\.\.100049, fewer than count = 10"):
        protocol.deep_fade_seeds("sdedge/EdgeSD-v0", 10)
