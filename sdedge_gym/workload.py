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
        # The field names are a module constant: dataclasses.fields() costs more than the flags themselves,
        # and a Workload is built at every reset (many per step in the vector env).
        for name in WORKLOAD_FIELDS:
            value = getattr(self, name)
            if isinstance(value, np.ndarray):
                value.setflags(write=False)

    @property
    def num_tasks(self) -> int:
        return int(self.prompt_len.shape[-1])


WORKLOAD_FIELDS = tuple(f.name for f in fields(Workload))


def _lognormal_tokens(z: np.ndarray, median: float, sigma: float, low: int, high: int) -> np.ndarray:
    """Truncated log-normal token counts from standard normals ``z`` (round, then clip to [low, high])."""
    values = np.rint(median * np.exp(sigma * z))
    # maximum-then-minimum is what np.clip computes, without its Python-level wrapper (bit-identical).
    np.maximum(values, low, out=values)
    np.minimum(values, high, out=values)
    return values.astype(np.int64)


def path_gain(workload: WorkloadConfig, distance):
    """Large-scale power gain 10^(-PL/10) at ``distance`` (m), PL = A + B log10(d / 1 km) in dB."""
    path_loss_db = workload.path_loss_db_at_1km + workload.path_loss_db_per_decade * np.log10(
        np.asarray(distance, dtype=float) / 1000.0)
    return 10.0 ** (-path_loss_db / 10.0)


def raw_draws(scenario: ScenarioConfig, rng: np.random.Generator, count: int | None = None
              ) -> tuple[np.ndarray | None, ...]:
    """Every random draw of one episode, in the fixed order (see the module docstring); nothing derived.

    With ``count``, the draws of ``count`` episodes at once, each array (count, K): one call per quantity
    for all of them (the vector env's autoreset). Splitting the draws from what is computed from them lets
    the vector env derive for all its resetting envs at once with :func:`derive_workload`.
    """
    w = scenario.workload
    k = w.num_tasks if count is None else (count, w.num_tasks)
    normal, uniform = rng.standard_normal, rng.uniform
    prompt_z = normal(k)
    output_z = normal(k)
    distance_sq = uniform(w.distance_min**2, w.distance_max**2, k)
    fading = rng.exponential(1.0, k) if w.rayleigh_fading else None
    extra = uniform(w.extra_bits_min, w.extra_bits_max, k)
    spectral = uniform(w.spectral_efficiency_min, w.spectral_efficiency_max, k)
    alpha = uniform(w.alpha_min, w.alpha_max, k)
    alpha_z = normal(k)
    hint_z = normal(k)
    uniforms = rng.random((*np.atleast_1d(k), w.max_new_tokens)) if scenario.acceptance == "sampled" else None
    return prompt_z, output_z, distance_sq, fading, extra, spectral, alpha, alpha_z, hint_z, uniforms


def derive_workload(scenario: ScenarioConfig, prompt_z, output_z, distance_sq, fading, extra, spectral, alpha,
                    alpha_z, hint_z, uniforms, tokens: tuple[np.ndarray, np.ndarray] | None = None
                    ) -> dict[str, np.ndarray | None]:
    """The Workload columns from :func:`raw_draws`' arrays, task axis last (leading axes: envs).

    ``tokens`` = (prompt lengths, output lengths) replaces the log-normal lengths (a trace's); the normals
    ``prompt_z`` and ``output_z`` are still drawn, so every other column is the same as without it.

    Only elementwise operations and a per-row stable sort: a row of a stacked call equals the 1-D call
    bit for bit (tests/test_env_speed_paths.py checks it).
    """
    w = scenario.workload
    if tokens is None:
        prompt = _lognormal_tokens(prompt_z, w.prompt_median, w.prompt_sigma, w.prompt_min, w.prompt_max)
        output = _lognormal_tokens(output_z, w.output_median, w.output_sigma, w.output_min, w.max_new_tokens)
    else:
        prompt, output = (np.asarray(column, dtype=np.int64).copy() for column in tokens)
    distance = np.sqrt(distance_sq)
    alpha_estimate = alpha + w.alpha_estimate_noise * alpha_z
    np.maximum(alpha_estimate, 0.0, out=alpha_estimate)
    np.minimum(alpha_estimate, MAX_ALPHA_ESTIMATE, out=alpha_estimate)
    hint = np.rint(output * np.exp(w.output_hint_sigma * hint_z))
    np.maximum(hint, 1, out=hint)
    np.minimum(hint, w.max_new_tokens, out=hint)

    gain = path_gain(w, distance)
    if fading is not None:  # no fading is a unit gain: multiplying by 1.0 would change nothing
        gain = gain * fading
    payload = scenario.uplink.bits_per_token * prompt + extra
    columns = {"prompt_len": prompt, "output_len": output, "payload_bits": payload, "distance": distance,
               "channel_gain": gain, "spectral_efficiency": spectral, "alpha": alpha,
               "alpha_estimate": alpha_estimate, "output_hint": hint, "uniforms": uniforms}
    if scenario.queue_order == "shortest_payload":  # FIFO needs no reordering (the arrays are fresh)
        order = np.argsort(payload, axis=-1, kind="stable")
        for name, value in columns.items():
            if value is not None:
                index = order if name != "uniforms" else order[..., None]
                axis = -1 if name != "uniforms" else -2
                columns[name] = np.take_along_axis(value, index, axis=axis)
    return columns


def draw_workload(scenario: ScenarioConfig, rng: np.random.Generator,
                  tokens: tuple[np.ndarray, np.ndarray] | None = None) -> Workload:
    """Draw the tasks of one episode (the only place an offline episode consumes randomness).

    ``tokens`` = (prompt lengths, output lengths), e.g. a trace's, replaces the drawn lengths (see
    :func:`derive_workload`). An online episode draws its arrival times after this, from the same Generator
    (``sdedge_gym.arrivals.draw_arrivals``), so that its tasks are those of the offline episode.
    """
    return Workload(**derive_workload(scenario, *raw_draws(scenario, rng), tokens=tokens))
