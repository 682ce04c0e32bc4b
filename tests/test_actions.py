"""The action contract: encodings of (n, l, shares) in every mode, and the mask layout."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sdedge_gym.actions import (
    ACTION_MODE_CLASSES,
    ACTION_MODES,
    BAND_FLOOR,
    LOGIT_SCALE,
    MIN_WEIGHT,
    DictActions,
    action_mask,
    action_mode,
    encode_action,
    hybrid_batch_and_speculation,
    logits_from_shares,
    shares_from_logits,
    shares_from_weights,
)
from sdedge_gym.env import EdgeSDEnv

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
    """Shares the hybrid logits can express exactly: each at least BAND_FLOOR / n, and excesses over the
    floor spanning at most 7.5 < 2 * LOGIT_SCALE nats."""
    n = draw(st.integers(1, N_MAX))
    logs = np.array(draw(st.lists(st.floats(-3.75, 3.75), min_size=n, max_size=n)))
    excess = np.exp(logs) / np.exp(logs).sum()
    return BAND_FLOOR / n + (1.0 - BAND_FLOOR) * excess


@settings(max_examples=100, deadline=None)
@given(shares=_shares(), l=st.integers(0, L_MAX))
def test_hybrid_logits_reproduce_the_shares(shares: np.ndarray, l: int) -> None:
    n = shares.size
    action = encode_action("hybrid", n, l, N_MAX, L_MAX, shares=shares)
    np.testing.assert_allclose(shares_from_logits(action[2:], n)[:n], shares, rtol=0, atol=1e-6)
    # in float64, without the float32 cast of the action, the round trip is exact to rounding
    np.testing.assert_allclose(shares_from_logits(logits_from_shares(shares, N_MAX), n)[:n], shares, rtol=1e-12)


@settings(max_examples=200, deadline=None)
@given(logits=st.lists(st.floats(-1.0, 1.0), min_size=N_MAX, max_size=N_MAX), n=st.integers(1, N_MAX))
def test_every_point_of_the_box_gives_every_user_the_floor(logits: list[float], n: int) -> None:
    shares = shares_from_logits(np.array(logits), n)
    assert shares[:n].sum() == pytest.approx(1.0, abs=1e-12)
    # the floor plus a non-negative softmax part; the softmax part of two users differs by <= e^(2 LOGIT_SCALE)
    assert np.all(shares[:n] >= BAND_FLOOR / n * (1 - 1e-12))
    excess = shares[:n] - BAND_FLOOR / n
    assert excess.max() <= excess.min() * np.exp(2 * LOGIT_SCALE) * (1 + 1e-9)
    np.testing.assert_array_equal(shares[n:], 0.0)


def test_hand_computed_hybrid_shares() -> None:
    # n = 2, x = (1, -1): softmax(4 x) = (e^8, 1) / (e^8 + 1); shares = 0.05 / 2 + 0.95 softmax
    assert (BAND_FLOOR, LOGIT_SCALE) == (0.05, 4.0)
    e8 = np.exp(8.0)
    expected = [0.025 + 0.95 * e8 / (e8 + 1), 0.025 + 0.95 / (e8 + 1)]
    np.testing.assert_allclose(shares_from_logits(np.array([1.0, -1.0, 0.3]), 2), [*expected, 0.0], rtol=1e-14)


def test_shares_below_the_floor_get_the_floor() -> None:
    shares = np.array([0.99, 0.01])  # 0.01 < BAND_FLOOR / 2 = 0.025: the nearest expressible split floors it
    logits = logits_from_shares(shares, 3)
    np.testing.assert_array_equal(logits, [1.0, -1.0, -1.0])
    recovered = shares_from_logits(logits, 2)
    tiny = (1 - BAND_FLOOR) / (1 + np.exp(2 * LOGIT_SCALE))
    np.testing.assert_allclose(recovered, [1 - BAND_FLOOR / 2 - tiny, BAND_FLOOR / 2 + tiny, 0.0], rtol=1e-12)


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
    allowed = r"action_mode = 'box' is invalid; allowed: 'discrete' \| 'hybrid' \| 'dict'"
    with pytest.raises(ValueError, match=allowed):
        encode_action("box", 1, 1, N_MAX, L_MAX)
    with pytest.raises(ValueError, match=allowed):
        action_mode("box", N_MAX, L_MAX)
    with pytest.raises(ValueError, match=allowed):
        EdgeSDEnv("small", action_mode="box")
    assert ACTION_MODES == ("discrete", "hybrid", "dict") == tuple(ACTION_MODE_CLASSES)


class _ScaledWeights(DictActions):
    """A new mode for the test: the dict space, with shares proportional to the squared weights."""

    name, id_suffix = "squared", "-Squared"

    def shares(self, weights, batch_size):
        return super().shares(np.asarray(weights, dtype=float) ** 2, batch_size)


def test_a_new_mode_is_one_class_and_one_registry_line(monkeypatch) -> None:
    monkeypatch.setitem(ACTION_MODE_CLASSES, "squared", _ScaledWeights)
    env = EdgeSDEnv("small", action_mode="squared")
    assert isinstance(env.actions, _ScaledWeights) and env.action_space == DictActions(4, 4).space()
    env.reset(seed=0)
    action = {"batch_size_minus_one": 1, "speculation_length": 2, "bandwidth": np.array([1.0, 0.5, 0, 0])}
    _, _, _, _, info = env.step(action)
    band = env.scenario.uplink.bandwidth
    np.testing.assert_allclose(info["bandwidth"][:2] / band, [0.8, 0.2], rtol=1e-12)  # 1 : 0.25


@pytest.mark.parametrize("mode", ACTION_MODES)
@pytest.mark.parametrize("wait", [False, True])
def test_encode_then_decode_round_trips_in_every_mode(mode: str, wait: bool) -> None:
    actions = action_mode(mode, N_MAX, L_MAX)
    space = actions.space(wait=wait)
    for n in range(1, N_MAX + 1):
        for l in range(L_MAX + 1):
            for waits in ((False, True) if wait else (None,)):
                encoded = actions.encode(n, l, wait=waits)
                assert space.contains(encoded if mode != "hybrid" else np.asarray(encoded, np.float32))
                decoded_wait, decoded_n, decoded_l, _ = actions.decode(encoded, wait=wait)
                assert decoded_wait == bool(waits) and decoded_l == l
                assert decoded_n == (1 if waits and mode == "discrete" else n)


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


@pytest.mark.parametrize("preset", ["small", "paper", "large", "uplink"])
def test_closed_form_splits_of_every_preset_survive_the_hybrid_encoding(preset: str) -> None:
    """Closed-form shares -> hybrid logits -> shares, for every batch (first task 0, 3, 6, ..., every n).

    Exact (1e-9) when every share is at least the floor BAND_FLOOR / n and the excesses span at most
    e^(2 LOGIT_SCALE) (the documented condition; >= 99 % of the batches on every preset); otherwise the
    floored split, whose uplink slot is at most 2 % longer than the closed form's (measured worst: 1.1 %).
    """
    from sdedge_gym.episode import Episode, ServingModel, closed_form_bandwidth
    from sdedge_gym.scenarios import make_scenario
    from sdedge_gym.uplink import slot_length

    model = ServingModel.of(make_scenario(preset))
    up = model.config.uplink
    exact = total = 0
    for seed in range(2):
        episode = Episode.draw(model, np.random.default_rng(seed))
        w = episode.workload
        for first in range(0, min(episode.num_tasks, 120), 3):
            for n in range(1, min(model.batch_limit, episode.num_tasks - first) + 1):
                target = closed_form_bandwidth(model, episode, first, n) / up.bandwidth
                logits = logits_from_shares(target, model.config.max_batch)
                decoded = shares_from_logits(logits, n)[:n]
                excess = target - BAND_FLOOR / n
                expressible = excess.min() > 0 and excess.max() <= excess.min() * np.exp(2 * LOGIT_SCALE)
                total += 1
                if expressible:
                    np.testing.assert_allclose(decoded, target, rtol=0, atol=1e-9)
                    exact += 1
                else:
                    sl = slice(first, first + n)
                    slots = [slot_length(w.payload_bits[sl], s * up.bandwidth, episode.channel[sl], up.rate_model)
                             for s in (decoded, target)]
                    assert slots[0] <= 1.02 * slots[1]
    assert exact >= 0.99 * total


def test_the_oracle_and_the_uniform_split_keep_their_values_on_the_hybrid_id() -> None:
    """The floor never binds on the oracle's closed-form batches here: hybrid returns equal the discrete/dict
    ones per episode (1e-6 relative: the hybrid action is float32; the uniform split is exact). Seeds 10..19
    include 13 and 16, where a floor of 0.1 would already cost the oracle 0.3 %."""
    import gymnasium as gym

    import sdedge_gym  # noqa: F401  (registers the ids)
    from sdedge_agents.evaluate import run_episodes
    from sdedge_agents.oracle import DPOracle, UniformShares

    seeds = range(10, 20)
    returns = {}
    for env_id in ("sdedge/EdgeSD-Uplink-v0", "sdedge/EdgeSD-Uplink-Hybrid-v0", "sdedge/EdgeSD-Uplink-Dict-v0"):
        env = gym.make(env_id)
        policy = DPOracle(env) if env_id.endswith("Uplink-v0") else UniformShares(env)
        returns[env_id] = np.array(run_episodes(policy, env, seeds))
        if "Hybrid" in env_id:
            returns["oracle-hybrid"] = np.array(run_episodes(DPOracle(env), env, seeds))
    np.testing.assert_allclose(returns["oracle-hybrid"], returns["sdedge/EdgeSD-Uplink-v0"], rtol=1e-6)
    np.testing.assert_allclose(returns["sdedge/EdgeSD-Uplink-Hybrid-v0"], returns["sdedge/EdgeSD-Uplink-Dict-v0"],
                               rtol=1e-9)
