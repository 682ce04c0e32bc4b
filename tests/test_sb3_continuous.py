"""Stable-Baselines3's off-policy continuous-action algorithms (SAC, TD3) on the hybrid Box ids."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("stable_baselines3", reason="SAC and TD3 need the train extra")
from stable_baselines3 import SAC, TD3

import sdedge_gym  # noqa: F401 (registers the ids)


@pytest.mark.parametrize("algo", [SAC, TD3])
def test_off_policy_box_algorithms_train_a_few_hundred_steps(algo) -> None:
    env = gym.make("sdedge/EdgeSD-Small-Hybrid-v0")
    model = algo("MlpPolicy", env, learning_starts=64, train_freq=8, gradient_steps=1, batch_size=32,
                 buffer_size=1_000, policy_kwargs={"net_arch": [32, 32]}, seed=0, device="cpu")
    model.learn(total_timesteps=256)
    assert model.num_timesteps == 256 and model.replay_buffer.size() == 256
    observation, _ = env.reset(seed=0)
    terminated = False
    while not terminated:
        action, _ = model.predict(observation, deterministic=True)
        assert env.action_space.contains(action)  # the squashed Gaussian stays inside Box(-1, 1)
        observation, reward, terminated, _, info = env.step(action)
        assert np.isfinite(reward) and reward < 0
    assert info["mean_latency"] > 0
