"""Serving one batch: speculative rounds of two pipelined micro-batches (sections 3 and 4).

A batch of n tasks is split into micro-batch A (the first ceil(n/2) tasks) and B (the rest); with n = 1
or pipelining off, A holds them all. The SBS drafts and the MBS verifies in the fixed cyclic order
A, B, A, B, ...; with D, F, V the draft, fronthaul and verify times of a round,

    draft_start_X(r)  = max(sbs_free, verify_end_X(r-1))
    verify_start_X(r) = max(mbs_free, draft_end_X(r) + F_X(r))

Times are offsets from the batch's start (both nodes free at 0): the schedule is a pure function of the
batch, l and nothing else, and a later start shifts every time equally.

A round's times depend on its micro-batch only through a few aggregates (active tasks, sum of their
contexts, and prompt sums for the first round), collected in :class:`RoundLoad`. Everything broadcasts
over leading axes, so one call can time one batch or every segment of an episode (the oracle's tables).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sdedge_gym.config import FronthaulConfig
from sdedge_gym.roofline import PassCost
from sdedge_gym.speculation import TaskProgress


@dataclass(frozen=True)
class RoundLoad:
    """What one micro-batch asks of the nodes, round by round (rounds on the last axis)."""

    active: np.ndarray  # (..., R): tasks still decoding in round r
    context: np.ndarray  # (..., R): sum over active tasks of prompt + tokens produced before round r
    prompt: np.ndarray  # (...): sum of prompt lengths (prefilled in round 0)
    prompt_square: np.ndarray  # (...): sum of squared prompt lengths (prefill attention work)


@dataclass(frozen=True)
class RoundTimes:
    """Draft, fronthaul and verify durations of each round of a micro-batch, s."""

    draft: np.ndarray
    fronthaul: np.ndarray
    verify: np.ndarray


@dataclass(frozen=True)
class Schedule:
    """Start and end offsets (s) of every round's draft and verify; rounds on the last axis.

    Rounds where the micro-batch is done repeat its last verify end (durations zero).
    """

    draft_start: np.ndarray
    draft_end: np.ndarray
    verify_start: np.ndarray
    verify_end: np.ndarray


@dataclass(frozen=True)
class BatchService:
    """The outcome of serving one batch, as offsets from its start."""

    completion: np.ndarray  # (..., n): when each task's last verify ends, s
    duration: np.ndarray  # (...): when the last verify ends, s
    tokens: np.ndarray  # (...): output tokens produced
    accepted_drafts: np.ndarray  # (...): draft tokens accepted by the target
    micro_batch: np.ndarray  # (..., n) int: 0 for A, 1 for B
    schedules: tuple[Schedule, Schedule]  # A and B


def round_times(draft: PassCost, target: PassCost, fronthaul: FronthaulConfig, load: RoundLoad,
                speculation_length: int) -> RoundTimes:
    """D, F and V of every round of a micro-batch at speculation length l."""
    l = speculation_length
    n, ctx = load.active, load.context
    prompt, prompt_sq = load.prompt, load.prompt_square
    if l == 0:
        # Autoregressive decoding on the MBS: round 0 prefills the prompt, later rounds add one token.
        verify = target.pass_time(n, ctx, ctx, batch=n)
        verify[..., 0] = target.pass_time(prompt, prompt_sq, prompt, batch=n[..., 0])
        zeros = np.zeros_like(verify)
        return RoundTimes(zeros, zeros, verify)
    # Draft: l single-token decode passes (pass j sees the context grown by j drafts); round 0 first
    # prefills the prompt on the SBS.
    draft_time = _draft_passes(draft, n, ctx, l)
    draft_time[..., 0] += draft.pass_time(prompt, prompt_sq, prompt, batch=n[..., 0])
    fronthaul_time = np.where(
        n > 0, fronthaul.latency + n * l * fronthaul.draft_token_bits / fronthaul.rate, 0.0)
    # Verify: one pass over the l drafts plus the last accepted token (q = l + 1 on a context of
    # ctx - 1), or, in round 0, over the prompt and the drafts (q = I + l on an empty cache).
    verify = target.pass_time(n * (l + 1), (l + 1) * (ctx + n * l), ctx + n * l, batch=n)
    n0 = n[..., 0]
    verify[..., 0] = target.pass_time(prompt + n0 * l, prompt_sq + 2 * l * prompt + n0 * l * l, prompt + n0 * l,
                                      batch=n0)
    return RoundTimes(draft_time, fronthaul_time, verify)


def _draft_passes(draft: PassCost, n: np.ndarray, ctx: np.ndarray, l: int) -> np.ndarray:
    """Sum over j = 1..l of the draft pass on n sequences with context ctx + n j (0 where n = 0).

    Compute and memory time are both affine in j, so where one of them wins at j = 1 and at j = l it wins
    throughout and the sum has a closed form; only rounds where they cross are summed pass by pass (and
    every round of a node timed by a measured profile).
    """
    t0, spf, spb = draft.overhead, draft.seconds_per_flop, draft.seconds_per_byte
    first, last = ctx + n, ctx + n * l
    tokens = draft.flops_per_token * n
    c1, cl = (tokens + draft.attention_flops * first) * spf, (tokens + draft.attention_flops * last) * spf
    m1, ml = (draft.weight_bytes + draft.kv_bytes_per_token * first) * spb, \
        (draft.weight_bytes + draft.kv_bytes_per_token * last) * spb
    profiled = draft.profile is not None
    memory_bound = (m1 >= c1) & (ml >= cl) & (not profiled)
    work = l * ctx + n * (l * (l + 1) / 2)  # sum over j of ctx + n j
    total = np.where(memory_bound, l * t0 + (l * draft.weight_bytes + draft.kv_bytes_per_token * work) * spb,
                     l * t0 + (l * tokens + draft.attention_flops * work) * spf)
    mixed = ~memory_bound & (~((c1 >= m1) & (cl >= ml)) | profiled) & (n > 0)
    if mixed.any():
        j = np.arange(1, l + 1, dtype=float)
        grown = ctx[mixed][:, None] + n[mixed][:, None] * j
        total[mixed] = draft.pass_time(n[mixed][:, None], grown, grown, batch=n[mixed][:, None]).sum(axis=-1)
    return np.where(n > 0, total, 0.0)


def pipeline_schedule(times_a: RoundTimes, active_a, times_b: RoundTimes,
                      active_b) -> tuple[Schedule, Schedule]:
    """Run the A, B, A, B, ... recursion over rounds; inputs broadcast over leading axes."""
    return _schedule_many(times_a, active_a, times_b, active_b)


def _schedule_many(times_a, active_a, times_b, active_b) -> tuple[Schedule, Schedule]:
    """The recursion on arrays: one numpy step per round over all rows still running.

    Rows are sorted by how many rounds they run, so that round r only touches the prefix of rows that
    still have a micro-batch active (views, no copies): the work is the sum of the rows' round counts,
    not rows x the longest row. A micro-batch that has finished keeps its last verify end, which is
    filled in after the loop (a finished micro-batch never becomes active again).
    """
    shape = np.broadcast_shapes(np.shape(active_a), np.shape(active_b))
    lead, rounds = shape[:-1], shape[-1]
    rows = int(np.prod(lead, dtype=np.int64))

    def flat(x):
        return np.broadcast_to(x, shape).reshape(rows, rounds)

    on = (flat(active_a).astype(bool), flat(active_b).astype(bool))
    for x in (0, 1):
        if np.any(on[x][:, 1:] & ~on[x][:, :-1]):
            raise ValueError("pipeline_schedule: active_a / active_b are invalid; allowed: each row's active rounds "
                             "form a prefix (a micro-batch that has finished never becomes active again)")
    running = (on[0] | on[1]).sum(axis=-1)  # rounds each row runs
    order = np.argsort(-running, kind="stable")
    live = np.searchsorted(-running[order], -np.arange(rounds), side="right")  # rows running at round r
    micro = [[flat(t)[order] for t in (times.draft, times.fronthaul, times.verify)] + [on[x][order]]
             for x, times in enumerate((times_a, times_b))]
    sbs_free = np.zeros(rows)
    mbs_free = np.zeros(rows)
    ends = [np.zeros(rows), np.zeros(rows)]
    out = [np.zeros((rows, rounds)) for _ in range(8)]
    for r in range(rounds):
        m = int(live[r])
        if m == 0:
            break
        sbs, mbs = sbs_free[:m], mbs_free[:m]
        for x, (d, f, v, act) in enumerate(micro):
            go = act[:m, r]
            end = ends[x][:m]
            draft_start = np.maximum(sbs, end)
            draft_end = draft_start + d[:m, r]
            verify_start = np.maximum(mbs, draft_end + f[:m, r])
            verify_end = verify_start + v[:m, r]
            sbs = np.where(go, draft_end, sbs)
            mbs = np.where(go, verify_end, mbs)
            ends[x][:m] = np.where(go, verify_end, end)
            base = 4 * x
            out[base][:m, r] = draft_start
            out[base + 1][:m, r] = draft_end
            out[base + 2][:m, r] = verify_start
            out[base + 3][:m, r] = verify_end
        sbs_free[:m], mbs_free[:m] = sbs, mbs
    inverse = np.empty_like(order)
    inverse[order] = np.arange(rows)
    for x in (0, 1):
        go, final = micro[x][3], ends[x][:, None]
        for k in range(4 * x, 4 * x + 4):
            out[k] = np.where(go, out[k], final)[inverse].reshape(shape)
    return Schedule(*out[0:4]), Schedule(*out[4:8])


def micro_batch_index(batch_size, width: int, pipelined: bool) -> np.ndarray:
    """(..., width) int: 0 for the tasks of micro-batch A (the first ceil(n/2)), 1 for B.

    ``batch_size`` n may be an array (one per leading row, tasks padded to ``width``); without
    pipelining, or with n = 1, micro-batch A holds every task.
    """
    index = np.arange(width)
    if not pipelined:
        return np.zeros((*np.shape(batch_size), width), dtype=np.int64)
    half = (np.asarray(batch_size)[..., None] + 1) // 2  # ceil(n / 2); n = 1 gives A alone
    return (index >= half).astype(np.int64)


def micro_batch_load(prompt_len, progress: TaskProgress, member) -> RoundLoad:
    """Aggregate the tasks selected by ``member`` (..., n) bool into a :class:`RoundLoad`."""
    prompt_len = np.asarray(prompt_len, dtype=float)
    r = np.arange(progress.max_rounds)
    active = (r < progress.rounds[..., None]) & member[..., None]
    context = np.where(active, prompt_len[..., None] + progress.produced_before, 0.0)
    started = member & (progress.rounds > 0)
    return RoundLoad(
        active=active.sum(axis=-2).astype(float),
        context=context.sum(axis=-2),
        prompt=np.where(started, prompt_len, 0.0).sum(axis=-1),
        prompt_square=np.where(started, prompt_len**2, 0.0).sum(axis=-1),
    )


def serve_batch(draft: PassCost, target: PassCost, fronthaul: FronthaulConfig, prompt_len, output_len,
                progress: TaskProgress, speculation_length: int, pipelined: bool = True,
                batch_size=None) -> BatchService:
    """Serve one batch of n tasks (task axis last; leading axes broadcast) and time every completion.

    Rows may be padded: give ``batch_size`` per row and zero output lengths for the padding, whose
    completion offsets are then reported as 0.
    """
    prompt_len = np.asarray(prompt_len, dtype=float)
    width = prompt_len.shape[-1]
    which = micro_batch_index(width if batch_size is None else batch_size, width, pipelined)
    schedules = []
    rounds_active = []
    for x in (0, 1):
        member = np.broadcast_to(which == x, prompt_len.shape)
        load = micro_batch_load(prompt_len, progress, member)
        times = round_times(draft, target, fronthaul, load, speculation_length)
        schedules.append(times)
        rounds_active.append(load.active > 0)
    schedule_a, schedule_b = pipeline_schedule(schedules[0], rounds_active[0], schedules[1], rounds_active[1])
    completion = completion_offsets(schedule_a, schedule_b, which, progress.rounds)
    duration = np.maximum(schedule_a.verify_end[..., -1], schedule_b.verify_end[..., -1])
    return BatchService(
        completion=completion,
        duration=duration,
        tokens=np.asarray(output_len, dtype=float).sum(axis=-1),
        accepted_drafts=progress.accepted_drafts.sum(axis=-1),
        micro_batch=which,
        schedules=(schedule_a, schedule_b),
    )


def completion_offsets(schedule_a: Schedule, schedule_b: Schedule, which, rounds):
    """verify_end of each task's micro-batch at the task's last round (0 for tasks with no round)."""
    ends = np.where(np.asarray(which)[..., None] == 0, schedule_a.verify_end[..., None, :],
                    schedule_b.verify_end[..., None, :])  # (..., n, R)
    last_round = np.maximum(rounds - 1, 0)[..., None]
    offsets = np.take_along_axis(ends, last_round, axis=-1)[..., 0]
    return np.where(rounds > 0, offsets, 0.0)
