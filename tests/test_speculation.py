"""Speculative rounds: L(alpha, l), sampled acceptance runs and rounds-to-finish (docs/MODEL.md)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sdedge_gym.speculation import acceptance_runs, expected_tokens_per_round, task_progress


@pytest.mark.parametrize(
    ("alpha", "l", "tokens"),
    [
        (0.5, 3, 1.875),  # 1 + 1/2 + 1/4 + 1/8
        (0.5, 1, 1.5),
        (0.8, 2, 2.44),  # 1 + 0.8 + 0.64
        (0.0, 5, 1.0),  # nothing is ever accepted: one token per round
        (0.9, 0, 1.0),  # l = 0 is autoregressive decoding
    ],
)
def test_expected_tokens_per_round_by_hand(alpha: float, l: int, tokens: float) -> None:
    assert float(expected_tokens_per_round(alpha, l)) == pytest.approx(tokens, rel=1e-12)


def test_expected_tokens_per_round_broadcasts() -> None:
    np.testing.assert_allclose(expected_tokens_per_round(np.array([0.0, 0.5]), 3), [1.0, 1.875])


# alpha = 0.5; u < alpha accepts:  T    T    F    T    T    T     F    T
HAND_UNIFORMS = np.array([[0.1, 0.2, 0.9, 0.3, 0.4, 0.45, 0.6, 0.1]])
HAND_RUNS = [[2, 1, 0, 3, 2, 1, 0, 1]]


def test_acceptance_runs_by_hand() -> None:
    np.testing.assert_array_equal(acceptance_runs(HAND_UNIFORMS, np.array([0.5])), HAND_RUNS)


def test_acceptance_runs_with_alpha_zero_and_a_stack_of_episodes() -> None:
    uniforms = np.stack([HAND_UNIFORMS, HAND_UNIFORMS])  # (2 episodes, 1 task, 8 positions)
    runs = acceptance_runs(uniforms, np.array([[0.5], [0.0]]))
    np.testing.assert_array_equal(runs[0], HAND_RUNS)
    np.testing.assert_array_equal(runs[1], np.zeros((1, 8)))


def test_sampled_rounds_by_hand_with_l_2() -> None:
    # p=0: run 2 -> accept 2, +3 tokens -> p=3; p=3: run 3 -> accept 2 -> p=6; p=6: run 0 -> p=7;
    # p=7: run 1 -> accept 1, but only one token is missing -> p=8. 4 rounds, 2+2+0+1 accepted.
    runs = acceptance_runs(HAND_UNIFORMS, np.array([0.5]))
    progress = task_progress(np.array([8]), np.array([0.5]), 2, runs=runs)
    assert progress.rounds.tolist() == [4]
    np.testing.assert_array_equal(progress.produced_before[0, :4], [0, 3, 6, 7])
    assert progress.accepted_drafts.tolist() == [5.0]


def test_sampled_rounds_by_hand_with_l_1() -> None:
    # p: 0 -(run 2, accept 1)-> 2 -(run 0)-> 3 -(run 3, accept 1)-> 5 -(run 1)-> 7 -(run 1, 1 left)-> 8
    runs = acceptance_runs(HAND_UNIFORMS, np.array([0.5]))
    progress = task_progress(np.array([8]), np.array([0.5]), 1, runs=runs)
    assert progress.rounds.tolist() == [5]
    np.testing.assert_array_equal(progress.produced_before[0, :5], [0, 2, 3, 5, 7])
    assert progress.accepted_drafts.tolist() == [4.0]


def test_expected_rounds_by_hand() -> None:
    # L(0.5, 3) = 1.875: 10 tokens need ceil(5.33) = 6 rounds; 15 tokens exactly 8 (no rounding up).
    progress = task_progress(np.array([10, 15]), np.array([0.5, 0.5]), 3)
    assert progress.rounds.tolist() == [6, 8]
    np.testing.assert_allclose(progress.produced_before[0, :6], [0, 1.875, 3.75, 5.625, 7.5, 9.375])
    np.testing.assert_array_equal(progress.accepted_drafts, [4.0, 7.0])  # O minus one token per round


@pytest.mark.parametrize("runs", [None, np.ones((2, 16), dtype=np.int32) * 9])
def test_l_zero_is_one_token_per_round(runs: np.ndarray | None) -> None:
    progress = task_progress(np.array([7, 12]), np.array([0.9, 0.5]), 0, runs=runs)
    assert progress.rounds.tolist() == [7, 12]
    assert progress.accepted_drafts.tolist() == [0.0, 0.0]


def test_padding_tasks_need_no_round() -> None:
    for runs in (None, acceptance_runs(np.full((2, 8), 0.1), np.array([0.5, 0.5]))):
        progress = task_progress(np.array([0, 8]), np.array([0.5, 0.5]), 2, runs=runs)
        assert progress.rounds[0] == 0
        assert progress.accepted_drafts[0] == 0


def test_negative_speculation_length_raises() -> None:
    with pytest.raises(ValueError, match="speculation_length"):
        task_progress(np.array([8]), np.array([0.5]), -1)


def _uniforms(seed: int, tasks: int, positions: int) -> np.ndarray:
    return np.random.default_rng(seed).random((tasks, positions))


@settings(max_examples=60, deadline=None)
@given(
    output=st.integers(1, 64),
    alphas=st.lists(st.floats(0.0, 0.99), min_size=2, max_size=2),
    l=st.integers(0, 8),
    seed=st.integers(0, 2**16),
)
def test_higher_alpha_never_needs_more_rounds(output: int, alphas: list[float], l: int, seed: int) -> None:
    low, high = sorted(alphas)
    o = np.array([output])
    expected_low = task_progress(o, np.array([low]), l).rounds[0]
    expected_high = task_progress(o, np.array([high]), l).rounds[0]
    assert expected_high <= expected_low
    u = _uniforms(seed, 1, 64)  # the same uniforms: every position accepted at low is accepted at high
    sampled_low = task_progress(o, np.array([low]), l, runs=acceptance_runs(u, np.array([low]))).rounds[0]
    sampled_high = task_progress(o, np.array([high]), l, runs=acceptance_runs(u, np.array([high]))).rounds[0]
    assert sampled_high <= sampled_low


@settings(max_examples=60, deadline=None)
@given(output=st.integers(1, 64), alpha=st.floats(0.0, 0.99), l=st.integers(0, 7), seed=st.integers(0, 2**16))
def test_longer_speculation_never_needs_more_rounds(output: int, alpha: float, l: int, seed: int) -> None:
    o, a = np.array([output]), np.array([alpha])
    assert task_progress(o, a, l + 1).rounds[0] <= task_progress(o, a, l).rounds[0]
    runs = acceptance_runs(_uniforms(seed, 1, 64), a)
    assert task_progress(o, a, l + 1, runs=runs).rounds[0] <= task_progress(o, a, l, runs=runs).rounds[0]


@settings(max_examples=60, deadline=None)
@given(output=st.integers(1, 64), alpha=st.floats(0.0, 0.99), l=st.integers(0, 8), seed=st.integers(0, 2**16))
def test_sampled_rounds_account_for_every_token(output: int, alpha: float, l: int, seed: int) -> None:
    # Every round yields its accepted drafts plus one target token, except that a final round cut short
    # by the output length may end on an accepted draft: O - rounds <= accepted <= O - rounds + 1.
    a = np.array([alpha])
    progress = task_progress(np.array([output]), a, l, runs=acceptance_runs(_uniforms(seed, 1, 64), a))
    rounds, accepted = int(progress.rounds[0]), float(progress.accepted_drafts[0])
    assert output - rounds <= accepted <= output - rounds + 1
    assert 1 <= rounds <= output
    steps = np.diff(progress.produced_before[0, :rounds])
    assert np.all((steps >= 1) & (steps <= l + 1))


@pytest.mark.parametrize(("alpha", "l", "seed"), [(0.3, 1, 0), (0.6, 3, 1), (0.8, 4, 2), (0.95, 8, 3), (0.5, 0, 4)])
def test_sampled_mode_matches_the_expected_mode_statistically(alpha: float, l: int, seed: int) -> None:
    tasks, output = 4000, 256
    a = np.full(tasks, alpha)
    progress = task_progress(np.full(tasks, output), a, l, runs=acceptance_runs(_uniforms(seed, tasks, output), a))
    fluid = float(expected_tokens_per_round(alpha, l))
    # (1) A round's yield depends only on uniforms no earlier round has read, so the yields of rounds
    # that cannot be the last one (each yields at most l + 1 tokens) are i.i.d. with mean L(alpha, l).
    surely_not_last = output // (l + 1) - 1
    yields = np.diff(progress.produced_before[:, : surely_not_last + 1], axis=-1).ravel()
    standard_error = yields.std() / np.sqrt(yields.size)
    assert abs(yields.mean() - fluid) <= 4.5 * standard_error + 1e-12
    # (2) Wald's identity on the untruncated yields: E[rounds] L = O + E[overshoot] with overshoot in
    # [0, l], so the mean rounds lie in [O / L, (O + l) / L]; the expected mode's ceil(O / L) lies in
    # [O / L, O / L + 1].
    rounds = progress.rounds.astype(float)
    margin = 4.5 * rounds.std() / np.sqrt(tasks) + 1e-12
    assert output / fluid - margin <= rounds.mean() <= (output + l) / fluid + margin
    expected_rounds = int(task_progress(np.array([output]), np.array([alpha]), l).rounds[0])
    assert output / fluid <= expected_rounds <= output / fluid + 1
