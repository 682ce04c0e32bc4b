"""The multi-cell references (agents/multicell.py) against exhaustive search through the twin env."""

from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest

from sdedge_agents.multicell import (
    centralised_plan,
    contention_free_bound,
    joint_optimum,
    play,
    uncoordinated_plans,
)
from sdedge_gym.multicell import MultiCellTwinEnv, make_multicell


def exhaustive_best(env: MultiCellTwinEnv) -> float:
    """The best return over every joint sequence of valid discrete actions, by depth-first search on env copies."""
    core = env.core
    acting = core.dynamics.acting()
    choices = [[(n, l) for n in range(1, core.cell_envs[c].batch_limit() + 1)
                for l in range(core.cell_envs[c].scenario.max_speculation + 1)] for c in acting]
    best = -np.inf
    for joint in itertools.product(*choices):
        action = np.zeros(env.action_space.shape, dtype=np.int64)
        for cell, (n, l) in zip(acting, joint, strict=True):
            action[2 * cell: 2 * cell + 2] = (n - 1, l)
        child = copy.deepcopy(env)
        _, reward, done, _, _ = child.step(action)
        best = max(best, reward + (0.0 if done else exhaustive_best(child)))
    return best


def instance(preset: str, seed: int, num_tasks: int = 3, max_speculation: int = 2):
    env = MultiCellTwinEnv(make_multicell(preset, num_tasks=num_tasks, max_speculation=max_speculation))
    env.reset(seed=seed)
    return env, [e.model for e in env.core.cell_envs], [e.episode for e in env.core.cell_envs]


@pytest.mark.parametrize("preset,seed", [("two-heterogeneous", 0), ("two-heterogeneous", 1), ("two-identical", 2)])
def test_joint_optimum_is_exhaustive_search(preset, seed):
    env, models, episodes = instance(preset, seed)
    optimum = joint_optimum(models, episodes)
    assert optimum.mean_latency == pytest.approx(-exhaustive_best(env), rel=1e-12)
    # Its plan replayed through the twin env costs what the search says.
    replay = play(models, episodes, optimum.plans)
    assert replay.mean_latency == optimum.mean_latency
    lower = contention_free_bound(models, episodes)
    uncoordinated = uncoordinated_plans(models, episodes)
    assert lower <= optimum.mean_latency * (1 + 1e-12) <= uncoordinated.mean_latency * (1 + 1e-12)
    assert optimum.mean_latency <= centralised_plan(models, episodes).mean_latency * (1 + 1e-12)


def test_branch_and_bound_prunes_and_coordination_can_pay():
    """The bound prunes over half of the joint plans; over a few instances the optimum beats the uncoordinated plans."""
    gaps = []
    for seed in range(3):
        _, models, episodes = instance("two-identical", seed, num_tasks=4, max_speculation=2)
        optimum = joint_optimum(models, episodes)
        assert optimum.evaluated < 0.5 * 192 ** 2  # of the 192 plans per cell of 4 tasks (n <= 4, l <= 2)
        gaps.append(uncoordinated_plans(models, episodes).mean_latency - optimum.mean_latency)
    assert min(gaps) >= -1e-12 and max(gaps) > 0


def test_references_bracket_on_a_four_cell_preset():
    env = MultiCellTwinEnv("four-heterogeneous")
    env.reset(seed=0)
    models, episodes = [e.model for e in env.core.cell_envs], [e.episode for e in env.core.cell_envs]
    lower = contention_free_bound(models, episodes)
    central = centralised_plan(models, episodes)
    for baseline in ("oracle", "best-constant"):
        assert lower <= uncoordinated_plans(models, episodes, baseline).mean_latency
    assert central.mean_latency <= uncoordinated_plans(models, episodes).mean_latency
    assert lower < central.mean_latency  # four cells on one MBS do contend
    # The plans played through the twin env return minus what the references report.
    steps = [0] * 4
    done, total = False, 0.0
    while not done:
        action = np.zeros(8, dtype=np.int64)
        for cell in env.core.dynamics.acting():
            n, l = central.plans[cell][steps[cell]]
            action[2 * cell: 2 * cell + 2] = (n - 1, l)
            steps[cell] += 1
        _, reward, done, _, _ = env.step(action)
        total += reward
    assert -total == pytest.approx(central.mean_latency, rel=1e-12)
