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
        verify = target.pass_time(n, ctx, ctx)
        verify[..., 0] = target.pass_time(prompt, prompt_sq, prompt)
        zeros = np.zeros_like(verify)
        return RoundTimes(zeros, zeros, verify)
    # Draft: l single-token decode passes (pass j sees the context grown by j drafts); round 0 first
    # prefills the prompt on the SBS.
    draft_time = _draft_passes(draft, n, ctx, l)
    draft_time[..., 0] += draft.pass_time(prompt, prompt_sq, prompt)
    fronthaul_time = np.where(
        n > 0, fronthaul.latency + n * l * fronthaul.draft_token_bits / fronthaul.rate, 0.0)
    # Verify: one pass over the l drafts plus the last accepted token (q = l + 1 on a context of
    # ctx - 1), or, in round 0, over the prompt and the drafts (q = I + l on an empty cache).
    verify = target.pass_time(n * (l + 1), (l + 1) * (ctx + n * l), ctx + n * l)
    n0 = n[..., 0]
    verify[..., 0] = target.pass_time(prompt + n0 * l, prompt_sq + 2 * l * prompt + n0 * l * l, prompt + n0 * l)
    return RoundTimes(draft_time, fronthaul_time, verify)


def _draft_passes(draft: PassCost, n: np.ndarray, ctx: np.ndarray, l: int) -> np.ndarray:
    """Sum over j = 1..l of the draft pass on n sequences with context ctx + n j (0 where n = 0).

    Compute and memory time are both affine in j, so where one of them wins at j = 1 and at j = l it wins
    throughout and the sum has a closed form; only rounds where they cross are summed pass by pass.
    """
    t0, spf, spb = draft.overhead, draft.seconds_per_flop, draft.seconds_per_byte
    first, last = ctx + n, ctx + n * l
    tokens = draft.flops_per_token * n
    c1, cl = (tokens + draft.attention_flops * first) * spf, (tokens + draft.attention_flops * last) * spf
    m1, ml = (draft.weight_bytes + draft.kv_bytes_per_token * first) * spb, \
        (draft.weight_bytes + draft.kv_bytes_per_token * last) * spb
    memory_bound = (m1 >= c1) & (ml >= cl)
    work = l * ctx + n * (l * (l + 1) / 2)  # sum over j of ctx + n j
    total = np.where(memory_bound, l * t0 + (l * draft.weight_bytes + draft.kv_bytes_per_token * work) * spb,
                     l * t0 + (l * tokens + draft.attention_flops * work) * spf)
    mixed = ~memory_bound & ~((c1 >= m1) & (cl >= ml)) & (n > 0)
    if mixed.any():
        j = np.arange(1, l + 1, dtype=float)
        grown = ctx[mixed][:, None] + n[mixed][:, None] * j
        total[mixed] = draft.pass_time(n[mixed][:, None], grown, grown).sum(axis=-1)
    return np.where(n > 0, total, 0.0)


def pipeline_schedule(times_a: RoundTimes, active_a, times_b: RoundTimes,
                      active_b) -> tuple[Schedule, Schedule]:
    """Run the A, B, A, B, ... recursion over rounds; inputs broadcast over leading axes."""
    if np.ndim(active_a) == 1:
        return _schedule_one(times_a, active_a, times_b, active_b)
    return _schedule_many(times_a, active_a, times_b, active_b)


def _schedule_one(times_a, active_a, times_b, active_b) -> tuple[Schedule, Schedule]:
    # One batch: the round loop on Python floats is an order of magnitude faster than on 0-d arrays.
    # _schedule_many is the same recursion; tests check that both agree.
    rows = np.array(_schedule_rows(times_a, active_a, times_b, active_b), dtype=float).reshape(8, -1)
    return Schedule(*rows[0:4]), Schedule(*rows[4:8])


def _schedule_rows(times_a, active_a, times_b, active_b) -> list[list[float]]:
    """The A, B, A, B, ... recursion on Python floats: 8 lists (draft start/end, verify start/end of A, then B).

    This loop is the single env's hot path, so it is written for speed: conditional expressions rather
    than max(), preallocated lists, and two phases. While both micro-batches run they take turns; once
    one has finished (a finished micro-batch never restarts), the other runs alone, and then each of its
    rounds starts when its previous verify ends, so its times are running sums (same additions, same
    order: the same floats). A finished micro-batch repeats its last verify end.
    """
    draft_a, fronthaul_a, verify_a, on_a, draft_b, fronthaul_b, verify_b, on_b = (
        x if isinstance(x, list) else np.asarray(x).tolist()
        for x in (times_a.draft, times_a.fronthaul, times_a.verify, active_a,
                  times_b.draft, times_b.fronthaul, times_b.verify, active_b))
    rounds = len(draft_a)
    rows_a = [[0.0] * rounds for _ in range(4)]
    rows_b = [[0.0] * rounds for _ in range(4)]
    a_ds, a_de, a_vs, a_ve = rows_a
    b_ds, b_de, b_vs, b_ve = rows_b
    last_a = sum(1 for x in on_a if x)  # active rounds form a prefix
    last_b = sum(1 for x in on_b if x)
    sbs_free = mbs_free = end_a = end_b = 0.0  # end_x: last verify end of micro-batch x
    both = min(last_a, last_b)
    for r in range(both):
        start = sbs_free if sbs_free > end_a else end_a
        a_ds[r] = start
        sbs_free = a_de[r] = start + draft_a[r]
        ready = sbs_free + fronthaul_a[r]
        verify = a_vs[r] = mbs_free if mbs_free > ready else ready
        mbs_free = end_a = a_ve[r] = verify + verify_a[r]
        start = sbs_free if sbs_free > end_b else end_b
        b_ds[r] = start
        sbs_free = b_de[r] = start + draft_b[r]
        ready = sbs_free + fronthaul_b[r]
        verify = b_vs[r] = mbs_free if mbs_free > ready else ready
        mbs_free = end_b = b_ve[r] = verify + verify_b[r]
    if last_a > both:
        alone, rows, draft, fronthaul, verify_time, end, last = 0, rows_a, draft_a, fronthaul_a, verify_a, end_a, last_a
    else:
        alone, rows, draft, fronthaul, verify_time, end, last = 1, rows_b, draft_b, fronthaul_b, verify_b, end_b, last_b
    ds, de, vs, ve = rows
    if both < last:  # the first round alone may still wait for the SBS or the MBS
        start = sbs_free if sbs_free > end else end
        ds[both] = start
        sbs_free = de[both] = start + draft[both]
        ready = sbs_free + fronthaul[both]
        verify = vs[both] = mbs_free if mbs_free > ready else ready
        end = ve[both] = verify + verify_time[both]
    for r in range(both + 1, last):  # then both nodes are free when it needs them
        ds[r] = end
        de[r] = end = end + draft[r]
        vs[r] = end = end + fronthaul[r]
        ve[r] = end = end + verify_time[r]
    if alone == 0:
        end_a = end
    else:
        end_b = end
    for rows, last, end in ((rows_a, last_a, end_a), (rows_b, last_b, end_b)):
        if last < rounds:
            tail = [end] * (rounds - last)
            for row in rows:
                row[last:] = tail
    return rows_a + rows_b


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
    if prompt_len.ndim == 1 and np.ndim(progress.rounds) == 1:
        return _serve_one(draft, target, fronthaul, prompt_len, output_len, progress, speculation_length, which)
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


def _serve_one(draft: PassCost, target: PassCost, fronthaul: FronthaulConfig, prompt_len: np.ndarray, output_len,
               progress: TaskProgress, speculation_length: int, which: np.ndarray) -> BatchService:
    """:func:`serve_batch` of one batch: loads aggregated in numpy, rounds timed and scheduled on floats."""
    member = np.stack([which == 0, which == 1])  # (2, n)
    rounds = progress.rounds
    active = member[:, :, None] & (np.arange(progress.max_rounds) < rounds[:, None])  # (2, n, R)
    started = member & (rounds > 0)
    count = active.sum(axis=-2).astype(float).tolist()
    context = np.where(active, prompt_len[:, None] + progress.produced_before, 0.0).sum(axis=-2).tolist()
    prompt = np.where(started, prompt_len, 0.0).sum(axis=-1).tolist()
    prompt_square = np.where(started, prompt_len**2, 0.0).sum(axis=-1).tolist()
    loads = [(count[x], context[x], prompt[x], prompt_square[x]) for x in (0, 1)]
    return _serve_loads(draft, target, fronthaul, loads, speculation_length, which.tolist(), rounds.tolist(),
                        float(np.sum(output_len)), float(progress.accepted_drafts.sum()))


def serve_expected_one(draft: PassCost, target: PassCost, fronthaul: FronthaulConfig, prompt_len: list[float],
                       output_len: list[int], rounds: list[int], tokens_per_round: list[float],
                       speculation_length: int, pipelined: bool = True) -> BatchService:
    """:func:`serve_batch` of one batch in expected mode, on Python floats (the single env's hot path).

    ``rounds`` and ``tokens_per_round`` come from :func:`sdedge_gym.speculation.expected_rounds_one`.
    Task k's context before round r is I_k + r L_k, so a micro-batch's context is kept as running sums
    of I and L over its active tasks, updated as tasks leave: O(n + R) work instead of the (n, R) table.
    """
    which = _micro_batch_list(len(prompt_len), pipelined)
    max_rounds = max(max(rounds, default=1), 1)
    loads = []
    for x in (0, 1):
        tasks = sorted((r, i, t) for r, i, t, w in zip(rounds, prompt_len, tokens_per_round, which, strict=True)
                       if w == x and r > 0)
        prompt_total = prompt_sum = sum(i for _, i, _ in tasks)
        prompt_square = sum(i * i for _, i, _ in tasks)
        token_sum = sum(t for _, _, t in tasks)
        active, context = [], []
        begin = 0
        for count, (leave, prompt, tokens) in zip(range(len(tasks), 0, -1), tasks, strict=True):
            # rounds begin..leave-1 run with `count` tasks; then this task leaves
            active.extend([float(count)] * (leave - begin))
            context.extend([prompt_sum + r * token_sum for r in range(begin, leave)])
            prompt_sum -= prompt
            token_sum -= tokens
            begin = max(begin, leave)
        active.extend([0.0] * (max_rounds - begin))
        context.extend([0.0] * (max_rounds - begin))
        loads.append((active, context, prompt_total, prompt_square))
    accepted = sum(max(o - r, 0) for o, r in zip(output_len, rounds, strict=True))
    return _serve_loads(draft, target, fronthaul, loads, speculation_length, which, rounds,
                        float(sum(output_len)), float(accepted))


def serve_sampled_one(draft: PassCost, target: PassCost, fronthaul: FronthaulConfig, prompt_len: list[float],
                      output_len: list[int], rounds: list[int], produced_before: list[list[int]],
                      accepted_drafts: list[int], speculation_length: int, pipelined: bool = True) -> BatchService:
    """:func:`serve_batch` of one batch in sampled mode, from :func:`sdedge_gym.speculation.sampled_rounds_one`."""
    which = _micro_batch_list(len(prompt_len), pipelined)
    max_rounds = max(max(rounds, default=1), 1)
    loads = []
    for x in (0, 1):
        active = [0.0] * max_rounds
        context = [0.0] * max_rounds
        prompt_sum = prompt_square = 0.0
        for i, produced, w in zip(prompt_len, produced_before, which, strict=True):
            if w != x or not produced:
                continue
            prompt_sum += i
            prompt_square += i * i
            for r, p in enumerate(produced):
                active[r] += 1.0
                context[r] += i + p
        loads.append((active, context, prompt_sum, prompt_square))
    return _serve_loads(draft, target, fronthaul, loads, speculation_length, which, rounds,
                        float(sum(output_len)), float(sum(accepted_drafts)))


def _micro_batch_list(batch_size: int, pipelined: bool) -> list[int]:
    half = (batch_size + 1) // 2 if pipelined else batch_size
    return [0 if k < half else 1 for k in range(batch_size)]


def _serve_loads(draft: PassCost, target: PassCost, fronthaul: FronthaulConfig, loads: list, speculation_length: int,
                 which: list[int], rounds: list[int], tokens: float, accepted: float) -> BatchService:
    times = [_round_times_one(draft, target, fronthaul, *load, speculation_length) for load in loads]
    rows = _schedule_rows(RoundTimes(*times[0]), loads[0][0], RoundTimes(*times[1]), loads[1][0])
    table = np.array(rows, dtype=float).reshape(8, -1)
    ends = (rows[3], rows[7])
    completion = [ends[x][r - 1] if r > 0 else 0.0 for x, r in zip(which, rounds, strict=True)]
    return BatchService(
        completion=np.array(completion, dtype=float),
        duration=np.float64(max(ends[0][-1], ends[1][-1])),
        tokens=np.float64(tokens),
        accepted_drafts=np.float64(accepted),
        micro_batch=np.array(which, dtype=np.int64),
        schedules=(Schedule(*table[0:4]), Schedule(*table[4:8])),
    )


def _pass_one(cost: PassCost, new_tokens: float, attention_work: float, kv_tokens: float) -> float:
    """:meth:`PassCost.pass_time` on Python floats."""
    if new_tokens <= 0:
        return 0.0
    compute = (cost.flops_per_token * new_tokens + cost.attention_flops * attention_work) * cost.seconds_per_flop
    memory = (cost.weight_bytes + cost.kv_bytes_per_token * kv_tokens) * cost.seconds_per_byte
    return cost.overhead + (compute if compute > memory else memory)


def _round_times_one(draft: PassCost, target: PassCost, fronthaul: FronthaulConfig, active: list[float],
                     context: list[float], prompt: float, prompt_square: float, speculation_length: int
                     ) -> tuple[list[float], list[float], list[float]]:
    """:func:`round_times` of one micro-batch on Python floats: lists D, F, V over rounds.

    The target's pass is inlined: this loop runs once per round of every committed batch.
    """
    l = speculation_length
    rounds = len(active)
    draft_time, fronthaul_time, verify = [0.0] * rounds, [0.0] * rounds, [0.0] * rounds
    v_t0, v_spf, v_spb = target.overhead, target.seconds_per_flop, target.seconds_per_byte
    v_token, v_attention, v_weights, v_kv = (target.flops_per_token, target.attention_flops, target.weight_bytes,
                                             target.kv_bytes_per_token)
    if l == 0:
        for r in range(1, rounds):
            n, ctx = active[r], context[r]
            if n > 0:
                compute = (v_token * n + v_attention * ctx) * v_spf
                memory = (v_weights + v_kv * ctx) * v_spb
                verify[r] = v_t0 + (compute if compute > memory else memory)
        verify[0] = _pass_one(target, prompt, prompt_square, prompt)
        return draft_time, fronthaul_time, verify
    # The l draft passes of a round read contexts ctx + n j, j = 1..l: compute and memory time are both
    # affine in j, so when one of them wins at both ends it wins throughout and the sum has a closed form.
    t0, spf, spb = draft.overhead, draft.seconds_per_flop, draft.seconds_per_byte
    per_token, attention, weights, kv = draft.flops_per_token, draft.attention_flops, draft.weight_bytes, \
        draft.kv_bytes_per_token
    steps = l * (l + 1) / 2  # sum of j
    q = l + 1
    latency, draft_bits = fronthaul.latency, l * fronthaul.draft_token_bits / fronthaul.rate
    for r in range(1, rounds):
        n = active[r]
        if n <= 0:
            continue
        ctx = context[r]
        first, grown = ctx + n, ctx + n * l
        tokens = per_token * n
        c1, cl = (tokens + attention * first) * spf, (tokens + attention * grown) * spf
        m1, ml = (weights + kv * first) * spb, (weights + kv * grown) * spb
        if m1 >= c1 and ml >= cl:
            draft_time[r] = l * t0 + (l * weights + kv * (l * ctx + n * steps)) * spb
        elif c1 >= m1 and cl >= ml:
            draft_time[r] = l * t0 + (l * tokens + attention * (l * ctx + n * steps)) * spf
        else:
            draft_time[r] = sum(_pass_one(draft, n, ctx + n * j, ctx + n * j) for j in range(1, l + 1))
        fronthaul_time[r] = latency + n * draft_bits
        compute = (v_token * (n * q) + v_attention * (q * grown)) * v_spf
        memory = (v_weights + v_kv * grown) * v_spb
        verify[r] = v_t0 + (compute if compute > memory else memory)
    # Round 0 prefills the prompt: on the SBS before drafting, on the MBS together with the drafts.
    n, ctx = active[0], context[0]
    if n > 0:
        draft_time[0] = sum(_pass_one(draft, n, ctx + n * j, ctx + n * j) for j in range(1, l + 1)) \
            + _pass_one(draft, prompt, prompt_square, prompt)
        fronthaul_time[0] = latency + n * draft_bits
    verify[0] = _pass_one(target, prompt + n * l, prompt_square + 2 * l * prompt + n * l * l, prompt + n * l)
    return draft_time, fronthaul_time, verify


def completion_offsets(schedule_a: Schedule, schedule_b: Schedule, which, rounds):
    """verify_end of each task's micro-batch at the task's last round (0 for tasks with no round)."""
    ends = np.where(np.asarray(which)[..., None] == 0, schedule_a.verify_end[..., None, :],
                    schedule_b.verify_end[..., None, :])  # (..., n, R)
    last_round = np.maximum(rounds - 1, 0)[..., None]
    offsets = np.take_along_axis(ends, last_round, axis=-1)[..., 0]
    return np.where(rounds > 0, offsets, 0.0)
