"""Uplink rates, slot lengths and the closed-form band split (docs/MODEL.md, "Uplink")."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize

from sdedge_gym.config import UplinkConfig
from sdedge_gym.uplink import (
    channel_coefficient,
    closed_form_allocation,
    slot_length,
    uniform_allocation,
    user_rate,
)

RATE_MODELS = ("shannon", "fixed_snr")


def test_user_rate_by_hand() -> None:
    # shannon: 1 MHz with a = 3 MHz of "SNR bandwidth" -> SNR 3 -> log2(4) = 2 bit/s/Hz.
    assert float(user_rate(1e6, 3e6, "shannon")) == pytest.approx(2e6)
    assert float(user_rate(0.0, 3e6, "shannon")) == 0.0
    assert float(user_rate(2e5, 4.5, "fixed_snr")) == pytest.approx(9e5)


def test_channel_coefficient_by_rate_model() -> None:
    uplink = UplinkConfig(transmit_power=0.2, noise_density=1e-20)
    assert float(channel_coefficient(uplink, 1e-10, 3.0)) == pytest.approx(0.2 * 1e-10 / 1e-20)
    fixed = uplink.replace(rate_model="fixed_snr")
    assert float(channel_coefficient(fixed, 1e-10, 3.0)) == 3.0


def test_slot_length_is_the_slowest_user_and_ignores_padding() -> None:
    payload = np.array([2e6, 1e6, 0.0])
    bandwidth = np.array([0.5e6, 0.5e6, 0.0])
    # fixed_snr with s = 2: user 0 takes 2e6 / 1e6 = 2 s, user 1 1 s; the padding user is ignored.
    assert float(slot_length(payload, bandwidth, np.array([2.0, 2.0, 2.0]), "fixed_snr")) == pytest.approx(2.0)
    # a real user without band never finishes
    assert math.isinf(float(slot_length(payload, np.array([1e6, 0.0, 0.0]), np.full(3, 2.0), "fixed_snr")))


def test_fixed_snr_closed_form_by_hand() -> None:
    # demands S/s = 1e6/2 and 3e6/6 and 1e6/1 Hz*s: total 2e6 -> U = 2e6 / 1e6 = 2 s, split 1/4, 1/4, 1/2.
    slot, bandwidth = closed_form_allocation(np.array([1e6, 3e6, 1e6]), np.array([2.0, 6.0, 1.0]), 1e6, "fixed_snr")
    assert float(slot) == pytest.approx(2.0)
    np.testing.assert_allclose(bandwidth, [0.25e6, 0.25e6, 0.5e6])


def test_uniform_allocation_splits_among_real_users() -> None:
    np.testing.assert_allclose(uniform_allocation(np.array([1.0, 5.0, 0.0, 2.0]), 3e6), [1e6, 1e6, 0.0, 1e6])
    np.testing.assert_allclose(uniform_allocation(np.array([[1.0, 0.0], [1.0, 1.0]]), 2.0), [[2.0, 0.0], [1.0, 1.0]])


def _instance(rng: np.random.Generator, n: int, rate_model: str) -> tuple[np.ndarray, np.ndarray, float]:
    """Payloads of 0.1-10 Mbit; channels as drawn at 20-400 m (shannon) or 0.5-8 bit/s/Hz (fixed_snr)."""
    payload = 10 ** rng.uniform(5, 7, n)
    if rate_model == "fixed_snr":
        channel = rng.uniform(0.5, 8.0, n)
    else:
        distance = rng.uniform(20, 400, n)
        gain = 10 ** (-(128.1 + 37.6 * np.log10(distance / 1000)) / 10) * rng.exponential(1.0, n)
        channel = 0.2 * gain / UplinkConfig().noise_density
    return payload, channel, float(rng.choice([0.2e6, 1e6, 5e6]))


def _numerical_optimum(payload: np.ndarray, channel: np.ndarray, band: float, rate_model: str) -> float:
    """min over softmax shares of the slot length, by SLSQP on the epigraph: min t s.t. S_k / r_k <= t."""
    n = payload.size
    scale = float(slot_length(payload, uniform_allocation(payload, band), channel, rate_model))

    def user_times(z: np.ndarray) -> np.ndarray:
        shares = np.exp(z - z.max())
        shares /= shares.sum()
        return payload / user_rate(band * shares, channel, rate_model) / scale

    best = math.inf
    for start in (np.zeros(n), np.log(payload / payload.sum())):
        x0 = np.append(start, user_times(start).max())
        result = minimize(
            lambda x: x[-1], x0, method="SLSQP",
            constraints=[{"type": "ineq", "fun": lambda x: x[-1] - user_times(x[:-1])}],
            options={"ftol": 1e-14, "maxiter": 500},
        )
        best = min(best, float(user_times(result.x[:-1]).max()))  # the slot the shares really give
    return best * scale


@pytest.mark.parametrize("rate_model", RATE_MODELS)
def test_closed_form_beats_a_numerical_optimiser_and_uniform(rate_model: str) -> None:
    rng = np.random.default_rng(2025)
    for _ in range(12):
        n = int(rng.integers(2, 9))
        payload, channel, band = _instance(rng, n, rate_model)
        slot, bandwidth = closed_form_allocation(payload, channel, band, rate_model)
        slot = float(slot)
        optimum = _numerical_optimum(payload, channel, band, rate_model)
        assert slot <= optimum * (1 + 1e-9)
        assert optimum <= slot * (1 + 1e-3)  # the optimiser did converge: the comparison means something
        times = payload / user_rate(bandwidth, channel, rate_model)
        np.testing.assert_allclose(times, slot, rtol=1e-9)  # every user finishes together
        assert bandwidth.sum() == pytest.approx(band, rel=1e-12)
        assert np.all(bandwidth > 0)
        uniform = float(slot_length(payload, uniform_allocation(payload, band), channel, rate_model))
        assert slot <= uniform * (1 + 1e-12)
        if np.ptp(payload / channel) > 0:
            assert slot < uniform


@pytest.mark.parametrize("weak", [1e4, 1e2, 10.0])
def test_closed_form_holds_for_a_user_in_a_deep_fade(weak: float) -> None:
    # a = p g / N0 of a few Hz (a Rayleigh fade of -60 dB at the cell edge): that user's slot is within a
    # hair of its infinite-band time S ln2 / a, where W_-1 is evaluated next to its branch point.
    payload, channel = np.array([5e6, 2e6, 8e6]), np.array([weak, 5e8, 3e9])
    slot, bandwidth = closed_form_allocation(payload, channel, 1e6, "shannon")
    np.testing.assert_allclose(payload / user_rate(bandwidth, channel, "shannon"), float(slot), rtol=1e-9)
    assert bandwidth.sum() == pytest.approx(1e6, rel=1e-12)
    assert float(slot) > 5e6 * math.log(2) / weak  # never faster than infinite band
    assert float(slot) <= _numerical_optimum(payload, channel, 1e6, "shannon") * (1 + 1e-9)


@pytest.mark.parametrize("rate_model", RATE_MODELS)
def test_closed_form_of_equal_users_is_the_uniform_split(rate_model: str) -> None:
    channel = np.full(4, 5e8 if rate_model == "shannon" else 3.0)
    slot, bandwidth = closed_form_allocation(np.full(4, 2e6), channel, 1e6, rate_model)
    np.testing.assert_allclose(bandwidth, 0.25e6, rtol=1e-9)
    assert float(slot) == pytest.approx(float(slot_length(np.full(4, 2e6), bandwidth, channel, rate_model)))


def test_one_user_gets_the_whole_band() -> None:
    slot, bandwidth = closed_form_allocation(np.array([1e6]), np.array([1e8]), 1e6, "shannon")
    assert bandwidth.tolist() == [1e6]
    assert float(slot) == pytest.approx(1e6 / (1e6 * math.log2(1 + 100)))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 8), rate_model=st.sampled_from(RATE_MODELS),
       factor=st.floats(1.0, 10.0))
def test_more_bandwidth_never_lengthens_a_slot(seed: int, n: int, rate_model: str, factor: float) -> None:
    payload, channel, band = _instance(np.random.default_rng(seed), n, rate_model)
    closed, _ = closed_form_allocation(payload, channel, band, rate_model)
    closed_more, _ = closed_form_allocation(payload, channel, band * factor, rate_model)
    assert float(closed_more) <= float(closed) * (1 + 1e-12)
    uniform = slot_length(payload, uniform_allocation(payload, band), channel, rate_model)
    uniform_more = slot_length(payload, uniform_allocation(payload, band * factor), channel, rate_model)
    assert float(uniform_more) <= float(uniform) * (1 + 1e-12)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 6), pad=st.integers(1, 3),
       rate_model=st.sampled_from(RATE_MODELS))
def test_padding_users_get_no_band_and_change_nothing(seed: int, n: int, pad: int, rate_model: str) -> None:
    payload, channel, band = _instance(np.random.default_rng(seed), n, rate_model)
    slot, bandwidth = closed_form_allocation(payload, channel, band, rate_model)
    padded_payload = np.concatenate([payload, np.zeros(pad)])
    padded_channel = np.concatenate([channel, np.ones(pad)])
    padded_slot, padded_bandwidth = closed_form_allocation(padded_payload, padded_channel, band, rate_model)
    assert float(padded_slot) == pytest.approx(float(slot), rel=1e-10)
    np.testing.assert_allclose(padded_bandwidth[:n], bandwidth, rtol=1e-9)
    assert np.all(padded_bandwidth[n:] == 0)


@pytest.mark.parametrize("rate_model", RATE_MODELS)
def test_leading_axes_give_the_same_answer_as_one_row_at_a_time(rate_model: str) -> None:
    rng = np.random.default_rng(7)
    rows = [_instance(rng, 5, rate_model)[:2] for _ in range(6)]
    payload = np.stack([p for p, _ in rows]).reshape(2, 3, 5)
    payload[1, 2, 3:] = 0.0  # a padded row among full ones
    channel = np.stack([c for _, c in rows]).reshape(2, 3, 5)
    slots, bandwidths = closed_form_allocation(payload, channel, 1e6, rate_model)
    assert slots.shape == (2, 3)
    for i in range(2):
        for j in range(3):
            slot, bandwidth = closed_form_allocation(payload[i, j], channel[i, j], 1e6, rate_model)
            assert float(slots[i, j]) == pytest.approx(float(slot), rel=1e-10)
            np.testing.assert_allclose(bandwidths[i, j], bandwidth, rtol=1e-9, atol=1e-9)


def test_an_all_padding_row_takes_no_time() -> None:
    slot, bandwidth = closed_form_allocation(np.zeros((2, 3)), np.ones((2, 3)), 1e6, "shannon")
    np.testing.assert_array_equal(slot, [0.0, 0.0])
    np.testing.assert_array_equal(bandwidth, 0.0)
