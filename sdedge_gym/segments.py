"""Segment tables: the cost of serving every contiguous batch of an episode, for the DP oracle (section 8).

A batch is a contiguous segment of the queue: first task j, size n, speculation length l. Whatever the
clock, serving it costs

    uplink_slot[j, n-1]        U: the slot length of the segment's users under the band split
    duration[j, n-1, l]        D: offset of the last verify end from the batch's start
    completion_sum[j, n-1, l]  C: sum over the segment's tasks of their completion offsets

so a batch started at S finishes at S + D and adds n S + C to the sum of completion times. The tables are
computed once per episode with the same core functions :func:`sdedge_gym.episode.commit_batch` uses
(closed-form allocation, task progress, round times, pipeline schedule), vectorised over segments:

* a task's round structure does not depend on its batch, so :func:`task_progress` runs once per l over
  the whole queue;
* a micro-batch's round times depend on its tasks only through sums (active count, context, prompt
  sums), so the loads of every window of m consecutive tasks are running sums, and :func:`round_times`
  times all windows at once;
* segment (j, n) pipelines window A (j, ceil(n/2)) with window B (j + ceil(n/2), floor(n/2)), and the
  round recursion of :func:`pipeline_schedule` runs for all segments of a chunk of first tasks together:
  :func:`compacted_service` over the segments still running in each round, and at l = 0 (no draft, no
  fronthaul) :func:`autoregressive_service` as a running sum, with no round loop. Both give the same
  floats as :func:`pipeline_schedule` itself, which tests use as the reference;
* the completion offsets of a micro-batch sum to sum_r (tasks finishing in round r) x verify_end(r), and
  the number finishing in round r is the drop of the active count after r.

Segments that run past the end of the queue (j + n > K) are +inf everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sdedge_gym.config import FronthaulConfig
from sdedge_gym.episode import Episode, ServingModel
from sdedge_gym.roofline import PassCost
from sdedge_gym.service import RoundTimes
from sdedge_gym.speculation import TaskProgress, task_progress
from sdedge_gym.uplink import closed_form_allocation, slot_length, uniform_allocation

ALLOCATIONS = ("closed_form", "uniform")
# Elements of one (first task x batch size x round) block of the schedule; bounds memory on K = 1000.
_CHUNK_ELEMENTS = 1_200_000


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
                   batch_limit: int | None = None) -> SegmentTables:
    """Every segment's (U, D, C) for ``episode``, with n up to ``batch_limit`` (default: the model's)."""
    if allocation not in ALLOCATIONS:
        raise ValueError(f"allocation = {allocation!r} is invalid; allowed: {' | '.join(map(repr, ALLOCATIONS))}")
    limit = model.batch_limit if batch_limit is None else batch_limit
    if not (isinstance(limit, int | np.integer) and 1 <= limit <= model.batch_limit):
        raise ValueError(f"batch_limit = {batch_limit!r} is invalid; allowed: an integer in [1, {model.batch_limit}]")
    cfg = model.config
    num_tasks = episode.num_tasks
    width = int(min(limit, num_tasks))
    speculation_lengths = range(cfg.max_speculation + 1)
    slot = uplink_slot_table(model, episode, width, allocation)
    duration = np.full((num_tasks, width, len(speculation_lengths)), np.inf)
    completion = np.full_like(duration, np.inf)
    w = episode.workload
    for l in speculation_lengths:
        progress = task_progress(w.output_len, w.alpha, l, episode.runs)
        duration[..., l], completion[..., l] = service_tables(model, w.prompt_len, progress, l, width)
    invalid = _past_the_end(num_tasks, width)
    slot[invalid] = np.inf
    duration[invalid] = np.inf
    completion[invalid] = np.inf
    return SegmentTables(slot, duration, completion, allocation)


def _past_the_end(num_tasks: int, width: int) -> np.ndarray:
    """(K, N) bool: segment (j, n) needs tasks beyond the queue."""
    return np.arange(num_tasks)[:, None] + np.arange(1, width + 1)[None, :] > num_tasks


def uplink_slot_table(model: ServingModel, episode: Episode, width: int, allocation: str = "closed_form"
                      ) -> np.ndarray:
    """(K, N) slot lengths of every segment (inf past the end of the queue)."""
    uplink = model.config.uplink
    payload = np.asarray(episode.workload.payload_bits, dtype=float)
    channel = np.asarray(episode.channel, dtype=float)
    num_tasks = payload.shape[0]
    slot = np.full((num_tasks, width), np.inf)
    # One call per batch size on unpadded windows: the same inputs commit_batch sees, and the root finder
    # iterates until every row has converged, so rows of similar size converge together.
    for n in range(1, min(width, num_tasks) + 1):
        rows_payload = np.lib.stride_tricks.sliding_window_view(payload, n)
        rows_channel = np.lib.stride_tricks.sliding_window_view(channel, n)
        if allocation == "uniform":
            band = uniform_allocation(rows_payload, uplink.bandwidth)
            slot[: num_tasks - n + 1, n - 1] = slot_length(rows_payload, band, rows_channel, uplink.rate_model)
        else:
            slot[: num_tasks - n + 1, n - 1], _ = closed_form_allocation(rows_payload, rows_channel,
                                                                         uplink.bandwidth, uplink.rate_model)
    return slot


def service_tables(model: ServingModel, prompt_len, progress: TaskProgress, speculation_length: int,
                   width: int) -> tuple[np.ndarray, np.ndarray]:
    """(K, N) service duration and completion-offset sum of every segment at one speculation length."""
    prompt_len = np.asarray(prompt_len, dtype=float)
    num_tasks = prompt_len.shape[0]
    sizes = np.arange(1, width + 1)
    size_a = (sizes + 1) // 2 if model.config.pipelining else sizes
    size_b = sizes - size_a
    duration = np.empty((num_tasks, width))
    completion = np.empty((num_tasks, width))
    rounds = progress.rounds
    max_rounds = max(int(rounds.max(initial=1)), 1)
    chunk = max(1, _CHUNK_ELEMENTS // (width * max_rounds))
    for first in range(0, num_tasks, chunk):
        last = min(first + chunk, num_tasks)
        tasks = slice(first, min(last + width, num_tasks))
        chunk_rounds = max(int(rounds[tasks].max(initial=1)), 1)
        windows = _window_times(model, prompt_len[tasks], progress, tasks, chunk_rounds, speculation_length,
                                int(size_a.max()), last - first + width)
        starts = np.arange(last - first)[:, None]
        lanes_a = (size_a[None, :] * windows[1].shape[2] + starts).ravel()  # flat (size, start) of window A
        lanes_b = (size_b[None, :] * windows[1].shape[2] + starts + size_a[None, :]).ravel()
        service = autoregressive_service if speculation_length == 0 else compacted_service
        chunk_duration, chunk_completion = service(windows, lanes_a, lanes_b)
        duration[first:last] = chunk_duration.reshape(last - first, width)
        completion[first:last] = chunk_completion.reshape(last - first, width)
    return duration, completion


def _flat_windows(windows: tuple[RoundTimes, np.ndarray]) -> tuple[np.ndarray, ...]:
    """(draft, fronthaul, verify, active, leaving) of the windows as (R, windows) arrays (views where possible).

    leaving[r] = active[r] - active[r + 1]: the tasks whose last round is r.
    """
    times, active = windows
    num_rounds = active.shape[0]
    draft, fronthaul, verify, active = (x.reshape(num_rounds, -1) for x in (times.draft, times.fronthaul,
                                                                            times.verify, active))
    leaving = active - np.concatenate([active[1:], np.zeros((1, active.shape[1]))])
    return draft, fronthaul, verify, active, leaving


def autoregressive_service(windows: tuple[RoundTimes, np.ndarray], lanes_a: np.ndarray, lanes_b: np.ndarray
                           ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`compacted_service` at l = 0 without the round loop: the MBS's clock is a running sum.

    ``lanes_a`` and ``lanes_b`` are flat window indices (size * num_starts + start) of each segment's
    micro-batches. At l = 0, D = F = 0, and the recursion's invariants are sbs_free <= mbs_free and
    e_X <= mbs_free (all start at 0; an active step sets sbs_free = max(sbs_free, e_X) <= mbs_free, then
    mbs_free = e_X = max(mbs_free, sbs_free + 0) + V = mbs_free + V >= both, and leaves the other e_Y).
    So every active step is exactly ``mbs_free += V``: the verify ends are the running sum of V over the
    active steps in the order A_0, B_0, A_1, B_1, ..., and np.cumsum (a sequential accumulate) gives the
    same floats when the inactive steps contribute 0.0 (x + 0.0 == x). The duration max(e_A, e_B) is the
    last verify end, the sum's final value. The completion sum adds leaving x verify end in the same
    order; inactive steps have leaving = 0 and add 0.0, so a cumsum of the products reproduces it too.
    """
    _, _, verify, active, leaving = _flat_windows(windows)
    num_rounds = active.shape[0]
    on = active > 0
    # (R, 2, lanes) -> (2R, lanes): the steps A_0, B_0, A_1, B_1, ...
    steps = np.stack([np.where(on[:, lanes], verify[:, lanes], 0.0) for lanes in (lanes_a, lanes_b)], axis=1)
    ends = np.cumsum(steps.reshape(2 * num_rounds, -1), axis=0)
    leave = np.stack([leaving[:, lanes_a], leaving[:, lanes_b]], axis=1).reshape(2 * num_rounds, -1)
    completion = np.cumsum(leave * ends, axis=0)[-1]
    return ends[-1].copy(), completion


def compacted_service(windows: tuple[RoundTimes, np.ndarray], lanes_a: np.ndarray, lanes_b: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
    """The recursion of :func:`sdedge_gym.service.pipeline_schedule`, for every segment, rounds on the first axis.

    Only what the tables need is kept (each micro-batch's last verify end and the completion sum), on lanes
    sorted by their number of rounds, each round touching only live lanes. Same operations per lane in the
    same order as pipeline_schedule (so the same floats); a lane whose micro-batches have both
    finished never changes again, so round r only runs over the prefix of lanes still running, and each
    round's times are taken from the windows for those lanes only (no (R, lanes) gather).
    """
    draft, fronthaul, verify, active, leaving = _flat_windows(windows)
    num_rounds = active.shape[0]
    window_rounds = (active > 0).sum(axis=0)
    lane_rounds = np.maximum(window_rounds[lanes_a], window_rounds[lanes_b])
    order = np.argsort(-lane_rounds, kind="stable")
    live = np.searchsorted(-lane_rounds[order], -np.arange(num_rounds), side="right")  # lanes running in round r
    micro = [lanes[order] for lanes in (lanes_a, lanes_b)]
    num_lanes = order.shape[0]
    sbs_free = np.zeros(num_lanes)
    mbs_free = np.zeros(num_lanes)
    ends = [np.zeros(num_lanes), np.zeros(num_lanes)]
    completion = np.zeros(num_lanes)
    for r in range(num_rounds):
        m = int(live[r])
        if m == 0:
            break
        sbs, mbs, done = sbs_free[:m], mbs_free[:m], completion[:m]
        for x, lanes in enumerate(micro):
            index = lanes[:m]
            on = active[r].take(index) > 0
            end = ends[x][:m]
            draft_end = np.maximum(sbs, end)
            draft_end += draft[r].take(index)
            verify_end = draft_end + fronthaul[r].take(index)
            np.maximum(mbs, verify_end, out=verify_end)
            verify_end += verify[r].take(index)
            np.copyto(sbs, draft_end, where=on)
            np.copyto(mbs, verify_end, where=on)
            np.copyto(end, verify_end, where=on)
            done += leaving[r].take(index) * end
    duration = np.empty(num_lanes)
    duration[order] = np.maximum(ends[0], ends[1])
    out = np.empty(num_lanes)
    out[order] = completion
    return duration, out


def _window_times(model: ServingModel, prompt_len: np.ndarray, progress: TaskProgress, tasks: slice,
                  num_rounds: int, speculation_length: int, max_size: int, num_starts: int
                  ) -> tuple[RoundTimes, np.ndarray]:
    """Round times and active counts of every window (size m = 0..max_size, start i) of the chunk.

    Returns (times, active) with arrays of shape (R, max_size + 1, num_starts); m = 0 is the empty window.
    Windows that run past the chunk's tasks are padded with empty tasks (their segments are discarded).
    The loads are built rounds-first, so the times come out in the layout the service loops read.
    """
    count = prompt_len.shape[0]
    rounds = progress.rounds[tasks]
    r = np.arange(num_rounds)
    active = (r[:, None] < rounds[None, :]).astype(float)  # (R, tasks)
    produced = progress.produced_before[tasks, :num_rounds].T
    if produced.shape[0] < num_rounds:  # the episode-wide round axis can be shorter than a chunk's
        produced = np.pad(produced, ((0, num_rounds - produced.shape[0]), (0, 0)))
    context = np.where(active > 0, prompt_len[None, :] + produced, 0.0)
    started = rounds > 0
    prompt = np.where(started, prompt_len, 0.0)
    pad = num_starts + max_size - count
    per_task = [np.pad(x, ((0, 0),) * (x.ndim - 1) + ((0, pad),)) for x in (active, context, prompt, prompt * prompt)]
    shape = (max_size + 1, num_starts)
    load_active = np.zeros((num_rounds, *shape))
    load_context = np.zeros((num_rounds, *shape))
    load_prompt = np.zeros(shape)
    load_prompt_sq = np.zeros(shape)
    for m in range(1, max_size + 1):
        # Window (i, m) = window (i, m - 1) + task i + m - 1: running sums, no cancellation.
        shifted = slice(m - 1, m - 1 + num_starts)
        load_active[:, m] = load_active[:, m - 1] + per_task[0][:, shifted]
        load_context[:, m] = load_context[:, m - 1] + per_task[1][:, shifted]
        load_prompt[m] = load_prompt[m - 1] + per_task[2][shifted]
        load_prompt_sq[m] = load_prompt_sq[m - 1] + per_task[3][shifted]
    times = _round_times_first_axis(model.draft, model.target, model.config.fronthaul, load_active, load_context,
                                    load_prompt, load_prompt_sq, speculation_length)
    return times, load_active


def _round_times_first_axis(draft: PassCost, target: PassCost, fronthaul: FronthaulConfig, n: np.ndarray,
                            ctx: np.ndarray, prompt: np.ndarray, prompt_sq: np.ndarray, speculation_length: int
                            ) -> RoundTimes:
    """D, F, V of loads with rounds on the FIRST axis: the r >= 1 formulas everywhere, then round 0 redone.

    Elementwise, so the layout changes no float. At l = 0, D and F are zero (read-only broadcast views).
    """
    l = speculation_length
    if l == 0:
        verify = target.pass_time(n, ctx, ctx)
        verify[0] = target.pass_time(prompt, prompt_sq, prompt)
        zeros = np.broadcast_to(0.0, verify.shape)
        return RoundTimes(zeros, zeros, verify)
    draft_time = _draft_decode(draft, n, ctx, l)
    draft_time[0] += draft.pass_time(prompt, prompt_sq, prompt)  # round 0 first prefills on the SBS
    fronthaul_time = np.where(
        n > 0, fronthaul.latency + n * l * fronthaul.draft_token_bits / fronthaul.rate, 0.0)
    verify = target.pass_time(n * (l + 1), (l + 1) * (ctx + n * l), ctx + n * l)
    n0 = n[0]
    verify[0] = target.pass_time(prompt + n0 * l, prompt_sq + 2 * l * prompt + n0 * l * l, prompt + n0 * l)
    return RoundTimes(draft_time, fronthaul_time, verify)


def _draft_decode(draft: PassCost, n: np.ndarray, ctx: np.ndarray, l: int) -> np.ndarray:
    """Sum over j = 1..l of the draft's decode pass on n sequences of context ctx + n j (0 where n = 0).

    memory_j = m0 + m1 j and compute_j - memory_j = e0 + e1 j, so the sum is the memory sum plus the
    positive part of e0 + e1 j over j = 1..l (``excess``). Where e0 + e1 j is clearly negative at both
    ends (a margin far above rounding), the reference's count of positive terms is 0 and its excess is
    exactly +-0.0, so it is skipped (the memory-bound case, i.e. nearly always for a small draft model);
    the rest get the general count.
    """
    m0 = (draft.weight_bytes + draft.kv_bytes_per_token * ctx) * draft.seconds_per_byte
    m1 = draft.kv_bytes_per_token * n * draft.seconds_per_byte
    decode = draft.overhead + m0
    decode *= l
    steps = m1 * l
    steps *= l + 1
    steps /= 2
    decode += steps  # l (t0 + m0) + m1 l (l + 1) / 2, the reference's operations in its order
    # e0 + e1 j = n (p + j b) + ctx b - c (p: compute per token, b: compute - memory per context token,
    # c: weight read time); over n in [0, n_max] and ctx in [0, ctx_max] it is at most `bound`.
    p = draft.flops_per_token * draft.seconds_per_flop
    b = draft.attention_flops * draft.seconds_per_flop - draft.kv_bytes_per_token * draft.seconds_per_byte
    c = draft.weight_bytes * draft.seconds_per_byte
    n_max, ctx_max = float(n.max(initial=0.0)), float(ctx.max(initial=0.0))
    bound = n_max * max(p + b, p + l * b, 0.0) + max(b, 0.0) * ctx_max - c
    if bound >= -1e-6 * (c + n_max * (abs(p) + l * abs(b)) + ctx_max * abs(b)):  # not surely memory-bound
        e0 = (draft.flops_per_token * n + draft.attention_flops * ctx) * draft.seconds_per_flop - m0
        e1 = draft.attention_flops * n * draft.seconds_per_flop - m1
        margin = 1e-9 * (np.abs(e0) + l * np.abs(e1))
        mixed = ~((e0 + e1 < -margin) & (e0 + l * e1 < -margin)) & (n > 0)
        if mixed.any():
            decode[mixed] += _excess(e0[mixed], e1[mixed], l)
    decode[n <= 0] = 0.0
    return decode


def _excess(e0: np.ndarray, e1: np.ndarray, l: int) -> np.ndarray:
    """Sum over j = 1..l of max(e0 + e1 j, 0), by the range of j where e0 + e1 j > 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        crossing = -e0 / e1  # e0 + e1 j > 0 for j above (e1 > 0) or below (e1 < 0) the crossing
    low = np.where(e1 > 0, np.clip(np.floor(crossing) + 1, 1, l + 1), 1.0)
    high = np.where(e1 < 0, np.clip(np.ceil(crossing) - 1, 0, l), float(l))
    flat = e1 == 0
    low = np.where(flat, np.where(e0 > 0, 1.0, l + 1.0), low)
    high = np.where(flat, float(l), high)
    count = np.maximum(high - low + 1, 0.0)
    return count * e0 + e1 * (low + high) * count / 2
