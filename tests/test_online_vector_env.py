"""The online native vector env against the single online env, step for step, in every online id and autoreset mode.

The contract (online_vector_env's docstring): sub-env i's episodes are those of the single env seeded
seed + i and reset as often, so the whole run (autoresets included) equals Gymnasium's SyncVectorEnv over
the single env (observations 1e-6, rewards and infos 1e-9 relative, as tests/test_vector_env.py), and every
episode replays on a single env with ``reset(options={"episode": ...})`` (its arrival times in ``release``).
The runs use short queues (K = 12) so that many episodes, waits and autoresets fit in a few steps.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode
from test_vector_env import _replay_each_sub_env, _run_both

import sdedge_gym
from sdedge_gym.online_env import ONLINE_INFO_KEYS, ONLINE_KPI_KEYS, EdgeSDOnlineEnv
from sdedge_gym.online_vector_env import EdgeSDOnlineVectorEnv

ONLINE = "sdedge/EdgeSD-Online-v0"
MODES = [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP]
SHORT = {"num_tasks": 12}


def _masked_random(seed: int):
    """A policy that samples uniformly among the valid batch sizes and the wait (when valid), so it waits
    often: ``sample(vector env)`` -> discrete actions ``[n - 1 | n_max, l]``."""
    rng = np.random.default_rng(seed)

    def sample(env: EdgeSDOnlineVectorEnv) -> np.ndarray:
        masks = env.action_masks()
        choices = masks[:, :env.n_max + 1]  # n = 1..n_max, then the wait
        picks = (rng.random((env.num_envs, 1)) * choices.sum(axis=1, keepdims=True)).astype(np.int64)
        first = (np.cumsum(choices, axis=1) > picks).argmax(axis=1)
        return np.stack([first, rng.integers(0, env.l_max + 1, env.num_envs)], axis=1)

    return sample


@pytest.mark.parametrize("mode", MODES, ids=["next", "same"])
@pytest.mark.parametrize("env_id", sdedge_gym.ONLINE_ENV_IDS)
def test_every_step_equals_sync_vector_env(env_id: str, mode: AutoresetMode) -> None:
    episodes = _run_both(env_id, mode, num_envs=3, steps=80, seed=3, through_autoresets=True, **SHORT)
    assert episodes >= 6  # autoresets exercised, later episodes included


@pytest.mark.parametrize("mode", MODES, ids=["next", "same"])
@pytest.mark.parametrize("env_id", [ONLINE, "sdedge/EdgeSD-Online-Stochastic-v0"])
def test_a_policy_that_waits_often_equals_sync_vector_env(env_id: str, mode: AutoresetMode) -> None:
    assert _run_both(env_id, mode, num_envs=3, steps=80, seed=5, through_autoresets=True,
                     sample=_masked_random(5), **SHORT) >= 3


def test_the_paper_queue_equals_sync_vector_env() -> None:
    # The registered K = 100: long episodes with many waits, no autoreset needed
    _run_both(ONLINE, AutoresetMode.NEXT_STEP, num_envs=2, steps=60, seed=0, through_autoresets=True,
              sample=_masked_random(0))


@pytest.mark.parametrize("mode", MODES, ids=["next", "same"])
@pytest.mark.parametrize("env_id", sdedge_gym.ONLINE_ENV_IDS)
def test_every_episode_replays_on_the_single_env(env_id: str, mode: AutoresetMode) -> None:
    assert _replay_each_sub_env(env_id, mode, num_envs=3, steps=60, seed=3, **SHORT) >= 6


def test_single_env_replays_an_episode_with_its_arrival_times() -> None:
    env = EdgeSDOnlineEnv(scenario="small", arrivals={"process": "poisson", "arrival_rate": 0.757})
    env.reset(seed=4)
    episode = env.episode
    actions, first = [], []
    while not first or not first[-1][2]:  # dispatch two, waiting every third step (while a wait is valid)
        actions.append(env.actions.encode(2, 1, wait=len(actions) % 3 == 0))
        first.append(env.step(actions[-1]))
    env.reset(options={"episode": episode})
    np.testing.assert_array_equal(env.arrival, episode.release)
    for action, (obs, reward, terminated, _, info) in zip(actions, first, strict=True):
        obs2, reward2, terminated2, _, info2 = env.step(action)
        np.testing.assert_array_equal(obs, obs2)
        assert (reward, terminated, info["waited"]) == (reward2, terminated2, info2["waited"])
    # Tasks without arrival times (a workload, an offline episode): the arrivals are drawn
    env.reset(seed=9, options={"workload": episode.workload})
    assert env.arrival.shape == (8,) and not np.array_equal(env.arrival, episode.release)
    with pytest.raises(ValueError, match=r"options\['episode'\].release is invalid; allowed: 8 finite"):
        env.reset(options={"episode": dataclasses.replace(episode, release=episode.release[::-1].copy())})


def test_masks_waits_and_online_infos() -> None:
    env = EdgeSDOnlineVectorEnv(num_envs=2, scenario="small", arrivals={"process": "poisson", "arrival_rate": 0.757})
    _, info = env.reset(seed=2)
    n_max, k = env.n_max, env.num_tasks
    np.testing.assert_array_equal(env.now, [e.release[0] for e in env.episodes])
    masks = env.action_masks()
    assert masks.shape == (2, n_max + 1 + env.l_max + 1) and masks[:, n_max + 1:].all()
    np.testing.assert_array_equal(info["action_mask"], masks)
    arrived = env.arrived.copy()
    np.testing.assert_array_equal(masks[:, n_max], arrived < k)  # the wait column
    before = env.now.copy()
    # env 0 waits, env 1 dispatches one request
    _, reward, terminated, _, info = env.step(np.array([[n_max, 2], [0, 1]]))
    assert reward[0] == 0.0 and reward[1] < 0.0 and not terminated.any()
    np.testing.assert_array_equal(info["waited"], [True, False])
    np.testing.assert_array_equal(info["batch_size"], [0, 1])
    np.testing.assert_array_equal(info["speculation_length"], [2, 1])
    np.testing.assert_array_equal(info["dispatch_time"], before)
    assert env.now[0] == env.episodes[0].release[arrived[0]]  # the wait moved env 0 to the next arrival
    np.testing.assert_array_equal(info["time"], env.now)
    np.testing.assert_array_equal(info["queue_length"], env.arrived - env.next_task)
    assert info["latencies"][1, 0] == info["completion_times"][1, 0] - env.episodes[1].release[0]
    # Wait until everything has arrived: then the wait is invalid and a wait action dispatches the batch limit
    while env.can_wait()[0]:
        env.step(np.array([[n_max, 0], [n_max, 0]]))
    assert not env.action_masks()[0, n_max]
    limit = env.batch_limit()[0]
    _, _, _, _, info = env.step(np.array([[n_max, 0], [0, 0]]))
    assert not info["waited"][0] and info["action_clipped"][0] and info["batch_size"][0] == limit


def test_episode_end_reports_the_single_envs_kpis() -> None:
    assert tuple(EdgeSDOnlineEnv(scenario="small").episode_kpis()) == ONLINE_KPI_KEYS
    env = gym.make_vec(ONLINE, num_envs=2, num_tasks=6)
    env.reset(seed=0)
    for _ in range(12):
        _, _, terminated, _, info = env.step(np.tile([env.unwrapped.n_max - 1, 3], (2, 1)))
        if terminated.any():
            break
    assert set(ONLINE_KPI_KEYS) <= set(info) and set(ONLINE_INFO_KEYS) <= set(info)
    np.testing.assert_array_equal(info["_p99_latency"], terminated)


def test_make_vec_builds_the_native_env_for_every_online_id() -> None:
    for env_id in sdedge_gym.ONLINE_ENV_IDS:
        env = gym.make_vec(env_id, num_envs=3, **SHORT)
        single = gym.make(env_id, **SHORT)
        assert isinstance(env.unwrapped, EdgeSDOnlineVectorEnv), env_id
        assert env.unwrapped.single_action_space == single.action_space
        assert env.unwrapped.single_observation_space == single.observation_space
        obs, _ = env.reset(seed=0)
        assert env.observation_space.contains(obs)
        assert env.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    same = gym.make_vec(ONLINE, num_envs=2, autoreset_mode="SameStep")
    assert same.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP


def test_max_episode_steps_is_accepted_when_it_cannot_bind() -> None:
    # K = 12: at most 12 dispatches and 11 waits
    venv = gym.make_vec(ONLINE, num_envs=2, vectorization_mode="vector_entry_point", max_episode_steps=23, **SHORT)
    assert venv.max_episode_steps == 23
    with pytest.raises(ValueError, match=r"max_episode_steps = 22 is invalid for the native vector env; allowed: "
                                         r"None or an integer >= 2 num_tasks - 1 \(23\)"):
        gym.make_vec(ONLINE, num_envs=2, vectorization_mode="vector_entry_point", max_episode_steps=22, **SHORT)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"num_envs": 0}, ValueError, r"num_envs = 0 is invalid; allowed: an integer >= 1"),
    ({"autoreset_mode": "Sometimes"}, ValueError, r"autoreset_mode is invalid; allowed: 'NextStep' \| 'SameStep'"),
    ({"render_mode": "ansi"}, ValueError, r"render_mode = 'ansi' is invalid for the vector env"),
    ({"action_mode": "continuous"}, ValueError, r"action_mode = 'continuous' is invalid"),
    ({"objective": "makespan"}, ValueError, r"objective = 'makespan' is invalid for the online env"),
    ({"arrivals": {"process": "sometimes"}}, ValueError, r"process"),
    ({"frameskip": 1}, TypeError, r"EdgeSDOnlineVectorEnv\(\) got an unexpected keyword argument 'frameskip'"),
    ({"reward": "reference"}, TypeError, r"unexpected keyword argument 'reward'"),
])
def test_bad_arguments_raise_naming_them(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        EdgeSDOnlineVectorEnv(**{"scenario": "small", **kwargs})


@pytest.mark.parametrize(("mode", "action", "match"), [
    ("discrete", np.array([[0, 1], [5, 1]]),
     r"actions\[:, 0\] \(batch_size - 1, or 4 to wait\)\[1\] = 5.0 is invalid"),
    ("hybrid", np.array([[0.0] * 6 + [1.5]] * 2),
     r"actions\[0, 6\] \(wait\) = 1.5 is invalid for action_mode 'hybrid'"),
    ("dict", {"batch_size_minus_one": np.array([0, 0]), "speculation_length": np.array([0, 0]),
              "bandwidth": np.ones((2, 4))}, r"exactly the keys \['bandwidth', 'batch_size_minus_one', "
                                             r"'speculation_length', 'wait'\]"),
    ("dict", {"batch_size_minus_one": np.array([0, 0]), "speculation_length": np.array([0, 0]),
              "bandwidth": np.ones((2, 4)), "wait": np.array([0, 2])}, r"actions\['wait'\]\[1\] = 2.0 is invalid"),
])
def test_out_of_space_actions_raise(mode: str, action: Any, match: str) -> None:
    env = EdgeSDOnlineVectorEnv(num_envs=2, scenario="small", action_mode=mode)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=match):
        env.step(action)


def test_maskable_ppo_runs_on_the_sb3_adapter() -> None:
    sb3_contrib = pytest.importorskip("sb3_contrib")
    import torch

    from sdedge_agents.sb3_vec_env import make_sb3_vec_env

    torch.set_num_threads(1)
    venv = make_sb3_vec_env(ONLINE, num_envs=4, seed=0, **SHORT)
    assert isinstance(venv.venv, EdgeSDOnlineVectorEnv)
    model = sb3_contrib.MaskablePPO("MlpPolicy", venv, n_steps=64, batch_size=64, n_epochs=1, seed=0, device="cpu")
    model.learn(256)
    assert model.num_timesteps >= 256
