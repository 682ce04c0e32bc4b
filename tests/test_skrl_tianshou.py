"""skrl and Tianshou: their Gymnasium env layers over the single env and the native vector env.

Each test skips when its library is absent; neither is a dependency of any extra (they are tested in a
venv of their own, docs/INTEGRATIONS.md).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import sdedge_gym  # noqa: F401 (registers the ids)


def test_skrl_wraps_the_single_env_and_its_return_is_minus_the_mean_latency() -> None:
    pytest.importorskip("skrl", reason="skrl is not installed")
    torch = pytest.importorskip("torch")
    from skrl.envs.wrappers.torch import wrap_env

    base = gym.make("sdedge/EdgeSD-Small-v0")
    env = wrap_env(base)
    assert env.num_envs == 1 and env.action_space == base.action_space
    observation, _ = env.reset()
    assert observation.shape == (1, 28) and observation.dtype == torch.float32
    total, terminated = 0.0, torch.tensor([[False]])
    while not terminated.any():
        observation, reward, terminated, _, _ = env.step(torch.tensor([[1, 2]]))
        total += float(reward.item())  # float32 tensors: compared below with a float32 tolerance
    assert total == pytest.approx(-base.unwrapped.episode_kpis()["mean_latency"], rel=1e-5)


def test_skrl_wraps_the_native_vector_env() -> None:
    pytest.importorskip("skrl", reason="skrl is not installed")
    torch = pytest.importorskip("torch")
    from skrl.envs.wrappers.torch import wrap_env

    env = wrap_env(gym.make_vec("sdedge/EdgeSD-Small-v0", num_envs=3, vectorization_mode="vector_entry_point"))
    assert env.num_envs == 3
    env.reset()
    observation, reward, _, _, _ = env.step(torch.zeros((3, 2), dtype=torch.int64))
    assert observation.shape == (3, 28) and reward.shape == (3, 1) and (reward < 0).all()


def test_tianshou_vector_env_and_the_flattened_action_for_dqn() -> None:
    pytest.importorskip("tianshou", reason="tianshou is not installed")
    from tianshou.env import DummyVectorEnv

    from sdedge_gym.wrappers import FlattenBatchSpeculation

    reference = gym.make("sdedge/EdgeSD-Small-v0")
    reference.reset(seed=0)
    _, want, _, _, _ = reference.step(np.array([1, 2]))
    # Tianshou's DQN needs a Discrete action: the project's wrapper flattens [n - 1, l] to (n - 1) * 5 + l.
    venv = DummyVectorEnv([lambda: FlattenBatchSpeculation(gym.make("sdedge/EdgeSD-Small-v0")) for _ in range(2)])
    observation, _ = venv.reset(seed=0)
    assert observation.shape == (2, 28)
    _, reward, terminated, truncated, _ = venv.step(np.array([1 * 5 + 2, 1 * 5 + 2]))
    # The same episode (seed 0 in both) and the same action as the reference: the same float64 reward.
    np.testing.assert_array_equal(reward, [want, want])
    assert not terminated.any() and not truncated.any()
