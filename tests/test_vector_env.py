"""The native vector env against the single env, step for step, in every action mode and autoreset mode.

The reference is Gymnasium's own SyncVectorEnv over the single env (sub-env i seeded with seed + i), unwrapped
and unadapted: both report the per-task info arrays (``bandwidth``, ``completion_times``) zero-padded to n_max.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv

import sdedge_gym  # noqa: F401 (registers the ids)
from sdedge_gym.vector_env import EdgeSDVectorEnv


def _reference(env_id: str, num_envs: int, mode: AutoresetMode, **kwargs: Any) -> SyncVectorEnv:
    return SyncVectorEnv([lambda: gym.make(env_id, **kwargs) for _ in range(num_envs)],
                         autoreset_mode=mode)


def _assert_infos_match(fast: dict[str, Any], reference: dict[str, Any], where: str) -> None:
    assert sorted(fast) == sorted(reference), where
    for key, want in reference.items():
        got = fast[key]
        if isinstance(want, dict):
            _assert_infos_match(got, want, f"{where}/{key}")
        elif key == "final_obs":
            for a, b in zip(got, want, strict=True):
                assert (a is None) == (b is None), where
                if b is not None:
                    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7, err_msg=f"{where}/{key}")
        elif key.startswith("_") or want.dtype == bool or np.issubdtype(want.dtype, np.integer):
            np.testing.assert_array_equal(got, want, err_msg=f"{where}/{key}")
        else:
            assert got.dtype == want.dtype, f"{where}/{key}"
            np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12, err_msg=f"{where}/{key}")


def _run_both(env_id: str, mode: AutoresetMode, num_envs: int, steps: int, seed: int, **kwargs: Any) -> int:
    fast = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point",
                        autoreset_mode=mode, **kwargs)
    reference = _reference(env_id, num_envs, mode, **kwargs)
    assert isinstance(fast.unwrapped, EdgeSDVectorEnv)
    assert fast.action_space == reference.action_space
    assert fast.observation_space == reference.observation_space
    obs_f, info_f = fast.reset(seed=seed)
    obs_r, info_r = reference.reset(seed=seed)
    np.testing.assert_array_equal(obs_f, obs_r)
    _assert_infos_match(info_f, info_r, "reset")
    fast.action_space.seed(seed)
    episodes = 0
    for t in range(steps):
        actions = fast.action_space.sample()  # any in-space action: oversized batches get clipped
        out_f = fast.step(actions)
        out_r = reference.step(actions)
        where = f"{env_id} {mode.value} step {t}"
        np.testing.assert_allclose(out_f[0], out_r[0], rtol=1e-6, atol=1e-7, err_msg=where)
        np.testing.assert_allclose(out_f[1], out_r[1], rtol=1e-9, atol=1e-12, err_msg=where)
        np.testing.assert_array_equal(out_f[2], out_r[2], err_msg=where)
        np.testing.assert_array_equal(out_f[3], out_r[3], err_msg=where)
        _assert_infos_match(out_f[4], out_r[4], where)
        np.testing.assert_array_equal(fast.unwrapped.action_masks(),
                                      np.stack([e.unwrapped.action_masks() for e in reference.envs]))
        episodes += int(out_r[2].sum())
    fast.close()
    reference.close()
    return episodes


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP], ids=["next", "same"])
@pytest.mark.parametrize("env_id", [
    "sdedge/EdgeSD-Small-v0", "sdedge/EdgeSD-Small-Hybrid-v0", "sdedge/EdgeSD-Small-Dict-v0",
    "sdedge/EdgeSD-Small-Stochastic-v0", "sdedge/EdgeSD-Small-Hybrid-Stochastic-v0",
    "sdedge/EdgeSD-Small-Dict-Stochastic-v0",
])
def test_step_for_step_equal_to_the_single_env(env_id: str, mode: AutoresetMode) -> None:
    episodes = _run_both(env_id, mode, num_envs=4, steps=40, seed=3)
    assert episodes >= 8  # autoreset was exercised many times


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP], ids=["next", "same"])
@pytest.mark.parametrize(("env_id", "kwargs"), [
    ("sdedge/EdgeSD-Paper-v0", {"num_tasks": 30}),
    ("sdedge/EdgeSD-Uplink-Hybrid-v0", {"num_tasks": 20}),
    ("sdedge/EdgeSD-Small-v0", {"objective": "makespan", "pipelining": False}),
    ("sdedge/EdgeSD-Small-Dict-v0", {"queue_order": "shortest_payload", "rate_model": None}),
])
def test_step_for_step_equal_on_other_scenarios(env_id: str, kwargs: dict[str, Any], mode: AutoresetMode) -> None:
    if kwargs.pop("rate_model", "shannon") is None:
        kwargs["config"] = {"uplink": {"rate_model": "fixed_snr"}}
    _run_both(env_id, mode, num_envs=3, steps=12, seed=7, **kwargs)


def test_make_vec_builds_the_native_env_with_declared_autoreset() -> None:
    env = gym.make_vec("sdedge/EdgeSD-Small-v0", num_envs=5)
    assert isinstance(env.unwrapped, EdgeSDVectorEnv)
    assert env.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    same = gym.make_vec("sdedge/EdgeSD-Small-v0", num_envs=2, autoreset_mode="SameStep")
    assert same.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    single = gym.make("sdedge/EdgeSD-Small-v0")
    assert env.unwrapped.single_observation_space == single.observation_space
    assert env.unwrapped.single_action_space == single.action_space
    obs, info = env.reset(seed=0)
    assert obs.shape == (5, *single.observation_space.shape) and obs.dtype == np.float32
    assert env.observation_space.contains(obs)
    masks = env.unwrapped.action_masks()
    assert masks.shape == (5, 4 + 5) and masks.all()  # small: n_max = 4, l_max = 4, all valid at the start
    np.testing.assert_array_equal(info["action_mask"], masks)


def test_masks_follow_each_envs_queue() -> None:
    env = EdgeSDVectorEnv(num_envs=2, scenario="small")
    env.reset(seed=1)
    env.step(np.array([[3, 0], [1, 2]]))  # commit 4 and 2 of the 8 tasks
    env.step(np.array([[2, 0], [0, 2]]))  # 7 and 3 committed: 1 and 4 tasks left
    masks = env.action_masks()
    np.testing.assert_array_equal(masks[:, :4], [[True, False, False, False], [True, True, True, True]])
    assert masks[:, 4:].all()
    _, _, terminated, _, info = env.step(np.array([[3, 1], [0, 1]]))  # env 0: n = 4 clipped to the 1 left
    np.testing.assert_array_equal(terminated, [True, False])
    np.testing.assert_array_equal(info["action_clipped"], [True, False])
    # Waiting for its NEXT_STEP reset: the terminal mask, where only n = 1 stays valid.
    assert env.action_masks()[0, :4].tolist() == [True, False, False, False]
    _, reward, terminated, _, info = env.step(np.array([[0, 0], [0, 0]]))
    assert reward[0] == 0.0 and not terminated[0] and env.action_masks()[0].all()
    assert info["_batch_size"].tolist() == [False, True]


@pytest.mark.parametrize(("mode", "action", "match"), [
    ("discrete", np.array([[0, 1], [4, 1]]), r"actions\[:, 0\] \(batch_size - 1\)\[1\] = 4.0 is invalid"),
    ("discrete", np.array([[0, 1], [0, np.nan]]), r"actions \(shape \(2, 2\) with NaN or inf\) is invalid"),
    ("discrete", np.array([0, 1]), r"actions \(shape \(2,\)\) is invalid; allowed: shape \(2, 2\)"),
    ("hybrid", np.full((2, 6), 1.5), r"actions\[0, 0\] = 1.5 is invalid for action_mode 'hybrid'"),
    ("dict", {"batch_size": np.array([1, 1])}, r"invalid for action_mode 'dict'"),
    ("dict", {"batch_size_minus_one": np.array([0, 4]), "speculation_length": np.array([0, 0]),
              "bandwidth": np.ones((2, 4))}, r"actions\['batch_size_minus_one'\]\[1\] = 4.0 is invalid"),
])
def test_out_of_space_actions_raise(mode: str, action: Any, match: str) -> None:
    env = EdgeSDVectorEnv(num_envs=2, scenario="small", action_mode=mode)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=match):
        env.step(action)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"num_envs": 0}, r"num_envs = 0 is invalid; allowed: an integer >= 1"),
    ({"autoreset_mode": "Sometimes"}, r"autoreset_mode is invalid; allowed: 'NextStep' \| 'SameStep'"),
    ({"render_mode": "human"}, r"render_mode = 'human' is invalid for the vector env"),
    ({"action_mode": "continuous"}, r"action_mode = 'continuous' is invalid"),
    ({"max_batch": 0}, r"ScenarioConfig.max_batch = 0 is invalid"),
])
def test_bad_arguments_raise_naming_them(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        EdgeSDVectorEnv(**{"scenario": "small", **kwargs})


def test_unknown_keyword_argument_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"EdgeSDVectorEnv\(\) got an unexpected keyword argument 'frameskip'"):
        EdgeSDVectorEnv(num_envs=2, scenario="small", frameskip=1)


def test_max_episode_steps_from_make_vec_is_accepted_when_it_cannot_bind() -> None:
    # K = 8 on the small preset: a limit of 8 steps or more never truncates an episode.
    venv = gym.make_vec("sdedge/EdgeSD-Small-v0", num_envs=2, vectorization_mode="vector_entry_point",
                        max_episode_steps=8)
    assert isinstance(venv, EdgeSDVectorEnv) and venv.max_episode_steps == 8
    venv.reset(seed=0)
    truncated_any = False
    for _ in range(10):
        _, _, _, truncated, _ = venv.step(np.zeros((2, 2), dtype=np.int64))
        truncated_any |= bool(truncated.any())
    assert not truncated_any
    with pytest.raises(ValueError, match=r"max_episode_steps = 5 is invalid for the native vector env; allowed: None "
                                         r"or an integer >= num_tasks \(8\).*vectorization_mode='sync'"):
        gym.make_vec("sdedge/EdgeSD-Small-v0", num_envs=2, vectorization_mode="vector_entry_point",
                     max_episode_steps=5)


def test_seeds_and_reset_mask_reproduce_single_env_episodes() -> None:
    env = EdgeSDVectorEnv(num_envs=3, scenario="small")
    env.reset(seed=[10, 20, 30])
    for i, seed in enumerate((10, 20, 30)):
        single = gym.make("sdedge/EdgeSD-Small-v0")
        single.reset(seed=seed)
        np.testing.assert_array_equal(env.episodes[i].workload.payload_bits,
                                      single.unwrapped.episode.workload.payload_bits)
    before = [e.workload.payload_bits.copy() for e in env.episodes]
    env.step(np.array([[1, 1], [1, 1], [1, 1]]))
    _, info = env.reset(options={"reset_mask": np.array([False, True, False])})
    np.testing.assert_array_equal(info["_action_mask"], [False, True, False])
    assert env.next_task.tolist() == [2, 0, 2]
    np.testing.assert_array_equal(env.episodes[0].workload.payload_bits, before[0])
    assert not np.array_equal(env.episodes[1].workload.payload_bits, before[1])  # continued its own stream
