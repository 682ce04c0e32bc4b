"""sdedge_gym.wrappers: the flattened discrete action and its mask."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import sdedge_gym  # noqa: F401  (registers the ids)
from sdedge_gym.wrappers import FlattenBatchSpeculation

SMALL = "sdedge/EdgeSD-Small-v0"


def test_flatten_wrapper_round_trips_every_action():
    env = FlattenBatchSpeculation(gym.make(SMALL))
    inner = env.env.action_space
    n_max, choices = (int(v) for v in inner.nvec)
    assert env.action_space == gym.spaces.Discrete(n_max * choices)
    seen = set()
    for flat in range(env.action_space.n):
        pair = env.action(flat)
        assert inner.contains(pair)
        assert env.reverse_action(pair) == flat
        seen.add(tuple(int(v) for v in pair))
    assert len(seen) == n_max * choices  # a bijection
    env.reset(seed=0)
    _, _, _, _, info = env.step(env.reverse_action(np.array([1, 3])))
    assert (info["batch_size"], info["speculation_length"]) == (2, 3)
    with pytest.raises(ValueError, match="allowed: an integer in"):
        env.action(n_max * choices)
    with pytest.raises(ValueError, match="needs action_mode 'discrete'"):
        FlattenBatchSpeculation(gym.make("sdedge/EdgeSD-Small-Hybrid-v0"))


@pytest.mark.parametrize("env_id", [SMALL, "sdedge/EdgeSD-Online-v0"])
def test_the_flat_mask_is_the_outer_product_and_masked_actions_are_never_clipped(env_id):
    env = FlattenBatchSpeculation(gym.make(env_id, num_tasks=6))
    _, info = env.reset(seed=3)
    rng = np.random.default_rng(0)
    terminated = False
    while not terminated:
        inner = env.unwrapped.action_masks()
        flat = env.action_masks()
        assert flat.shape == (env.action_space.n,) and flat.dtype == bool
        np.testing.assert_array_equal(info["action_mask"], flat)
        for a in range(env.action_space.n):  # valid iff both halves are valid
            batch_index, l = env.action(a)
            assert flat[a] == (inner[batch_index] and inner[env.batch_choices + l])
        _, _, terminated, _, info = env.step(int(rng.choice(np.flatnonzero(flat))))
        assert not info["action_clipped"]


def test_the_wrapped_env_passes_gymnasium_s_checker_and_vectorises():
    check_env(FlattenBatchSpeculation(gym.make(SMALL)).unwrapped, skip_render_check=True)  # the env itself
    check_env(FlattenBatchSpeculation(gym.make(SMALL, disable_env_checker=True)), skip_render_check=True)
    envs = gym.vector.SyncVectorEnv([lambda: FlattenBatchSpeculation(gym.make(SMALL)) for _ in range(2)])
    assert envs.single_action_space == gym.spaces.Discrete(4 * 5)
    envs.reset(seed=0)
    _, reward, _, _, infos = envs.step(np.array([7, 7]))
    assert reward.shape == (2,) and infos["action_mask"].shape == (2, 20)
