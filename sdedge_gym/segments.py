"""Segment tables: the cost of serving every contiguous batch of an episode, for the DP oracle (section 11).

A batch is a contiguous segment of the queue: first task j, size n, speculation length l. Whatever the
clock, serving it costs

    uplink_slot[j, n-1]        U: the slot length of the segment's users under the band split
    duration[j, n-1, l]        D: offset of the last verify end from the batch's start
    completion_sum[j, n-1, l]  C: sum over the segment's tasks of their completion offsets

so a batch started at S finishes at S + D and adds n S + C to the sum of completion times. The tables are
computed by the compiled kernel the env commits batches with (:func:`sdedge_gym.kernels.segment_slots`,
:func:`sdedge_gym.kernels.segment_service`): every entry is the number :func:`sdedge_gym.episode.commit_batch`
gives for that batch. Segment (j, n) pipelines window A (j, ceil(n/2)) with window B (j + ceil(n/2),
floor(n/2)); each window's pieces (expected acceptance: runs of rounds with affine times, docs/MODEL.md
section 7.1) or round times (sampled acceptance, measured profiles) are computed once and shared by the
segments that use it.

Segments that run past the end of the queue (j + n > K) are +inf everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sdedge_gym import kernels
from sdedge_gym.episode import Episode, ServingModel

ALLOCATIONS = ("closed_form", "uniform")


@dataclass(frozen=True)
class SegmentTables:
    """Slot, service duration and completion-offset sum of every segment (first task j, size n, l)."""

    uplink_slot: np.ndarray  # (K, N): U[j, n - 1], s
    duration: np.ndarray  # (K, N, L + 1): D[j, n - 1, l], s
    completion_sum: np.ndarray  # (K, N, L + 1): C[j, n - 1, l], s
    allocation: str  # "closed_form" or "uniform"

    @property
    def num_tasks(self) -> int:
        return self.uplink_slot.shape[0]

    @property
    def batch_limit(self) -> int:
        return self.uplink_slot.shape[1]

    @property
    def max_speculation(self) -> int:
        return self.duration.shape[2] - 1


def segment_tables(model: ServingModel, episode: Episode, allocation: str = "closed_form",
                   batch_limit: int | None = None, first_tasks: int | None = None,
                   uplink_slot: np.ndarray | None = None, period: int | None = None) -> SegmentTables:
    """Every segment's (U, D, C) for ``episode``, with n up to ``batch_limit`` (default: the model's).

    ``first_tasks``: only the segments that start at tasks 0..first_tasks-1, a table of that many rows (for
    a caller that knows the rest, e.g. a queue that repeats itself). ``uplink_slot``: the U table of an
    earlier call on an episode with the same payloads and channels (the slots depend on nothing else), taken
    as it is instead of solved again, e.g. for draws of one episode's hidden output lengths. ``period``: the
    episode's tasks repeat with this period (task k + period is task k: the same prompt, output, acceptance
    rate and draws), as in a queue that repeats a window; the service tables then build each window once.
    Checked: a ValueError if the tasks do not repeat so.
    """
    if allocation not in ALLOCATIONS:
        raise ValueError(f"allocation = {allocation!r} is invalid; allowed: {' | '.join(map(repr, ALLOCATIONS))}")
    limit = model.batch_limit if batch_limit is None else batch_limit
    if not (isinstance(limit, int | np.integer) and 1 <= limit <= model.batch_limit):
        raise ValueError(f"batch_limit = {batch_limit!r} is invalid; allowed: an integer in [1, {model.batch_limit}]")
    num_tasks = episode.num_tasks
    width = int(min(limit, num_tasks))
    rows = num_tasks if first_tasks is None else int(first_tasks)
    if not 1 <= rows <= num_tasks:
        raise ValueError(f"first_tasks = {first_tasks!r} is invalid; allowed: an integer in [1, {num_tasks}]")
    lengths = model.config.max_speculation + 1
    prompt, output, alpha, payload, channel, runs = episode.kernel_arrays
    p = model.kernel_parameters
    if uplink_slot is None:
        slot = np.empty((rows, width))
        kernels.segment_slots(p, payload, channel, width, allocation == "uniform", slot)
    elif np.shape(uplink_slot) == (rows, width):
        slot = uplink_slot
    else:
        raise ValueError(f"uplink_slot has shape {np.shape(uplink_slot)}; allowed: ({rows}, {width}), the (first "
                         "tasks, batch limit) of these tables")
    repeat = 0 if period is None else _checked_period(period, num_tasks, (prompt, output, alpha, runs))
    duration = np.empty((rows, width, lengths))
    completion = np.empty((rows, width, lengths))
    kernels.segment_service(p, prompt, output, alpha, runs, episode.runs is not None, lengths - 1, width, repeat,
                            duration, completion)
    return SegmentTables(slot, duration, completion, allocation)


def _checked_period(period: int, num_tasks: int, columns: tuple[np.ndarray, ...]) -> int:
    """``period`` if every one of the service's task ``columns`` repeats with it, else a ValueError."""
    if not (isinstance(period, int | np.integer) and 1 <= period <= num_tasks):
        raise ValueError(f"period = {period!r} is invalid; allowed: an integer in [1, {num_tasks}]")
    # runs is NO_RUNS (one row) in expected acceptance: nothing to repeat there.
    if not all(len(c) < num_tasks or np.array_equal(c[period:], c[:num_tasks - period]) for c in columns):
        raise ValueError(f"period = {period}: the episode's tasks do not repeat with it; allowed: a period p with "
                         "task k + p equal to task k (prompt, output, acceptance rate and draws) for every k")
    return int(period)
