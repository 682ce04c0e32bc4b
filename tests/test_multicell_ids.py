"""The registered multi-cell ids (the centralised twin in every action mode) and the twin's dict mode."""

from __future__ import annotations

import copy
import pickle

import gymnasium as gym
import numpy as np
import pytest

import sdedge_gym
from sdedge_gym.actions import action_mode
from sdedge_gym.multicell import MultiCellTwinEnv, make_multicell
from sdedge_gym.registration import MULTICELL_ENV_TABLE


@pytest.mark.parametrize("env_id", sdedge_gym.MULTICELL_ENV_IDS)
def test_every_id_makes_the_twin_of_its_preset_and_mode(env_id):
    env = gym.make(env_id)
    twin = env.unwrapped
    kwargs = MULTICELL_ENV_TABLE[env_id]
    assert isinstance(twin, MultiCellTwinEnv) and twin.action_mode == kwargs["action_mode"]
    assert twin.core.config == make_multicell(kwargs["config"])
    assert env.spec.max_episode_steps is None
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs) and info["acting"].all()  # every uplink is free at t = 0


@pytest.mark.parametrize("env_id", sdedge_gym.MULTICELL_ENV_IDS)
def test_step_before_reset_after_termination_and_a_copy_mid_episode(env_id):
    wrapped = gym.make(env_id, num_tasks=5)
    with pytest.raises(gym.error.ResetNeeded):
        wrapped.step(wrapped.action_space.sample())
    env = wrapped.unwrapped
    with pytest.raises(RuntimeError, match=r"before reset\(\)"):
        env.step(env.action_space.sample())
    env.reset(seed=1)
    env.action_space.seed(1)
    actions = [env.action_space.sample() for _ in range(30)]
    env.step(actions[0])
    runs = []
    for target in (env, copy.deepcopy(env), pickle.loads(pickle.dumps(env))):
        out = []
        for action in actions[1:]:
            obs, reward, terminated, _, info = target.step(action)
            out.append((obs.tobytes(), reward))
            if terminated:
                break
        assert terminated, "5 tasks per cell end within 30 joint steps"
        runs.append((out, info["mean_latency"]))
    assert runs[0] == runs[1] == runs[2]
    with pytest.raises(RuntimeError, match="after the episode terminated"):
        env.step(env.action_space.sample())


def test_make_passes_the_preset_arguments_and_rejects_them_with_a_config():
    env = gym.make("sdedge/EdgeSD-MultiCell-TwoHeterogeneous-v0", num_tasks=(3, 6)).unwrapped
    assert [c.num_tasks for c in env.core.config.cells] == [3, 6]
    with pytest.raises(ValueError, match=r"keyword arguments \['num_tasks'\] are invalid with a MultiCellConfig"):
        MultiCellTwinEnv(make_multicell("two-identical"), num_tasks=3)
    with pytest.raises(ValueError, match="unknown multi-cell preset 'three'"):
        gym.make("sdedge/EdgeSD-MultiCell-TwoIdentical-v0", config="three")


@pytest.mark.parametrize("preset", ["two-heterogeneous", "four-heterogeneous"])
def test_dict_mode_is_the_hybrid_mode_with_the_same_band_split(preset):
    """Each cell's dict action encodes the (n, l, shares) of its hybrid action: the episodes agree to 1e-6
    (the dict mode's bandwidth weights are float32)."""
    hybrid, as_dict = MultiCellTwinEnv(preset, "hybrid"), MultiCellTwinEnv(preset, "dict")
    cells = hybrid.core.cell_envs
    hybrid.action_space.seed(7)
    for seed in (0, 1):
        hybrid.reset(seed=seed)
        as_dict.reset(seed=seed)
        done = False
        while not done:
            action = hybrid.action_space.sample()
            parts = np.split(action, len(cells))
            joint = {}
            for i, (cell, part) in enumerate(zip(cells, parts, strict=True)):
                _, n, l, weights = cell.actions.decode(part)
                n = min(n, max(cell.batch_limit(), 1))
                dict_mode = action_mode("dict", cell.scenario.max_batch, cell.scenario.max_speculation)
                joint[f"cell_{i}"] = dict_mode.encode(n, l, cell.actions.shares(weights, n)[:n])
            obs_h, reward_h, done, _, info_h = hybrid.step(action)
            obs_d, reward_d, done_d, _, info_d = as_dict.step(joint)
            assert done == done_d
            np.testing.assert_allclose(obs_d, obs_h, atol=1e-6)
            assert reward_d == pytest.approx(reward_h, rel=1e-6)
        assert info_d["mean_latency"] == pytest.approx(info_h["mean_latency"], rel=1e-6)


def test_bad_dict_actions_name_the_keys_and_leave_the_episode_unchanged():
    env = MultiCellTwinEnv("two-heterogeneous", "dict")
    env.reset(seed=0)
    good = env.action_space.sample()
    clocks = list(env.core.dynamics.clocks)
    with pytest.raises(ValueError, match=r"exactly the keys \['cell_0', 'cell_1'\]"):
        env.step({"cell_0": good["cell_0"]})
    with pytest.raises(ValueError, match="exactly the keys"):
        env.step(np.array([0, 1, 0, 1]))
    bad = {**good, "cell_1": {**good["cell_1"], "speculation_length": 99}}
    with pytest.raises(ValueError, match=r"action\['speculation_length'\] .*allowed: an integer in \[0, 4\]"):
        env.step(bad)
    assert env.core.dynamics.clocks == clocks
    env.step(good)  # still usable
    assert env.core.dynamics.clocks != clocks
