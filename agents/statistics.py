"""Aggregate scores over training seeds the way deep-RL papers report them (Agarwal et al., 2021, rliable).

* :func:`normalised_score`: (R - R_random) / (R_oracle - R_random) on mean returns (1 = oracle, 0 = random);
* :func:`interquartile_mean`: the mean of the middle 50 % of the scores (``scipy.stats.trim_mean(x, 0.25)``,
  rliable's IQM): robust to one bad seed, less noisy than the median over a few seeds;
* :func:`stratified_bootstrap_ci`: a percentile confidence interval of a statistic over runs, resampling
  the runs of each task (env id) with replacement separately, so every resample keeps each task's weight;
* :func:`mean_interval`: a mean over episodes with its 95 % t-interval, and :func:`paired_difference`: the mean
  per-episode difference against a reference with a bootstrap interval over episodes;
* :func:`episode_gaps`: each episode's own gap to the oracle in %, for episode sets whose objectives differ by
  orders of magnitude (the deep fades of ``sdedge_agents.protocol``), where a mean is the worst episode's.

numpy and scipy; rliable (``pip install rliable``) computes the first three if a user prefers it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
from scipy import stats


def normalised_score(mean_return: float, oracle_return: float, random_return: float) -> float:
    """(R - R_random) / (R_oracle - R_random); ValueError when the oracle and random tie (no scale)."""
    spread = oracle_return - random_return
    if spread == 0:
        raise ValueError("normalised_score: oracle_return == random_return; allowed: distinct references")
    return float((mean_return - random_return) / spread)


def episode_gaps(values: Sequence[float] | np.ndarray, oracle: Sequence[float] | np.ndarray) -> np.ndarray:
    """100 (v_e / o_e - 1) for each episode e: its gap to the oracle in %, every episode weighing the same."""
    return 100.0 * (np.asarray(values, dtype=float) / np.asarray(oracle, dtype=float) - 1.0)


def interquartile_mean(scores: Sequence[float] | np.ndarray) -> float:
    """Mean of the scores left after cutting floor(n / 4) from each end of the sorted scores."""
    values = np.sort(np.asarray(scores, dtype=float).ravel())
    if values.size == 0:
        raise ValueError("interquartile_mean: no scores; allowed: at least one score")
    cut = values.size // 4
    return float(values[cut: values.size - cut].mean())


def stratified_bootstrap_ci(scores_by_task: Mapping[str, Sequence[float]],
                            statistic: Callable[[np.ndarray], float] = interquartile_mean,
                            repetitions: int = 2000, confidence: float = 0.95,
                            seed: int = 0) -> tuple[float, float, float]:
    """(point estimate, lower, upper): ``statistic`` of all scores and its percentile bootstrap interval.

    Each repetition draws, for every task, as many runs as it has, with replacement from that task's runs,
    and applies ``statistic`` to all drawn scores together.
    """
    if not scores_by_task:
        raise ValueError("stratified_bootstrap_ci: no tasks; allowed: a mapping task -> scores")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence = {confidence!r} is invalid; allowed: a number in (0, 1)")
    tasks = [np.asarray(v, dtype=float).ravel() for v in scores_by_task.values()]
    if any(t.size == 0 for t in tasks):
        raise ValueError("stratified_bootstrap_ci: a task without scores; allowed: at least one score per task")
    rng = np.random.default_rng(seed)
    point = statistic(np.concatenate(tasks))
    replicates = np.empty(repetitions)
    for r in range(repetitions):
        replicates[r] = statistic(np.concatenate([t[rng.integers(0, t.size, t.size)] for t in tasks]))
    tail = 100 * (1 - confidence) / 2
    lower, upper = np.percentile(replicates, [tail, 100 - tail])
    return float(point), float(lower), float(upper)


def mean_interval(values: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Mean and the half width of its 95 % t-interval (0 for a single value)."""
    mean = float(np.mean(values))
    if len(values) < 2:
        return mean, 0.0
    return mean, float(stats.t.ppf(0.975, len(values) - 1) * np.std(values, ddof=1) / np.sqrt(len(values)))


def paired_difference(values: np.ndarray, reference: np.ndarray, repetitions: int = 2000,
                      seed: int = 0) -> tuple[float, float, float]:
    """(mean, lower, upper): mean over episodes of values - reference, percentile bootstrap over episodes."""
    difference = np.asarray(values) - np.asarray(reference)
    rng = np.random.default_rng(seed)
    means = [difference[rng.integers(0, difference.size, difference.size)].mean() for _ in range(repetitions)]
    low, high = np.percentile(means, [2.5, 97.5])
    return float(difference.mean()), float(low), float(high)
