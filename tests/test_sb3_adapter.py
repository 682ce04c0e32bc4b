"""The Stable-Baselines3 VecEnv adapter: SB3's semantics, DummyVecEnv's numbers, PPO and MaskablePPO runs."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("stable_baselines3", reason="needs the train extra (stable-baselines3, torch)")
pytest.importorskip("sb3_contrib", reason="needs the train extra (sb3-contrib, torch)")

from sb3_contrib import MaskablePPO
from sb3_contrib.common.maskable.utils import get_action_masks, is_masking_supported
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor

import sdedge_gym  # noqa: F401 (registers the ids)
from sdedge_agents.sb3_vec_env import SB3VecEnv, make_sb3_vec_env
from sdedge_gym.vector_env import EdgeSDVectorEnv

SMALL = "sdedge/EdgeSD-Small-v0"


@pytest.mark.parametrize("env_id", [SMALL, "sdedge/EdgeSD-Small-Hybrid-Stochastic-v0"])
def test_same_numbers_and_semantics_as_dummy_vec_env(env_id: str) -> None:
    # Up to the first episode end: later episodes come from the vector env's autoreset stream, not from
    # each sub-env's own seed (the vector env's contract; tests/test_vector_env.py replays those).
    num_envs, seed = 3, 5
    fast = make_sb3_vec_env(env_id, num_envs=num_envs, seed=seed)
    reference = DummyVecEnv([lambda: gym.make(env_id) for _ in range(num_envs)])
    reference.seed(seed)
    # The native vector env against single envs: float32 observations to a float32 rounding (as in steps).
    np.testing.assert_allclose(fast.reset(), reference.reset(), rtol=1e-6, atol=1e-7)
    for i in range(num_envs):
        np.testing.assert_array_equal(fast.reset_infos[i]["action_mask"], reference.reset_infos[i]["action_mask"])
    space = gym.make(env_id).action_space
    space.seed(seed)
    finished = 0
    for _ in range(30):
        actions = np.stack([space.sample() for _ in range(num_envs)])
        fast.step_async(actions)
        reference.step_async(actions)
        obs_f, rew_f, done_f, info_f = fast.step_wait()
        obs_r, rew_r, done_r, info_r = reference.step_wait()
        if not done_r.any():
            np.testing.assert_allclose(obs_f, obs_r, rtol=1e-6, atol=1e-7)
        assert rew_f.dtype == rew_r.dtype == np.float32
        np.testing.assert_allclose(rew_f, rew_r, rtol=1e-6)
        np.testing.assert_array_equal(done_f, done_r)
        assert isinstance(info_f, list) and len(info_f) == num_envs
        for got, want, done in zip(info_f, info_r, done_r, strict=True):
            assert sorted(got) == sorted(want)
            assert got["TimeLimit.truncated"] is False
            for key, value in want.items():
                if isinstance(value, np.ndarray):
                    np.testing.assert_allclose(got[key], value, rtol=1e-6, atol=1e-7)
                elif isinstance(value, float):
                    assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
                else:
                    assert got[key] == value, key
            if done:
                finished += 1
                assert "terminal_observation" in got and "mean_latency" in got
        for i in range(num_envs):
            np.testing.assert_array_equal(fast.reset_infos[i]["action_mask"], reference.reset_infos[i]["action_mask"])
        if done_r.any():
            break
    assert finished >= 1


def test_masks_attributes_and_methods_per_env() -> None:
    venv = make_sb3_vec_env(SMALL, num_envs=4, seed=0)
    venv.reset()
    assert is_masking_supported(venv)
    masks = get_action_masks(VecMonitor(venv))
    assert masks.shape == (4, 9) and masks.dtype == bool and masks.all()
    venv.step(np.array([[3, 0], [0, 0], [1, 0], [2, 0]]))
    np.testing.assert_array_equal(get_action_masks(venv)[:, :4].sum(axis=1), [4, 4, 4, 4])  # 8 tasks - n >= 4
    assert venv.env_method("batch_limit") == [4, 4, 4, 4]
    assert venv.env_method("action_masks", indices=[1])[0].shape == (9,)
    assert venv.get_attr("action_mode") == ["discrete"] * 4
    assert venv.env_is_wrapped(gym.Wrapper) == [False] * 4
    with pytest.raises(ValueError, match="set_attr indices are invalid"):
        venv.set_attr("action_mode", "hybrid", indices=[0])


def test_the_adapter_needs_same_step_autoreset() -> None:
    with pytest.raises(ValueError, match=r"autoreset_mode = 'NextStep' is invalid; allowed: 'SameStep'"):
        SB3VecEnv(EdgeSDVectorEnv(num_envs=2, scenario="small"))


def test_ppo_smoke_run() -> None:
    venv = VecMonitor(make_sb3_vec_env(SMALL, num_envs=4, seed=0))
    model = PPO("MlpPolicy", venv, n_steps=64, batch_size=64, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=256)
    assert model.num_timesteps >= 256
    assert len(model.ep_info_buffer) > 0  # VecMonitor saw whole episodes through the adapter
    returns = [info["r"] for info in model.ep_info_buffer]
    assert all(r < 0 for r in returns)  # minus the mean latency


def test_maskable_ppo_smoke_run_respects_masks() -> None:
    venv = VecMonitor(make_sb3_vec_env(SMALL, num_envs=4, seed=1))
    model = MaskablePPO("MlpPolicy", venv, n_steps=64, batch_size=64, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=256)
    assert model.num_timesteps >= 256
    obs = venv.reset()
    for _ in range(20):
        masks = get_action_masks(venv)
        actions, _ = model.predict(obs, action_masks=masks)
        limits = masks[:, :4].sum(axis=1)
        assert np.all(actions[:, 0] < limits)  # never an oversized batch
        obs, _, _, infos = venv.step(actions)
        assert not any(info.get("action_clipped", False) for info in infos)
