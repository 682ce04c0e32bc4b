"""The compiled serving kernel: one implementation of a batch's service for the env, the vector env and the oracle.

Everything a committed batch costs is computed here, in ``numba.njit(cache=True)`` functions on flat
arrays: the uplink slot and band split (the closed-form equal-finish split for both rate models, or an
explicit split), the batch's round loads in expected or sampled acceptance, the round times (roofline
passes), and the max-plus recursion of the two pipelined micro-batches. The single env calls
:func:`commit` for one batch, the vector env :func:`commit_many` for all its envs in one call, and the
oracle's segment tables :func:`segment_service` over every segment of an episode.

The readable numpy implementation (:mod:`sdedge_gym.service`, :mod:`sdedge_gym.uplink`,
:mod:`sdedge_gym.speculation`) is the specification: the tests hold this kernel to it on random
instances to a stated tolerance (the same formulas, but compiled code may fuse or reorder float
operations, and ``math.log`` may differ from numpy's SIMD ``log`` by an ulp). docs/MODEL.md says which
function implements which equation.

A scenario's constants travel as one float64 vector, :func:`scenario_parameters`, so that a call unboxes
one array instead of a dozen objects.
"""

from __future__ import annotations

import math

import numpy as np
from numba import literally, njit, prange

from sdedge_gym.config import ScenarioConfig
from sdedge_gym.roofline import PassCost

# Layout of the parameter vector: a node's seven roofline coefficients at DRAFT and TARGET.
DRAFT, TARGET = 0, 7
_T0, _SPF, _SPB, _FLOPS_PER_TOKEN, _ATTENTION, _WEIGHTS, _KV = range(7)
FRONTHAUL_LATENCY, FRONTHAUL_TOKEN_TIME = 14, 15  # s, and s per draft token (bits / rate)
PIPELINING, BANDWIDTH, SHANNON = 16, 17, 18  # flags are 0.0 / 1.0
# Where a node's measured pass-time profile starts in the vector (0: the node is timed by its roofline).
# A profile is stored as [nb, nq, nc, batch axis, new-tokens axis, context axis, seconds (nb x nq x nc)].
PROFILE_AT_DRAFT, PROFILE_AT_TARGET = 19, 20
PROFILE_AT = {DRAFT: PROFILE_AT_DRAFT, TARGET: PROFILE_AT_TARGET}
NUM_PARAMETERS = 21

# Shared with the numpy specification (same stopping rules, so the same roots to rounding).
CEIL_SLACK = 1e-9
ROOT_RTOL = 1e-14
INNER_RTOL = 1e-9
MAX_ITERATIONS = 100
LN2 = math.log(2.0)


def scenario_parameters(config: ScenarioConfig, draft: PassCost, target: PassCost) -> np.ndarray:
    """The kernel's float64 parameter vector of a scenario (see the layout constants above)."""
    p = np.zeros(NUM_PARAMETERS)
    for offset, cost in ((DRAFT, draft), (TARGET, target)):
        p[offset: offset + 7] = (cost.overhead, cost.seconds_per_flop, cost.seconds_per_byte, cost.flops_per_token,
                                 cost.attention_flops, cost.weight_bytes, cost.kv_bytes_per_token)
    p[FRONTHAUL_LATENCY] = config.fronthaul.latency
    p[FRONTHAUL_TOKEN_TIME] = config.fronthaul.draft_token_bits / config.fronthaul.rate
    p[PIPELINING] = 1.0 if config.pipelining else 0.0
    p[BANDWIDTH] = config.uplink.bandwidth
    p[SHANNON] = 1.0 if config.uplink.rate_model == "shannon" else 0.0
    parts = [p]
    size = NUM_PARAMETERS
    for node, cost in ((DRAFT, draft), (TARGET, target)):
        if cost.profile is not None:
            profile = cost.profile
            block = np.concatenate([[len(profile.batch), len(profile.new_tokens), len(profile.context)],
                                    profile.batch, profile.new_tokens, profile.context, profile.seconds.ravel()])
            p[PROFILE_AT[node]] = size
            parts.append(block)
            size += block.size
    p = np.concatenate(parts)
    p.setflags(write=False)
    return p


# ---------------------------------------------------------------------------------------------- uplink


@njit(cache=True)
def _log_snr(c, u):
    """u = ln(1 + a/b) solving u = ln(1 + u/c), c in (0, 1), by Newton from ``u`` (uplink._log_snr_root)."""
    if u <= 1.0 - c:  # left of the maximum of ln(1 + u/c) - u: restart right of the root
        u = 2.0 * math.log1p(1.0 / c) + 1.0
    for _ in range(MAX_ITERATIONS):
        delta = (math.log1p(u / c) - u) / (1.0 / (c + u) - 1.0)
        u -= delta
        if abs(delta) <= INNER_RTOL * u:
            break
    return u


@njit(cache=True)
def shannon_split(payload, channel, total_bandwidth, bandwidth, kappa, log_snr):
    """The equal-finish split under r = b log2(1 + a/b): writes ``bandwidth`` (Hz), returns the slot (s).

    A safeguarded Newton on the common finish time T, bracketed by the slowest user's infinite-band time
    and the uniform split's slot (uplink._shannon_closed_form is the specification). Zero payload is
    padding and gets no band. ``kappa`` and ``log_snr`` are scratch rows of at least n entries.
    """
    n = payload.shape[0]
    users = 0
    for k in range(n):
        bandwidth[k] = 0.0
        if payload[k] > 0:
            users += 1
    if users == 0:
        return 0.0
    if users == 1:  # the whole band to the one user
        for k in range(n):
            if payload[k] > 0:
                bandwidth[k] = total_bandwidth
                return payload[k] / (total_bandwidth * math.log2(1.0 + channel[k] / total_bandwidth))
    share = total_bandwidth / users
    # kappa: each user's slot at infinite bandwidth, S ln2 / a; log_snr: u = ln(1 + a/b) at the current T
    lower = 0.0
    upper = 0.0
    guess = 0.0
    for k in range(n):
        if payload[k] > 0:
            kappa[k] = payload[k] * LN2 / channel[k]
            lower = max(lower, kappa[k])
            upper = max(upper, payload[k] / (share * math.log2(1.0 + channel[k] / share)))
            guess += payload[k] / math.log2(1.0 + channel[k] * users / total_bandwidth)
            log_snr[k] = math.log1p(channel[k] / share)  # u at the equal split: a warm start
    guess /= total_bandwidth
    finish = guess if lower < guess < upper else upper
    for _ in range(MAX_ITERATIONS):
        need = 0.0
        slope = 0.0
        for k in range(n):
            if payload[k] > 0:
                c = kappa[k] / finish
                u = _log_snr(c, log_snr[k])
                log_snr[k] = u
                x = math.expm1(u)
                need += channel[k] / x
                slope += channel[k] * c / (x * (1.0 / (1.0 + x) - c) * finish)
        excess = need - total_bandwidth
        if excess > 0:
            lower = finish
        else:
            upper = finish
        step = finish - excess / slope * (need / total_bandwidth) if slope != 0.0 else math.nan
        converged = abs(step - finish) <= ROOT_RTOL * finish
        if not (converged or lower < step < upper):
            step = 0.5 * (lower + upper)
        done = converged or upper - lower <= ROOT_RTOL * upper
        finish = step
        if done:
            break
    total = 0.0
    for k in range(n):
        if payload[k] > 0:
            log_snr[k] = _log_snr(kappa[k] / finish, log_snr[k])
            bandwidth[k] = channel[k] / math.expm1(log_snr[k])
            total += bandwidth[k]
    # Renormalise the last rounding error away so the split uses exactly B, and report the slot this very
    # split achieves, so that callers never see a slot the shares do not deliver.
    slot = 0.0
    for k in range(n):
        if payload[k] > 0:
            bandwidth[k] = bandwidth[k] * total_bandwidth / total
            slot = max(slot, payload[k] / (bandwidth[k] * math.log2(1.0 + channel[k] / bandwidth[k])))
    return slot


@njit(cache=True)
def fixed_snr_split(payload, efficiency, total_bandwidth, bandwidth):
    """The equal-finish split under r = b s: b_k = B (S_k / s_k) / sum_j (S_j / s_j); returns the slot."""
    total = 0.0
    for k in range(payload.shape[0]):
        if payload[k] > 0:
            total += payload[k] / efficiency[k]
    for k in range(payload.shape[0]):
        bandwidth[k] = total_bandwidth * (payload[k] / efficiency[k]) / total if payload[k] > 0 else 0.0
    return total / total_bandwidth


@njit(cache=True)
def slot_of_split(payload, channel, bandwidth, shannon):
    """max_k S_k / r_k(b_k) over users with a payload (inf if one of them has no band)."""
    slot = 0.0
    for k in range(payload.shape[0]):
        if payload[k] > 0:
            b = bandwidth[k]
            if b <= 0:
                return math.inf
            rate = b * math.log2(1.0 + channel[k] / b) if shannon else b * channel[k]
            slot = max(slot, payload[k] / rate)
    return slot


@njit(cache=True)
def uplink_slot(p, payload, channel, bandwidth, explicit, work):
    """The batch's slot: the closed-form split written into ``bandwidth``, or ``explicit`` shares (Hz) used."""
    shannon = p[SHANNON] > 0
    if explicit:
        return slot_of_split(payload, channel, bandwidth, shannon)
    if shannon:
        return shannon_split(payload, channel, p[BANDWIDTH], bandwidth, work[_KAPPA], work[_LOG_SNR])
    return fixed_snr_split(payload, channel, p[BANDWIDTH], bandwidth)


# ---------------------------------------------------------------------------------------------- service


@njit(cache=True)
def _bracket(p, start, size, value):
    """(i, w): value = (1 - w) axis[i] + w axis[i + 1] on the axis p[start:start+size], clamped to its ends."""
    if size == 1 or value <= p[start]:
        return 0, 0.0
    if value >= p[start + size - 1]:
        return size - 2, 1.0
    i = 0
    while p[start + i + 1] < value:
        i += 1
    return i, (value - p[start + i]) / (p[start + i + 1] - p[start + i])


@njit(cache=True)
def _profile_time(p, at, batch, new_tokens, context):
    """Multilinear interpolation of the profile stored at p[at:] (pass_profile.profile_pass_time).

    Queries are clamped to the grid; the scenario's coverage check makes sure they fall inside it.
    """
    nb, nq, nc = int(p[at]), int(p[at + 1]), int(p[at + 2])
    axes = at + 3
    i, wi = _bracket(p, axes, nb, batch)
    j, wj = _bracket(p, axes + nb, nq, new_tokens)
    k, wk = _bracket(p, axes + nb + nq, nc, context)
    table = axes + nb + nq + nc
    total = 0.0
    for a in range(2):
        weight_a = wi if a else 1.0 - wi
        ia = min(i + a, nb - 1)
        for b in range(2):
            weight_b = wj if b else 1.0 - wj
            jb = min(j + b, nq - 1)
            for c in range(2):
                weight = weight_a * weight_b * (wk if c else 1.0 - wk)
                if weight != 0.0:
                    total += weight * p[table + (ia * nq + jb) * nc + min(k + c, nc - 1)]
    return total


@njit(cache=True)
def _pass(p, node, new_tokens, attention_work, kv_tokens):
    """Roofline time of one pass from the aggregates N, A, T (PassCost.pass_time); 0 when N == 0."""
    if new_tokens <= 0:
        return 0.0
    compute = (p[node + _FLOPS_PER_TOKEN] * new_tokens + p[node + _ATTENTION] * attention_work) * p[node + _SPF]
    memory = (p[node + _WEIGHTS] + p[node + _KV] * kv_tokens) * p[node + _SPB]
    return p[node + _T0] + max(compute, memory)


@njit(cache=True)
def _node_pass(p, profiled, node, batch, new_tokens, attention_work, kv_tokens):
    """One pass on ``node``: :func:`_profiled_pass` in a scenario with a profile, else the roofline."""
    if profiled:
        return _profiled_pass(p, node, batch, new_tokens, attention_work, kv_tokens)
    return _pass(p, node, new_tokens, attention_work, kv_tokens)


@njit(cache=True)
def _profiled_pass(p, node, batch, new_tokens, attention_work, kv_tokens):
    """A pass of ``batch`` sequences on a node timed by its measured profile: the table at q = N / n new
    tokens on a context of c = T / n - q (PassCost.pass_time with a profile); 0 when N == 0."""
    if new_tokens <= 0:
        return 0.0
    q = new_tokens / batch
    at = int(p[PROFILE_AT_TARGET if node == TARGET else PROFILE_AT_DRAFT])
    if at == 0:  # this node has no profile (the other one has): its roofline
        return _pass(p, node, new_tokens, attention_work, kv_tokens)
    return _profile_time(p, at, batch, q, max(kv_tokens / batch - q, 0.0))


@njit(cache=True)
def _draft_decode(p, n, ctx, l, profiled):
    """Sum over j = 1..l of the draft's decode pass on n sequences of context ctx + n j (service._draft_passes).

    Compute and memory time are both affine in j: where one wins at j = 1 and at j = l it wins throughout
    and the sum has a closed form; otherwise (and always for a node timed by a measured profile, whose
    roofline coefficients are NaN) the passes are summed one by one.
    """
    t0, spf, spb = p[DRAFT + _T0], p[DRAFT + _SPF], p[DRAFT + _SPB]
    weights, kv, attention = p[DRAFT + _WEIGHTS], p[DRAFT + _KV], p[DRAFT + _ATTENTION]
    tokens = p[DRAFT + _FLOPS_PER_TOKEN] * n
    first, last = ctx + n, ctx + n * l
    c1, cl = (tokens + attention * first) * spf, (tokens + attention * last) * spf
    m1, ml = (weights + kv * first) * spb, (weights + kv * last) * spb
    work = l * ctx + n * (l * (l + 1) / 2)  # sum over j of ctx + n j
    if not (profiled and p[PROFILE_AT_DRAFT] > 0.0):
        if m1 >= c1 and ml >= cl:
            return l * t0 + (l * weights + kv * work) * spb
        if c1 >= m1 and cl >= ml:
            return l * t0 + (l * tokens + attention * work) * spf
    total = 0.0
    for j in range(1, l + 1):
        grown = ctx + n * j
        total += _node_pass(p, profiled, DRAFT, n, n, grown, grown)
    return total


@njit(cache=True)
def round_times(p, active, context, rounds, prompt, prompt_square, l, draft, fronthaul, verify):
    """D, F and V of rounds 0..rounds-1 of a micro-batch at speculation length l (service.round_times).

    The pass function is a compile-time argument of :func:`_round_times_with`: the roofline version has
    no trace of the profile lookup (which, inlined, would double its cost).
    """
    if p[PROFILE_AT_DRAFT] > 0.0 or p[PROFILE_AT_TARGET] > 0.0:
        _round_times_with(p, active, context, rounds, prompt, prompt_square, l, draft, fronthaul, verify, True)
    else:
        _round_times_with(p, active, context, rounds, prompt, prompt_square, l, draft, fronthaul, verify, False)


@njit(cache=True)
def _round_times_with(p, active, context, rounds, prompt, prompt_square, l, draft, fronthaul, verify, profiled):
    """round_times, compiled once per value of ``profiled`` (a compile-time constant: ``literally``)."""
    literally(profiled)
    for r in range(rounds):
        n, ctx = active[r], context[r]
        if n <= 0:
            draft[r] = fronthaul[r] = verify[r] = 0.0
            continue
        if l == 0:  # autoregressive decoding on the MBS: round 0 prefills, later rounds add one token
            draft[r] = fronthaul[r] = 0.0
            verify[r] = (_node_pass(p, profiled, TARGET, n, prompt, prompt_square, prompt) if r == 0
                         else _node_pass(p, profiled, TARGET, n, n, ctx, ctx))
            continue
        draft[r] = _draft_decode(p, n, ctx, l, profiled)
        fronthaul[r] = p[FRONTHAUL_LATENCY] + n * l * p[FRONTHAUL_TOKEN_TIME]
        if r == 0:  # the prompt is prefilled on the SBS before drafting and verified with the drafts
            draft[r] += _node_pass(p, profiled, DRAFT, n, prompt, prompt_square, prompt)
            verify[r] = _node_pass(p, profiled, TARGET, n, prompt + n * l, prompt_square + 2 * l * prompt + n * l * l,
                              prompt + n * l)
        else:
            verify[r] = _node_pass(p, profiled, TARGET, n, n * (l + 1), (l + 1) * (ctx + n * l), ctx + n * l)


@njit(cache=True)
def pipeline(draft_a, fronthaul_a, verify_a, rounds_a, draft_b, fronthaul_b, verify_b, rounds_b, end_a, end_b):
    """The A, B, A, B, ... max-plus recursion (service.pipeline_schedule): verify ends per round.

    Micro-batch X runs rounds 0..rounds_x-1 (active rounds form a prefix). ``end_a[r]`` / ``end_b[r]``
    receive the micro-batch's verify end after round r (a finished micro-batch keeps its last). Returns
    the batch's duration, the last verify end.
    """
    sbs = mbs = last_a = last_b = 0.0
    for r in range(max(rounds_a, rounds_b)):
        if r < rounds_a:
            start = max(sbs, last_a)
            sbs = start + draft_a[r]
            mbs = last_a = max(mbs, sbs + fronthaul_a[r]) + verify_a[r]
        end_a[r] = last_a
        if r < rounds_b:
            start = max(sbs, last_b)
            sbs = start + draft_b[r]
            mbs = last_b = max(mbs, sbs + fronthaul_b[r]) + verify_b[r]
        end_b[r] = last_b
    return max(last_a, last_b)


@njit(cache=True)
def task_rounds(output, alpha, runs, row, l, sampled, produced):
    """Rounds of one task and its tokens before each round (``produced[r]``); returns (rounds, accepted).

    Expected mode: L = (1 - alpha^(l+1)) / (1 - alpha) tokens per round, ceil(O / L) rounds, min(O, r L)
    tokens before round r (speculation.task_progress). Sampled mode (l >= 1): the walk over the task's
    acceptance runs, A = min(l, run_p) drafts accepted and A + 1 tokens per round, truncated at O.
    """
    if output <= 0:
        return 0, 0.0
    if not sampled or l == 0:
        tokens = (1.0 - math.pow(alpha, float(l + 1))) / (1.0 - alpha)
        rounds = math.ceil(output / tokens - CEIL_SLACK)
        for r in range(rounds):
            produced[r] = min(float(output), r * tokens)
        return rounds, float(max(output - rounds, 0))
    last = runs.shape[1] - 1
    position = 0
    taken = 0
    rounds = 0
    while position < output:
        produced[rounds] = position
        rounds += 1
        accept = min(runs[row, min(position, last)], l)
        taken += min(accept, output - position)
        position = min(position + accept + 1, output)
    return rounds, float(taken)


# Rows of the kernel's float workspace (see :func:`workspace`).
_ACTIVE_A, _ACTIVE_B, _CONTEXT_A, _CONTEXT_B, _PRODUCED, _DRAFT_A, _FRONTHAUL_A, _VERIFY_A, _DRAFT_B, \
    _FRONTHAUL_B, _VERIFY_B, _END_A, _END_B, _KAPPA, _LOG_SNR, _ROUNDS = range(16)
WORKSPACE_ROWS = 16


def workspace(config: ScenarioConfig) -> np.ndarray:
    """Scratch memory for one batch of the scenario: the kernel allocates nothing per batch.

    A task needs at most O <= max_new_tokens rounds (every round yields a token), so rows of
    max(max_new_tokens, n_max) entries hold any batch's per-round loads and times and per-user scratch.
    Its contents never carry over from one batch to the next (every entry is written before it is read).
    """
    return np.empty((WORKSPACE_ROWS, max(config.workload.max_new_tokens, config.max_batch, 1)))


@njit(cache=True)
def serve(p, prompt, output, alpha, runs, first, n, l, sampled, completion, work):
    """Serve tasks first..first+n-1 (rows of ``runs`` too) at speculation length l.

    Writes each task's completion offset from the batch's start into ``completion[:n]`` and returns
    (duration, accepted drafts). Micro-batch A holds the first ceil(n/2) tasks (all of them without
    pipelining or with n = 1), B the rest. ``work`` is a :func:`workspace`.
    """
    size_a = (n + 1) // 2 if p[PIPELINING] > 0 else n
    max_rounds = 1
    for k in range(first, first + n):
        max_rounds = max(max_rounds, output[k])
    for row in range(_ACTIVE_A, _CONTEXT_B + 1):
        work[row, :max_rounds] = 0.0
    produced = work[_PRODUCED]
    rounds = work[_ROUNDS]
    prompt_sum_a = prompt_sum_b = prompt_square_a = prompt_square_b = 0.0
    rounds_a = rounds_b = 0
    accepted = 0.0
    for i in range(n):
        k = first + i
        x = 0 if i < size_a else 1
        count, taken = task_rounds(output[k], alpha[k], runs, k, l, sampled, produced)
        rounds[i] = count
        accepted += taken
        if x == 0:
            rounds_a = max(rounds_a, count)
        else:
            rounds_b = max(rounds_b, count)
        if count > 0:
            if x == 0:
                prompt_sum_a += prompt[k]
                prompt_square_a += prompt[k] * prompt[k]
            else:
                prompt_sum_b += prompt[k]
                prompt_square_b += prompt[k] * prompt[k]
        active, context = work[_ACTIVE_A + x], work[_CONTEXT_A + x]
        for r in range(count):
            active[r] += 1.0
            context[r] += prompt[k] + produced[r]
    round_times(p, work[_ACTIVE_A], work[_CONTEXT_A], rounds_a, prompt_sum_a, prompt_square_a, l,
                work[_DRAFT_A], work[_FRONTHAUL_A], work[_VERIFY_A])
    round_times(p, work[_ACTIVE_B], work[_CONTEXT_B], rounds_b, prompt_sum_b, prompt_square_b, l,
                work[_DRAFT_B], work[_FRONTHAUL_B], work[_VERIFY_B])
    duration = pipeline(work[_DRAFT_A], work[_FRONTHAUL_A], work[_VERIFY_A], rounds_a,
                        work[_DRAFT_B], work[_FRONTHAUL_B], work[_VERIFY_B], rounds_b, work[_END_A], work[_END_B])
    for i in range(n):
        count = int(rounds[i])
        completion[i] = work[_END_A if i < size_a else _END_B, count - 1] if count > 0 else 0.0
    return duration, accepted


@njit(cache=True)
def commit(p, prompt, output, alpha, payload, channel, runs, first, n, l, sampled, explicit, bandwidth, completion,
           uplink_end, inference_end, mean_latency_objective, work):
    """One batch of an episode (tasks first..first+n-1 of the (K,) task arrays), from the clocks it starts at.

    The uplink slot follows the previous one (closed-form split, or ``explicit`` shares already in
    ``bandwidth``), the service starts when both the slot and the previous service are done:

        ready = uplink_end + U,  start = max(ready, inference_end),  finish = start + duration,

    and the cost is sum_k C_k / K (mean latency) or finish - inference_end (makespan). Writes
    ``bandwidth[:n]`` (Hz) and ``completion[:n]`` (completion times C_k from the episode start); returns
    (slot, ready, start, finish, cost, accepted drafts, output tokens). ``work`` is a :func:`workspace`.
    """
    slot = uplink_slot(p, payload[first:first + n], channel[first:first + n], bandwidth[:n], explicit, work)
    duration, accepted = serve(p, prompt, output, alpha, runs, first, n, l, sampled, completion, work)
    ready = uplink_end + slot
    start = max(ready, inference_end)
    finish = start + duration
    total = 0.0
    tokens = 0.0
    for i in range(n):
        completion[i] = start + completion[i]
        total += completion[i]
        tokens += output[first + i]
    cost = total / output.shape[0] if mean_latency_objective else finish - inference_end
    return slot, ready, start, finish, cost, accepted, tokens


@njit(cache=True)
def constant_cost_to_go(p, prompt, output, alpha, payload, channel, runs, first, n, l, sampled, bandwidth, completion,
                        uplink_end, inference_end, mean_latency_objective, work):
    """Cost of serving tasks first..K-1 with the constant action (n, l) and the closed-form split, from the clocks.

    The batches are :func:`commit`'s, n clipped to the tasks left as the env clips it; the costs are summed
    as the env's rewards would be (the reference policy's cost to go, :mod:`sdedge_gym.reference`). One call
    per env step instead of one :func:`commit` call per reference batch.
    """
    total = 0.0
    num_tasks = output.shape[0]
    while first < num_tasks:
        size = min(n, num_tasks - first)
        _, ready, _, finish, cost, _, _ = commit(p, prompt, output, alpha, payload, channel, runs, first, size, l,
                                                 sampled, False, bandwidth, completion, uplink_end, inference_end,
                                                 mean_latency_objective, work)
        total += cost
        uplink_end, inference_end = ready, finish
        first += size
    return total


# Columns of commit_many's per-env result table.
SLOT, DURATION, ACCEPTED, TOKENS, COST, WAIT, SERVICE_TIME = range(7)
NUM_RESULTS = 7


@njit(cache=True)
def _commit_env(p, prompt, output, alpha, payload, channel, runs, e, size, l, sampled, explicit, bandwidth,
                completion, results, next_task, uplink_end, inference_end, completion_sum, completion_max,
                tokens_total, mean_latency_objective, work):
    """:func:`commit_many`'s work for env e: :func:`commit` on its rows, then its clocks and running KPIs."""
    n = size[e]
    first = next_task[e]
    runs_e = runs[e] if sampled else runs[0]
    slot, ready, start, finish, cost, accepted, tokens = commit(
        p, prompt[e], output[e], alpha[e], payload[e], channel[e], runs_e, first, n, l[e], sampled, explicit,
        bandwidth[e], completion[e], uplink_end[e], inference_end[e], mean_latency_objective, work)
    total = 0.0
    for i in range(bandwidth.shape[1]):
        if i < n:
            total += completion[e, i]
            completion_max[e] = max(completion_max[e], completion[e, i])
        else:
            completion[e, i] = 0.0
            bandwidth[e, i] = 0.0
    results[e, SLOT] = slot
    results[e, DURATION] = finish - start
    results[e, ACCEPTED] = accepted
    results[e, TOKENS] = tokens
    results[e, COST] = cost
    results[e, WAIT] = start - ready
    results[e, SERVICE_TIME] = finish - start
    completion_sum[e] += total
    tokens_total[e] += tokens
    next_task[e] = first + n
    uplink_end[e] = ready
    inference_end[e] = finish


@njit(cache=True)
def commit_many(p, prompt, output, alpha, payload, channel, runs, envs, size, l, sampled, explicit, bandwidth,
                completion, results, next_task, uplink_end, inference_end, completion_sum, completion_max,
                tokens_total, mean_latency_objective, work):
    """:func:`commit` for each env in ``envs`` (rows of the (num_envs, K) task arrays), with the clocks.

    Per env e: serves ``size[e]`` tasks from ``next_task[e]`` at ``l[e]``; writes the band split (Hz) and
    absolute completion times into rows of (num_envs, n_max) arrays (zeros beyond the batch; explicit
    shares are read from ``bandwidth``), a row of ``results`` (SLOT, DURATION, ACCEPTED, TOKENS, COST,
    WAIT, SERVICE_TIME), and advances next_task, uplink_end, inference_end and the running KPIs, as
    :func:`sdedge_gym.episode.commit_batch` does for one env. ``work`` is a :func:`workspace`.
    """
    for index in range(envs.shape[0]):
        _commit_env(p, prompt, output, alpha, payload, channel, runs, envs[index], size, l, sampled, explicit,
                    bandwidth, completion, results, next_task, uplink_end, inference_end, completion_sum,
                    completion_max, tokens_total, mean_latency_objective, work)


@njit(cache=True, parallel=True)
def commit_many_parallel(p, prompt, output, alpha, payload, channel, runs, envs, size, l, sampled, explicit,
                         bandwidth, completion, results, next_task, uplink_end, inference_end, completion_sum,
                         completion_max, tokens_total, mean_latency_objective, works):
    """:func:`commit_many` on ``works.shape[0]`` threads, one :func:`workspace` each: the envs are split into
    that many interleaved chunks (envs are independent, so the numbers do not depend on the split)."""
    chunks = works.shape[0]
    for c in prange(chunks):
        for index in range(c, envs.shape[0], chunks):
            _commit_env(p, prompt, output, alpha, payload, channel, runs, envs[index], size, l, sampled, explicit,
                        bandwidth, completion, results, next_task, uplink_end, inference_end, completion_sum,
                        completion_max, tokens_total, mean_latency_objective, works[c])


# ---------------------------------------------------------------------------------------------- segment tables

# First tasks whose segments are timed together (their windows' round times are kept for the chunk).
SEGMENT_CHUNK = 32


@njit(cache=True)
def segment_slots(p, payload, channel, width, uniform, slot):
    """slot[j, n-1]: the uplink slot of every segment (first task j, size n <= width), inf past the queue end.

    The closed-form split (the same :func:`uplink_slot` the env's commit uses), or equal shares B / n.
    """
    num_tasks = payload.shape[0]
    bandwidth = np.empty(width)
    work = np.empty((WORKSPACE_ROWS, max(width, 1)))
    for j in range(num_tasks):
        for n in range(1, width + 1):
            if j + n > num_tasks:
                slot[j, n - 1] = math.inf
            elif uniform:
                bandwidth[:n] = p[BANDWIDTH] / n
                slot[j, n - 1] = slot_of_split(payload[j:j + n], channel[j:j + n], bandwidth[:n], p[SHANNON] > 0)
            else:
                slot[j, n - 1] = uplink_slot(p, payload[j:j + n], channel[j:j + n], bandwidth[:n], False, work)


@njit(cache=True)
def _segments_at_length(p, prompt, output, alpha, runs, sampled, l, width, duration, completion):
    """duration[j, n-1, l] and completion[j, n-1, l] (sum of completion offsets) of every segment at length l.

    A segment pipelines window A = tasks j..j+a-1 (a = ceil(n/2), or n without pipelining) with window
    B = tasks j+a..j+n-1. A window's loads are its tasks' round profiles added in queue order, which is
    the order :func:`serve` adds them in, and its round times are :func:`round_times`: every segment's
    numbers are :func:`serve`'s for that batch. Windows of a chunk of first tasks are timed once and
    shared by the segments that use them.
    """
    num_tasks = output.shape[0]
    max_rounds = 1
    for k in range(num_tasks):
        max_rounds = max(max_rounds, output[k])
    rounds = np.zeros(num_tasks, dtype=np.int64)
    produced = np.zeros((num_tasks, max_rounds))
    for k in range(num_tasks):
        rounds[k], _ = task_rounds(output[k], alpha[k], runs, k, l, sampled, produced[k])
    pipelined = p[PIPELINING] > 0
    window_max = (width + 1) // 2 if pipelined else width
    starts = SEGMENT_CHUNK + window_max
    times = np.empty((3, starts, window_max + 1, max_rounds))
    window_rounds = np.zeros((starts, window_max + 1), dtype=np.int64)
    active = np.empty(max_rounds)
    context = np.empty(max_rounds)
    ends = np.empty((2, max_rounds))
    for first in range(0, num_tasks, SEGMENT_CHUNK):
        last = min(first + SEGMENT_CHUNK, num_tasks)
        for i in range(first, min(last + window_max, num_tasks)):
            active[:] = 0.0
            context[:] = 0.0
            prompt_sum = prompt_square = 0.0
            longest = 0
            for m in range(1, min(window_max, num_tasks - i) + 1):
                k = i + m - 1
                for r in range(rounds[k]):
                    active[r] += 1.0
                    context[r] += prompt[k] + produced[k, r]
                if rounds[k] > 0:
                    prompt_sum += prompt[k]
                    prompt_square += prompt[k] * prompt[k]
                longest = max(longest, rounds[k])
                w = i - first
                window_rounds[w, m] = longest
                round_times(p, active, context, longest, prompt_sum, prompt_square, l, times[0, w, m], times[1, w, m],
                            times[2, w, m])
        for j in range(first, last):
            for n in range(1, width + 1):
                if j + n > num_tasks:
                    duration[j, n - 1, l] = completion[j, n - 1, l] = math.inf
                    continue
                a = (n + 1) // 2 if pipelined else n
                wa, wb = j - first, j + a - first
                b = n - a
                rounds_b = window_rounds[wb, b] if b > 0 else 0
                duration[j, n - 1, l] = pipeline(times[0, wa, a], times[1, wa, a], times[2, wa, a],
                                                 window_rounds[wa, a], times[0, wb, b], times[1, wb, b],
                                                 times[2, wb, b], rounds_b, ends[0], ends[1])
                total = 0.0
                for t in range(n):
                    count = rounds[j + t]
                    if count > 0:
                        total += ends[0 if t < a else 1, count - 1]
                completion[j, n - 1, l] = total


@njit(cache=True)
def segment_service(p, prompt, output, alpha, runs, sampled, max_speculation, width, duration, completion):
    """duration[j, n-1, l] and completion[j, n-1, l] of every segment, for every speculation length."""
    for l in range(max_speculation + 1):
        _segments_at_length(p, prompt, output, alpha, runs, sampled, l, width, duration, completion)


# ---------------------------------------------------------------------------------------------- episodes

# Layout of the workload parameter vector (see :func:`workload_parameters`).
(_PROMPT_MEDIAN, _PROMPT_SIGMA, _PROMPT_MIN, _PROMPT_MAX, _OUTPUT_MEDIAN, _OUTPUT_SIGMA, _OUTPUT_MIN, _OUTPUT_MAX,
 _ESTIMATE_NOISE, _HINT_SIGMA, _MAX_ESTIMATE, _PATH_LOSS, _PATH_LOSS_SLOPE, _BITS_PER_TOKEN, _FADING, _SHORTEST_FIRST,
 _SHANNON_RATE, _POWER_OVER_NOISE, _EQUAL_SHARE, _SCALE_PROMPT, _SCALE_PAYLOAD, _SCALE_OUTPUT, _SCALE_EFFICIENCY,
 _CLAIRVOYANT) = range(24)
NUM_WORKLOAD_PARAMETERS = 24


def workload_parameters(config: ScenarioConfig, scales, max_alpha_estimate: float) -> np.ndarray:
    """The float64 vector :func:`derive_episodes` reads: the workload's distributions, the uplink's channel
    figure and the observation's scales (``scales`` is the env's ObservationScales)."""
    w, up = config.workload, config.uplink
    p = np.zeros(NUM_WORKLOAD_PARAMETERS)
    p[_PROMPT_MEDIAN], p[_PROMPT_SIGMA], p[_PROMPT_MIN], p[_PROMPT_MAX] = (w.prompt_median, w.prompt_sigma,
                                                                           w.prompt_min, w.prompt_max)
    p[_OUTPUT_MEDIAN], p[_OUTPUT_SIGMA], p[_OUTPUT_MIN], p[_OUTPUT_MAX] = (w.output_median, w.output_sigma,
                                                                           w.output_min, w.max_new_tokens)
    p[_ESTIMATE_NOISE], p[_HINT_SIGMA] = w.alpha_estimate_noise, w.output_hint_sigma
    p[_MAX_ESTIMATE] = max_alpha_estimate
    p[_PATH_LOSS], p[_PATH_LOSS_SLOPE] = w.path_loss_db_at_1km, w.path_loss_db_per_decade
    p[_BITS_PER_TOKEN] = up.bits_per_token
    p[_FADING] = 1.0 if w.rayleigh_fading else 0.0
    p[_SHORTEST_FIRST] = 1.0 if config.queue_order == "shortest_payload" else 0.0
    p[_SHANNON_RATE] = 1.0 if up.rate_model == "shannon" else 0.0
    p[_POWER_OVER_NOISE] = up.transmit_power / up.noise_density
    p[_EQUAL_SHARE] = scales.equal_share
    p[_SCALE_PROMPT], p[_SCALE_PAYLOAD], p[_SCALE_OUTPUT] = scales.prompt_len, scales.payload, scales.output_len
    p[_SCALE_EFFICIENCY] = scales.spectral_efficiency
    p[_CLAIRVOYANT] = 1.0 if config.clairvoyant else 0.0
    p.setflags(write=False)
    return p


@njit(cache=True)
def _tokens(z, median, sigma, low, high):
    """A truncated log-normal token count (workload._lognormal_tokens): round, then clip to [low, high]."""
    return min(max(np.rint(median * math.exp(sigma * z)), low), high)


@njit(cache=True)
def derive_episodes(wp, prompt_z, output_z, distance_sq, fading, extra, spectral, alpha, alpha_z, hint_z, uniforms,
                    given_prompt, given_output, columns, prompt, output, runs, table, queue):
    """Every workload column, the channel figure, the acceptance runs and the observation's task table of m
    episodes from their raw draws (rows of the (m, K) arrays; workload.derive_workload is the specification).

    ``columns`` (9, m, K) float receives payload_bits, distance, channel_gain, spectral_efficiency, alpha,
    alpha_estimate, output_hint and the channel coefficient (rows 0-7, queue order applied); ``prompt``
    and ``output`` (m, K) int64 the token counts; ``runs`` (m, K, P) int32 the acceptance runs (sampled
    mode: ``uniforms`` has P > 0 positions); ``table`` (m, K, 6) float32 the task features; ``queue``
    (m, K) int64 which drawn task stands at each queue position. ``fading`` has zero columns when the
    scenario has no fading. ``given_prompt`` and ``given_output`` (m, K) int64 replace the log-normal
    token counts (a trace's; the normals are drawn all the same), or have zero columns.
    """
    m, k = prompt_z.shape
    order = np.arange(k)
    for e in range(m):
        for i in range(k):
            if given_prompt.shape[1] > 0:
                prompt[e, i], output[e, i] = given_prompt[e, i], given_output[e, i]
            else:
                prompt[e, i] = _tokens(prompt_z[e, i], wp[_PROMPT_MEDIAN], wp[_PROMPT_SIGMA], wp[_PROMPT_MIN],
                                       wp[_PROMPT_MAX])
                output[e, i] = _tokens(output_z[e, i], wp[_OUTPUT_MEDIAN], wp[_OUTPUT_SIGMA], wp[_OUTPUT_MIN],
                                       wp[_OUTPUT_MAX])
            columns[0, e, i] = wp[_BITS_PER_TOKEN] * prompt[e, i] + extra[e, i]
        if wp[_SHORTEST_FIRST] > 0:
            order = np.argsort(columns[0, e], kind="mergesort")  # stable, as np.argsort(kind="stable")
        prompt_row = prompt[e].copy()
        output_row = output[e].copy()
        payload_row = columns[0, e].copy()
        for slot in range(k):
            i = order[slot]
            queue[e, slot] = i
            prompt[e, slot], output[e, slot], columns[0, e, slot] = prompt_row[i], output_row[i], payload_row[i]
            distance = math.sqrt(distance_sq[e, i])
            columns[1, e, slot] = distance
            path_loss_db = wp[_PATH_LOSS] + wp[_PATH_LOSS_SLOPE] * math.log10(distance / 1000.0)
            gain = 10.0 ** (-path_loss_db / 10.0)
            if wp[_FADING] > 0:
                gain = gain * fading[e, i]
            columns[2, e, slot] = gain
            columns[3, e, slot] = spectral[e, i]
            columns[4, e, slot] = alpha[e, i]
            columns[5, e, slot] = min(max(alpha[e, i] + wp[_ESTIMATE_NOISE] * alpha_z[e, i], 0.0), wp[_MAX_ESTIMATE])
            columns[6, e, slot] = min(max(np.rint(output_row[i] * math.exp(wp[_HINT_SIGMA] * hint_z[e, i])), 1.0),
                                      wp[_OUTPUT_MAX])
            channel = wp[_POWER_OVER_NOISE] * gain if wp[_SHANNON_RATE] > 0 else spectral[e, i]
            columns[7, e, slot] = channel
            positions = uniforms.shape[2]
            if positions > 0:  # run[p]: consecutive positions p, p+1, ... with u < alpha
                run = 0
                for q in range(positions - 1, -1, -1):
                    run = run + 1 if uniforms[e, i, q] < alpha[e, i] else 0
                    runs[e, slot, q] = run
            share = wp[_EQUAL_SHARE]
            rate = share * math.log2(1.0 + channel / share) if wp[_SHANNON_RATE] > 0 else share * channel
            efficiency = rate / share
            clairvoyant = wp[_CLAIRVOYANT] > 0
            table[e, slot, 0] = 1.0
            table[e, slot, 1] = prompt[e, slot] / wp[_SCALE_PROMPT]
            table[e, slot, 2] = columns[0, e, slot] / wp[_SCALE_PAYLOAD]
            table[e, slot, 3] = efficiency / (efficiency + wp[_SCALE_EFFICIENCY])
            table[e, slot, 4] = alpha[e, i] if clairvoyant else columns[5, e, slot]
            table[e, slot, 5] = (output[e, slot] if clairvoyant else columns[6, e, slot]) / wp[_SCALE_OUTPUT]
