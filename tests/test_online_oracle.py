"""The online reference policies: the release-time DP against exhaustive search over action sequences
(waits included), its replay, the planner and the baselines' dispatch rules, and the evaluation harness."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sdedge_agents.evaluate import evaluate, make_policy
from sdedge_agents.online import (
    Autoregressive,
    DispatchImmediately,
    MaxBatchTimeout,
    OnlineOracle,
    OnlinePlanner,
    OnlineRandom,
    make_online_policy,
)
from sdedge_agents.oracle import DPOracle, solve
from sdedge_gym.env import EdgeSDEnv
from sdedge_gym.online_env import EdgeSDOnlineEnv, encode_online_action
from sdedge_gym.segments import segment_tables

SMALL = {"num_tasks": 4, "max_batch": 3, "max_speculation": 2}


def _exhaustive(env: EdgeSDOnlineEnv) -> tuple[float, bool]:
    """(minimum mean latency over every action sequence from the env's state, does an optimum wait?).

    Depth-first over the env itself: each node's state (clock, epoch, arrived count, outcomes) is saved and
    restored around every branch; the branches are every valid (n, l) and the wait when it is valid.
    """
    n_max, l_max = env.scenario.max_batch, env.scenario.max_speculation
    best = [np.inf, False]

    def visit(cost: float, waited: bool) -> None:
        saved = (env.clock, len(env.outcomes))  # the episode state (the epoch is the clock's `now`)
        actions = [(n, l) for n in range(1, env.batch_limit() + 1) for l in range(l_max + 1)]
        if env.can_wait():
            actions.append(None)
        for step in actions:
            action = encode_online_action("discrete", 1, 0, n_max, l_max, wait=True) if step is None else \
                encode_online_action("discrete", step[0], step[1], n_max, l_max)
            _, reward, terminated, _, info = env.step(action)
            assert not info["action_clipped"]
            if terminated:
                total = cost - reward
                if total < best[0] - 1e-12:
                    best[:] = [total, waited]
                elif total <= best[0] + 1e-12:
                    best[1] = best[1] or waited
            else:
                visit(cost - reward, waited or step is None)
            env.clock = saved[0]
            del env.outcomes[saved[1]:]

    visit(0.0, False)
    return best[0], best[1]


@pytest.mark.parametrize("acceptance", ["expected", "sampled"])
def test_release_time_dp_equals_exhaustive_search_with_waits(acceptance):
    waits_seen = 0
    cases = 0
    for rate in (0.3, 1.0, 3.0):
        for seed in range(4):
            env = EdgeSDOnlineEnv("small", acceptance=acceptance, config={
                "arrivals": {"process": "poisson", "arrival_rate": rate}}, **SMALL)
            env.reset(seed=seed)
            tables = segment_tables(env.model, env.episode)
            plan = solve(tables, start=env.clock, release=env.arrival, now=env.now)
            best, waits = _exhaustive(env)
            # Two float computations of the same sums (the DP's label arithmetic vs the env's rewards).
            assert plan.cost == pytest.approx(best, rel=1e-12)
            waits_seen += waits
            cases += 1
    assert waits_seen >= 2  # the optimum waited in several cases: the test exercises the wait branch


def test_release_time_dp_with_simultaneous_arrivals(tmp_path):
    trace = tmp_path / "ties.csv"
    trace.write_text("arrival_time,prompt_tokens,output_tokens\n0,100,40\n0,50,20\n2.5,200,60\n2.5,80,30\n9,60,10\n")
    env = EdgeSDOnlineEnv("small", config={"arrivals": {"process": "trace", "trace": str(trace)}},
                          num_tasks=5, max_batch=3, max_speculation=1)
    env.reset(seed=0)
    assert env.arrived == 2  # both requests at t = 0 are visible at the first epoch
    plan = solve(segment_tables(env.model, env.episode), start=env.clock, release=env.arrival, now=env.now)
    assert plan.cost == pytest.approx(_exhaustive(env)[0], rel=1e-12)


@pytest.mark.parametrize("mode", ["discrete", "hybrid", "dict"])
def test_the_oracle_replays_its_plan(mode):
    env = EdgeSDOnlineEnv("paper", action_mode=mode, num_tasks=30,
                          config={"arrivals": {"process": "poisson", "arrival_rate": 0.757}})
    oracle = OnlineOracle(env)
    for seed in (0, 1):
        obs, _ = env.reset(seed=seed)
        total, terminated, waits = 0.0, False, 0
        while not terminated:
            obs, reward, terminated, _, info = env.step(oracle.act(obs))
            total += reward
            waits += info["waited"]
            assert not info["action_clipped"]
        # Discrete: the env computes the DP's sums in another order (1e-12). Hybrid/dict: the shares pass
        # through float32 logits/weights, which moves each slot by about 1e-7 of its length.
        assert -total == pytest.approx(oracle.plan.cost, rel=1e-12 if mode == "discrete" else 1e-6)
        assert waits > 0


def test_zero_arrivals_give_the_offline_oracle():
    env = EdgeSDOnlineEnv("small", num_tasks=8)
    env.reset(seed=3)
    tables = segment_tables(env.model, env.episode)
    online = solve(tables, start=env.clock, release=env.arrival, now=env.now)
    offline = solve(tables, "mean_latency")
    assert online.cost == pytest.approx(offline.cost, rel=1e-12)  # subtracting zero arrivals: same optimum
    # The exact planner over the whole queue, without forecast, is then the offline oracle step for step.
    planner = OnlinePlanner(env, exact=True, horizon=8, forecast=False)
    offline_env = EdgeSDEnv("small", num_tasks=8)
    offline_oracle = DPOracle(offline_env)
    obs_a, _ = env.reset(seed=3)
    obs_b, _ = offline_env.reset(seed=3)
    done = False
    while not done:
        step = planner.decide()
        assert step == offline_oracle.choose()
        _, _, done, _, _ = env.step(planner.act(obs_a))
        offline_env.step(offline_oracle.act(obs_b))


def test_solve_with_release_times_rejects_bad_arguments():
    env = EdgeSDOnlineEnv("small")
    env.reset(seed=0)
    tables = segment_tables(env.model, env.episode)
    with pytest.raises(ValueError, match=r"release \(shape \(3,\)\) is invalid"):
        solve(tables, release=np.zeros(3))
    with pytest.raises(ValueError, match="end = 9 is invalid"):
        solve(tables, release=env.arrival, end=9)
    with pytest.raises(TypeError, match=r"use sdedge_agents\.DPOracle on it"):
        OnlineOracle(EdgeSDEnv("small"))
    with pytest.raises(ValueError, match="allocation = 'uniform' needs action_mode"):
        OnlineOracle(env, allocation="uniform")


# ---------------------------------------------------------------- planner and baselines


def _run(policy, env, seed):
    obs, _ = env.reset(seed=seed)
    steps, terminated = [], False
    while not terminated:
        before = (env.now, env.arrived - env.clock.next_task, env.now - env.arrival[env.clock.next_task],
                  env.can_wait())
        obs, _, terminated, _, info = env.step(policy.act(obs))
        steps.append((before, info))
    return steps, info


def test_max_batch_with_timeout_dispatches_only_when_full_late_or_last():
    env = EdgeSDOnlineEnv("paper", num_tasks=40, config={"arrivals": {"process": "poisson", "arrival_rate": 0.757}})
    policy = MaxBatchTimeout(env, timeout=8.0, max_batch=10)
    steps, _ = _run(policy, env, 0)
    for (_, waiting, oldest, can_wait), info in steps:
        full, late = waiting >= 10, oldest >= 8.0
        assert bool(info["waited"]) is not (full or late or not can_wait)
        if not info["waited"]:
            assert info["batch_size"] == min(waiting, 10)
    assert any(info["waited"] for _, info in steps)


@pytest.mark.parametrize("cls", [DispatchImmediately, Autoregressive])
def test_dispatch_immediately_never_waits(cls):
    env = EdgeSDOnlineEnv("paper", num_tasks=30, config={"arrivals": {"process": "poisson", "arrival_rate": 0.757}})
    steps, _ = _run(cls(env), env, 1)
    for (_, waiting, _, _), info in steps:
        assert not info["waited"] and info["batch_size"] == min(waiting, env.model.batch_limit)
        if cls is Autoregressive:
            assert info["speculation_length"] == 0


def test_online_policy_names_and_errors():
    env = EdgeSDOnlineEnv("small", config={"arrivals": {"process": "poisson", "arrival_rate": 0.5}})
    assert isinstance(make_policy("timeout:3:2.5", env), MaxBatchTimeout)
    assert isinstance(make_policy("random", env), OnlineRandom)
    for spec, match in (("timeout:3", "timeout:N:T"), ("best-constant", "unknown for an online env")):
        with pytest.raises(ValueError, match=match):
            make_online_policy(spec, env)
    with pytest.raises(ValueError, match="max_batch = 9 is invalid"):
        MaxBatchTimeout(env, max_batch=9)
    with pytest.raises(ValueError, match=r"timeout = -1\.0 is invalid"):
        MaxBatchTimeout(env, timeout=-1.0)


def test_evaluation_on_the_online_id_never_beats_the_hindsight_oracle():
    results = {r.policy: r for r in evaluate("sdedge/EdgeSD-Online-v0", episodes=2, seed=0, progress=False)}
    assert {"oracle", "planner", "max-batch-timeout", "dispatch-immediately", "autoregressive", "uniform-shares",
            "random"} <= set(results)
    oracle = np.array(results["oracle"].values)
    for name, result in results.items():
        # The deterministic clairvoyant id: the hindsight oracle is the optimum of every episode.
        assert np.all(np.array(result.values) >= oracle * (1 - 1e-6)), name
    assert results["uniform-shares"].action_mode == "dict"


@settings(max_examples=25, deadline=None)
@given(rate=st.floats(0.05, 5.0), seed=st.integers(0, 10_000), policy_seed=st.integers(0, 10_000),
       sampled=st.booleans())
def test_no_policy_beats_the_hindsight_oracle(rate, seed, policy_seed, sampled):
    env = EdgeSDOnlineEnv("small", acceptance="sampled" if sampled else "expected",
                          config={"arrivals": {"process": "poisson", "arrival_rate": rate}})
    obs, _ = env.reset(seed=seed)
    plan = solve(segment_tables(env.model, env.episode), start=env.clock, release=env.arrival, now=env.now)
    policy = OnlineRandom(env, seed=policy_seed)
    total, terminated = 0.0, False
    while not terminated:
        obs, reward, terminated, _, _ = env.step(policy.act(obs))
        total += reward
    assert -total >= plan.cost * (1 - 1e-12)


def test_the_planner_waits_only_with_its_forecast_and_only_for_slack():
    env = EdgeSDOnlineEnv("paper", num_tasks=40, config={"arrivals": {"process": "poisson", "arrival_rate": 0.757}})
    steps, _ = _run(OnlinePlanner(env, forecast=False), env, 2)
    assert not any(info["waited"] for _, info in steps)
    planner = OnlinePlanner(env)
    obs, _ = env.reset(seed=2)
    terminated, waits = False, 0
    while not terminated:
        backlog = env.clock.inference_end - env.now  # the MBS is busy this long: the room for a wait
        obs, _, terminated, _, info = env.step(planner.act(obs))
        if info["waited"]:
            waits += 1
            assert backlog > 0
    assert waits > 0


def test_zero_release_times_are_the_offline_dp_bit_for_bit():
    """The one DP: release times of 0 run the same operations as none (max(u, 0) = u for u >= 0)."""
    env = EdgeSDEnv("paper", num_tasks=40)
    env.reset(seed=2)
    tables = segment_tables(env.model, env.episode)
    for objective in ("mean_latency", "makespan"):
        plain = solve(tables, objective)
        released = solve(tables, objective, release=np.zeros(40))
        assert (plain.batches, plain.cost, plain.labels) == (released.batches, released.cost, released.labels)


def test_the_dp_stops_at_end_with_the_full_queue_s_divisor():
    """``end`` (the online planner's horizon): the optimum over tasks 0..4 only, still divided by K = 8,
    against every plan of those five tasks scored by hand with the map of MODEL.md section 15."""
    import itertools

    env = EdgeSDOnlineEnv("small", num_tasks=8)
    env.reset(seed=1)
    tables = segment_tables(env.model, env.episode)
    part = solve(tables, start=env.clock, release=env.arrival, now=env.now, end=5, num_tasks=8)
    assert sum(n for n, _ in part.batches) == 5

    def plans(left):
        if left == 0:
            yield ()
        for n in range(1, min(tables.batch_limit, left) + 1):
            for rest in plans(left - n):
                yield (n, *rest)

    best = np.inf
    for sizes in plans(5):
        for lengths in itertools.product(range(tables.max_speculation + 1), repeat=len(sizes)):
            u, f, cost, p = max(env.clock.uplink_end, env.now), env.clock.inference_end, 0.0, 0
            for n, l in zip(sizes, lengths, strict=True):
                u = max(u, env.arrival[p + n - 1]) + tables.uplink_slot[p, n - 1]
                begin = max(u, f)
                f = begin + tables.duration[p, n - 1, l]
                cost += (n * begin + tables.completion_sum[p, n - 1, l] - env.arrival[p:p + n].sum()) / 8
                p += n
            best = min(best, cost)
    assert part.cost == pytest.approx(best, rel=1e-12)  # the same sums, grouped differently
