"""What the hints say about the hidden task columns: the exact Bayesian posterior of the workload model.

On a non-clairvoyant scenario a controller sees, per task, an output-length hint and an acceptance estimate
(``sdedge_gym.workload``, docs/MODEL.md section 1), drawn as

    O     = clip(rint(m exp(sigma_O z)), O_min, O_cap)        z  ~ N(0, 1)
    hint  = clip(rint(O exp(sigma_h z')), 1, O_cap)           z' ~ N(0, 1)
    alpha ~ U[alpha_min, alpha_max]
    alpha_hat = clip(alpha + sigma_a z'', 0, 0.99)            z'' ~ N(0, 1)

independently over tasks. Given the hints, the tasks' hidden (O, alpha) are independent with

* O: a distribution on the integers O_min..O_cap, prior mass x likelihood in closed form (differences of the
  normal CDF: the rounding and the clipping make every outcome an interval of z or z');
* alpha: prior density 1 on [alpha_min, alpha_max] x the normal density of alpha_hat, or for an estimate
  clipped at 0 or 0.99 the normal tail beyond it; tabulated on ``ALPHA_GRID`` cell midpoints.

This is what the scenario's documented generative model implies; nothing is fitted. The posterior planner
(``sdedge_agents.planner.PosteriorPlanner``) plans on samples of it.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr

from sdedge_gym.config import WorkloadConfig
from sdedge_gym.workload import MAX_ALPHA_ESTIMATE

ALPHA_GRID = 512  # cells of [alpha_min, alpha_max] the acceptance posterior is tabulated on


def normal_mass(low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """P(low <= Z < high) for a standard normal Z, accurate in both tails (no 1 - 1 cancellation)."""
    low, high = np.broadcast_arrays(np.asarray(low, dtype=float), np.asarray(high, dtype=float))
    upper = low > 0.0  # both bounds in the upper tail: the mirrored lower-tail difference keeps the digits
    return np.where(upper, ndtr(-low) - ndtr(-high), ndtr(high) - ndtr(low))


def _log_bounds(values: np.ndarray, low: int, high: int) -> tuple[np.ndarray, np.ndarray]:
    """ln of the interval of x whose clip(rint(x), low, high) is each integer of ``values`` (open ends: +-inf)."""
    values = np.asarray(values, dtype=float)
    with np.errstate(divide="ignore"):
        lower = np.where(values <= low, -np.inf, np.log(np.maximum(values - 0.5, 0.0)))
    upper = np.where(values >= high, np.inf, np.log(values + 0.5))
    return lower, upper


def output_prior(config: WorkloadConfig) -> tuple[np.ndarray, np.ndarray]:
    """(values O_min..O_cap, their prior masses) of the output length."""
    values = np.arange(config.output_min, config.max_new_tokens + 1)
    if config.output_sigma == 0.0:
        point = np.clip(np.rint(config.output_median), config.output_min, config.max_new_tokens)
        return values, (values == point).astype(float)
    lower, upper = _log_bounds(values, config.output_min, config.max_new_tokens)
    centre = np.log(config.output_median)
    return values, normal_mass((lower - centre) / config.output_sigma, (upper - centre) / config.output_sigma)


def output_posterior(config: WorkloadConfig, hints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(values O_min..O_cap, posterior masses (tasks, values)) of each task's output length given its hint."""
    values, prior = output_prior(config)
    hints = np.asarray(hints, dtype=float)[:, None]
    if config.output_hint_sigma == 0.0:
        likelihood = (np.clip(values[None, :], 1, config.max_new_tokens) == hints).astype(float)
    else:
        lower, upper = _log_bounds(hints, 1, config.max_new_tokens)
        log_value = np.log(values)[None, :]
        likelihood = normal_mass((lower - log_value) / config.output_hint_sigma,
                                 (upper - log_value) / config.output_hint_sigma)
    return values, _normalised(prior[None, :] * likelihood, "output_hint")


def alpha_posterior(config: WorkloadConfig, estimates: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(cell midpoints, posterior masses (tasks, cells), cell width) of each task's acceptance rate.

    Needs alpha_min < alpha_max and alpha_estimate_noise > 0 (otherwise the posterior is a point:
    :func:`sample_hidden` handles those cases)."""
    width = (config.alpha_max - config.alpha_min) / ALPHA_GRID
    midpoints = config.alpha_min + width * (np.arange(ALPHA_GRID) + 0.5)
    estimates = np.asarray(estimates, dtype=float)[:, None]
    sigma = config.alpha_estimate_noise
    z = (estimates - midpoints[None, :]) / sigma
    likelihood = np.exp(-0.5 * z * z)
    likelihood = np.where(estimates >= MAX_ALPHA_ESTIMATE, ndtr((midpoints - MAX_ALPHA_ESTIMATE) / sigma),
                          likelihood)
    likelihood = np.where(estimates <= 0.0, ndtr(-midpoints / sigma), likelihood)
    return midpoints, _normalised(likelihood, "alpha_estimate"), width


def _normalised(masses: np.ndarray, field: str) -> np.ndarray:
    total = masses.sum(axis=1, keepdims=True)
    if np.any(total <= 0.0):
        raise ValueError(f"{field}: a value the scenario's workload model cannot produce (zero likelihood); "
                         "allowed: the hints and estimates of an episode drawn from that scenario")
    return masses / total


def stratified_indices(masses: np.ndarray, samples: int, rng: np.random.Generator) -> np.ndarray:
    """(tasks, samples) indices into each row's values, stratified: one draw from each 1/samples-quantile
    band of the row's distribution, the bands shuffled independently per task (so that tasks stay independent
    across the samples)."""
    tasks = masses.shape[0]
    levels = (np.arange(samples)[None, :] + rng.random((tasks, samples))) / samples
    levels = np.take_along_axis(levels, np.argsort(rng.random((tasks, samples)), axis=1), axis=1)
    cumulative = np.cumsum(masses, axis=1)
    cumulative /= cumulative[:, -1:]
    index = np.empty((tasks, samples), dtype=np.int64)
    for k in range(tasks):
        index[k] = np.searchsorted(cumulative[k], levels[k], side="right")
    return np.minimum(index, masses.shape[1] - 1)


def sample_hidden(config: WorkloadConfig, hints: np.ndarray, estimates: np.ndarray, samples: int,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(output lengths, acceptance rates), each (samples, tasks): stratified draws from the posterior."""
    values, output_masses = output_posterior(config, hints)
    output = values[stratified_indices(output_masses, samples, rng)].T
    estimates = np.asarray(estimates, dtype=float)
    if config.alpha_max == config.alpha_min or config.alpha_estimate_noise == 0.0:  # a point posterior
        point = np.clip(estimates, config.alpha_min, config.alpha_max)
        alpha = np.broadcast_to(point, (samples, point.size))
    else:
        midpoints, alpha_masses, width = alpha_posterior(config, estimates)
        cell = stratified_indices(alpha_masses, samples, rng).T
        alpha = midpoints[cell] + width * (rng.random(cell.shape) - 0.5)  # uniform within the cell
    return np.ascontiguousarray(output, dtype=np.int64), np.ascontiguousarray(alpha)
