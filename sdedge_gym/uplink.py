"""The shared uplink: user rates, slot lengths, and the closed-form optimal band split (section 5).

A batch's n users split the band B by FDMA during one slot; the slot lasts until the slowest user has
sent its payload, U = max_k S_k / r_k(b_k). The minimum over splits with sum_k b_k = B has every user
finish together:

* ``fixed_snr``, r = b s:  b_k = B (S_k / s_k) / sum_j (S_j / s_j) and U = sum_j (S_j / s_j) / B;
* ``shannon``,  r = b log2(1 + a / b) with a = p g / N0 (noise grows with the band): for a common
  finish time T, user k needs b_k(T) = a_k / (y_k - 1) with c_k = S_k ln2 / (a_k T) and
  y_k = -W_{-1}(-c_k e^{-c_k}) / c_k (lower branch of Lambert W). sum_k b_k(T) decreases in T, so the
  optimum T* solves sum_k b_k(T) = B: a bracketed scalar root, here a safeguarded Newton iteration
  (bisection whenever Newton would leave the bracket), vectorised over any leading axes. Newton runs on
  1 / sum_k b_k(T), which is nearly linear in T at both ends (b_k grows like 1 / (T - T_min,k) near a
  user's infinite-band time), where sum_k b_k itself is so steep that plain Newton crawls.

Arrays have the users on the last axis; a user with zero payload is padding and gets no band.
"""

from __future__ import annotations

import math

import numpy as np

from sdedge_gym.config import UplinkConfig

LN2 = math.log(2.0)
_ROOT_RTOL = 1e-14
_MAX_ITERATIONS = 100
# Newton's error after a step of relative size d is O(d^2): stopping at d <= 1e-9 leaves ~1e-18.
_INNER_RTOL = 1e-9


def channel_coefficient(uplink: UplinkConfig, channel_gain, spectral_efficiency):
    """The per-user channel figure the rate model uses: a = p g / N0 (shannon, Hz) or s (fixed_snr)."""
    if uplink.rate_model == "fixed_snr":
        return np.asarray(spectral_efficiency, dtype=float)
    return uplink.transmit_power * np.asarray(channel_gain, dtype=float) / uplink.noise_density


def user_rate(bandwidth, channel, rate_model: str):
    """Achievable rate (bit/s) of users given their bandwidth (Hz); 0 for no bandwidth."""
    bandwidth = np.asarray(bandwidth, dtype=float)
    if rate_model == "fixed_snr":
        return bandwidth * channel
    safe = np.where(bandwidth > 0, bandwidth, 1.0)
    return np.where(bandwidth > 0, safe * np.log2(1.0 + channel / safe), 0.0)


def slot_length(payload, bandwidth, channel, rate_model: str):
    """max_k S_k / r_k(b_k) over the users with a payload (inf if one of them has no bandwidth)."""
    payload = np.asarray(payload, dtype=float)
    rate = user_rate(bandwidth, channel, rate_model)
    with np.errstate(divide="ignore", invalid="ignore"):
        time = np.where(payload > 0, payload / rate, 0.0)
    return time.max(axis=-1)


def uniform_allocation(payload, total_bandwidth: float):
    """b_k = B / n over the users with a payload: the benchmark split."""
    present = np.asarray(payload) > 0
    count = np.maximum(present.sum(axis=-1, keepdims=True), 1)
    return np.where(present, total_bandwidth / count, 0.0)


def closed_form_allocation(payload, channel, total_bandwidth: float, rate_model: str):
    """The optimal split: returns (slot length T*, bandwidth per user b_k) with sum_k b_k = B."""
    payload = np.asarray(payload, dtype=float)
    channel = np.asarray(channel, dtype=float)
    present = payload > 0
    if rate_model == "fixed_snr":
        demand = np.where(present, payload / channel, 0.0)  # S_k / s_k, Hz*s
        total = demand.sum(axis=-1)
        with np.errstate(invalid="ignore"):
            bandwidth = np.where(present, total_bandwidth * demand / total[..., None], 0.0)
        return total / total_bandwidth, bandwidth
    return _shannon_closed_form(payload, channel, total_bandwidth, present)


def shannon_bandwidth_needed(finish_time, payload, channel):
    """b_k(T): the band user k needs to send S_k bits in T seconds, and its derivative db_k/dT."""
    payload = np.asarray(payload, dtype=float)
    channel = np.asarray(channel, dtype=float)
    present = payload > 0
    kappa = np.where(present, payload * LN2 / np.where(present, channel, 1.0), 0.0)  # T_min,k
    bandwidth, derivative, _ = _bandwidth_needed(np.asarray(finish_time, dtype=float), channel, kappa, present)
    return bandwidth, derivative


def _log_snr_root(c, start=None):
    """u = ln(1 + a/b) solving u = ln(1 + u/c) for c in (0, 1), elementwise.

    This is the W_{-1} branch in disguise (e^u = -W_{-1}(-c e^{-c}) / c) but stays accurate as c -> 1,
    where -c e^{-c} reaches the branch point and scipy's lambertw loses every digit (a user whose slot is
    close to its infinite-band time). f(u) = ln(1 + u/c) - u is concave with its maximum at u = 1 - c, so
    Newton from any start right of that maximum converges; ``start`` warm-starts it.
    """
    cold = 2.0 * np.log1p(1.0 / c) + 1.0  # right of the root: f(cold) < 0
    u = cold if start is None else np.where(start > 1.0 - c, start, cold)
    for _ in range(_MAX_ITERATIONS):
        delta = (np.log1p(u / c) - u) / (1.0 / (c + u) - 1.0)
        u = u - delta
        if np.all(np.abs(delta) <= _INNER_RTOL * u):
            break
    return u


def _bandwidth_needed(finish, channel, kappa, present, log_snr=None):
    """b_k(T), db_k/dT and u_k for users on the last axis; ``finish`` broadcasts with ``kappa``."""
    c = np.where(present, kappa / finish, 0.5)  # padding: any value in (0, 1); masked out below
    u = _log_snr_root(c, log_snr)
    snr = np.expm1(u)  # x = a / b
    with np.errstate(divide="ignore", invalid="ignore"):
        bandwidth = np.where(present, channel / snr, 0.0)
        derivative = np.where(present, channel * c / (snr * (1.0 / (1.0 + snr) - c) * finish), 0.0)
    return bandwidth, derivative, u


def _shannon_closed_form(payload, channel, total_bandwidth, present):
    safe_channel = np.where(present, channel, 1.0)
    # Bracket: below the infinite-bandwidth time of the slowest user no split works; at the uniform
    # split's slot length every user already has enough band, so sum_k b_k(T) <= B there.
    lower = (np.where(present, payload, 0.0) * LN2 / safe_channel).max(axis=-1)
    upper = slot_length(payload, uniform_allocation(payload, total_bandwidth), safe_channel, "shannon")
    empty = ~present.any(axis=-1)
    lower = np.where(empty, 0.0, lower)
    upper = np.where(empty, 1.0, upper)
    finish = _initial_finish(payload, safe_channel, total_bandwidth, present, lower, upper)
    kappa = np.where(present, payload * LN2 / safe_channel, 0.0)
    count = np.maximum(present.sum(axis=-1, keepdims=True), 1)
    log_snr = np.log1p(safe_channel * count / total_bandwidth)  # u at the equal split: a warm start
    for _ in range(_MAX_ITERATIONS):
        need, slope, log_snr = _bandwidth_needed(finish[..., None], safe_channel, kappa, present, log_snr)
        excess = need.sum(axis=-1) - total_bandwidth
        lower = np.where(excess > 0, finish, lower)
        upper = np.where(excess <= 0, finish, upper)
        with np.errstate(divide="ignore", invalid="ignore"):
            newton = finish - excess / slope.sum(axis=-1) * (need.sum(axis=-1) / total_bandwidth)
        # A converged Newton step is taken even when it lands on the bracket's edge (it does, at the root).
        converged = np.abs(newton - finish) <= _ROOT_RTOL * finish
        inside = (newton > lower) & (newton < upper)
        step = np.where(inside | converged, newton, 0.5 * (lower + upper))
        done = converged | (upper - lower <= _ROOT_RTOL * upper)
        finish = step
        if np.all(done | empty):
            break
    need, _, _ = _bandwidth_needed(finish[..., None], safe_channel, kappa, present, log_snr)
    # Renormalise the last rounding error away so the split uses exactly B, and report the slot that
    # this very split achieves, so that callers never see a slot the shares do not deliver.
    total = need.sum(axis=-1, keepdims=True)
    bandwidth = np.where(present, need * total_bandwidth / np.where(total > 0, total, 1.0), 0.0)
    return slot_length(payload, bandwidth, safe_channel, "shannon"), bandwidth


def _initial_finish(payload, channel, total_bandwidth, present, lower, upper):
    """Newton's first guess: the fixed-SNR optimum at each user's equal-share spectral efficiency.

    It is usually within a few per cent of T*, which saves most of the iterations a start at the
    bracket's end would need; a guess outside the bracket falls back to the uniform slot (always valid).
    """
    count = np.maximum(present.sum(axis=-1, keepdims=True), 1)
    efficiency = np.log2(1.0 + channel * count / total_bandwidth)
    guess = np.where(present, payload / efficiency, 0.0).sum(axis=-1) / total_bandwidth
    return np.where((guess > lower) & (guess < upper), guess, upper)
