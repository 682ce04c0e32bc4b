"""sdedge_agents.statistics against hand-computed examples."""

from __future__ import annotations

import numpy as np
import pytest

from sdedge_agents.statistics import interquartile_mean, normalised_score, stratified_bootstrap_ci


def test_normalised_score_by_hand() -> None:
    # oracle -4, random -6: a return of -4.5 closes 1.5 of the 2 s between them
    assert normalised_score(-4.5, -4.0, -6.0) == pytest.approx(0.75)
    assert normalised_score(-4.0, -4.0, -6.0) == 1.0 and normalised_score(-6.0, -4.0, -6.0) == 0.0
    with pytest.raises(ValueError, match="distinct"):
        normalised_score(-1.0, -2.0, -2.0)


def test_interquartile_mean_by_hand() -> None:
    # n = 8: cut 2 from each end -> mean(3, 4, 5, 100) is not it; sorted 1..7, 100 -> middle 3, 4, 5, 6
    assert interquartile_mean([100, 1, 2, 3, 4, 5, 6, 7]) == pytest.approx(4.5)
    # n = 3 (three training seeds): floor(3 / 4) = 0, the plain mean
    assert interquartile_mean([0.2, 0.5, 0.8]) == pytest.approx(0.5)
    # n = 5: cut 1 from each end -> mean(2, 3, 4)
    assert interquartile_mean([5, 4, 3, 2, -50]) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="no scores"):
        interquartile_mean([])


def test_stratified_bootstrap_keeps_each_task_weight() -> None:
    # Task a always 0, task b always 1: every stratified resample is [0, 0, 1, 1], IQM = mean(0, 1) = 0.5.
    point, low, high = stratified_bootstrap_ci({"a": [0.0, 0.0], "b": [1.0, 1.0]}, repetitions=200)
    assert (point, low, high) == (0.5, 0.5, 0.5)


def test_bootstrap_of_two_runs_matches_the_enumerated_distribution() -> None:
    # One task, runs [0, 1], mean as the statistic: resample means are 0, 0.5, 1 with probabilities 1/4, 1/2,
    # 1/4, so the 95 % interval is [0, 1] and the point estimate 0.5.
    point, low, high = stratified_bootstrap_ci({"a": [0.0, 1.0]}, statistic=np.mean, repetitions=4000, seed=1)
    assert (point, low, high) == (0.5, 0.0, 1.0)
    # A 40 % interval lies inside the central atom 0.5 (probability 1/2 around the median).
    _, low, high = stratified_bootstrap_ci({"a": [0.0, 1.0]}, statistic=np.mean, repetitions=4000, confidence=0.4)
    assert (low, high) == (0.5, 0.5)


def test_bad_inputs_name_the_argument() -> None:
    with pytest.raises(ValueError, match="confidence"):
        stratified_bootstrap_ci({"a": [1.0]}, confidence=1.5)
    with pytest.raises(ValueError, match="no tasks"):
        stratified_bootstrap_ci({})


def test_paired_difference_is_the_mean_difference_with_a_bootstrap_interval():
    from sdedge_agents.statistics import paired_difference

    assert paired_difference(np.array([3.0, 4.0, 5.0]), np.array([1.0, 2.0, 3.0])) == (2.0, 2.0, 2.0)
    rng = np.random.default_rng(0)
    reference = rng.normal(50, 10, 400)
    values = reference + rng.normal(-0.5, 1.0, 400)  # the episode's difficulty cancels in the pairs
    mean, low, high = paired_difference(values, reference)
    assert mean == pytest.approx(np.mean(values - reference), rel=1e-12)
    assert low < mean < high and high < 0 and high - low < 0.3  # 1.96 x 2 x 1 / sqrt(400) = 0.196
