"""Registration, both API checkers on every id, and the stable-baselines3 integration."""

from __future__ import annotations

import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest

import sdedge_gym
from sdedge_gym.registration import (
    ENTRY_POINT,
    ENV_TABLE,
    MULTICELL_ENTRY_POINT,
    MULTICELL_ENV_IDS,
    MULTICELL_ENV_TABLE,
    OFFLINE_ENV_IDS,
    ONLINE_ENTRY_POINT,
    ONLINE_ENV_IDS,
    register_envs,
)

try:
    import matplotlib  # noqa: F401  (the render extra: rgb_array rendering)

    HAS_MATPLOTLIB = True
except ImportError:
    HAS_MATPLOTLIB = False


def _short(env_id: str) -> dict:
    return {"num_tasks": 60} if "Large" in env_id else {}


def test_env_ids_cover_every_preset_and_mode():
    expected = {"sdedge/EdgeSD-v0"}
    for preset in ("Small", "Paper", "Large", "Uplink"):
        expected |= {f"sdedge/EdgeSD-{preset}{suffix}-v0" for suffix in ("", "-Hybrid", "-Dict")}
    for preset in ("Small", "Paper"):
        expected |= {f"sdedge/EdgeSD-{preset}{suffix}-Stochastic-v0" for suffix in ("", "-Hybrid", "-Dict")}
    assert set(OFFLINE_ENV_IDS) == expected and len(OFFLINE_ENV_IDS) == 19
    online = {f"sdedge/EdgeSD-Online{suffix}{kind}-v0" for suffix in ("", "-Hybrid", "-Dict")
              for kind in ("", "-Stochastic")}
    online |= {f"sdedge/EdgeSD-Online-Azure{trace}{suffix}-v0" for trace in ("Conv", "Code")
               for suffix in ("", "-Hybrid", "-Dict")}
    assert set(ONLINE_ENV_IDS) == online and len(ONLINE_ENV_IDS) == 12
    multicell = {f"sdedge/EdgeSD-MultiCell-{preset}{suffix}-v0" for preset in
                 ("TwoIdentical", "TwoHeterogeneous", "FourHeterogeneous") for suffix in ("", "-Hybrid", "-Dict")}
    assert set(MULTICELL_ENV_IDS) == multicell and len(MULTICELL_ENV_IDS) == 9
    assert sdedge_gym.SINGLE_CELL_ENV_IDS == OFFLINE_ENV_IDS + ONLINE_ENV_IDS == tuple(ENV_TABLE)
    assert sdedge_gym.ENV_IDS == OFFLINE_ENV_IDS + ONLINE_ENV_IDS + MULTICELL_ENV_IDS and len(sdedge_gym.ENV_IDS) == 40
    for env_id in sdedge_gym.ENV_IDS:
        spec = gym.spec(env_id)
        assert spec.max_episode_steps is None
        if env_id in multicell:
            assert spec.kwargs == MULTICELL_ENV_TABLE[env_id] and spec.entry_point == MULTICELL_ENTRY_POINT
        else:
            assert spec.kwargs == ENV_TABLE[env_id]
            assert spec.entry_point == (ONLINE_ENTRY_POINT if env_id in online else ENTRY_POINT)


def test_registration_is_idempotent():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # gymnasium warns when an id is registered twice
        register_envs()
        register_envs()
    assert sum(env_id.startswith("sdedge/") for env_id in gym.registry) == len(sdedge_gym.ENV_IDS)


def test_make_by_module_prefix_in_a_fresh_process():
    code = ("import gymnasium as gym; env = gym.make('sdedge_gym:sdedge/EdgeSD-v0'); obs, info = env.reset(seed=0); "
            "print(obs.shape[0], env.unwrapped.scenario.name)")
    out = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["148", "paper"]


# SB3 supports no Dict action space; its checker says so with this UserWarning, and nothing else is expected.
_SB3_DICT_ACTION_WARNING = "The action space is not based off a numpy array"


@pytest.mark.parametrize("env_id", sdedge_gym.ENV_IDS)
def test_gymnasium_check_env(env_id):
    from gymnasium.utils.env_checker import check_env

    env = gym.make(env_id, **_short(env_id))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # Also renders through env.spec in every declared render mode; rgb_array needs the render extra, so
        # without matplotlib (a bare install) the render check is skipped and everything else still runs.
        check_env(env.unwrapped, skip_render_check=not HAS_MATPLOTLIB)


@pytest.mark.parametrize("env_id", sdedge_gym.ENV_IDS)
def test_sb3_check_env(env_id):
    pytest.importorskip("stable_baselines3", reason="needs the train extra (stable-baselines3, torch)")
    from stable_baselines3.common.env_checker import check_env

    env = gym.make(env_id, **_short(env_id))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        if env.unwrapped.action_mode == "dict":
            warnings.filterwarnings("ignore", message=_SB3_DICT_ACTION_WARNING, category=UserWarning)
        check_env(env.unwrapped)


def test_sb3_subproc_vec_env_by_id():
    pytest.importorskip("stable_baselines3", reason="needs the train extra (stable-baselines3, torch)")
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import SubprocVecEnv

    venv = make_vec_env("sdedge_gym:sdedge/EdgeSD-Small-v0", n_envs=2, seed=0, vec_env_cls=SubprocVecEnv)
    try:
        obs = venv.reset()
        assert obs.shape == (2, 4 + 6 * 4)
        done_seen = np.zeros(2, dtype=bool)
        for _ in range(8):  # 8 tasks, at least one per step: every env finishes an episode
            obs, rewards, dones, infos = venv.step(np.array([[1, 2], [0, 0]]))
            assert np.all(rewards < 0) and np.all(np.isfinite(obs))
            done_seen |= dones
        assert done_seen.all()
        assert all("action_mask" in info for info in infos)
        masks = venv.env_method("action_masks")
        assert len(masks) == 2 and masks[0].shape == (4 + 5,)
    finally:
        venv.close()


def test_ppo_learns_on_the_discrete_small_env():
    pytest.importorskip("stable_baselines3", reason="needs the train extra (stable-baselines3, torch)")
    from stable_baselines3 import PPO

    env = gym.make("sdedge/EdgeSD-Small-v0")
    model = PPO("MlpPolicy", env, n_steps=64, batch_size=64, n_epochs=2, seed=0, device="cpu")
    model.learn(total_timesteps=256)
    assert model.num_timesteps >= 256
    obs, _ = env.reset(seed=1)
    action, _ = model.predict(obs, deterministic=True)
    assert env.action_space.contains(action)


def test_maskable_ppo_learns_and_respects_masks():
    pytest.importorskip("sb3_contrib", reason="needs the train extra (sb3-contrib, torch)")
    from sb3_contrib import MaskablePPO
    from sb3_contrib.common.maskable.utils import get_action_masks

    env = gym.make("sdedge/EdgeSD-Small-Stochastic-v0")
    model = MaskablePPO("MlpPolicy", env, n_steps=64, batch_size=64, n_epochs=2, seed=0, device="cpu")
    model.learn(total_timesteps=256)
    assert model.num_timesteps >= 256
    obs, _ = env.reset(seed=1)
    terminated = False
    while not terminated:
        masks = get_action_masks(env)
        action, _ = model.predict(obs, action_masks=masks)
        obs, _, terminated, _, info = env.step(action)
        assert not info["action_clipped"]  # a masked policy never asks for an invalid batch


def test_env_creator_makes_the_id_with_its_kwargs_and_rejects_other_keys() -> None:
    from sdedge_gym.registration import env_creator

    env = env_creator({"env_id": "sdedge/EdgeSD-Small-Dict-v0", "env_kwargs": {"num_tasks": 3}})
    assert env.unwrapped.scenario.num_tasks == 3 and env.unwrapped.action_mode == "dict"
    assert env_creator({"env_id": "sdedge/EdgeSD-Small-v0"}).unwrapped.scenario.num_tasks == 8
    with pytest.raises(ValueError, match=r"env_config keys \['env', 'env_kwargs'\] are invalid; allowed: 'env_id'"):
        env_creator({"env": "sdedge/EdgeSD-Small-v0", "env_kwargs": {}})
