"""The compiled serving kernel: one implementation of a batch's service for the env, the vector env and the oracle.

Everything a committed batch costs is computed here, in ``numba.njit(cache=True)`` functions on flat
arrays: the uplink slot and band split (the closed-form equal-finish split for both rate models, or an
explicit split), the batch's round loads in expected or sampled acceptance, the round times (roofline
passes), and the max-plus recursion of the two pipelined micro-batches. The single env calls
:func:`commit` for one batch, the vector env :func:`commit_many` for all its envs in one call, and the
oracle's segment tables :func:`segment_service` over every segment of an episode.

A batch is served in one of two ways (:func:`serve`): in expected acceptance on roofline-timed nodes,
stretch by stretch in closed form (:func:`serve_closed_form`, the "closed form" section: its cost does not
grow with the number of rounds); otherwise round by round (:func:`serve_rounds`), which is also the
reference the closed form is tested against.

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

from sdedge_gym import compile_cache
from sdedge_gym.config import ScenarioConfig
from sdedge_gym.roofline import PassCost

compile_cache.install()  # before the first @njit(cache=True): the cache goes to a per-user folder

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

# Shared with the numpy specification (the same stopping rules, so the same roots to rounding; the kernel's
# Shannon split also stops early at NEWTON_STOP).
CEIL_SLACK = 1e-9
ROOT_RTOL = 1e-14
INNER_RTOL = 1e-9
# The kernel's Shannon split stops after a Newton step on T this small (relative): see shannon_split.
NEWTON_STOP = 1e-9
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
        delta = (math.log1p(u / c) - u) * (c + u) / (1.0 - c - u)  # f / f', f'(u) = 1 / (c + u) - 1
        u -= delta
        if abs(delta) <= INNER_RTOL * u:
            break
    return u


@njit(cache=True)
def shannon_split(payload, channel, total_bandwidth, bandwidth, kappa, log_snr, growth, warm=0.0):
    """The equal-finish split under r = b log2(1 + a/b): writes ``bandwidth`` (Hz), returns the slot (s).

    A safeguarded Newton on the common finish time T, bracketed by the slowest user's infinite-band time
    and the uniform split's slot (uplink._shannon_closed_form is the specification: the same iteration on T
    and the same stopping rules). Zero payload is padding and gets no band. ``kappa``, ``log_snr`` and
    ``growth`` are scratch rows of at least n entries. ``warm`` > 0: the rows still hold the split of the
    first n - 1 users at finish time ``warm`` (a previous call on them, as the segment tables make it),
    whose u_k, extrapolated, start this one's inner Newton (a cold start costs three or four steps each).

    Five things make it ~2x cheaper than the specification's iteration without moving the root (the tests
    hold both to 1e-11; on 20,000 random splits, deep fades included, the users' finish times spread by at
    most 2.1e-13 relative, the specification's by 6.9e-13): the band needed and its slope are formed from
    the u_k alone (b_k = S_k ln2 / (T u_k): no exponential per user and iteration, ~1.4x); each user's
    u_k(T) is warm-started from its value at the previous T extrapolated along du_k/dT (``growth``), so
    that its inner Newton takes one step instead of two or three once T settles; the iteration stops after
    a Newton step below NEWTON_STOP (its error is O(step^2)) instead of taking one more step only to
    confirm it; the final u_k are that extrapolation, without an inner solve; and ln(1 + a_k / (B/n)),
    which the bracket, the first guess and u's first start all read, is taken once.
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
            equal = math.log1p(channel[k] / share)  # u at the equal split: the bracket, the guess, a warm start
            lower = max(lower, kappa[k])
            upper = max(upper, kappa[k] * channel[k] / (share * equal))  # S / (b log2(1 + a/b)) at b = B/n
            guess += kappa[k] * channel[k] / equal
            if not (warm > 0.0 and k < n - 1):
                log_snr[k] = equal
                growth[k] = 0.0
    guess /= total_bandwidth
    finish = guess if lower < guess < upper else upper
    previous = warm if warm > 0.0 else finish
    done = False
    for _ in range(MAX_ITERATIONS):
        # The band the users need at T, sum_k b_k with b_k = a_k / (e^u_k - 1) = S_k ln2 / (T u_k) (since
        # e^u - 1 = u T / kappa), is ln2 G / T with G = sum_k S_k / u_k: no exponential per user.
        demand = 0.0  # G
        demand_slope = 0.0  # dG/dT
        inverse = 1.0 / finish
        for k in range(n):
            if payload[k] > 0:
                c = kappa[k] * inverse
                u = _log_snr(c, log_snr[k] + growth[k] * (finish - previous))
                log_snr[k] = u
                growth[k] = u * inverse / (c + u - 1.0)  # du/dT: u = ln(1 + u T / kappa) differentiated
                term = payload[k] / u
                demand += term
                demand_slope -= term * growth[k] / u
        need = LN2 * demand * inverse
        slope = LN2 * (demand_slope - demand * inverse) * inverse  # d need / dT
        excess = need - total_bandwidth
        if excess > 0:
            lower = finish
        else:
            upper = finish
        step = finish - excess / slope * (need / total_bandwidth) if slope != 0.0 else math.nan
        converged = abs(step - finish) <= ROOT_RTOL * finish
        newton = lower < step < upper
        if not (converged or newton):
            step = 0.5 * (lower + upper)
        # A Newton step of relative size d leaves an error of O(d^2): below NEWTON_STOP it is the root to
        # rounding, and the iteration that would only confirm it is skipped.
        settled = newton and abs(step - finish) <= NEWTON_STOP * finish
        done = converged or settled or upper - lower <= ROOT_RTOL * upper
        previous = finish
        finish = step
        if done:
            break
    total = 0.0
    for k in range(n):
        if payload[k] > 0:
            # The last step moved T by at most NEWTON_STOP of it: u extrapolated along du/dT is off by
            # O(step^2), ~1e-18, below what an inner Newton step would correct.
            log_snr[k] = log_snr[k] + growth[k] * (finish - previous)
            if not done:  # the iteration ran out (it never has): solve at the last T all the same
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
def uplink_slot(p, payload, channel, bandwidth, explicit, work, warm=0.0):
    """The batch's slot: the closed-form split written into ``bandwidth``, or ``explicit`` shares (Hz) used.
    ``warm``: see :func:`shannon_split`."""
    shannon = p[SHANNON] > 0
    if explicit:
        return slot_of_split(payload, channel, bandwidth, shannon)
    if shannon:
        return shannon_split(payload, channel, p[BANDWIDTH], bandwidth, work[_KAPPA], work[_LOG_SNR], work[_GROWTH],
                             warm)
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
    _FRONTHAUL_B, _VERIFY_B, _END_A, _END_B, _KAPPA, _LOG_SNR, _ROUNDS, _TOKENS, _ORDER, _LEAVE = range(19)
_PIECES_A, _PIECES_B = 19, 27  # PIECE_FIELDS rows each
_GROWTH = 35  # du/dT of each user in the Shannon split
WORKSPACE_ROWS = 36


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
    pipelining or with n = 1), B the rest. ``work`` is a :func:`workspace`. Expected acceptance on
    roofline-timed nodes is served stretch by stretch (:func:`serve_closed_form`); sampled acceptance and
    measured pass-time profiles round by round (:func:`serve_rounds`, the reference of the closed form).
    """
    if closed_form_applies(p, l, sampled):
        return serve_closed_form(p, prompt, output, alpha, first, n, l, completion, work)
    return serve_rounds(p, prompt, output, alpha, runs, first, n, l, sampled, completion, work)


@njit(cache=True)
def closed_form_applies(p, l, sampled):
    """Whether a batch's rounds are deterministic and its round times piecewise affine: expected acceptance
    (sampled mode at l = 0 too: one token a round) on nodes timed by their roofline."""
    return (not sampled or l == 0) and p[PROFILE_AT_DRAFT] == 0.0 and p[PROFILE_AT_TARGET] == 0.0


@njit(cache=True)
def serve_rounds(p, prompt, output, alpha, runs, first, n, l, sampled, completion, work):
    """:func:`serve` round by round: every round's loads (:func:`task_rounds`), times (:func:`round_times`)
    and the recursion (:func:`pipeline`). Any acceptance mode, any node timing."""
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


# ---------------------------------------------------------------------------------------------- closed form
#
# In expected acceptance mode a task makes L_k tokens every round until it leaves, so between two departures
# (a *stretch*) both micro-batches keep the same tasks and their contexts grow by the same amount each round:
# every round time is an affine function of the round index r, except where a pass switches between compute-
# and memory-bound (a *kink*; the verify has at most one, the draft's l passes one each). Between kinks (a
# *piece*) the two-micro-batch recursion has two regimes that do not depend on where the schedule stands:
#
#   MBS-bound, when D_A(r) + F_A <= V_B(r-1): A's drafts reach the MBS while B's verify still runs, so
#       B_r = B_{r-1} + max(V_A(r), D_B(r) + F_B) + V_B(r);
#   SBS-bound, when D_A(r) >= F_B + V_B(r-1): A's verify is back before A's next draft could start, so
#       M_r = M_{r-1} + D_A(r) + max(F_A + V_A(r), D_B(r)),  M = max(SBS free, A's verify end);
#
# (after any round both micro-batches ran, max(SBS free, A's end) lies in [B - F_B - V_B, B - V_B], which is
# what makes these conditions sufficient). Both conditions are affine in r on a piece, so checking them at
# a run's two ends proves them throughout, and a run's sum is an arithmetic series (split once where the
# max inside it changes sides). Rounds in neither regime, and the first round of every stretch, are stepped
# exactly as :func:`pipeline` steps them. A micro-batch alone adds D + F + V a round.


@njit(cache=True)
def _first_round(p, n, prompt, prompt_square, l):
    """(D, F, V) of round 0 on the roofline: the prompt prefill (as :func:`_round_times_with`)."""
    if l == 0:
        return 0.0, 0.0, _pass(p, TARGET, prompt, prompt_square, prompt)
    draft = _draft_decode(p, n, prompt, l, False) + _pass(p, DRAFT, prompt, prompt_square, prompt)
    verify = _pass(p, TARGET, prompt + n * l, prompt_square + 2 * l * prompt + n * l * l, prompt + n * l)
    return draft, _fronthaul_time(p, n, l), verify


@njit(cache=True)
def _fronthaul_time(p, n, l):
    """F of a round of n tasks (0 in autoregressive decoding)."""
    return p[FRONTHAUL_LATENCY] + n * l * p[FRONTHAUL_TOKEN_TIME] if l > 0 else 0.0


@njit(cache=True)
def _draft_at(p, n, prompt, growth, l, r):
    """D of round r >= 1 of n tasks whose context is prompt + growth r (0 in autoregressive decoding)."""
    return _draft_decode(p, n, prompt + growth * r, l, False) if l > 0 else 0.0


@njit(cache=True)
def _verify_at(p, n, prompt, growth, l, r):
    """V of round r >= 1 of n tasks whose context is prompt + growth r (as :func:`_round_times_with`)."""
    ctx = prompt + growth * r
    if l == 0:
        return _pass(p, TARGET, n, ctx, ctx)
    return _pass(p, TARGET, n * (l + 1), (l + 1) * (ctx + n * l), ctx + n * l)


@njit(cache=True)
def _ridge(p, node, new_tokens, attention_per_kv):
    """The KV length x at which a pass of N new tokens, attention work k x and KV x is as compute- as
    memory-bound: (F N + a k x) s_f = (W + kv x) s_b (nan when both grow alike, so never cross)."""
    slope = p[node + _ATTENTION] * attention_per_kv * p[node + _SPF] - p[node + _KV] * p[node + _SPB]
    if slope == 0.0:
        return math.nan
    return (p[node + _WEIGHTS] * p[node + _SPB] - p[node + _FLOPS_PER_TOKEN] * new_tokens * p[node + _SPF]) / slope


@njit(cache=True)
def _before_kink(end, a, kink):
    """``end`` lowered to the last round at or before a kink at the real round ``kink`` when a <= kink < end:
    a function affine on both sides of the kink is affine on rounds a..floor(kink) and floor(kink)+1.. ."""
    if a <= kink < end:  # false for nan
        return math.floor(kink)
    return end


@njit(cache=True)
def _sum_max_plus(a, b, p_a, q_a, r_a, p_b, q_b, r_b):
    """Sum over rounds r = a..b of max(P(r), Q(r)) + R(r), for P, Q, R affine on a..b given at a and b.

    An arithmetic series, split once at the last round before P - Q changes sign (interpolated: affine).
    """
    count = b - a + 1
    if count == 1:
        return max(p_a, q_a) + r_a
    d_a, d_b = p_a - q_a, p_b - q_b
    if (d_a >= 0.0 and d_b >= 0.0) or (d_a <= 0.0 and d_b <= 0.0):
        return count * (max(p_a, q_a) + r_a + max(p_b, q_b) + r_b) / 2.0
    k = a + math.floor(d_a / (d_a - d_b) * (b - a))  # in a..b-1: same sign as at a up to k
    k = min(max(k, a), b - 1)
    t_k, t_next = (k - a) / (b - a), (k + 1 - a) / (b - a)
    h_k = max(p_a + (p_b - p_a) * t_k, q_a + (q_b - q_a) * t_k) + r_a + (r_b - r_a) * t_k
    h_next = max(p_a + (p_b - p_a) * t_next, q_a + (q_b - q_a) * t_next) + r_a + (r_b - r_a) * t_next
    return (k - a + 1) * (max(p_a, q_a) + r_a + h_k) / 2.0 + (b - k) * (h_next + max(p_b, q_b) + r_b) / 2.0


@njit(cache=True)
def _last_holding(a, b, g_a, g_b):
    """The last round c in a..b with g(c) >= 0, for g affine on a..b with g(a) >= 0 (given at a and b)."""
    if g_b >= 0.0:
        return b
    return min(max(a + math.floor(g_a / (g_a - g_b) * (b - a)), a), b - 1)


@njit(cache=True)
def _first_holding(a, b, g_a, g_b):
    """The first round c in a..b with g(c) >= 0, for g affine on a..b with g(a) < 0; b + 1 if there is none."""
    if g_b < 0.0:
        return b + 1
    return min(max(a + math.ceil(-g_a / (g_b - g_a) * (b - a)), a + 1), b)


@njit(cache=True)
def _next_kink(p, a, end, n, prompt, growth, l):
    """The last round b <= end such that a micro-batch's D(r) and V(r) are affine on rounds a..b: the next
    roofline switch of its verify pass or of one of its l draft passes (their KV lengths grow by ``growth``)."""
    b = end
    ridge = _ridge(p, TARGET, n * (l + 1), l + 1)  # the verify reads ctx + n l
    b = _before_kink(b, a, (ridge - n * l - prompt) / growth)
    if l > 0:
        ridge = _ridge(p, DRAFT, n, 1.0)  # draft pass j reads ctx + n j, j = 1..l
        low, high = prompt + growth * a + n, prompt + growth * end + n * l
        if low < ridge < high:
            for j in range(1, l + 1):
                b = _before_kink(b, a, (ridge - n * j - prompt) / growth)
    return b


# Fields of a piece: a run of rounds FIRST..LAST of one micro-batch over which the same tasks are served and
# D, V are affine in r (D(r) = DRAFT0 + DRAFT_SLOPE (r - FIRST), likewise V), F constant; LEAVING tasks
# leave after its last round. Pieces are rows of a (capacity, PIECE_FIELDS) array: a piece's fields are adjacent
# in memory, since pipelining reads them together (the segment tables' pool holds thousands of pieces).
_FIRST, _LAST, _DRAFT0, _DRAFT_SLOPE, _FRONTHAUL0, _VERIFY0, _VERIFY_SLOPE, _LEAVING = range(8)
PIECE_FIELDS = 8


@njit(cache=True)
def workspace_pieces(work, row):
    """The (capacity, PIECE_FIELDS) pieces array held in PIECE_FIELDS rows of a :func:`workspace` from ``row``."""
    return work[row:row + PIECE_FIELDS].reshape((work.shape[1], PIECE_FIELDS))


@njit(cache=True)
def _put_piece(pieces, at, first, last, draft0, draft1, fronthaul, verify0, verify1):
    """Write a piece from D and V at its first and last rounds (interpolation: both are affine on it)."""
    pieces[at, _FIRST] = first
    pieces[at, _LAST] = last
    pieces[at, _DRAFT0] = draft0
    pieces[at, _DRAFT_SLOPE] = (draft1 - draft0) / (last - first) if last > first else 0.0
    pieces[at, _FRONTHAUL0] = fronthaul
    pieces[at, _VERIFY0] = verify0
    pieces[at, _VERIFY_SLOPE] = (verify1 - verify0) / (last - first) if last > first else 0.0
    pieces[at, _LEAVING] = 0.0


@njit(cache=True)
def expected_rounds(output, alpha, l, first, m, rounds, tokens):
    """Rounds and tokens per round of tasks first..first+m-1 in expected acceptance (as :func:`task_rounds`),
    into ``rounds[:m]`` and ``tokens[:m]``; returns their accepted drafts."""
    accepted = 0.0
    for i in range(m):
        k = first + i
        rounds[i] = 0.0
        if output[k] <= 0:
            continue
        tokens[i] = (1.0 - math.pow(alpha[k], float(l + 1))) / (1.0 - alpha[k])
        rounds[i] = math.ceil(output[k] / tokens[i] - CEIL_SLACK)
        accepted += float(max(output[k] - rounds[i], 0))
    return accepted


@njit(cache=True)
def micro_batch_pieces(p, prompt, first, m, l, rounds, tokens, order, leave, pieces, at):
    """The pieces of the micro-batch of tasks first..first+m-1 at speculation length l, in expected acceptance,
    written into rows at, at+1, ... of ``pieces``; returns how many.

    ``rounds[i]`` and ``tokens[i]`` are task first+i's (:func:`expected_rounds`). Round 0 (the prefill) is a
    piece of its own; then each stretch between two departures is cut at the roofline switches of its
    passes (:func:`_next_kink`). ``order`` is scratch of m entries; ``leave[i]`` receives the row of the
    piece after which task first+i leaves (-1: no round).
    """
    size = prompt_sum = prompt_square = growth = 0.0
    running = 0  # tasks with at least one round, sorted by their round count into order[:running]
    for i in range(m):
        k = first + i
        leave[i] = -1.0
        count = rounds[i]
        if count <= 0:
            continue
        size += 1.0
        prompt_sum += prompt[k]
        prompt_square += prompt[k] * prompt[k]
        growth += tokens[i]
        slot = running
        while slot > 0 and rounds[int(order[slot - 1])] > count:
            order[slot] = order[slot - 1]
            slot -= 1
        order[slot] = i
        running += 1
    if running == 0:
        return 0
    draft, fronthaul, verify = _first_round(p, size, prompt_sum, prompt_square, l)
    _put_piece(pieces, at, 0, 0, draft, draft, fronthaul, verify, verify)
    row = at
    r = 1  # prompt_sum is the context at round 0; it grows by ``growth`` a round
    index = 0
    while index < running:
        departure = int(rounds[int(order[index])])  # the next tasks leave after round departure - 1
        a = r
        while a < departure:  # rounds r..departure-1: the same tasks, cut at roofline switches
            b = _next_kink(p, a, departure - 1, size, prompt_sum, growth, l)
            row += 1
            _put_piece(pieces, row, a, b, _draft_at(p, size, prompt_sum, growth, l, a),
                       _draft_at(p, size, prompt_sum, growth, l, b), _fronthaul_time(p, size, l),
                       _verify_at(p, size, prompt_sum, growth, l, a), _verify_at(p, size, prompt_sum, growth, l, b))
            a = b + 1
        r = max(r, departure)
        while index < running and int(rounds[int(order[index])]) == departure:
            i = int(order[index])
            leave[i] = row
            pieces[row, _LEAVING] += 1.0
            size -= 1.0
            prompt_sum -= prompt[first + i]
            growth -= tokens[i]
            index += 1
    return row - at + 1


@njit(cache=True)
def _draft_in(pieces, at, r):
    return pieces[at, _DRAFT0] + pieces[at, _DRAFT_SLOPE] * (r - pieces[at, _FIRST])


@njit(cache=True)
def _verify_in(pieces, at, r):
    return pieces[at, _VERIFY0] + pieces[at, _VERIFY_SLOPE] * (r - pieces[at, _FIRST])


@njit(cache=True)
def pipeline_pieces(pieces_a, at_a, count_a, pieces_b, at_b, count_b, ends_a, ends_b):
    """:func:`pipeline` over two micro-batches given as pieces (:func:`micro_batch_pieces`).

    Rounds are walked piece by piece of the merged cut: the first round of each merged piece is stepped as
    :func:`pipeline` steps it, the rest in closed form (runs of MBS- or SBS-bound rounds, see the section's
    comment; other rounds stepped). ``ends_a[c - at_a]`` / ``ends_b[c - at_b]`` receive A's / B's verify end
    after piece c.
    Returns (duration, sum over tasks of their completion offsets).
    """
    sbs = mbs = last_a = last_b = total = 0.0
    ia, ib = at_a, at_b
    stop_a, stop_b = at_a + count_a, at_b + count_b
    r = 0
    while ia < stop_a or ib < stop_b:
        on_a, on_b = ia < stop_a, ib < stop_b
        end = min(pieces_a[ia, _LAST] if on_a else math.inf, pieces_b[ib, _LAST] if on_b else math.inf)
        last = int(end)
        fronthaul_a = pieces_a[ia, _FRONTHAUL0] if on_a else 0.0
        fronthaul_b = pieces_b[ib, _FRONTHAUL0] if on_b else 0.0
        # round r, stepped
        if on_a:
            start = max(sbs, last_a)
            sbs = start + _draft_in(pieces_a, ia, r)
            mbs = last_a = max(mbs, sbs + fronthaul_a) + _verify_in(pieces_a, ia, r)
        if on_b:
            start = max(sbs, last_b)
            sbs = start + _draft_in(pieces_b, ib, r)
            mbs = last_b = max(mbs, sbs + fronthaul_b) + _verify_in(pieces_b, ib, r)
        a = r + 1
        if on_a and on_b:
            while a <= last:
                g1_a = _verify_in(pieces_b, ib, a - 1) - _draft_in(pieces_a, ia, a) - fronthaul_a
                g1_e = _verify_in(pieces_b, ib, last - 1) - _draft_in(pieces_a, ia, last) - fronthaul_a
                g3_a = _draft_in(pieces_a, ia, a) - fronthaul_b - _verify_in(pieces_b, ib, a - 1)
                g3_e = _draft_in(pieces_a, ia, last) - fronthaul_b - _verify_in(pieces_b, ib, last - 1)
                if g1_a >= 0.0 or g3_a >= 0.0:
                    mbs_bound = g1_a >= 0.0
                    c = _last_holding(a, last, g1_a, g1_e) if mbs_bound else _last_holding(a, last, g3_a, g3_e)
                    # rounds a..c-1 summed, round c from the regime's formulas
                    if mbs_bound:  # B_r = B_{r-1} + max(V_A, D_B + F_B) + V_B
                        base = last_b
                        if c > a:
                            base += _sum_max_plus(
                                a, c - 1, _verify_in(pieces_a, ia, a), _draft_in(pieces_b, ib, a) + fronthaul_b,
                                _verify_in(pieces_b, ib, a), _verify_in(pieces_a, ia, c - 1),
                                _draft_in(pieces_b, ib, c - 1) + fronthaul_b, _verify_in(pieces_b, ib, c - 1))
                        last_a = base + _verify_in(pieces_a, ia, c)
                        sbs = base + _draft_in(pieces_b, ib, c)
                    else:  # M_r = M_{r-1} + D_A + max(F_A + V_A, D_B), M = max(SBS free, A's verify end)
                        base = max(sbs, last_a)
                        if c > a:
                            base += _sum_max_plus(
                                a, c - 1, fronthaul_a + _verify_in(pieces_a, ia, a), _draft_in(pieces_b, ib, a),
                                _draft_in(pieces_a, ia, a), fronthaul_a + _verify_in(pieces_a, ia, c - 1),
                                _draft_in(pieces_b, ib, c - 1), _draft_in(pieces_a, ia, c - 1))
                        drafted = base + _draft_in(pieces_a, ia, c)
                        last_a = drafted + fronthaul_a + _verify_in(pieces_a, ia, c)
                        sbs = drafted + _draft_in(pieces_b, ib, c)
                    mbs = last_b = max(last_a, sbs + fronthaul_b) + _verify_in(pieces_b, ib, c)
                    a = c + 1
                    continue
                # neither regime is certain at round a: step until one of them is
                stop = min(_first_holding(a, last, g1_a, g1_e), _first_holding(a, last, g3_a, g3_e))
                while a < stop:
                    start = max(sbs, last_a)
                    sbs = start + _draft_in(pieces_a, ia, a)
                    mbs = last_a = max(mbs, sbs + fronthaul_a) + _verify_in(pieces_a, ia, a)
                    start = max(sbs, last_b)
                    sbs = start + _draft_in(pieces_b, ib, a)
                    mbs = last_b = max(mbs, sbs + fronthaul_b) + _verify_in(pieces_b, ib, a)
                    a += 1
        elif a <= last:  # one micro-batch alone, its previous round its own: D + F + V a round
            pieces, at = (pieces_a, ia) if on_a else (pieces_b, ib)
            fronthaul = fronthaul_a if on_a else fronthaul_b
            own = last_a if on_a else last_b
            if last > a:
                first_round = _draft_in(pieces, at, a) + _verify_in(pieces, at, a)
                last_round = _draft_in(pieces, at, last - 1) + _verify_in(pieces, at, last - 1)
                own += (last - a) * ((first_round + last_round) / 2.0 + fronthaul)
            sbs = own + _draft_in(pieces, at, last)
            mbs = own = sbs + fronthaul + _verify_in(pieces, at, last)
            if on_a:
                last_a = own
            else:
                last_b = own
        if on_a and pieces_a[ia, _LAST] == end:
            ends_a[ia - at_a] = last_a
            total += pieces_a[ia, _LEAVING] * last_a
            ia += 1
        if on_b and pieces_b[ib, _LAST] == end:
            ends_b[ib - at_b] = last_b
            total += pieces_b[ib, _LEAVING] * last_b
            ib += 1
        r = last + 1
    return max(last_a, last_b), total


@njit(cache=True)
def serve_closed_form(p, prompt, output, alpha, first, n, l, completion, work):
    """:func:`serve` in expected acceptance on roofline-timed nodes, piece by piece instead of round by round.

    The same model and the same per-round formulas as :func:`task_rounds`, :func:`round_times` and
    :func:`pipeline`; only sums of rounds are formed as arithmetic series (see the section's comment), so
    results agree with the round walk to float rounding. Cost: O(n^2 + pieces), pieces <= n (l + 2) + 2,
    instead of O(n x rounds). Writes ``completion[:n]`` (offsets from the batch's start); returns
    (duration, accepted drafts). ``work`` is a :func:`workspace`.
    """
    size_a = (n + 1) // 2 if p[PIPELINING] > 0 else n
    pieces_a, pieces_b = workspace_pieces(work, _PIECES_A), workspace_pieces(work, _PIECES_B)
    leave_a, leave_b = work[_LEAVE], work[_LEAVE, size_a:]
    rounds, tokens = work[_ROUNDS], work[_TOKENS]
    accepted = expected_rounds(output, alpha, l, first, n, rounds, tokens)
    count_a = micro_batch_pieces(p, prompt, first, size_a, l, rounds, tokens, work[_ORDER], leave_a, pieces_a, 0)
    count_b = micro_batch_pieces(p, prompt, first + size_a, n - size_a, l, rounds[size_a:], tokens[size_a:],
                                 work[_ORDER], leave_b, pieces_b, 0)
    ends_a, ends_b = work[_END_A], work[_END_B]
    duration, _ = pipeline_pieces(pieces_a, 0, count_a, pieces_b, 0, count_b, ends_a, ends_b)
    for i in range(n):
        row = int(work[_LEAVE, i])
        completion[i] = 0.0 if row < 0 else (ends_a[row] if i < size_a else ends_b[row])
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


@njit(cache=True)
def timeout_cost_to_go(p, prompt, output, alpha, payload, channel, runs, release, first, max_batch, timeout, lengths,
                       sampled, bandwidth, completion, uplink_end, inference_end, now, work):
    """Latency cost of serving tasks first..K-1 by max-batch-with-timeout from the online state (clocks, epoch
    ``now``), on the episode's own arrival times ``release``: the online env's rewards' sum under that rule.

    At each epoch the rule dispatches the waiting tasks (at most ``max_batch``, with l = ``lengths[n - 1]``,
    closed-form split) when ``max_batch`` of them wait, the oldest has waited ``timeout`` s or no arrival is
    left; otherwise it waits for the next arrival (the env's wait). After a batch the next epoch is
    max(uplink end, the next task's arrival), as in the env. Each batch costs (sum_k C_k - sum_k a_k) / K.
    """
    total = 0.0
    num_tasks = output.shape[0]
    arrived = first
    while arrived < num_tasks and release[arrived] <= now:
        arrived += 1
    while first < num_tasks:
        while arrived - first < max_batch and now - release[first] < timeout and arrived < num_tasks:
            now = release[arrived]  # wait for the next arrival
            while arrived < num_tasks and release[arrived] <= now:
                arrived += 1
        size = min(arrived - first, max_batch)
        _, ready, _, finish, cost, _, _ = commit(p, prompt, output, alpha, payload, channel, runs, first, size,
                                                 lengths[size - 1], sampled, False, bandwidth, completion,
                                                 max(uplink_end, now), inference_end, True, work)
        arrival_sum = 0.0
        for i in range(first, first + size):
            arrival_sum += release[i]
        total += cost - arrival_sum / num_tasks
        uplink_end, inference_end = ready, finish
        first += size
        if first < num_tasks:
            now = max(uplink_end, release[first])
            while arrived < num_tasks and release[arrived] <= now:
                arrived += 1
    return total


# Columns of commit_many's per-env result table.
SLOT, DURATION, ACCEPTED, TOKENS, COST, WAIT, SERVICE_TIME = range(7)
NUM_RESULTS = 7


@njit(cache=True)
def _commit_env(p, prompt, output, alpha, payload, channel, runs, e, size, l, sampled, explicit, bandwidth,
                completion, results, next_task, uplink_end, inference_end, batches, now, completion_sum,
                completion_max, tokens_total, mean_latency_objective, work):
    """:func:`commit_many`'s work for env e: :func:`commit` on its rows, then its clock and running KPIs."""
    n = size[e]
    first = next_task[e]
    runs_e = runs[e] if sampled else runs[0]
    slot, ready, start, finish, cost, accepted, tokens = commit(
        p, prompt[e], output[e], alpha[e], payload[e], channel[e], runs_e, first, n, l[e], sampled, explicit,
        bandwidth[e], completion[e], max(uplink_end[e], now[e]), inference_end[e], mean_latency_objective, work)
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
    # The clock's update, as sdedge_gym.episode.commit_batch makes it for one EpisodeClock.
    next_task[e] = first + n
    uplink_end[e] = ready
    inference_end[e] = finish
    batches[e] += 1
    now[e] = ready


@njit(cache=True)
def commit_many(p, prompt, output, alpha, payload, channel, runs, envs, size, l, sampled, explicit, bandwidth,
                completion, results, next_task, uplink_end, inference_end, batches, now, completion_sum,
                completion_max, tokens_total, mean_latency_objective, work):
    """:func:`commit` for each env in ``envs`` (rows of the (num_envs, K) task arrays), with the clocks.

    Per env e: serves ``size[e]`` tasks from ``next_task[e]`` at ``l[e]``; writes the band split (Hz) and
    absolute completion times into rows of (num_envs, n_max) arrays (zeros beyond the batch; explicit
    shares are read from ``bandwidth``), a row of ``results`` (SLOT, DURATION, ACCEPTED, TOKENS, COST,
    WAIT, SERVICE_TIME), and advances the clock (the fields of :class:`sdedge_gym.episode.EpisodeClocks`, the
    slot starting at max(uplink_end, now)) and the running KPIs, as :func:`sdedge_gym.episode.commit_batch`
    does for one env. ``work`` is a :func:`workspace`.
    """
    for index in range(envs.shape[0]):
        _commit_env(p, prompt, output, alpha, payload, channel, runs, envs[index], size, l, sampled, explicit,
                    bandwidth, completion, results, next_task, uplink_end, inference_end, batches, now,
                    completion_sum, completion_max, tokens_total, mean_latency_objective, work)


@njit(cache=True, parallel=True)
def commit_many_parallel(p, prompt, output, alpha, payload, channel, runs, envs, size, l, sampled, explicit,
                         bandwidth, completion, results, next_task, uplink_end, inference_end, batches, now,
                         completion_sum, completion_max, tokens_total, mean_latency_objective, works):
    """:func:`commit_many` on ``works.shape[0]`` threads, one :func:`workspace` each: the envs are split into
    that many interleaved chunks (envs are independent, so the numbers do not depend on the split)."""
    chunks = works.shape[0]
    for c in prange(chunks):
        for index in range(c, envs.shape[0], chunks):
            _commit_env(p, prompt, output, alpha, payload, channel, runs, envs[index], size, l, sampled, explicit,
                        bandwidth, completion, results, next_task, uplink_end, inference_end, batches, now,
                        completion_sum, completion_max, tokens_total, mean_latency_objective, works[c])


# ---------------------------------------------------------------------------------------------- segment tables

# First tasks whose segments are timed together (their windows' round times are kept for the chunk).
SEGMENT_CHUNK = 32
# The same for the closed form, whose windows' pieces take far less memory than round times: a longer chunk
# rebuilds fewer windows at its end (the windows starting in the next chunk's first n_max / 2 tasks).
PIECE_CHUNK = 512


@njit(cache=True)
def segment_slots(p, payload, channel, width, uniform, slot):
    """slot[j, n-1]: the uplink slot of every segment (first task j, size n <= width), inf past the queue end.

    The closed-form split (the same :func:`uplink_slot` the env's commit uses), or equal shares B / n.
    Rows j < slot.shape[0] are computed (all K, or the first tasks only).
    """
    num_tasks = payload.shape[0]
    bandwidth = np.empty(width)
    work = np.empty((WORKSPACE_ROWS, max(width, 1)))
    for j in range(slot.shape[0]):
        for n in range(1, width + 1):
            if j + n > num_tasks:
                slot[j, n - 1] = math.inf
            elif uniform:
                bandwidth[:n] = p[BANDWIDTH] / n
                slot[j, n - 1] = slot_of_split(payload[j:j + n], channel[j:j + n], bandwidth[:n], p[SHANNON] > 0)
            else:  # segment (j, n - 1)'s split, left in ``work``, warm-starts (j, n)'s (one user alone leaves none)
                warm = slot[j, n - 2] if n > 2 else 0.0
                slot[j, n - 1] = uplink_slot(p, payload[j:j + n], channel[j:j + n], bandwidth[:n], False, work, warm)


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
    for first in range(0, duration.shape[0], SEGMENT_CHUNK):
        last = min(first + SEGMENT_CHUNK, duration.shape[0])
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
def _segments_closed_form(p, prompt, output, alpha, l, width, period, duration, completion):
    """:func:`_segments_at_length` where :func:`closed_form_applies`: the pieces of every window (first task i,
    size m) of a chunk of first tasks are built once (:func:`micro_batch_pieces`) and every segment pipelines
    its two windows' pieces (:func:`pipeline_pieces`), as :func:`serve_closed_form` does for one batch.

    ``period`` > 0: task k + period is task k (the same prompt, output and acceptance rate), so the window
    (i, m) of a later period is the window (i - period, m) already built in the chunk, and is not built again."""
    num_tasks = output.shape[0]
    pipelined = p[PIPELINING] > 0
    window_max = (width + 1) // 2 if pipelined else width
    starts = min(PIECE_CHUNK, duration.shape[0]) + window_max
    longest = 1  # a window has at most as many pieces as rounds, at most max_k O_k
    for k in range(num_tasks):
        longest = max(longest, output[k])
    offset = np.zeros((starts, window_max + 1), dtype=np.int64)
    count = np.zeros((starts, window_max + 1), dtype=np.int64)
    pool = np.empty((min(starts, num_tasks) * window_max * 8 + longest, PIECE_FIELDS))  # grown when short
    rounds, tokens = np.empty(num_tasks), np.empty(num_tasks)  # every task's, at this l
    expected_rounds(output, alpha, l, 0, num_tasks, rounds, tokens)
    order, leave = np.empty(max(window_max, 1)), np.empty(max(window_max, 1))
    ends = np.empty((2, longest))
    for first in range(0, duration.shape[0], PIECE_CHUNK):
        last = min(first + PIECE_CHUNK, duration.shape[0])
        used = 0
        for i in range(first, min(last + window_max, num_tasks)):
            for m in range(1, min(window_max, num_tasks - i) + 1):
                if period > 0 and i - period >= first:  # the same tasks in the same order: the same pieces
                    offset[i - first, m] = offset[i - period - first, m]
                    count[i - first, m] = count[i - period - first, m]
                    continue
                if used + longest > pool.shape[0]:  # room for the longest window's pieces
                    grown = np.empty((2 * pool.shape[0] + longest, PIECE_FIELDS))
                    grown[:used] = pool[:used]
                    pool = grown
                pieces = micro_batch_pieces(p, prompt, i, m, l, rounds[i:], tokens[i:], order, leave, pool, used)
                offset[i - first, m] = used
                count[i - first, m] = pieces
                used += pieces
        for j in range(first, last):
            for n in range(1, width + 1):
                if j + n > num_tasks:
                    duration[j, n - 1, l] = completion[j, n - 1, l] = math.inf
                    continue
                a = (n + 1) // 2 if pipelined else n
                wa, wb = j - first, j + a - first
                b = n - a
                duration[j, n - 1, l], completion[j, n - 1, l] = pipeline_pieces(
                    pool, offset[wa, a], count[wa, a], pool, offset[wb, b] if b > 0 else 0,
                    count[wb, b] if b > 0 else 0, ends[0], ends[1])


@njit(cache=True)
def segment_service(p, prompt, output, alpha, runs, sampled, max_speculation, width, period, duration, completion):
    """duration[j, n-1, l] and completion[j, n-1, l] of every segment, for every speculation length.

    Rows j < duration.shape[0] are computed (all K, or the first tasks only). ``period`` > 0 promises that the
    tasks repeat with that period (the closed form then builds each window once; 0: no promise).
    """
    for l in range(max_speculation + 1):
        if closed_form_applies(p, l, sampled):
            _segments_closed_form(p, prompt, output, alpha, l, width, period, duration, completion)
        else:
            _segments_at_length(p, prompt, output, alpha, runs, sampled, l, width, duration, completion)


@njit(cache=True)
def task_windows(table, next_task, visible, out, offset):
    """Every env's observed task window: ``out[e, offset:]`` = rows next_task[e] .. next_task[e] + n_max - 1 of
    its task table ``table[e]`` (K + n_max rows of F features), flattened, zeros from row ``visible[e]`` on.

    What the vector env's numpy did with take_along_axis, a mask and a concatenate (three temporaries per
    step, a fifth of its time outside the commit): the same float32 values, copied once.
    """
    features = table.shape[2]
    n_max = (out.shape[1] - offset) // features
    for e in range(out.shape[0]):
        row = next_task[e]
        for i in range(n_max):
            at = offset + i * features
            for f in range(features):
                out[e, at + f] = table[e, row + i, f] if i < visible[e] else 0.0


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

    ``columns`` (8, m, K) float receives payload_bits, distance, channel_gain, spectral_efficiency, alpha,
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
