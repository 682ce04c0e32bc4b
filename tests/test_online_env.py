"""EdgeSDOnlineEnv: offline reproduction, epochs and the wait action, latency bookkeeping, Little's law,
the registered load, copies, hostile configuration and actions, and MaskablePPO on the online id."""

from __future__ import annotations

import copy
import dataclasses
import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest

import sdedge_gym
from sdedge_gym.arrivals import draw_arrivals
from sdedge_gym.config import ArrivalConfig, ScenarioConfig
from sdedge_gym.env import EdgeSDEnv
from sdedge_gym.online_env import EdgeSDOnlineEnv, encode_online_action, max_batch_capacity, online_observation_size
from sdedge_gym.registration import ONLINE_ARRIVAL_RATE, ONLINE_ENV_IDS, ONLINE_LOAD
from sdedge_gym.scenarios import make_scenario

OFFLINE_INFO_KEYS = ("batch_size", "speculation_length", "bandwidth", "uplink_slot", "wait", "service_time",
                     "completion_times", "tokens", "accepted_drafts", "action_clipped")
END_KEYS = ("mean_latency", "makespan", "throughput")


def _poisson(rate: float, **extra) -> dict:
    return {"arrivals": {"process": "poisson", "arrival_rate": rate, **extra}}


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray):
        return a.dtype == np.asarray(b).dtype and np.array_equal(a, b)
    return type(a) is type(b) and a == b


# ---------------------------------------------------------------- every arrival at 0: the offline env


@pytest.mark.parametrize("mode", ["discrete", "hybrid", "dict"])
@pytest.mark.parametrize("scenario, overrides", [("small", {}), ("paper", {"num_tasks": 30}),
                                                 ("small", {"acceptance": "sampled", "clairvoyant": False})])
def test_offline_arrivals_reproduce_the_offline_env_step_for_step(mode, scenario, overrides):
    offline = EdgeSDEnv(scenario, action_mode=mode, **overrides)
    online = EdgeSDOnlineEnv(scenario, action_mode=mode, **overrides)
    assert online.scenario.arrivals.process == "offline"
    rng = np.random.default_rng(5)
    size = offline.observation_space.shape[0]
    n_max, l_max = offline.scenario.max_batch, offline.scenario.max_speculation
    for seed in (0, 1):
        obs_a, info_a = offline.reset(seed=seed)
        obs_b, info_b = online.reset(seed=seed)
        terminated = False
        while True:
            # Bit for bit: the online env runs the same float operations in the same order (its slot start
            # max(u, t) is u itself and its reward subtracts 0.0), so no tolerance is needed.
            assert np.array_equal(obs_a, obs_b[:size])
            assert np.array_equal(info_a["action_mask"], np.delete(info_b["action_mask"], n_max))
            assert not info_b["action_mask"][n_max]  # nothing more can arrive: no wait
            visible = min(n_max, online.episode.num_tasks - online.clock.next_task)
            age = np.float32(online.now / (online.now + online.scenario.arrivals.slo))  # every task arrived at 0
            assert np.all(obs_b[size:size + visible] == age) and not obs_b[size + visible:size + n_max].any()
            if terminated:
                break
            n = int(rng.integers(1, n_max + 1))  # sometimes above the limit: both clip the same way
            l = int(rng.integers(0, l_max + 1))
            shares = rng.dirichlet(np.ones(n)) if mode != "discrete" else None
            action = encode_online_action(mode, n, l, n_max, l_max, shares)
            if mode == "hybrid":
                offline_action = action[:-1]
            elif mode == "dict":
                offline_action = {k: v for k, v in action.items() if k != "wait"}
            else:
                offline_action = action
            obs_a, reward_a, terminated, _, info_a = offline.step(offline_action)
            obs_b, reward_b, terminated_b, _, info_b = online.step(action)
            assert reward_a == reward_b and terminated == terminated_b and not info_b["waited"]
            assert all(_same(info_a[key], info_b[key]) for key in OFFLINE_INFO_KEYS)
        assert all(info_a[key] == info_b[key] for key in END_KEYS)


def test_online_episode_has_the_offline_tasks_and_then_its_arrivals():
    scenario = make_scenario("small", _poisson(0.5))
    online = EdgeSDOnlineEnv(scenario)
    online.reset(seed=11)
    offline = EdgeSDEnv("small")
    offline.reset(seed=11)
    for name in ("prompt_len", "output_len", "payload_bits", "channel_gain", "alpha", "output_hint"):
        assert np.array_equal(getattr(online.episode.workload, name), getattr(offline.episode.workload, name))
    # The arrivals are the next draws of the same Generator.
    rng = np.random.default_rng(11)
    sdedge_gym.workload.draw_workload(scenario, rng)
    assert np.array_equal(online.arrival, draw_arrivals(scenario.arrivals, scenario.num_tasks, rng))
    assert np.all(np.diff(online.arrival) >= 0) and online.arrival[0] > 0


# ---------------------------------------------------------------- epochs, waits and latency bookkeeping


@pytest.mark.parametrize("mode", ["discrete", "hybrid", "dict"])
def test_random_episodes_keep_the_online_invariants(mode):
    env = EdgeSDOnlineEnv("small", action_mode=mode, num_tasks=12, config=_poisson(0.4))
    n_max = env.scenario.max_batch
    env.action_space.seed(3)
    rng = np.random.default_rng(3)
    for seed in range(4):
        obs, info = env.reset(seed=seed)
        assert env.now == env.arrival[0] and env.arrived >= 1
        total, terminated, steps = 0.0, False, 0
        while not terminated:
            mask = info["action_mask"]
            assert mask[n_max] == (env.arrived < env.episode.num_tasks)
            assert mask[:n_max].sum() == env.batch_limit() >= 1
            before_now, before_clock, before_arrived = env.now, env.clock, env.arrived
            action = env.action_space.sample() if rng.random() < 0.5 else _masked_sample(env, rng)
            obs, reward, terminated, truncated, info = env.step(action)
            steps += 1
            assert env.observation_space.contains(obs) and truncated is False
            if info["waited"]:
                # a wait moves only the decision epoch
                assert reward == 0.0 and env.clock == dataclasses.replace(before_clock, now=env.now)
                assert env.now == env.arrival[before_arrived] > before_now  # the next arrival
                assert env.arrived > before_arrived
            else:
                n = info["batch_size"]
                outcome = env.outcomes[-1]
                assert n <= before_arrived - before_clock.next_task  # only arrived tasks are dispatched
                assert outcome.uplink_start == max(before_clock.uplink_end, before_now) == info["dispatch_time"]
                latency = outcome.completion_times - env.arrival[outcome.first_task:outcome.first_task + n]
                assert np.all(latency > 0) and np.array_equal(info["latencies"][:n], latency)
                assert reward == pytest.approx(-latency.sum() / env.episode.num_tasks, rel=1e-12)
                if not terminated:  # the next epoch: uplink free and the next task arrived
                    assert env.now == max(env.clock.uplink_end, env.arrival[env.clock.next_task])
            total += reward
        assert steps < 2 * env.episode.num_tasks
        latencies = env.latencies()
        # Two float computations (a running sum of per-batch shares vs a mean): 1e-12 relative.
        assert total == pytest.approx(-latencies.mean(), rel=1e-12)
        assert info["mean_latency"] == pytest.approx(latencies.mean(), rel=1e-12)
        assert info["p50_latency"] <= info["p95_latency"] <= info["p99_latency"] <= latencies.max()
        assert info["slo_attainment"] == np.mean(latencies <= env.scenario.arrivals.slo)
        span = info["makespan"] - env.arrival[0]
        assert info["request_throughput"] == pytest.approx(env.episode.num_tasks / span, rel=1e-12)


def _masked_sample(env: EdgeSDOnlineEnv, rng) -> object:
    n_max, l_max = env.scenario.max_batch, env.scenario.max_speculation
    mask = env.action_masks()
    choice = int(rng.choice(np.flatnonzero(mask[:n_max + 1])))
    return encode_online_action(env.action_mode, min(choice + 1, n_max), int(rng.integers(0, l_max + 1)), n_max,
                                l_max, wait=choice == n_max)


@pytest.mark.parametrize("mode", ["discrete", "hybrid", "dict"])
def test_refused_wait_dispatches_the_largest_batch_and_says_so(mode):
    env = EdgeSDOnlineEnv("small", action_mode=mode)  # offline arrivals: a wait is never valid
    env.reset(seed=0)
    n_max = env.scenario.max_batch
    shares = np.array([0.4, 0.3, 0.2, 0.1])
    _, _, _, _, info = env.step(encode_online_action(mode, n_max, 2, n_max, 4, shares, wait=True))
    assert not info["waited"] and info["action_clipped"]
    assert info["batch_size"] == env.model.batch_limit and info["speculation_length"] == 2
    if mode != "discrete":  # the action's band entries are used (float32 logits / weights: 1e-6)
        np.testing.assert_allclose(info["bandwidth"] / env.scenario.uplink.bandwidth, shares, rtol=1e-6)


def test_observation_hides_tasks_that_have_not_arrived():
    env = EdgeSDOnlineEnv("small", config=_poisson(0.05))  # sparse arrivals: one task visible at a time
    obs, _ = env.reset(seed=2)
    n_max = env.scenario.max_batch
    assert obs.shape == (online_observation_size(n_max),) == (4 + 7 * n_max + 2,)
    assert env.arrived == 1
    tasks = obs[4:4 + 6 * n_max].reshape(n_max, 6)
    assert tasks[0, 0] == 1.0 and not tasks[1:].any()
    assert obs[4 + 6 * n_max] == 0.0  # the first task's age at its own arrival
    obs, *_ = env.step(encode_online_action("discrete", 1, 0, n_max, 4, wait=True))
    age = env.now - env.arrival[0]
    assert obs[4 + 6 * n_max] == np.float32(age / (age + env.scenario.arrivals.slo))
    rate = 1 / (env.arrival[1] - env.arrival[0])
    assert obs[-1] == pytest.approx(rate / (rate + 0.05), rel=1e-6)


# ---------------------------------------------------------------- Little's law and the registered load


def test_littles_law_on_a_long_run():
    """Time-average number in system = arrival rate x mean latency.

    N(t) is integrated from the arrival and completion instants; the mean latency comes from the return.
    The integral of N over [0, T] (T = last completion) is exactly the sum of the latencies, so
    L = K W / T; it equals rate x W up to K / T versus the rate: K / a_K has relative standard deviation
    1 / sqrt(K) (a_K is a sum of K exponential gaps), and a_K / T lies in [1 - drain / T, 1]. The test
    allows 4 standard deviations plus the measured drain fraction.
    """
    from sdedge_agents.online import MaxBatchTimeout

    rate = 0.7 * max_batch_capacity(make_scenario("small"))
    env = EdgeSDOnlineEnv("small", num_tasks=2000, config=_poisson(rate))
    policy = MaxBatchTimeout(env, timeout=2.0)
    obs, _ = env.reset(seed=0)
    total, terminated = 0.0, False
    while not terminated:
        obs, reward, terminated, _, _ = env.step(policy.act(obs))
        total += reward
    mean_latency = -total
    completion = np.concatenate([o.completion_times for o in env.outcomes])
    times = np.concatenate([env.arrival, completion])
    steps = np.concatenate([np.ones(env.arrival.size), -np.ones(completion.size)])
    order = np.argsort(times, kind="stable")
    in_system = np.cumsum(steps[order])
    horizon = completion.max()
    area = float(np.sum(in_system[:-1] * np.diff(times[order])))
    mean_in_system = area / horizon
    k = env.episode.num_tasks
    tolerance = 4 / np.sqrt(k) + (horizon - env.arrival[-1]) / horizon
    assert mean_in_system == pytest.approx(rate * mean_latency, rel=tolerance)
    assert area == pytest.approx(k * mean_latency, rel=1e-9)  # the identity behind it, to rounding
    assert tolerance < 0.15


def test_registered_rate_loads_the_paper_preset_to_seventy_percent():
    capacity = max_batch_capacity(make_scenario("paper"))
    assert abs(ONLINE_ARRIVAL_RATE - ONLINE_LOAD * capacity) <= 5e-4  # the registered rate is rounded to 1e-3
    env = gym.make("sdedge/EdgeSD-Online-v0")
    assert env.unwrapped.scenario.arrivals == ArrivalConfig(process="poisson", arrival_rate=ONLINE_ARRIVAL_RATE)


def test_online_ids_and_a_config_over_them():
    assert set(ONLINE_ENV_IDS) == {f"sdedge/EdgeSD-Online{m}{s}-v0" for m in ("", "-Hybrid", "-Dict")
                                   for s in ("", "-Stochastic")} | {
        f"sdedge/EdgeSD-Online-Azure{t}{m}-v0" for t in ("Conv", "Code") for m in ("", "-Hybrid", "-Dict")}
    env = gym.make("sdedge/EdgeSD-Online-Stochastic-v0", config={"arrivals": {"slo": 30.0}}).unwrapped
    assert isinstance(env, EdgeSDOnlineEnv)
    assert env.scenario.arrivals.process == "poisson" and env.scenario.arrivals.slo == 30.0
    assert env.scenario.acceptance == "sampled" and env.scenario.clairvoyant is False


# ---------------------------------------------------------------- seeding, copies, render


@pytest.mark.parametrize("env_id", ONLINE_ENV_IDS)
def test_same_seed_same_trajectory_and_copies_reproduce_the_rest(env_id):
    env = gym.make(env_id, num_tasks=30)
    env.action_space.seed(1)
    actions = [env.action_space.sample() for _ in range(60)]

    def rest(e, start):
        out = []
        for action in actions[start:]:
            obs, reward, terminated, _, info = e.step(action)
            out.append((obs, reward, info["time"]))
            if terminated:
                break
        return out

    env.reset(seed=4)
    for action in actions[:3]:
        env.step(action)
    clones = [copy.deepcopy(env), pickle.loads(pickle.dumps(env))]
    expected = rest(env, 3)
    for clone in clones:
        got = rest(clone, 3)
        assert len(got) == len(expected)
        assert all(np.array_equal(a[0], b[0]) and a[1:] == b[1:] for a, b in zip(got, expected, strict=True))


def test_ansi_render_reports_the_online_state():
    env = EdgeSDOnlineEnv("small", render_mode="ansi", config=_poisson(0.5))
    env.reset(seed=0)
    assert "arrived 1/8" in env.render()


# ---------------------------------------------------------------- hostile configuration and actions


@pytest.mark.parametrize("arrivals, field", [
    ({"process": "batch"}, "process"),
    ({"process": "poisson", "arrival_rate": 0.0}, "arrival_rate"),
    ({"process": "poisson", "arrival_rate": -1.0}, "arrival_rate"),
    ({"process": "poisson", "arrival_rate": float("nan")}, "arrival_rate"),
    ({"process": "poisson", "arrival_rate": float("inf")}, "arrival_rate"),
    ({"process": "poisson", "arrival_rate": True}, "arrival_rate"),
    ({"process": "poisson", "arrival_rate": "1"}, "arrival_rate"),
    ({"process": "mmpp", "burst_rate": 0}, "burst_rate"),
    ({"process": "mmpp", "calm_duration": -5.0}, "calm_duration"),
    ({"process": "mmpp", "burst_duration": None}, "burst_duration"),
    ({"slo": 0.0}, "slo"),
    ({"process": "trace"}, "trace"),
    ({"process": "trace", "trace": 3}, "trace"),
])
def test_bad_arrival_fields_name_the_field(arrivals, field):
    with pytest.raises(ValueError, match=rf"ArrivalConfig\.{field} = .* is invalid; allowed"):
        make_scenario("small", {"arrivals": arrivals})


def test_arrival_config_rejects_unknown_keys_and_conflicting_scenario_fields():
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['rate'\]"):
        make_scenario("small", {"arrivals": {"rate": 1.0}})
    with pytest.raises(ValueError, match=r"ScenarioConfig\.queue_order = 'shortest_payload' is invalid"):
        make_scenario("small", _poisson(1.0), queue_order="shortest_payload")
    with pytest.raises(ValueError, match=r"ScenarioConfig\.objective = 'makespan' is invalid"):
        make_scenario("small", _poisson(1.0), objective="makespan")
    with pytest.raises(ValueError, match=r"ScenarioConfig\.arrivals = .* is invalid"):
        make_scenario("small").replace(arrivals={"process": "poisson"})
    with pytest.raises(ValueError, match=r"arrivals\.process = 'poisson' is invalid for EdgeSDEnv"):
        EdgeSDEnv("small", config=_poisson(1.0))
    with pytest.raises(ValueError, match=r"objective = 'makespan' is invalid for the online env"):
        EdgeSDOnlineEnv("small", objective="makespan")


def test_existing_presets_are_offline_and_round_trip():
    for preset in sdedge_gym.PRESETS:
        scenario = make_scenario(preset)
        assert scenario.arrivals == ArrivalConfig()
        assert ScenarioConfig.from_dict(scenario.to_dict()) == scenario
    online = make_scenario("paper", {"arrivals": {"process": "mmpp", "burst_rate": 3.0}})
    assert ScenarioConfig.from_dict(online.to_dict()) == online


@pytest.mark.parametrize("mode, action, match", [
    ("discrete", np.array([5, 0]), r"action\[0\] \(batch_size - 1, or 4 to wait\) = 5"),
    ("discrete", np.array([0, 5]), r"action\[1\] \(speculation_length\) = 5"),
    ("discrete", np.array([0.5, 1.0]), r"action\[0\]"),
    ("hybrid", np.zeros(6, dtype=np.float32), r"action \(shape \(6,\)\)"),
    ("hybrid", np.array([0, 0, 0, 0, 0, 0, 2.0], dtype=np.float32), r"action\[6\] \(wait\) = 2.0"),
    ("hybrid", np.array([0, 0, 0, 0, 0, 0, np.nan], dtype=np.float32), r"NaN or inf"),
    ("dict", {"batch_size_minus_one": 0, "speculation_length": 0, "bandwidth": np.ones(4)}, r"keys .*'wait'"),
    ("dict", {"batch_size_minus_one": 0, "speculation_length": 0, "bandwidth": np.ones(4), "wait": 2},
     r"action\['wait'\] = 2"),
    ("dict", {"batch_size_minus_one": 0, "speculation_length": 0, "bandwidth": np.ones(4), "wait": 0, "x": 1},
     r"exactly"),
])
def test_out_of_space_actions_raise_naming_the_entry(mode, action, match):
    env = EdgeSDOnlineEnv("small", action_mode=mode, config=_poisson(0.5))
    env.reset(seed=0)
    with pytest.raises(ValueError, match=match):
        env.step(action)


def test_step_before_reset_and_after_the_end_raise():
    env = EdgeSDOnlineEnv("small", num_tasks=1)
    with pytest.raises(RuntimeError, match="before reset"):
        env.step(np.array([0, 0]))
    env.reset(seed=0)
    env.step(np.array([0, 0]))
    with pytest.raises(RuntimeError, match="terminated"):
        env.step(np.array([0, 0]))


def test_mmpp_long_run_rate_is_the_stationary_mean():
    config = ArrivalConfig(process="mmpp", arrival_rate=0.5, burst_rate=3.0, calm_duration=40.0, burst_duration=10.0)
    times = draw_arrivals(config, 20_000, np.random.default_rng(0))
    mean_rate = (0.5 * 40.0 + 3.0 * 10.0) / 50.0  # time-weighted rate of the two states = 1.0
    # Burstiness inflates the count variance over Poisson's; 5 % is several standard deviations at 20 000
    # arrivals over ~400 state cycles (the cycle count dominates the error: about 1/sqrt(400) x 0.6).
    assert times.size / times[-1] == pytest.approx(mean_rate, rel=0.1)
    gaps = np.diff(times)
    assert np.all(gaps >= 0) and gaps.std() / gaps.mean() > 1.2  # burstier than Poisson (coefficient 1)


# ---------------------------------------------------------------- MaskablePPO runs on the online id


def test_maskable_ppo_runs_on_the_online_id_and_respects_masks():
    pytest.importorskip("sb3_contrib", reason="MaskablePPO needs the train extra (sb3-contrib)")
    from sb3_contrib import MaskablePPO
    from sb3_contrib.common.maskable.utils import get_action_masks

    env = gym.make("sdedge/EdgeSD-Online-v0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = MaskablePPO("MlpPolicy", env, n_steps=500, batch_size=100, n_epochs=1, seed=0, device="cpu")
        model.learn(total_timesteps=2000)
    assert model.num_timesteps >= 2000
    obs, _ = env.reset(seed=1)
    terminated, total = False, 0.0
    while not terminated:
        action, _ = model.predict(obs, action_masks=get_action_masks(env))
        obs, reward, terminated, _, info = env.step(action)
        total += reward
        assert not info["action_clipped"]  # a masked policy asks for neither a too-large batch nor a bad wait
    assert total == pytest.approx(-info["mean_latency"], rel=1e-12)


def test_the_online_env_is_the_offline_env_s_subclass_and_checks_its_keywords():
    """One base: the constructor's checks, the step guard and the info builder are the offline env's."""
    from sdedge_gym.env import STEP_INFO_KEYS, EdgeSDEnv
    from sdedge_gym.online_env import ONLINE_INFO_KEYS

    assert issubclass(EdgeSDOnlineEnv, EdgeSDEnv)
    with pytest.raises(TypeError, match="unexpected keyword argument 'frameskip'"):
        EdgeSDOnlineEnv("small", frameskip=1)
    env = EdgeSDOnlineEnv("small", action_mode="dict")
    with pytest.raises(RuntimeError, match=r"EdgeSDOnlineEnv.step\(\) called before reset"):
        env.step(env.action_space.sample())
    env.reset(seed=0)
    _, _, _, _, info = env.step(env.action_space.sample())
    assert tuple(info)[:len(STEP_INFO_KEYS)] == STEP_INFO_KEYS
    assert tuple(info)[len(STEP_INFO_KEYS):len(STEP_INFO_KEYS) + len(ONLINE_INFO_KEYS)] == ONLINE_INFO_KEYS


@pytest.mark.parametrize("option", [{"observe_reference": True}, {"observe_queue": True}])
def test_the_offline_observation_options_are_refused_online(option):
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        EdgeSDOnlineEnv("small", **option)
