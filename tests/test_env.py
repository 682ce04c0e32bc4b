"""EdgeSDEnv behaviour: observation, reward bookkeeping, masks and clipping, errors, seeding, copies, render."""

from __future__ import annotations

import copy
import pickle
import sys

import gymnasium as gym
import numpy as np
import pytest

import sdedge_gym
from sdedge_gym.actions import encode_action
from sdedge_gym.env import GLOBAL_FEATURES, TASK_FEATURES, EdgeSDEnv, global_feature_values
from sdedge_gym.episode import EpisodeClock, closed_form_bandwidth, commit_batch
from sdedge_gym.scenarios import make_scenario

STEPS_COMPARED = 6


def _episode_ids(env_id: str) -> dict:
    """Overrides that keep an episode short where a full one is not needed."""
    return {"num_tasks": 60} if "Large" in env_id else {}


def _run_episode(env: gym.Env, seed: int, actions) -> tuple[float, list[dict], list[np.ndarray]]:
    obs, _ = env.reset(seed=seed)
    total, infos, observations = 0.0, [], [obs]
    for action in actions:
        obs, reward, terminated, _, info = env.step(action)
        total += reward
        infos.append(info)
        observations.append(obs)
        if terminated:
            break
    return total, infos, observations


def _same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray):
        return a.dtype == np.asarray(b).dtype and np.array_equal(a, b)
    return type(a) is type(b) and a == b


# ---------------------------------------------------------------- observation


def test_observation_layout_and_padding():
    env = EdgeSDEnv("small", num_tasks=6)
    obs, _ = env.reset(seed=3)
    n_max = env.scenario.max_batch
    assert obs.dtype == np.float32 and obs.shape == (len(GLOBAL_FEATURES) + len(TASK_FEATURES) * n_max,)
    assert env.observation_space.contains(obs)
    w = env.episode.workload
    tasks = obs[4:].reshape(n_max, len(TASK_FEATURES))
    np.testing.assert_allclose(tasks[:, 0], 1.0)
    np.testing.assert_allclose(tasks[:, 1], w.prompt_len[:n_max] / env.scenario.workload.prompt_max, rtol=1e-6)
    np.testing.assert_allclose(tasks[:, 4], w.alpha[:n_max], rtol=1e-6)  # clairvoyant: the true alpha
    np.testing.assert_allclose(tasks[:, 5], w.output_len[:n_max] / env.scenario.workload.max_new_tokens, rtol=1e-6)
    assert obs[0] == 1.0 and obs[1] == 0.0 and obs[2] == 0.0
    # Commit 4 of 6 tasks: two tasks remain, the last two task slots are zero padding.
    obs, *_ = env.step(np.array([3, 2]))
    tasks = obs[4:].reshape(n_max, len(TASK_FEATURES))
    assert obs[0] == pytest.approx(2 / 6)
    assert obs[3] == pytest.approx(2 / n_max)  # batch_limit() = tasks left
    np.testing.assert_array_equal(tasks[2:], 0.0)
    np.testing.assert_allclose(tasks[:2, 1], w.prompt_len[4:6] / env.scenario.workload.prompt_max, rtol=1e-6)
    assert 0.0 < obs[1] < 1.0


def test_non_clairvoyant_observation_shows_estimates_not_truth():
    env = EdgeSDEnv("small", acceptance="sampled", clairvoyant=False)
    obs, _ = env.reset(seed=5)
    w = env.episode.workload
    tasks = obs[4:].reshape(env.scenario.max_batch, len(TASK_FEATURES))
    n = env.scenario.max_batch
    np.testing.assert_allclose(tasks[:, 4], w.alpha_estimate[:n], rtol=1e-6)
    np.testing.assert_allclose(tasks[:, 5], w.output_hint[:n] / env.scenario.workload.max_new_tokens, rtol=1e-6)
    assert not np.allclose(w.alpha_estimate[:n], w.alpha[:n])


def test_channel_quality_orders_users_by_channel():
    env = EdgeSDEnv("paper")
    obs, _ = env.reset(seed=2)
    quality = obs[4:].reshape(env.scenario.max_batch, len(TASK_FEATURES))[:, 3]
    channel = env.episode.channel[: env.scenario.max_batch]
    # Spectral efficiency is increasing in the channel coefficient, and so is the squashed feature.
    assert np.array_equal(np.argsort(quality, kind="stable"), np.argsort(channel, kind="stable"))
    assert np.all((quality > 0) & (quality < 1))


def test_global_features_broadcast_over_envs():
    """The vector form (one row per env) gives the single env's global features at each step."""
    env = EdgeSDEnv("paper", num_tasks=50)
    rows, clocks = [], []
    obs, _ = env.reset(seed=1)
    for action in ([9, 2], [21, 5], [3, 0], [23, 8]):
        rows.append(obs[:4])
        clocks.append((env.clock.next_task, env.clock.uplink_end, env.clock.inference_end, env.batch_limit()))
        obs, *_ = env.step(np.array(action))
    next_task, uplink_end, inference_end, limit = (np.array(c) for c in zip(*clocks, strict=True))
    values = global_feature_values(env.model, env.scales, 50, next_task, uplink_end, inference_end, limit)
    assert values.shape == (4, 4) and values.dtype == np.float32
    # Bit equality is honest: both paths do the same float64 +, -, *, / (correctly rounded everywhere, never
    # fused) in the same order, then one cast to float32.
    np.testing.assert_array_equal(values, np.stack(rows))
    assert np.all(np.diff(values[:, 0]) < 0) and np.all(np.diff(values[:, 1]) > 0)


def test_golden_reset_seed_0():
    # Regenerate (only after an intended change of the workload draw or the observation) with:
    #   env = gym.make("sdedge/EdgeSD-v0"); obs, _ = env.reset(seed=0)
    #   print(obs[:16].tolist(), env.unwrapped.episode.workload.prompt_len[:4], ...)
    env = gym.make("sdedge/EdgeSD-v0")
    obs, _ = env.reset(seed=0)
    expected = [1.0, 0.0, 0.0, 0.9166666865348816, 1.0, 0.5390625, 0.9660279154777527, 0.5296587347984314,
                0.573570966720581, 0.392578125, 1.0, 0.4609375, 0.772699773311615, 0.5072893500328064,
                0.545940101146698, 0.609375]
    np.testing.assert_allclose(obs[:16], expected, rtol=1e-6)
    w = env.unwrapped.episode.workload
    assert w.prompt_len[:4].tolist() == [276, 236, 376, 273]
    assert w.output_len[:4].tolist() == [201, 312, 110, 49]
    np.testing.assert_allclose(w.payload_bits[:2], [9676106.681435136, 7739657.876526456], rtol=1e-12)
    np.testing.assert_allclose(w.alpha[:2], [0.5735709633769763, 0.5459400972656254], rtol=1e-12)
    np.testing.assert_allclose(env.unwrapped.episode.channel[:2], [2187299739.720155, 868039907.6507664],
                               rtol=1e-12)
    _, reward, *_ = env.step(np.array([7, 3]))
    assert reward == pytest.approx(-1.0144710193443467, rel=1e-9)


# ---------------------------------------------------------------- reward and info


@pytest.mark.parametrize("objective", ["mean_latency", "makespan"])
@pytest.mark.parametrize("acceptance", ["expected", "sampled"])
def test_return_is_minus_objective(objective, acceptance):
    env = EdgeSDEnv("paper", objective=objective, acceptance=acceptance, num_tasks=37)
    actions = [np.array([n, l]) for n, l in [(4, 0), (10, 3), (23, 8), (0, 1), (15, 5)] * 10]
    total, infos, _ = _run_episode(env, 11, actions)
    completion = np.concatenate([info["completion_times"][: info["batch_size"]] for info in infos])
    assert completion.shape == (37,)
    value = completion.mean() if objective == "mean_latency" else completion.max()
    assert total == pytest.approx(-value, rel=1e-9)
    last = infos[-1]
    assert last["mean_latency"] == pytest.approx(completion.mean(), rel=1e-12)
    assert last["makespan"] == pytest.approx(completion.max(), rel=1e-12)
    tokens = sum(info["tokens"] for info in infos)
    assert tokens == env.episode.workload.output_len.sum()
    assert last["throughput"] == pytest.approx(tokens / completion.max(), rel=1e-12)
    assert all("mean_latency" not in info for info in infos[:-1])


def test_step_is_commit_batch_with_closed_form():
    """The discrete env is a thin layer: its step equals the core's commit_batch with the closed form."""
    env = EdgeSDEnv("small")
    env.reset(seed=4)
    _, reward, terminated, truncated, info = env.step(np.array([2, 3]))
    # The env's step calls this very commit_batch on the same inputs: one code path, so exact equality below.
    outcome, clock = commit_batch(env.model, env.episode, EpisodeClock(), 3, 3)
    assert reward == -outcome.cost and isinstance(reward, float)
    assert terminated is False and truncated is False
    assert env.clock == clock
    np.testing.assert_array_equal(info["completion_times"][:3], outcome.completion_times)
    np.testing.assert_allclose(info["bandwidth"][:3], closed_form_bandwidth(env.model, env.episode, 0, 3))
    assert info["bandwidth"].shape == info["completion_times"].shape == (env.scenario.max_batch,)
    assert not info["bandwidth"][3:].any() and not info["completion_times"][3:].any()
    assert info["bandwidth"].sum() == pytest.approx(env.scenario.uplink.bandwidth)
    assert info["uplink_slot"] == outcome.uplink_slot and info["wait"] == 0.0
    assert info["service_time"] == pytest.approx(outcome.finish - outcome.start)
    assert (info["batch_size"], info["speculation_length"], info["action_clipped"]) == (3, 3, False)
    assert info["accepted_drafts"] == outcome.accepted_drafts and info["tokens"] == outcome.tokens
    # Hand check of the reward: mean-latency share = sum of this batch's completion times / K.
    assert reward == pytest.approx(-info["completion_times"].sum() / 8, rel=1e-12)


def test_hybrid_and_dict_modes_use_the_agent_shares():
    hybrid, dict_env, discrete = (EdgeSDEnv("small", action_mode=m) for m in ("hybrid", "dict", "discrete"))
    for env in (hybrid, dict_env, discrete):
        env.reset(seed=9)
    bandwidth = discrete.scenario.uplink.bandwidth
    # Equal weights: the uniform split.
    _, _, _, _, info = dict_env.step(encode_action("dict", 3, 2, 4, 4))
    np.testing.assert_allclose(info["bandwidth"][:3], np.full(3, bandwidth / 3))
    # The closed-form shares encoded as hybrid logits reproduce the closed form's slot within 1 %.
    shares = closed_form_bandwidth(discrete.model, discrete.episode, 0, 3) / bandwidth
    _, _, _, _, info_h = hybrid.step(encode_action("hybrid", 3, 2, 4, 4, shares))
    _, _, _, _, info_d = discrete.step(np.array([2, 2]))
    assert info_h["batch_size"] == 3 and info_h["speculation_length"] == 2
    assert info_h["uplink_slot"] == pytest.approx(info_d["uplink_slot"], rel=1e-2)
    assert info["uplink_slot"] >= info_d["uplink_slot"] * (1 - 1e-9)  # uniform is never better


# ---------------------------------------------------------------- masks and clipping


def test_clipping_to_tasks_left_and_memory():
    env = EdgeSDEnv("paper", num_tasks=30)  # n_max = 24 but memory allows 22
    env.reset(seed=0)
    assert env.batch_limit() == env.model.memory_batch_limit == 22
    mask = env.action_masks()
    assert mask.tolist() == [True] * 22 + [False] * 2 + [True] * 9
    _, _, _, _, info = env.step(np.array([23, 2]))
    assert info["batch_size"] == 22 and info["action_clipped"]
    assert info["action_mask"].tolist() == [True] * 8 + [False] * 16 + [True] * 9
    _, _, terminated, _, info = env.step(np.array([20, 2]))
    assert info["batch_size"] == 8 and info["action_clipped"] and terminated is True
    # Nothing left to batch: only n = 1 stays valid, so that the mask always has a valid entry.
    assert info["action_mask"].tolist() == [True] + [False] * 23 + [True] * 9
    np.testing.assert_array_equal(info["action_mask"], env.action_masks())


def test_every_info_value_is_a_numpy_value():
    # TorchRL's info reader converts each entry by its dtype: Python ints, floats and bools have none.
    env = EdgeSDEnv("small")
    _, info = env.reset(seed=0)
    infos = [info]
    terminated = False
    while not terminated:
        _, _, terminated, _, info = env.step(np.array([1, 2]))
        infos.append(info)
    assert {"mean_latency", "makespan", "throughput"} <= set(infos[-1])
    for info in infos:
        for key, value in info.items():
            assert isinstance(value, np.ndarray | np.generic), (key, type(value))
    assert infos[-1]["batch_size"].dtype == np.int64 and infos[-1]["action_clipped"].dtype == bool


def test_reset_info_has_mask():
    env = EdgeSDEnv("small", num_tasks=3)
    _, info = env.reset(seed=0)
    assert info["action_mask"].tolist() == [True, True, True, False] + [True] * 5


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"scenario": "tiny"}, "unknown scenario preset"),
    ({"action_mode": "continuous"}, "action_mode"),
    ({"render_mode": "human"}, "render_mode"),
    ({"max_batch": 0}, "max_batch"),
    ({"max_speculation": -1}, "max_speculation"),
    ({"acceptance": "fluid"}, "acceptance"),
    ({"objective": "p99"}, "objective"),
    ({"clairvoyant": "yes"}, "clairvoyant"),
    ({"num_tasks": 0}, "num_tasks"),
    ({"config": {"uplink": {"bandwith": 1e6}}}, "bandwith"),  # a typo inside config= is a bad value
    ({"config": {"max_batchsize": 4}}, "max_batchsize"),
    ({"config": {"uplink": {"bandwidth": -1.0}}}, "bandwidth"),
])
def test_bad_config_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        EdgeSDEnv(**kwargs)


def test_bad_config_through_gym_make():
    with pytest.raises(ValueError, match="objective"):
        gym.make("sdedge/EdgeSD-Small-v0", objective="latency")


@pytest.mark.parametrize("make", [EdgeSDEnv, lambda **kw: gym.make("sdedge/EdgeSD-Small-v0", **kw)])
def test_unknown_keyword_argument_is_a_type_error(make):
    # Python's wording, which TorchRL's GymEnv matches before retrying gym.make without frameskip=1.
    with pytest.raises(TypeError, match=r"EdgeSDEnv\(\) got an unexpected keyword argument 'frameskip'"):
        make(frameskip=1)
    with pytest.raises(TypeError, match=r"'max_batchsize' \(and 'zz'\); allowed keyword overrides: max_batch, "):
        make(max_batchsize=4, zz=1)


@pytest.mark.parametrize(("mode", "action", "field"), [
    ("discrete", np.array([4, 0]), r"action\[0\]"),
    ("discrete", np.array([0, 5]), r"action\[1\]"),
    ("discrete", np.array([-1, 0]), r"action\[0\]"),
    ("discrete", np.array([1.5, 0.0]), r"action\[0\]"),
    ("discrete", np.array([np.nan, 0.0]), "action"),
    ("discrete", np.array([1, 2, 3]), "action"),
    ("discrete", "two", "action"),
    ("hybrid", np.array([0.0, 0.0, 0.1, 0.2, 0.3, 1.5]), r"action\[5\]"),
    ("hybrid", np.array([0.0, np.nan, 0.1, 0.2, 0.3, 0.4]), "action"),
    ("hybrid", np.array([0.0, np.inf, 0.1, 0.2, 0.3, 0.4]), "action"),
    ("hybrid", np.zeros(5), "action"),
    ("dict", {"batch_size_minus_one": 4, "speculation_length": 1, "bandwidth": np.ones(4)},
     r"batch_size_minus_one'\] = 4.0 is invalid; allowed: an integer in \[0, 3\]"),
    ("dict", {"batch_size_minus_one": -1, "speculation_length": 1, "bandwidth": np.ones(4)}, "batch_size_minus_one"),
    ("dict", {"batch_size_minus_one": 2, "speculation_length": 9, "bandwidth": np.ones(4)}, "speculation_length"),
    ("dict", {"batch_size_minus_one": 2, "speculation_length": 1, "bandwidth": np.full(4, np.nan)}, "bandwidth"),
    ("dict", {"batch_size_minus_one": 2, "speculation_length": 1, "bandwidth": np.full(4, 2.0)}, "bandwidth"),
    ("dict", {"batch_size_minus_one": 2, "speculation_length": 1}, "keys"),
    ("dict", {"batch_size": 2, "speculation_length": 1, "bandwidth": np.ones(4)}, "batch_size_minus_one"),
    ("dict", np.array([1, 1]), "mapping"),
])
def test_bad_action_raises_value_error(mode, action, field):
    env = EdgeSDEnv("small", action_mode=mode)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=field):
        env.step(action)
    assert env.clock.next_task == 0  # a rejected action changes nothing


def test_step_outside_an_episode_raises():
    env = EdgeSDEnv("small", num_tasks=2)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.array([0, 0]))
    env.reset(seed=0)
    env.step(np.array([1, 0]))
    with pytest.raises(RuntimeError, match="terminated"):
        env.step(np.array([0, 0]))


# ---------------------------------------------------------------- seeding and copies


@pytest.mark.parametrize("env_id", sdedge_gym.registration.OFFLINE_ENV_IDS)  # online: test_online_env.py
def test_same_seed_same_trajectory(env_id):
    trajectories = []
    for _ in range(2):
        env = gym.make(env_id, **_episode_ids(env_id))
        env.action_space.seed(123)
        actions = [env.action_space.sample() for _ in range(STEPS_COMPARED)]
        trajectories.append(_run_episode(env, 42, actions))
    (ret_a, infos_a, obs_a), (ret_b, infos_b, obs_b) = trajectories
    assert ret_a == ret_b
    assert len(obs_a) == len(obs_b) and all(np.array_equal(a, b) for a, b in zip(obs_a, obs_b, strict=True))
    assert all(_same(a, b) for a, b in zip(infos_a, infos_b, strict=True))
    # A different seed draws a different workload.
    env = gym.make(env_id, **_episode_ids(env_id))
    other, _ = env.reset(seed=43)
    assert not np.array_equal(other, obs_a[0])


@pytest.mark.parametrize("env_id", ["sdedge/EdgeSD-Small-Hybrid-Stochastic-v0", "sdedge/EdgeSD-Paper-Dict-v0",
                                    "sdedge/EdgeSD-v0"])
@pytest.mark.parametrize("clone", [copy.deepcopy, lambda env: pickle.loads(pickle.dumps(env))])
def test_copy_mid_episode_reproduces_the_rest(env_id, clone):
    env = gym.make(env_id, num_tasks=20)
    env.reset(seed=7)
    env.action_space.seed(0)
    actions = [env.action_space.sample() for _ in range(20)]
    env.step(actions[0])
    twin = clone(env)
    rest = []
    for target in (env, twin):
        out = []
        for action in actions[1:]:
            obs, reward, terminated, _, info = target.step(action)
            out.append((obs, reward, info))
            if terminated:
                break
        rest.append(out)
    assert len(rest[0]) == len(rest[1]) >= 1
    for (obs_a, r_a, info_a), (obs_b, r_b, info_b) in zip(*rest, strict=True):
        assert np.array_equal(obs_a, obs_b) and r_a == r_b and _same(info_a, info_b)
    # The copy's next episode draws the same workload as the original's.
    assert np.array_equal(env.reset()[0], twin.reset()[0])


# ---------------------------------------------------------------- overrides


def test_gym_make_overrides():
    env = gym.make("sdedge/EdgeSD-v0", num_tasks=12, max_batch=6, max_speculation=3, action_mode="hybrid",
                   acceptance="sampled", clairvoyant=False, objective="makespan",
                   config={"uplink": {"bandwidth": 2e6}})
    s = env.unwrapped.scenario
    assert (s.num_tasks, s.max_batch, s.max_speculation) == (12, 6, 3)
    assert (s.acceptance, s.clairvoyant, s.objective) == ("sampled", False, "makespan")
    assert s.uplink.bandwidth == 2e6 and s.name == "paper"
    assert env.action_space == gym.spaces.Box(-1, 1, (8,), np.float32)
    assert env.observation_space.shape == (4 + 6 * 6,)
    config = make_scenario("small", num_tasks=5)
    env = gym.make("sdedge/EdgeSD-Paper-v0", config=config)
    assert env.unwrapped.scenario == config


def test_stochastic_ids_are_sampled_and_not_clairvoyant():
    env = gym.make("sdedge/EdgeSD-Paper-Dict-Stochastic-v0")
    s = env.unwrapped.scenario
    assert (s.name, s.acceptance, s.clairvoyant, env.unwrapped.action_mode) == ("paper", "sampled", False, "dict")
    s = gym.make("sdedge/EdgeSD-v0").unwrapped.scenario
    assert (s.name, s.acceptance, s.clairvoyant, s.objective) == ("paper", "expected", True, "mean_latency")


# ---------------------------------------------------------------- render


def test_render_ansi_dashboard():
    env = gym.make("sdedge/EdgeSD-Small-v0", render_mode="ansi")
    env.reset(seed=0)
    text = env.render()
    assert "served" in text and "0/8" in text
    env.step(np.array([2, 1]))
    text = env.render()
    assert "3/8" in text and "n=3" in text and "l=1" in text and "mean latency" in text


def test_render_rgb_array_gantt():
    pytest.importorskip("matplotlib", reason="rgb_array rendering needs the render extra (matplotlib)")
    env = gym.make("sdedge/EdgeSD-Small-v0", render_mode="rgb_array")
    env.reset(seed=0)
    empty = env.render()
    terminated = False
    while not terminated:
        *_, terminated, _, _ = env.step(np.array([1, 2]))
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
    assert frame.shape == empty.shape
    assert not np.array_equal(frame, empty)  # the bars are drawn


def test_render_without_mode_warns_and_returns_none():
    env = EdgeSDEnv("small")
    env.reset(seed=0)
    with pytest.warns(UserWarning, match="render_mode"):
        assert env.render() is None


def test_rgb_array_without_matplotlib_names_the_extra(monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    env = EdgeSDEnv("small", render_mode="rgb_array")
    env.reset(seed=0)
    with pytest.raises(ImportError, match=r"sdedge-gym\[render\]"):
        env.render()
