"""The multi-cell PettingZoo ParallelEnv (sdedge_gym/multicell_pz.py): the API test and the agents' contract."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pettingzoo", reason="PettingZoo (the multicell extra: pip install 'sdedge-gym[multicell]') "
                                          "is not installed")

from pettingzoo.test import parallel_api_test, parallel_seed_test

from sdedge_gym.multicell import MULTICELL_PRESETS, MultiCellTwinEnv
from sdedge_gym.multicell_pz import MultiCellParallelEnv


@pytest.mark.parametrize("preset", sorted(MULTICELL_PRESETS))
@pytest.mark.parametrize("mode", ["discrete", "hybrid", "dict"])
def test_parallel_api(preset, mode):
    parallel_api_test(MultiCellParallelEnv(preset, mode), num_cycles=1000)


def test_seeding():
    parallel_seed_test(lambda: MultiCellParallelEnv("four-heterogeneous"))


def test_agents_act_when_their_uplink_is_free_and_match_the_twin():
    """Acting agents are the twin's acting cells, non-acting actions are ignored, rewards add up to the twin's."""
    env, twin = MultiCellParallelEnv("four-heterogeneous"), MultiCellTwinEnv("four-heterogeneous")
    rng = np.random.default_rng(0)
    observations, infos = env.reset(seed=4)
    twin_obs, twin_info = twin.reset(seed=4)
    total = twin_total = 0.0
    steps = 0
    while env.agents:
        acting = [a for a in env.agents if infos[a]["acting"]]
        assert acting and [int(a.split("_")[1]) for a in acting] == list(np.flatnonzero(twin_info["acting"]))
        for a in env.agents:
            assert observations[a][-3] == float(infos[a]["acting"])
        joint = np.concatenate([[rng.integers(4), rng.integers(5)] for _ in range(4)])
        # Every live agent sends something; the non-acting ones send garbage that must be ignored.
        actions = {a: joint[2 * i: 2 * i + 2] if a in acting else np.array([3, 4])
                   for i, a in enumerate(env.possible_agents) if a in env.agents}
        observations, rewards, terminations, _, infos = env.step(actions)
        twin_obs, twin_reward, done, _, twin_info = twin.step(joint)
        total += sum(rewards.values())
        twin_total += twin_reward
        steps += 1
        for a in terminations:
            width = len(twin_obs) // 4  # the four cells' spaces are the same size
            i = env.possible_agents.index(a)
            np.testing.assert_array_equal(observations[a], twin_obs[i * width:(i + 1) * width])
    assert done and total == pytest.approx(twin_total, rel=1e-12)
    assert -total == pytest.approx(infos[next(iter(infos))]["mean_latency"], rel=1e-12)


def test_an_acting_agent_without_an_action_is_an_error():
    env = MultiCellParallelEnv("two-heterogeneous")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="cell 1 acts at this epoch but has no action"):
        env.step({"cell_0": np.array([0, 1])})
    with pytest.raises(ValueError, match="not live agents"):
        env.step({"cell_7": np.array([0, 1])})
    env.step({"cell_0": np.array([0, 1]), "cell_1": np.array([0, 1])})  # the failed calls changed nothing
    assert env.core.dynamics.clocks[0].next_task == 1
