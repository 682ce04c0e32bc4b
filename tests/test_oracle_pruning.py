"""The oracle's DP pieces: the dominance filters against brute force, the cost-to-go lower bound against the
true cost to go, and the bound-pruned DP against the unpruned DP and against enumeration of every plan."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sdedge_agents import oracle
from sdedge_agents.oracle import non_dominated, shift_non_dominated, solve
from sdedge_gym import Episode, EpisodeClock, ServingModel, make_scenario
from sdedge_gym.segments import SegmentTables, segment_tables


def random_tables(seed: int, num_tasks: int, width: int, lengths: int, grid: float) -> SegmentTables:
    """Synthetic segment tables: positive slots growing with n, random durations and completion sums.

    Values are rounded to multiples of ``grid`` (when > 0) so that ties in cost occur. Nothing in the DP
    or its bounds assumes more than this about the tables.
    """
    rng = np.random.default_rng(seed)
    sizes = np.arange(1, width + 1)
    slot = np.cumsum(rng.uniform(0.1, 2.0, (num_tasks, width)), axis=1)
    duration = rng.uniform(0.5, 4.0, (num_tasks, width, lengths)) * sizes[None, :, None] ** 0.5
    completion = duration * rng.uniform(0.5, 1.0, (num_tasks, width, lengths)) * sizes[None, :, None]
    if grid > 0:
        slot, duration, completion = (np.round(x / grid) * grid + grid for x in (slot, duration, completion))
    past = np.arange(num_tasks)[:, None] + sizes[None, :] > num_tasks
    slot[past] = np.inf
    duration[past] = np.inf
    completion[past] = np.inf
    return SegmentTables(slot, duration, completion, "closed_form")


def plan_cost(tables: SegmentTables, objective: str, divisor: float, clock: EpisodeClock,
              batches) -> float:
    """A plan's cost on the tables, with the DP's operations in the DP's order."""
    u, f, c, j = clock.uplink_end, clock.inference_end, 0.0, clock.next_task
    for n, l in batches:
        u = u + tables.uplink_slot[j, n - 1]
        begin = max(u, f)
        f_next = begin + tables.duration[j, n - 1, l]
        if objective == "makespan":
            c = c + (f_next - f)
        else:
            c = c + (n * begin + tables.completion_sum[j, n - 1, l]) / divisor
        f = f_next
        j += n
    assert j == tables.num_tasks
    return c


def every_plan(first: int, total: int, width: int, lengths: int):
    """Every sequence of (n, l) that serves tasks first..total-1."""
    if first == total:
        yield ()
        return
    for n in range(1, min(width, total - first) + 1):
        for l in range(lengths):
            for rest in every_plan(first + n, total, width, lengths):
                yield ((n, l), *rest)


def test_non_dominated_on_ties_and_empty_input():
    assert non_dominated(np.empty(0), np.empty(0), np.empty(0)).size == 0
    # Three copies of one point and a dominated point: one copy survives.
    u = np.array([1.0, 1.0, 2.0, 1.0])
    f = np.array([1.0, 1.0, 2.0, 1.0])
    c = np.array([3.0, 3.0, 3.0, 3.0])
    assert non_dominated(u, f, c).tolist() == [0]


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 150), st.sampled_from([0.0, 0.25, 0.5, 1.0, 3.0]))
def test_shift_non_dominated_matches_brute_force(seed, size, weight):
    rng = np.random.default_rng(seed)
    u, f, c = (rng.integers(0, 6, size).astype(float) for _ in range(3))
    points = list(zip(u.tolist(), f.tolist(), c.tolist(), strict=True))

    def beats(a, b):  # the definition, on small integers and dyadic weights: exact in floats
        return a[2] + weight * max(0.0, a[0] - b[0], a[1] - b[1]) <= b[2]

    got = [points[i] for i in shift_non_dominated(u, f, c, weight)]
    assert len(got) == len(set(got))  # one of each tie
    assert not any(beats(a, b) for a in got for b in got if a != b)  # survivors do not beat each other
    assert all(any(beats(a, p) for a in got) for p in points)  # every label is beaten (or tied) by a survivor
    if weight > 0:  # then only identical labels beat each other both ways, so the survivors are unique
        want = {p for p in points if not any(q != p and beats(q, p) for q in points)}
        assert set(got) == want


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 9), st.integers(1, 4), st.integers(1, 3),
       st.sampled_from(["mean_latency", "makespan"]), st.sampled_from([0.0, 0.5]))
def test_lower_bound_never_exceeds_the_cost_to_go(seed, num_tasks, width, lengths, objective, grid):
    tables = random_tables(seed, num_tasks, width, lengths, grid)
    rng = np.random.default_rng(seed + 1)
    makespan = objective == "makespan"
    divisor = float(num_tasks + int(rng.integers(0, 3)))
    args = (tables.uplink_slot, tables.duration, tables.completion_sum)
    umin, service, uplink = oracle._cost_to_go_bounds(*args, divisor, width, makespan)
    for _ in range(5):
        j = int(rng.integers(0, num_tasks))
        clock = EpisodeClock(next_task=j, uplink_end=float(rng.uniform(0, 10)), inference_end=float(rng.uniform(0, 10)))
        exact = solve(tables, objective, int(divisor), clock, prune=False).cost
        bound = oracle._lower_bound(j, clock.uplink_end, clock.inference_end, num_tasks, divisor, makespan,
                                    umin, service, uplink)
        assert bound <= exact * (1 + 1e-12)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 7), st.integers(1, 3), st.integers(1, 3),
       st.sampled_from(["mean_latency", "makespan"]), st.sampled_from([0.0, 0.5]), st.booleans())
def test_dp_equals_enumeration_of_every_plan(seed, num_tasks, width, lengths, objective, grid, prune):
    tables = random_tables(seed, num_tasks, width, lengths, grid)
    rng = np.random.default_rng(seed + 2)
    first = int(rng.integers(0, num_tasks))
    clock = EpisodeClock(next_task=first, uplink_end=float(rng.uniform(0, 5)), inference_end=float(rng.uniform(0, 5)))
    divisor = float(num_tasks)
    plan = solve(tables, objective, start=clock, prune=prune)
    best = min(plan_cost(tables, objective, divisor, clock, p) for p in every_plan(first, num_tasks, width, lengths))
    assert plan.cost == pytest.approx(best, rel=1e-12)
    # The recovered plan costs exactly the returned cost: the same operations in the same order.
    assert plan_cost(tables, objective, divisor, clock, plan.batches) == plan.cost


CASES = list(itertools.product(("small", "paper", "uplink"), ("mean_latency", "makespan"), ("expected", "sampled"),
                               ("closed_form", "uniform")))


@pytest.mark.parametrize(("preset", "objective", "acceptance", "allocation"), CASES)
def test_pruned_dp_equals_unpruned_dp(preset, objective, acceptance, allocation):
    seed = CASES.index((preset, objective, acceptance, allocation))
    rng = np.random.default_rng(seed)
    num_tasks = int(rng.integers(20, 61)) if preset != "small" else int(rng.integers(8, 201))
    model = ServingModel.of(make_scenario(preset, num_tasks=num_tasks, objective=objective, acceptance=acceptance))
    episode = Episode.draw(model, rng)
    tables = segment_tables(model, episode, allocation)
    limit = int(rng.integers(1, tables.batch_limit + 1)) if seed % 3 == 0 else None
    starts = [EpisodeClock()]
    middle = solve(tables, objective, batch_limit=limit, prune=False)
    clock = EpisodeClock()
    for n, l in middle.batches[:2]:  # a clock mid-episode: after two batches of the optimum
        u = clock.uplink_end + tables.uplink_slot[clock.next_task, n - 1]
        begin = max(u, clock.inference_end)
        clock = EpisodeClock(clock.next_task + n, u, begin + tables.duration[clock.next_task, n - 1, l])
    if clock.next_task < num_tasks:
        starts.append(clock)
    for start in starts:
        pruned = solve(tables, objective, start=start, batch_limit=limit)
        unpruned = solve(tables, objective, start=start, batch_limit=limit, prune=False)
        assert pruned.cost == pytest.approx(unpruned.cost, rel=1e-9)
        assert pruned.labels <= unpruned.labels
        divisor = float(num_tasks)
        assert plan_cost(tables, objective, divisor, start, pruned.batches) == pruned.cost
        assert all(n <= (limit or tables.batch_limit) for n, _ in pruned.batches)
