"""Drawing an episode's tasks from a scenario's :class:`WorkloadConfig` (section 1).

All randomness of an episode is drawn here, from one ``numpy.random.Generator`` and in a fixed order, so
that a seed fixes the episode. Per task k:

* prompt length I_k and output length O_k: truncated log-normals (median, log-std, [min, max]); output
  lengths are capped at ``max_new_tokens``;
* uplink payload S_k = beta I_k + extra_k bits (extra_k ~ U[extra_bits_min, extra_bits_max]);
* distance d_k, uniform over the annulus [distance_min, distance_max] around the SBS; channel gain
  g_k = 10^(-PL(d_k)/10) |h_k|^2 with PL = 128.1 + 37.6 log10(d / 1 km) and Rayleigh |h|^2 ~ Exp(1);
* spectral efficiency s_k ~ U[min, max] (used by the ``fixed_snr`` rate model only);
* acceptance rate alpha_k ~ U[alpha_min, alpha_max];
* the non-clairvoyant view: alpha estimate clip(alpha_k + N(0, noise^2)) and output-length hint
  clip(round(O_k exp(N(0, sigma^2)))): what a length predictor and a running acceptance average would say;
* sampled mode only: one uniform u_{k,p} per output position p < max_new_tokens (drawn last, so the rest
  of the episode is the same in both acceptance modes).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from sdedge_gym.config import ScenarioConfig, WorkloadConfig

# A clairvoyant or estimated acceptance rate is kept below 1 so that L(alpha, l) stays finite.
MAX_ALPHA_ESTIMATE = 0.99


@dataclass(frozen=True)
class Workload:
    """One episode's tasks, in queue order (arrays over tasks, read-only)."""

    prompt_len: np.ndarray  # I_k, tokens (int)
    output_len: np.ndarray  # O_k, tokens (int)
    payload_bits: np.ndarray  # S_k, bits
    distance: np.ndarray  # d_k, m
    channel_gain: np.ndarray  # g_k (linear power gain)
    spectral_efficiency: np.ndarray  # s_k, bit/s/Hz
    alpha: np.ndarray  # alpha_k
    alpha_estimate: np.ndarray  # noisy alpha_k (non-clairvoyant view)
    output_hint: np.ndarray  # predicted O_k (non-clairvoyant view)
    uniforms: np.ndarray | None  # (K, max_new_tokens) u_{k,p}, sampled mode only

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                value.setflags(write=False)

    @property
    def num_tasks(self) -> int:
        return int(self.prompt_len.shape[-1])


def _truncated_lognormal(rng: np.random.Generator, median: float, sigma: float, low: int, high: int,
                         size: int) -> np.ndarray:
    values = np.rint(median * np.exp(sigma * rng.standard_normal(size)))
    return np.clip(values, low, high).astype(np.int64)


def path_gain(workload: WorkloadConfig, distance):
    """Large-scale power gain 10^(-PL/10) at ``distance`` (m), PL = A + B log10(d / 1 km) in dB."""
    path_loss_db = workload.path_loss_db_at_1km + workload.path_loss_db_per_decade * np.log10(
        np.asarray(distance, dtype=float) / 1000.0)
    return 10.0 ** (-path_loss_db / 10.0)


def draw_workload(scenario: ScenarioConfig, rng: np.random.Generator) -> Workload:
    """Draw the tasks of one episode (the only place an episode consumes randomness)."""
    w: WorkloadConfig = scenario.workload
    k = w.num_tasks
    prompt = _truncated_lognormal(rng, w.prompt_median, w.prompt_sigma, w.prompt_min, w.prompt_max, k)
    output = _truncated_lognormal(rng, w.output_median, w.output_sigma, w.output_min, w.max_new_tokens, k)
    distance = np.sqrt(rng.uniform(w.distance_min**2, w.distance_max**2, k))
    fading = rng.exponential(1.0, k) if w.rayleigh_fading else np.ones(k)
    extra = rng.uniform(w.extra_bits_min, w.extra_bits_max, k)
    spectral = rng.uniform(w.spectral_efficiency_min, w.spectral_efficiency_max, k)
    alpha = rng.uniform(w.alpha_min, w.alpha_max, k)
    alpha_estimate = np.clip(alpha + w.alpha_estimate_noise * rng.standard_normal(k), 0.0, MAX_ALPHA_ESTIMATE)
    hint = np.rint(output * np.exp(w.output_hint_sigma * rng.standard_normal(k)))
    hint = np.clip(hint, 1, w.max_new_tokens)
    uniforms = rng.random((k, w.max_new_tokens)) if scenario.acceptance == "sampled" else None

    gain = path_gain(w, distance) * fading
    payload = scenario.uplink.bits_per_token * prompt + extra

    order = np.arange(k)
    if scenario.queue_order == "shortest_payload":
        order = np.argsort(payload, kind="stable")
    return Workload(
        prompt_len=prompt[order], output_len=output[order], payload_bits=payload[order],
        distance=distance[order], channel_gain=gain[order], spectral_efficiency=spectral[order],
        alpha=alpha[order], alpha_estimate=alpha_estimate[order], output_hint=hint[order],
        uniforms=None if uniforms is None else uniforms[order],
    )
