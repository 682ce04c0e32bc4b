"""The shipped Azure LLM inference traces and the trace ids: the shipped files, the build script, the
windows and their temporal split, the load rescaling, replays, and the hindsight oracle on real windows."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import sdedge_gym  # noqa: F401 (registers the ids)
from sdedge_agents.oracle import solve
from sdedge_gym.arrivals import (
    SHIPPED_TRACES,
    TRACE_TRAIN_FRACTION,
    read_trace,
    trace_offsets,
    trace_rate,
    trace_window,
)
from sdedge_gym.online_env import EdgeSDOnlineEnv, encode_online_action, max_batch_capacity, trace_capacity
from sdedge_gym.registration import TRACE_LOAD
from sdedge_gym.segments import segment_tables
from tests.test_online_oracle import _exhaustive

ROOT = Path(__file__).resolve().parents[1]
IDS = ("sdedge/EdgeSD-Online-AzureConv-v0", "sdedge/EdgeSD-Online-AzureCode-v0")


def test_shipped_traces_hold_every_request_of_the_public_files() -> None:
    conv, code = read_trace("azure-conv"), read_trace("azure-code")
    assert (conv.num_requests, code.num_requests) == (19366, 8819)
    # The public files' first rows (AzureLLMInferenceTrace_code.csv: 18:17:03.9799600 4808 10, then
    # 18:17:04.0319600 3180 8; _conv.csv: 18:15:46.6805900 374 44, then 18:15:50.9951690 396 109).
    assert code.arrival_time[:2].tolist() == [0.0, 0.052] and code.prompt_tokens[:2].tolist() == [4808, 3180]
    assert code.output_tokens[:2].tolist() == [10, 8]
    assert conv.arrival_time[1] == pytest.approx(4.314579, abs=1e-9) and conv.prompt_tokens[:2].tolist() == [374, 396]
    for trace in (conv, code):
        assert np.all(np.diff(trace.arrival_time) >= 0) and trace.prompt_tokens.min() >= 1
        assert 3000 < trace.arrival_time[-1] < 3600  # about an hour of traffic each
    for path in SHIPPED_TRACES.values():
        assert Path(path).stat().st_size < 200_000  # compressed: a few hundred KB in all


def _build_script():
    spec = importlib.util.spec_from_file_location("build_azure_traces", ROOT / "scripts" / "build_azure_traces.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_build_script_converts_the_public_layout_exactly_and_reproducibly(tmp_path: Path) -> None:
    build = _build_script()
    source = tmp_path / "AzureLLMInferenceTrace_code.csv"
    source.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.9799600,4808,10\n"
                      "2023-11-16 18:17:04.0319600,3180,8\n2023-11-16 18:18:04,110,27\n")
    data = build.convert(source)
    assert data == build.convert(source)  # no time stamp in the gzip header: the same bytes every time
    assert gzip.decompress(data).decode() == ("arrival_time,prompt_tokens,output_tokens\n0.0000000,4808,10\n"
                                              "0.0520000,3180,8\n60.0200400,110,27\n")
    out = tmp_path / "t.csv.gz"
    out.write_bytes(data)
    trace = read_trace(out)  # the reader takes the gzip file
    assert trace.arrival_time.tolist() == [0.0, 0.052, 60.02004] and trace.output_tokens.tolist() == [10, 8, 27]
    with pytest.raises(ValueError, match="timestamp '18:00' is invalid"):
        build.ticks("18:00")


def test_windows_split_the_trace_in_time_without_overlap() -> None:
    trace = read_trace("azure-code")
    k = 100
    split = int(TRACE_TRAIN_FRACTION * trace.num_requests)
    assert trace_offsets(trace, k, "train") == (0, split - k)
    assert trace_offsets(trace, k, "test") == (split, trace.num_requests - k)
    assert trace_offsets(trace, k, "first") == (0, 0)
    train = gym.make(IDS[1]).unwrapped
    test = gym.make(IDS[1], config={"arrivals": {"trace_window": "test"}}).unwrapped
    starts = {"train": [], "test": []}
    for seed in range(40):
        train.reset(seed=seed)
        test.reset(seed=seed)
        starts["train"].append(train.trace_offset)
        starts["test"].append(test.trace_offset)
    assert max(starts["train"]) + k <= split <= min(starts["test"])  # no request in both parts
    assert len(set(starts["train"])) > 30  # seeded offsets spread over the part


def test_a_trace_episode_replays_its_window_rescaled_with_clipped_lengths() -> None:
    env = gym.make(IDS[0]).unwrapped
    env.reset(seed=3)
    trace, k, cfg = env.trace, env.scenario.num_tasks, env.scenario
    window = trace_window(trace, k, env.trace_offset)
    capacity = trace_capacity(cfg)
    scale = trace_rate(trace) / (TRACE_LOAD * capacity)
    # Bursts as recorded: every gap is the trace's gap times one factor, the mean rate TRACE_LOAD x capacity.
    np.testing.assert_allclose(env.arrival, (trace.arrival_time[env.trace_offset:env.trace_offset + k]
                                             - trace.arrival_time[env.trace_offset]) * scale, rtol=1e-12)
    assert trace_rate(trace) / scale == pytest.approx(TRACE_LOAD * capacity, rel=1e-12)
    w = env.episode.workload
    assert np.array_equal(w.prompt_len, np.clip(window.prompt_tokens, 1, cfg.workload.prompt_max))
    assert np.array_equal(w.output_len, np.clip(window.output_tokens, 1, cfg.workload.max_new_tokens))
    assert cfg.workload.prompt_max + cfg.workload.max_new_tokens == 2048  # the models' context
    # The capacity is the max-batch capacity on the trace's lengths, not on the preset's drawn ones.
    assert capacity == max_batch_capacity(cfg, trace=trace) != pytest.approx(max_batch_capacity(cfg), rel=0.05)


def test_trace_offset_and_episode_options_replay_exactly() -> None:
    env = gym.make(IDS[1]).unwrapped
    env.reset(seed=5)
    offset, episode = env.trace_offset, env.episode
    actions = [encode_online_action("discrete", n, 2, env.scenario.max_batch, env.scenario.max_speculation)
               for n in (3, 1, 5, 2) * 40]

    def rewards(options: dict) -> list[float]:
        env.reset(seed=99, options=options)
        out, done, i = [], False, 0
        while not done:
            _, reward, done, _, _ = env.step(actions[i])
            out.append(reward)
            i += 1
        return out

    again = rewards({"episode": episode})
    assert np.array_equal(env.arrival, episode.release)
    assert rewards({"episode": episode}) == again
    env.reset(seed=99, options={"trace_offset": offset})
    assert env.trace_offset == offset
    np.testing.assert_array_equal(env.arrival, episode.release)  # the window's times; other draws differ
    with pytest.raises(ValueError, match="trace_offset = -1 is invalid; allowed: an integer in"):
        env.reset(options={"trace_offset": -1})
    with pytest.raises(ValueError, match="'trace_offset' is invalid here"):
        gym.make("sdedge/EdgeSD-Online-v0").reset(options={"trace_offset": 3})


def test_trace_ids_pass_the_checkers() -> None:
    from gymnasium.utils.env_checker import check_env

    for env_id in (*IDS, "sdedge/EdgeSD-Online-AzureCode-Hybrid-v0", "sdedge/EdgeSD-Online-AzureConv-Dict-v0"):
        check_env(gym.make(env_id, num_tasks=12).unwrapped, skip_render_check=True)


def test_hindsight_oracle_equals_exhaustive_search_on_real_windows() -> None:
    """The release-time DP against every action sequence (waits included) on short windows of both traces."""
    cases = 0
    for trace in ("azure-conv", "azure-code"):
        for seed in range(3):
            env = EdgeSDOnlineEnv("paper-2k", num_tasks=4, max_batch=3, max_speculation=2, config={
                "arrivals": {"process": "trace", "trace": trace, "trace_window": "any", "load": 0.7}})
            env.reset(seed=seed)
            plan = solve(segment_tables(env.model, env.episode), start=env.clock, release=env.arrival, now=env.now)
            best, _ = _exhaustive(env)
            # Two float computations of the same sums (the DP's label arithmetic vs the env's rewards).
            assert plan.cost == pytest.approx(best, rel=1e-12)
            cases += 1
    assert cases == 6


def test_the_protocol_scores_trace_ids_on_the_test_part_and_tunes_on_the_training_part() -> None:
    from sdedge_agents.evaluate import main as evaluate_main
    from sdedge_agents.online import TIMEOUT_GRID, tune_timeout
    from sdedge_agents.protocol import held_out_env_kwargs

    kwargs = held_out_env_kwargs(IDS[1])
    assert kwargs["arrivals"]["trace_window"] == "test" and kwargs["arrivals"]["trace"] == "azure-code"
    assert held_out_env_kwargs("sdedge/EdgeSD-Online-v0") == {} == held_out_env_kwargs("sdedge/EdgeSD-v0")
    test_env = gym.make(IDS[1], num_tasks=20, **kwargs)
    train_env = gym.make(IDS[1], num_tasks=20)
    timeout = tune_timeout(test_env, seeds=(1, 2))
    assert timeout == tune_timeout(train_env, seeds=(1, 2))  # tuned on training windows whatever env scores
    gap = 1.0 / test_env.unwrapped.mean_arrival_rate
    assert any(timeout == pytest.approx(m * gap) for m in TIMEOUT_GRID)
    with pytest.raises(SystemExit):
        evaluate_main(["--env", "sdedge/EdgeSD-Online-v0", "--trace-window", "test"])


def test_benchmark_rows_on_a_trace_id_use_the_online_baselines_and_the_test_windows() -> None:
    from sdedge_agents.evaluate import benchmark_rows

    (row,) = benchmark_rows(IDS[1], ["planner"], episodes=2, progress=False)
    assert row.startswith(f"| `{IDS[1]}` | planner |") and row.endswith("| 500..501 |")


def test_the_planners_forecast_is_chosen_on_training_windows() -> None:
    """The planner's forecast (slack rule, phantom arrivals or none) is the best on the tuning episodes, which
    are training windows whatever window the scored env uses; under Poisson traffic waiting pays."""
    from sdedge_agents.online import FORECASTS, OnlinePlanner, tune_forecast, tuning_env, tuning_latency

    code = gym.make(IDS[1], num_tasks=40, **{"arrivals": {**gym.spec(IDS[1]).kwargs["arrivals"],
                                                          "trace_window": "test"}})
    planner = OnlinePlanner(code)
    tuning = tuning_env(code)
    assert tuning.scenario.arrivals.trace_window == "train"
    latency = {f: tuning_latency(OnlinePlanner(tuning, forecast=f), (1_000_000, 1_000_001, 1_000_002))
               for f in FORECASTS}
    assert latency[planner.forecast] == min(latency.values())
    assert tune_forecast(gym.make("sdedge/EdgeSD-Online-v0", num_tasks=40).unwrapped.scenario, False, 22) != "none"
    assert OnlinePlanner(code, forecast=True).forecast == "slack"
    assert OnlinePlanner(code, forecast=False).forecast == "none"
    with pytest.raises(ValueError, match="forecast = 'soon' is invalid; allowed: None"):
        OnlinePlanner(code, forecast="soon")


def test_the_phantom_forecast_waits_for_expected_arrivals() -> None:
    """With phantom arrivals the planner waits only when its plan's first batch holds a task not yet
    arrived, so it never dispatches more than have arrived and it does wait on Poisson traffic."""
    from sdedge_agents.online import OnlinePlanner

    env = gym.make("sdedge/EdgeSD-Online-v0", num_tasks=30).unwrapped
    planner = OnlinePlanner(env, forecast="phantom")
    waits = 0
    observation, _ = env.reset(seed=4)
    terminated = False
    while not terminated:
        observation, _, terminated, _, info = env.step(planner.predict(observation)[0])
        waits += bool(info["waited"])
        assert not info["action_clipped"]
    assert waits > 0 and env.clock.next_task == 30


def test_the_timeout_replay_reproduces_the_env_and_fires_at_deadlines() -> None:
    """scripts/timeout_lateness.py: replaying the timeout rule with commit_batch at epochs gives the env's
    episode (asserted inside, 1e-9), and firing at the deadline changes only when a dispatch starts."""
    spec = importlib.util.spec_from_file_location("timeout_lateness", ROOT / "scripts" / "timeout_lateness.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.lateness("sdedge/EdgeSD-Online-v0", [500, 501])
    assert 0 < result["late_share"] <= 1 and result["mean_late"] > 0
    assert result["at_deadline"] != result["at_epochs"] > 0
