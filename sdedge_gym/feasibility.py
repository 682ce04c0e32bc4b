"""Checks at construction that a scenario's derived quantities are finite and positive.

Every config field can be valid on its own and the scenario still be degenerate: a 1e300 Hz band leaves
an SNR per hertz that rounds to 0, a noise density of 1 W/Hz or a path loss of 500 dB a rate of 0 bit/s
(and a ZeroDivisionError mid-episode), a 1e-300 Hz band an SNR that overflows. ``check_scenario`` runs
from ``ServingModel.of`` and raises ``ValueError`` naming the fields that make a quantity degenerate:

* the uplink SNR a / B (a = p g / N0) of the farthest user at unit fading with the whole band must be at
  least MIN_SNR, and that of the nearest user at a strong fade (FADING_HEADROOM) on the smallest share an
  action can give it (MIN_SHARE of the band) must be finite;
* the longest upload (the largest payload, alone on the whole band, at that weakest SNR; or at the lowest
  spectral efficiency under ``fixed_snr``) must be at most MAX_TIME;
* the longest pass of each node (a prefill of the largest batch of the longest prompts, a verify pass
  of the largest batch at full context) and one round's fronthaul transfer must be at most MAX_TIME.

What is left: Rayleigh fading has an unbounded lower tail, so a user can still draw a fade deep enough for
its rate to round to 0 on a scenario that passes (the SNR times the fade below ~1e-16, so with MIN_SNR a
fade below 1e-10: probability about 1e-10 per task).
"""

from __future__ import annotations

import math

from sdedge_gym.config import ScenarioConfig
from sdedge_gym.roofline import PassCost
from sdedge_gym.workload import path_gain

MIN_SNR = 1e-6  # -60 dB: below it a 1 MHz band carries about 1.4 bit/s
MAX_TIME = 1e9  # s (about 32 years): no upload, pass or transfer of a meaningful scenario takes longer
FADING_HEADROOM = 50.0  # an Exp(1) power gain exceeds this with probability e^-50
MIN_SHARE = 1e-9  # below the smallest share a hybrid (e^-16 / n_max) or dict (1e-6 / n_max) action gives

_SNR_FIELDS = ("uplink.transmit_power, uplink.noise_density, uplink.bandwidth, workload.path_loss_db_at_1km, "
               "workload.path_loss_db_per_decade")


def check_scenario(config: ScenarioConfig, draft: PassCost, target: PassCost, batch_limit: int) -> None:
    """ValueError naming the fields if an SNR, rate, slot, pass or transfer time is not finite and positive."""
    w, up = config.workload, config.uplink
    _check(math.isfinite(w.distance_max * w.distance_max), "workload.distance_max", w.distance_max,
           "a distance whose square is finite (< 1e154 m)")
    payload = up.bits_per_token * w.prompt_max + w.extra_bits_max
    if up.rate_model == "shannon":
        weakest = up.transmit_power * float(path_gain(w, w.distance_max)) / up.noise_density / up.bandwidth
        _check(math.isfinite(weakest) and weakest >= MIN_SNR, f"{_SNR_FIELDS}, workload.distance_max",
               weakest, f"an SNR >= {MIN_SNR:g} ({10 * math.log10(MIN_SNR):.0f} dB) for a user at distance_max "
               "with the whole band", "the uplink SNR a / B")
        strongest = (up.transmit_power * float(path_gain(w, w.distance_min)) * FADING_HEADROOM / up.noise_density
                     / (MIN_SHARE * up.bandwidth))
        _check(math.isfinite(strongest), f"{_SNR_FIELDS}, workload.distance_min", strongest,
               "a finite SNR for a user at distance_min on a small share of the band", "the uplink SNR a / b")
        slot = payload / (up.bandwidth * math.log2(1.0 + weakest))
    else:
        slot = payload / (up.bandwidth * w.spectral_efficiency_min)
        _check(math.isfinite(up.bandwidth * w.spectral_efficiency_max), "uplink.bandwidth, "
               "workload.spectral_efficiency_max", up.bandwidth * w.spectral_efficiency_max,
               "a finite rate B s_max", "the uplink rate")
    _check(0 < slot <= MAX_TIME, "uplink.bits_per_token, workload.prompt_max, workload.extra_bits_max, "
           f"{_SNR_FIELDS if up.rate_model == 'shannon' else 'uplink.bandwidth, workload.spectral_efficiency_min'}",
           slot, f"an upload of the largest payload on the whole band within {MAX_TIME:g} s",
           "the longest uplink slot (s)")

    n, l_max = batch_limit, config.max_speculation
    context = w.prompt_max + w.max_new_tokens
    for role, cost in (("draft", draft), ("target", target)):
        longest = max(float(cost.uniform_pass_time(n, w.prompt_max, 0)),
                      float(cost.uniform_pass_time(n, l_max + 1, context)))
        _check(0 < longest <= MAX_TIME, f"{role}.gpu (peak_flops, memory_bandwidth), {role}.efficiency, "
               f"{role}.pass_overhead, {role}.model", longest, f"a pass within {MAX_TIME:g} s",
               f"the {role} node's longest forward pass (s)")
    fronthaul = config.fronthaul
    transfer = fronthaul.latency + n * l_max * fronthaul.draft_token_bits / fronthaul.rate
    _check(transfer <= MAX_TIME, "fronthaul.rate, fronthaul.latency, fronthaul.draft_token_bits", transfer,
           f"a round's transfer within {MAX_TIME:g} s", "the longest fronthaul transfer (s)")


def _check(ok: bool, fields: str, value: float, allowed: str, what: str | None = None) -> None:
    if not ok:
        quantity = f"{what} = {value:.6g}" if what else f"{fields} = {value!r}"
        raise ValueError(f"ScenarioConfig is degenerate: {quantity}, from {fields}; allowed: {allowed}")
