"""The MBS-capacity lower bound (agents/multicell.py, docs/MODEL.md §17): its lemma on every played batch, its
hand-computed value, and its place between the contention-free bound and the exact joint optimum."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from sdedge_agents.multicell import (
    cell_work,
    centralised_plan,
    contention_free_bound,
    joint_optimum,
    lower_bound,
    mbs_capacity_bound,
    uncoordinated_plans,
)
from sdedge_gym.multicell import CELL_HARDWARE, MultiCellDynamics, MultiCellTwinEnv, make_multicell, multicell_config
from sdedge_gym.segments import SegmentTables, segment_tables

REL = 1e-9  # the tables' and the kernel's float sums


def models_and_episodes(config, seed: int):
    env = MultiCellTwinEnv(config)
    env.reset(seed=seed)
    return [e.model for e in env.core.cell_envs], [e.episode for e in env.core.cell_envs]


def random_plan(rng: np.random.Generator, num_tasks: int, batch_limit: int, max_speculation: int):
    plan, left = [], num_tasks
    while left:
        n = int(rng.integers(1, min(batch_limit, left) + 1))
        plan.append((n, int(rng.integers(0, max_speculation + 1))))
        left -= n
    return plan


def test_cell_work_on_hand_made_tables():
    """K = 3, n_max = 2, one l: rate[k] is the least D / n over the segments holding task k."""
    inf = np.inf
    duration = np.array([[4.0, 6.0], [2.0, 10.0], [5.0, inf]])[:, :, None]  # D[j, n - 1]
    completion = np.array([[4.0, 9.0], [2.0, 16.0], [5.0, inf]])[:, :, None]
    slot = np.array([[0.5, 0.3], [0.4, 0.9], [0.2, inf]])
    work = cell_work(SegmentTables(slot, duration, completion, "closed_form"))
    # task 0: segments (0,1) 4, (0,2) 3 -> 3; task 1: (0,2) 3, (1,1) 2, (1,2) 5 -> 2; task 2: (1,2) 5, (2,1) 5 -> 5
    np.testing.assert_array_equal(work.rate, [3.0, 2.0, 5.0])
    np.testing.assert_array_equal(work.offset, [4.0, 2.0, 5.0])  # 9/2 = 4.5 > 4; 2; 16/2 = 8 > 5
    assert work.release == 0.3 and work.batch_limit == 2


@pytest.mark.parametrize("preset,seed", [("four-heterogeneous", 0), ("two-heterogeneous", 1), ("two-identical", 2)])
def test_every_played_batch_obeys_the_lemma_and_every_joint_plan_the_bound(preset, seed):
    """Random joint plans through the env's dynamics: each batch holds the MBS for at least its tasks' rates, its
    offsets sum to at least theirs, batches never overlap on the MBS, and the sum of completion times is at
    least N x the bound."""
    models, episodes = models_and_episodes(make_multicell(preset), seed)
    works = [cell_work(segment_tables(m, e)) for m, e in zip(models, episodes, strict=True)]
    bound = mbs_capacity_bound(models, episodes)
    rng = np.random.default_rng(seed)
    for _ in range(20):
        plans = [random_plan(rng, e.num_tasks, w.batch_limit, m.config.max_speculation)
                 for m, e, w in zip(models, episodes, works, strict=True)]
        dynamics, steps = MultiCellDynamics(models, episodes), [0] * len(plans)
        while not all(dynamics.done(i) for i in range(len(plans))):
            for cell in dynamics.acting():
                dynamics.commit(cell, *plans[cell][steps[cell]], None)
                steps[cell] += 1
            dynamics.advance()
        intervals = []
        for cell, outcomes in enumerate(dynamics.outcomes):
            for o in outcomes:
                tasks = slice(o.first_task, o.first_task + o.batch_size)
                assert o.finish - o.start >= works[cell].rate[tasks].sum() * (1 - REL)
                assert (o.completion_times - o.start).sum() >= works[cell].offset[tasks].sum() * (1 - REL)
                assert o.start >= works[cell].release * (1 - REL)
                intervals.append((o.start, o.finish))
        intervals.sort()
        assert all(a[1] <= b[0] * (1 + REL) for a, b in itertools.pairwise(intervals))
        assert dynamics.mean_latency() >= bound * (1 - REL)


@pytest.mark.parametrize("preset,cells,seed", [("two-heterogeneous", 2, 0), ("two-identical", 2, 1),
                                               ("three-identical", 3, 0), ("three-identical", 3, 2)])
def test_bound_is_below_the_exact_joint_optimum(preset, cells, seed):
    """Small instances (B&B, itself equal to exhaustive search: tests/test_multicell_references.py)."""
    if preset == "three-identical":
        config = multicell_config(CELL_HARDWARE[:1] * 3, num_tasks=2, max_speculation=2)
    else:
        config = make_multicell(preset, num_tasks=3, max_speculation=2)
    models, episodes = models_and_episodes(config, seed)
    optimum = joint_optimum(models, episodes).mean_latency
    capacity, contention_free = mbs_capacity_bound(models, episodes), contention_free_bound(models, episodes)
    assert capacity <= optimum * (1 + REL)
    assert contention_free <= lower_bound(models, episodes) == max(capacity, contention_free) <= optimum * (1 + REL)


def test_under_heavy_sharing_the_capacity_bound_is_the_tighter_one():
    """Six identical cells on one MBS: the capacity bound is over twice the contention-free bound and still below
    every feasible joint plan; one cell alone: the contention-free bound (its exact optimum) is the larger."""
    models, episodes = models_and_episodes(multicell_config(CELL_HARDWARE[:1] * 6), 0)
    capacity, contention_free = mbs_capacity_bound(models, episodes), contention_free_bound(models, episodes)
    assert capacity > 2 * contention_free
    assert lower_bound(models, episodes) == capacity <= uncoordinated_plans(models, episodes).mean_latency
    models, episodes = models_and_episodes(multicell_config(CELL_HARDWARE[:1]), 0)
    assert lower_bound(models, episodes) == contention_free_bound(models, episodes) > mbs_capacity_bound(
        models, episodes)
    models, episodes = models_and_episodes(make_multicell("four-heterogeneous"), 1)
    assert lower_bound(models, episodes) <= centralised_plan(models, episodes).mean_latency
