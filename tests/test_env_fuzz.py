"""Random-action fuzzing over every registered id: in-space actions, valid or not, never break an episode."""

from __future__ import annotations

import itertools
import zlib

import gymnasium as gym
import numpy as np
import pytest

import sdedge_gym

STEPS_PER_ID = 200  # x 19 ids: about 3800 steps


def _extreme_action(mode: str, space, rng: np.random.Generator):
    """In-space corner cases: the largest batch, saturated logits, all-zero or one-hot band weights."""
    action = space.sample()
    if mode == "discrete":
        action[0] = space.nvec[0] - 1
    elif mode == "hybrid":
        action = rng.choice([-1.0, 1.0], size=space.shape).astype(np.float32)
    else:
        action["batch_size_minus_one"] = np.int64(space["batch_size_minus_one"].n - 1)
        weights = np.zeros(space["bandwidth"].shape, dtype=np.float32)
        if rng.random() < 0.5:
            weights[rng.integers(weights.size)] = 1.0
        action["bandwidth"] = weights
    return action


def _requested_batch(env, action) -> int:
    if env.action_mode == "discrete":
        return int(action[0]) + 1
    if env.action_mode == "dict":
        return int(action["batch_size_minus_one"]) + 1
    return int(sdedge_gym.actions.hybrid_batch_and_speculation(action, env.scenario.max_batch,
                                                               env.scenario.max_speculation)[0])


@pytest.mark.parametrize("env_id", sdedge_gym.registration.OFFLINE_ENV_IDS)  # online: test_online_env.py
def test_random_actions_keep_every_invariant(env_id):
    wrapped = gym.make(env_id, **({"num_tasks": 60} if "Large" in env_id else {}))
    env = wrapped.unwrapped
    rng = np.random.default_rng(zlib.crc32(env_id.encode()))  # stable across processes
    wrapped.action_space.seed(int(rng.integers(2**31)))
    steps, episodes, seed = 0, 0, 0
    while steps < STEPS_PER_ID:
        obs, info = wrapped.reset(seed=seed)
        seed += 1
        k = env.episode.num_tasks
        total, starts, completions = 0.0, [], []
        terminated = False
        while not terminated:
            if rng.random() < 0.2:
                action = _extreme_action(env.action_mode, wrapped.action_space, rng)
            else:
                action = wrapped.action_space.sample()
            limit = env.batch_limit()
            first = env.clock.next_task
            obs, reward, terminated, truncated, info = wrapped.step(action)
            steps += 1
            assert wrapped.observation_space.contains(obs) and np.all(np.isfinite(obs))
            assert isinstance(reward, float) and np.isfinite(reward) and reward <= 0.0
            assert truncated is False
            n = info["batch_size"]
            assert n == min(_requested_batch(env, action), limit)
            assert info["action_clipped"] == (_requested_batch(env, action) > limit)
            assert env.outcomes[-1].first_task == first and env.clock.next_task == first + n
            assert info["completion_times"].shape == info["bandwidth"].shape == (env.scenario.max_batch,)
            assert np.all(np.isfinite(info["completion_times"])) and not info["completion_times"][n:].any()
            assert info["bandwidth"].sum() == pytest.approx(env.scenario.uplink.bandwidth, rel=1e-9)
            assert info["uplink_slot"] > 0.0 and info["wait"] >= 0.0 and info["service_time"] > 0.0
            total += reward
            starts.append(env.outcomes[-1].start)
            completions.append(info["completion_times"][:n])
        episodes += 1
        # Every task served exactly once, in queue order.
        served = np.concatenate([np.arange(o.first_task, o.first_task + o.batch_size) for o in env.outcomes])
        assert served.tolist() == list(range(k))
        # Batch starts are non-decreasing, and a batch's tasks all complete before the next batch's start.
        assert np.all(np.diff(starts) >= 0.0)
        for earlier, later in itertools.pairwise(completions):
            assert earlier.max() <= later.min()
        every = np.concatenate(completions)
        objective = every.mean() if env.scenario.objective == "mean_latency" else every.max()
        assert total == pytest.approx(-objective, rel=1e-9)
        assert info["mean_latency"] == pytest.approx(every.mean(), rel=1e-12)
        assert info["makespan"] == pytest.approx(every.max(), rel=1e-12)
        assert np.isfinite(info["throughput"]) and info["throughput"] > 0.0
    assert episodes >= 2
