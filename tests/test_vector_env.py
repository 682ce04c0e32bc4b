"""The native vector env against the single env, step for step, in every action mode and autoreset mode.

The contract (vector_env's docstring): sub-env i's first episode is the single env's seeded seed + i, so
until its first autoreset it is compared with Gymnasium's own SyncVectorEnv over the single env; later
episodes come from the vector env's batched autoreset stream, so each is replayed on a single env
(``reset(options={"episode": ...})``) with the same actions. Both run the same compiled kernel on the same
inputs; the comparison allows 1e-9 relative (the hybrid/dict share normalisation sums rows of a 2-D array
in the vector env and a 1-D array in the single env, which numpy may add in a different order).
Observations are float32 (1e-6). Both report the per-task info arrays (``bandwidth``,
``completion_times``) zero-padded to n_max.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv

import sdedge_gym  # noqa: F401 (registers the ids)
from sdedge_gym.episode import EpisodeClock, EpisodeClocks
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


def _run_both(env_id: str, mode: AutoresetMode, num_envs: int, steps: int, seed: int, *,
              through_autoresets: bool = False, sample: Callable[[Any], Any] | None = None, **kwargs: Any) -> int:
    """Step the native vector env and SyncVectorEnv with the same actions (``sample(vector env)``, by default
    the action space's samples) until the first episode ends, or for ``steps`` with ``through_autoresets``
    (where the native env's later episodes are the single env's: the online one's); returns the episodes ended."""
    fast = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point",
                        autoreset_mode=mode, **kwargs)
    reference = _reference(env_id, num_envs, mode, **kwargs)
    assert isinstance(fast.unwrapped, EdgeSDVectorEnv)
    assert fast.action_space == reference.action_space
    assert fast.observation_space == reference.observation_space
    obs_f, info_f = fast.reset(seed=seed)
    obs_r, info_r = reference.reset(seed=seed)
    # The task features come from numpy over the stacked envs (log2 in the rate) and the single env's own
    # table; float32 observations: an ulp of float64 can flip one float32 rounding (6e-8 relative), as in steps.
    np.testing.assert_allclose(obs_f, obs_r, rtol=1e-6, atol=1e-7)
    _assert_infos_match(info_f, info_r, "reset")
    fast.action_space.seed(seed)
    episodes = 0
    for t in range(steps):
        # any in-space action: oversized batches get clipped
        actions = fast.action_space.sample() if sample is None else sample(fast.unwrapped)
        out_f = fast.step(actions)
        out_r = reference.step(actions)
        where = f"{env_id} {mode.value} step {t}"
        if out_r[2].any() and not through_autoresets:  # next: the autoreset stream's episodes (the replay test)
            np.testing.assert_allclose(out_f[1], out_r[1], rtol=1e-9, atol=1e-12, err_msg=where)
            np.testing.assert_array_equal(out_f[2], out_r[2], err_msg=where)
            episodes += int(out_r[2].sum())
            break
        np.testing.assert_allclose(out_f[0], out_r[0], rtol=1e-6, atol=1e-7, err_msg=where)
        np.testing.assert_allclose(out_f[1], out_r[1], rtol=1e-9, atol=1e-12, err_msg=where)
        np.testing.assert_array_equal(out_f[2], out_r[2], err_msg=where)
        np.testing.assert_array_equal(out_f[3], out_r[3], err_msg=where)
        episodes += int(out_r[2].sum())
        _assert_infos_match(out_f[4], out_r[4], where)
        np.testing.assert_array_equal(fast.unwrapped.action_masks(),
                                      np.stack([e.unwrapped.action_masks() for e in reference.envs]))
        for i, single in enumerate(reference.envs):  # one episode state: the batched clock's row is the clock
            got, want = fast.unwrapped.clocks.row(i), single.unwrapped.clock
            assert (got.next_task, got.batches) == (want.next_task, want.batches), where
            np.testing.assert_allclose([got.uplink_end, got.inference_end, got.now],
                                       [want.uplink_end, want.inference_end, want.now], rtol=1e-9, err_msg=where)
    fast.close()
    reference.close()
    return episodes


def _replay_each_sub_env(env_id: str, mode: AutoresetMode, num_envs: int, steps: int, seed: int,
                         **kwargs: Any) -> int:
    """Run the vector env, then replay every episode of every sub-env on a single env with the same actions."""
    vec = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", autoreset_mode=mode,
                       **kwargs)
    obs, _ = vec.reset(seed=seed)
    vec.action_space.seed(seed)
    # per sub-env: a list of episodes, each (Episode, first observation, [(action, obs, reward, info)])
    runs: list[list[list[Any]]] = [[[vec.unwrapped.episodes[i], obs[i], []]] for i in range(num_envs)]
    pending = np.zeros(num_envs, dtype=bool)  # NEXT_STEP: this step resets the env
    episodes = 0
    for _ in range(steps):
        actions = vec.action_space.sample()
        obs, reward, terminated, _, info = vec.step(actions)
        current = vec.unwrapped.episodes
        for i in range(num_envs):
            action = {k: v[i] for k, v in actions.items()} if isinstance(actions, dict) else actions[i]
            if mode == AutoresetMode.NEXT_STEP and pending[i]:
                runs[i].append([current[i], obs[i], []])  # the step only reset the env
                continue
            final_obs = info["final_obs"][i] if mode == AutoresetMode.SAME_STEP and terminated[i] else obs[i]
            source = info["final_info"] if mode == AutoresetMode.SAME_STEP and terminated[i] else info
            step_info = {k: v[i] for k, v in source.items()
                         if not k.startswith("_") and k not in ("final_obs", "final_info") and source["_" + k][i]}
            runs[i][-1][2].append((action, final_obs, reward[i], step_info))
            if mode == AutoresetMode.SAME_STEP and terminated[i]:
                runs[i].append([current[i], obs[i], []])
        pending = terminated.copy()
        episodes += int(terminated.sum())
    single = gym.make(env_id, **kwargs)
    for i in range(num_envs):
        for e, (episode, first_obs, steps_taken) in enumerate(runs[i]):
            got, _ = single.reset(options={"episode": episode})
            where = f"{env_id} {mode.value} env {i} episode {e}"
            np.testing.assert_allclose(got, first_obs, rtol=1e-6, atol=1e-7, err_msg=where)
            for t, (action, want_obs, want_reward, want_info) in enumerate(steps_taken):
                got, reward, _, _, info = single.step(action)
                np.testing.assert_allclose(got, want_obs, rtol=1e-6, atol=1e-7, err_msg=f"{where} step {t}")
                np.testing.assert_allclose(reward, want_reward, rtol=1e-9, atol=1e-12, err_msg=f"{where} step {t}")
                for key, value in want_info.items():
                    np.testing.assert_allclose(np.asarray(info[key], dtype=float), np.asarray(value, dtype=float),
                                               rtol=1e-9, atol=1e-12, err_msg=f"{where} step {t} {key}")
    vec.close()
    return episodes


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP], ids=["next", "same"])
@pytest.mark.parametrize("env_id", [
    "sdedge/EdgeSD-Small-v0", "sdedge/EdgeSD-Small-Hybrid-v0", "sdedge/EdgeSD-Small-Dict-v0",
    "sdedge/EdgeSD-Small-Stochastic-v0", "sdedge/EdgeSD-Small-Hybrid-Stochastic-v0",
    "sdedge/EdgeSD-Small-Dict-Stochastic-v0",
])
def test_first_episodes_equal_the_single_env_seeded_per_sub_env(env_id: str, mode: AutoresetMode) -> None:
    assert _run_both(env_id, mode, num_envs=4, steps=40, seed=3) >= 1


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP], ids=["next", "same"])
@pytest.mark.parametrize("env_id", [
    "sdedge/EdgeSD-Small-v0", "sdedge/EdgeSD-Small-Hybrid-v0", "sdedge/EdgeSD-Small-Dict-v0",
    "sdedge/EdgeSD-Small-Stochastic-v0", "sdedge/EdgeSD-Small-Dict-Stochastic-v0",
])
def test_every_episode_replays_on_the_single_env(env_id: str, mode: AutoresetMode) -> None:
    episodes = _replay_each_sub_env(env_id, mode, num_envs=4, steps=40, seed=3)
    assert episodes >= 8  # autoreset was exercised many times


def test_autoreset_stream_is_deterministic_given_the_seed() -> None:
    def payloads(seed: int) -> list[np.ndarray]:
        env = EdgeSDVectorEnv(num_envs=6, scenario="small")
        env.reset(seed=seed)
        out = []
        for _ in range(12):
            env.step(np.tile([3, 1], (6, 1)))
            out.extend(e.workload.payload_bits for e in env.episodes)
        return out

    first, again, other = payloads(4), payloads(4), payloads(5)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))


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
    _replay_each_sub_env(env_id, mode, num_envs=3, steps=12, seed=7, **kwargs)


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
        # Exact: the same draws through the same elementwise derivation (see test_env_speed_paths.py).
        np.testing.assert_array_equal(env.episodes[i].workload.payload_bits,
                                      single.unwrapped.episode.workload.payload_bits)
    before = [e.workload.payload_bits.copy() for e in env.episodes]
    env.step(np.array([[1, 1], [1, 1], [1, 1]]))
    _, info = env.reset(options={"reset_mask": np.array([False, True, False])})
    np.testing.assert_array_equal(info["_action_mask"], [False, True, False])
    assert env.next_task.tolist() == [2, 0, 2]
    np.testing.assert_array_equal(env.episodes[0].workload.payload_bits, before[0])
    assert not np.array_equal(env.episodes[1].workload.payload_bits, before[1])  # continued its own stream


def test_batched_clocks_have_the_clock_fields() -> None:
    """EpisodeClocks is EpisodeClock over envs: the same fields, a zero row is the fresh clock."""
    assert [f.name for f in dataclasses.fields(EpisodeClocks)] == [f.name for f in dataclasses.fields(EpisodeClock)]
    clocks = EpisodeClocks.zeros(3)
    clocks.next_task[1], clocks.now[1] = 4, 2.5
    assert clocks.row(1) == EpisodeClock(next_task=4, now=2.5)
    clocks.restart(np.array([1]))
    assert clocks.row(1) == EpisodeClock()
