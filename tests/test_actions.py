"""The action contract: encodings of (n, l, shares) in every mode, and the mask layout."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sdedge_gym.actions import (
    ACTION_MODES,
    LOGIT_SCALE,
    MIN_WEIGHT,
    action_mask,
    encode_action,
    hybrid_batch_and_speculation,
    logits_from_shares,
    shares_from_logits,
    shares_from_weights,
)

N_MAX, L_MAX = 6, 4


def test_discrete_encoding() -> None:
    np.testing.assert_array_equal(encode_action("discrete", 3, 2, N_MAX, L_MAX), [2, 2])
    np.testing.assert_array_equal(encode_action("discrete", 1, 0, N_MAX, L_MAX), [0, 0])


@pytest.mark.parametrize("mode", ["hybrid", "dict"])
def test_every_batch_size_and_speculation_length_decodes_back(mode: str) -> None:
    for n in range(1, N_MAX + 1):
        for l in range(L_MAX + 1):
            action = encode_action(mode, n, l, N_MAX, L_MAX)
            if mode == "hybrid":
                assert action.shape == (2 + N_MAX,) and action.dtype == np.float32
                assert np.all((action >= -1) & (action <= 1))
                decoded = hybrid_batch_and_speculation(action, N_MAX, L_MAX)
                assert (int(decoded[0]), int(decoded[1])) == (n, l)
                shares = shares_from_logits(action[2:], n)
            else:
                assert (action["batch_size_minus_one"], action["speculation_length"]) == (n - 1, l)
                shares = shares_from_weights(action["bandwidth"], n)
            np.testing.assert_allclose(shares[:n], 1.0 / n, rtol=1e-6)  # no shares given: uniform
            np.testing.assert_array_equal(shares[n:], 0.0)


def test_hybrid_bins_cover_the_box_edges() -> None:
    n, l = hybrid_batch_and_speculation(np.array([[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0]]), N_MAX, L_MAX)
    assert n.tolist() == [1, N_MAX, 1 + N_MAX // 2]
    assert l.tolist() == [0, L_MAX, (L_MAX + 1) // 2]


@st.composite
def _shares(draw: st.DrawFn) -> np.ndarray:
    n = draw(st.integers(1, N_MAX))
    # log-shares spanning at most 15 < 2 * LOGIT_SCALE nats: the hybrid logits can express them exactly
    logs = np.array(draw(st.lists(st.floats(-7.5, 7.5), min_size=n, max_size=n)))
    shares = np.exp(logs)
    return shares / shares.sum()


@settings(max_examples=100, deadline=None)
@given(shares=_shares(), l=st.integers(0, L_MAX))
def test_hybrid_logits_reproduce_the_shares(shares: np.ndarray, l: int) -> None:
    n = shares.size
    action = encode_action("hybrid", n, l, N_MAX, L_MAX, shares=shares)
    np.testing.assert_allclose(shares_from_logits(action[2:], n)[:n], shares, rtol=0, atol=1e-6)
    # in float64, without the float32 cast of the action, the round trip is exact to rounding
    np.testing.assert_allclose(shares_from_logits(logits_from_shares(shares, N_MAX), n)[:n], shares, rtol=1e-12)


@settings(max_examples=100, deadline=None)
@given(shares=_shares(), l=st.integers(0, L_MAX))
def test_dict_weights_reproduce_the_shares(shares: np.ndarray, l: int) -> None:
    n = shares.size
    action = encode_action("dict", n, l, N_MAX, L_MAX, shares=shares)
    assert action["bandwidth"].shape == (N_MAX,) and action["bandwidth"].max() == pytest.approx(1.0)
    # Weights are floored at MIN_WEIGHT relative to the largest (no user without band): the round trip
    # reproduces the shares after that documented floor.
    floored = np.maximum(shares / shares.max(), MIN_WEIGHT)
    expected = floored / floored.sum()
    np.testing.assert_allclose(shares_from_weights(action["bandwidth"], n)[:n], expected, rtol=0, atol=1e-6)


def test_shares_beyond_the_logit_range_are_clipped_not_lost() -> None:
    shares = np.array([1.0 - 1e-12, 1e-12])  # a ratio of e^27.6 > e^(2 * LOGIT_SCALE)
    logits = logits_from_shares(shares, 3)
    np.testing.assert_array_equal(logits, [1.0, -1.0, -1.0])
    recovered = shares_from_logits(logits, 2)
    assert recovered[1] == pytest.approx(np.exp(-2 * LOGIT_SCALE) / (1 + np.exp(-2 * LOGIT_SCALE)))


def test_logits_and_weights_beyond_the_batch_are_ignored() -> None:
    logits = np.array([0.2, -0.3, 0.9, 1.0])
    np.testing.assert_allclose(shares_from_logits(logits, 2), shares_from_logits(np.array([0.2, -0.3, -1, -1]), 2))
    weights = np.array([0.0, 0.5, 1.0])
    shares = shares_from_weights(weights, 2)
    assert shares[2] == 0.0 and shares[0] > 0  # a zero weight is floored so that no user gets no band


def test_shares_broadcast_over_an_env_axis() -> None:
    logits = np.zeros((2, 4))
    shares = shares_from_logits(logits, np.array([1, 4]))
    np.testing.assert_allclose(shares, [[1, 0, 0, 0], [0.25, 0.25, 0.25, 0.25]])
    np.testing.assert_allclose(shares_from_weights(np.ones((2, 4)), np.array([2, 3])),
                               [[0.5, 0.5, 0, 0], [1 / 3, 1 / 3, 1 / 3, 0]])


def test_unknown_mode_raises_naming_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match=r"action_mode = 'box' is invalid; allowed: discrete \| hybrid \| dict"):
        encode_action("box", 1, 1, N_MAX, L_MAX)
    assert ACTION_MODES == ("discrete", "hybrid", "dict")


def test_action_mask_layout() -> None:
    mask = action_mask(3, 5, 2)
    # n = 1..5 (valid up to the limit 3), then l = 0..2 (always valid)
    assert mask.tolist() == [True, True, True, False, False, True, True, True]
    assert mask.dtype == bool
    # Terminal state (no task left): n = 1 stays valid, so that no sampler meets an all-False mask.
    assert action_mask(0, 5, 2).tolist() == [True] + [False] * 4 + [True] * 3
    stacked = action_mask(np.array([0, 1, 5]), 5, 2)
    assert stacked.shape == (3, 8)
    assert stacked[0].tolist() == stacked[1].tolist() == [True, False, False, False, False, True, True, True]
    assert stacked[2].all()


@given(st.integers(1, 12), st.integers(0, 6), st.integers(0, 20))
def test_every_mask_has_a_valid_batch_size_and_speculation_length(n_max: int, l_max: int, limit: int) -> None:
    mask = action_mask(limit, n_max, l_max)
    assert mask[:n_max].any() and mask[n_max:].any()
    assert mask[:n_max].sum() == min(max(limit, 1), n_max)
