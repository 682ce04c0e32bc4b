"""The env's fast paths against their reference paths, on random inputs: they must agree bit for bit.

* ``draw_workload`` against the original one-function implementation (np.clip, fancy-index reordering);
* the compiled episode derivation (``env.derive_columns``, what the env and the vector env reset with) against
  ``draw_workload``, ``Episode.of`` and ``task_feature_table`` (the numpy specification), and
  ``raw_draws(count=m)`` (the vector env's batched autoreset draw) against single draws;
* ``global_features_one`` (Python floats) against ``global_feature_values`` (numpy);
* the cached action-mask table against ``action_mask``;
* the discrete-action fast path of ``EdgeSDEnv._decode`` against its full validation.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from sdedge_gym.actions import action_mask, action_mask_table
from sdedge_gym.config import ScenarioConfig
from sdedge_gym.env import EdgeSDEnv, global_feature_values, global_features_one, task_feature_table
from sdedge_gym.episode import Episode, EpisodeClock, frozen_record
from sdedge_gym.scenarios import make_scenario
from sdedge_gym.workload import (
    MAX_ALPHA_ESTIMATE,
    WORKLOAD_FIELDS,
    Workload,
    derive_workload,
    draw_workload,
    path_gain,
    raw_draws,
)

SCENARIOS: list[tuple[str, dict[str, Any]]] = [
    ("small", {}),
    ("paper", {}),
    ("uplink", {}),
    ("small", {"acceptance": "sampled"}),
    ("small", {"queue_order": "shortest_payload"}),
    ("paper", {"queue_order": "shortest_payload", "acceptance": "sampled"}),
    ("small", {"config": {"workload": {"rayleigh_fading": False}}}),
]


def _reference_draw(scenario: ScenarioConfig, rng: np.random.Generator) -> dict[str, np.ndarray | None]:
    """The original draw_workload, kept verbatim as the reference for bit-identity."""
    w = scenario.workload
    k = w.num_tasks

    def lognormal(median: float, sigma: float, low: int, high: int) -> np.ndarray:
        values = np.rint(median * np.exp(sigma * rng.standard_normal(k)))
        return np.clip(values, low, high).astype(np.int64)

    prompt = lognormal(w.prompt_median, w.prompt_sigma, w.prompt_min, w.prompt_max)
    output = lognormal(w.output_median, w.output_sigma, w.output_min, w.max_new_tokens)
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
    order = np.argsort(payload, kind="stable") if scenario.queue_order == "shortest_payload" else np.arange(k)
    return {"prompt_len": prompt[order], "output_len": output[order], "payload_bits": payload[order],
            "distance": distance[order], "channel_gain": gain[order], "spectral_efficiency": spectral[order],
            "alpha": alpha[order], "alpha_estimate": alpha_estimate[order], "output_hint": hint[order],
            "uniforms": None if uniforms is None else uniforms[order]}


def _assert_bit_equal(got: np.ndarray | None, want: np.ndarray | None, where: str) -> None:
    # Honest for the draws: both sides call the same numpy ufuncs (exp, sqrt, log10, rint, max/min) on
    # contiguous float64 arrays of the same draws, and an elementwise ufunc's result depends on the element
    # only (the SIMD loops treat the tail with masked loads of the same kernel), not on the row it sits in.
    assert (got is None) == (want is None), where
    if want is not None:
        assert got.dtype == want.dtype and got.shape == want.shape, where
        assert got.tobytes() == want.tobytes(), where


def _scenario(preset: str, kwargs: dict[str, Any]) -> ScenarioConfig:
    kwargs = dict(kwargs)
    return make_scenario(preset, kwargs.pop("config", None), num_tasks=12, **kwargs)


@pytest.mark.parametrize(("preset", "kwargs"), SCENARIOS)
def test_draw_workload_is_bit_identical_to_the_reference(preset: str, kwargs: dict[str, Any]) -> None:
    scenario = _scenario(preset, kwargs)
    for seed in range(10):
        rng, reference_rng = np.random.default_rng(seed), np.random.default_rng(seed)
        workload = draw_workload(scenario, rng)
        want = _reference_draw(scenario, reference_rng)
        for name in WORKLOAD_FIELDS:
            _assert_bit_equal(getattr(workload, name), want[name], f"{preset} {kwargs} seed {seed} {name}")
            value = getattr(workload, name)
            assert value is None or not value.flags.writeable
        assert rng.random() == reference_rng.random()  # the same number of draws


@pytest.mark.parametrize(("preset", "kwargs"), [*SCENARIOS, ("small", {"clairvoyant": False}),
                                                ("small", {"config": {"uplink": {"rate_model": "fixed_snr"}}})])
def test_compiled_derivation_equals_the_specification(preset: str, kwargs: dict[str, Any]) -> None:
    """Token counts, queue order and acceptance runs exactly; floats to 1e-12 relative (libm's log10, exp
    and pow in the kernel against numpy's vectorised ones: an ulp or two); float32 features to 1e-6."""
    kwargs = dict(kwargs)
    env = EdgeSDEnv(preset, config=kwargs.pop("config", None), num_tasks=12, **kwargs)
    for seed in range(10):
        env.reset(seed=seed)
        want = Episode.draw(env.model, np.random.default_rng(seed))
        got = env.episode
        for name in ("prompt_len", "output_len"):
            np.testing.assert_array_equal(getattr(got.workload, name), getattr(want.workload, name), err_msg=name)
        for name in WORKLOAD_FIELDS:
            value = getattr(want.workload, name)
            if value is not None and name not in ("prompt_len", "output_len"):
                np.testing.assert_allclose(getattr(got.workload, name), value, rtol=1e-12, atol=0, err_msg=name)
        np.testing.assert_allclose(got.channel, want.channel, rtol=1e-12, atol=0)
        assert (got.runs is None) == (want.runs is None)
        if want.runs is not None:
            np.testing.assert_array_equal(got.runs, want.runs)
        np.testing.assert_allclose(env._task_features, task_feature_table(env.model, env.scales, want), rtol=1e-6,
                                   atol=1e-7)


@pytest.mark.parametrize(("preset", "kwargs"), SCENARIOS)
def test_batched_raw_draws_have_the_single_draws_shapes_and_ranges(preset: str, kwargs: dict[str, Any]) -> None:
    scenario = _scenario(preset, kwargs)
    columns = derive_workload(scenario, *raw_draws(scenario, np.random.default_rng(0), count=5))
    single = draw_workload(scenario, np.random.default_rng(0))
    w = scenario.workload
    for name in WORKLOAD_FIELDS:
        want = getattr(single, name)
        got = columns[name]
        assert (got is None) == (want is None), name
        if want is not None:
            assert got.shape == (5, *want.shape) and got.dtype == want.dtype, name
    assert columns["prompt_len"].min() >= w.prompt_min and columns["prompt_len"].max() <= w.prompt_max
    assert columns["output_len"].min() >= w.output_min and columns["output_len"].max() <= w.max_new_tokens
    assert np.all((columns["alpha"] >= w.alpha_min) & (columns["alpha"] <= w.alpha_max))
    # one Generator draws m episodes at once: different episodes, deterministic given the seed
    assert not np.array_equal(columns["payload_bits"][0], columns["payload_bits"][1])
    again = derive_workload(scenario, *raw_draws(scenario, np.random.default_rng(0), count=5))
    assert all(np.array_equal(columns[name], again[name]) for name in WORKLOAD_FIELDS if columns[name] is not None)


def test_workload_accepts_a_missing_uniforms_array() -> None:
    w = draw_workload(make_scenario("small"), np.random.default_rng(0))
    again = Workload(*(getattr(w, name) for name in WORKLOAD_FIELDS))
    assert again.uniforms is None and again.num_tasks == w.num_tasks


def test_global_features_one_equals_the_array_path() -> None:
    env = EdgeSDEnv("small")
    rng = np.random.default_rng(0)
    k = 50
    for _ in range(2000):
        next_task = int(rng.integers(0, k + 1))
        uplink_end = float(rng.exponential(5.0)) if rng.random() < 0.9 else 0.0
        inference_end = uplink_end + float(rng.normal(0.0, 3.0)) if rng.random() < 0.8 else uplink_end
        limit = min(env.model.batch_limit, k - next_task)
        want = global_feature_values(env.model, env.scales, k, next_task, uplink_end, inference_end, limit)
        got = np.array(global_features_one(env.model, env.scales, k, next_task, uplink_end, inference_end, limit),
                       dtype=np.float32)
        # Honest: the same float64 +, -, *, / and max in the same order on both sides (see global_features_one).
        assert got.tobytes() == want.tobytes()


@pytest.mark.parametrize(("n_max", "l_max"), [(1, 0), (4, 4), (16, 8)])
def test_action_mask_table_rows_equal_action_mask(n_max: int, l_max: int) -> None:
    table = action_mask_table(n_max, l_max)
    assert not table.flags.writeable
    for limit in range(n_max + 1):
        np.testing.assert_array_equal(table[limit], action_mask(limit, n_max, l_max))
    limits = np.array([0, n_max, 1 if n_max > 1 else 0])
    np.testing.assert_array_equal(table[limits], action_mask(limits, n_max, l_max))


def test_env_masks_are_fresh_writable_copies() -> None:
    env = EdgeSDEnv("small")
    _, info = env.reset(seed=0)
    info["action_mask"][:] = False  # a caller writing into its mask must not change the env's next one
    assert env.action_masks().any() and env.action_masks().flags.writeable


@pytest.mark.parametrize("wait", [False, True])
def test_discrete_decode_fast_path_equals_full_validation(wait: bool) -> None:
    actions = EdgeSDEnv("small").actions  # the env's DiscreteActions; wait: the online env's space
    n_max, l_max = actions.max_batch, actions.max_speculation
    high = n_max if wait else n_max - 1
    for n in range(-1, n_max + 2):
        for l in range(-1, l_max + 2):
            for dtype in (np.int64, np.int32, np.uint8):
                if (n < 0 or l < 0) and dtype == np.uint8:
                    continue
                action = np.array([n, l], dtype=dtype)
                reference = action.astype(float)  # floats always take the full validation
                if 0 <= n <= high and 0 <= l <= l_max:
                    got = actions.decode(action, wait)
                    waits = wait and n == n_max
                    assert got == actions.decode(reference, wait) == (waits, 1 if waits else n + 1, l, None)
                    assert all(type(x) is int for x in got[1:3])
                else:
                    with pytest.raises(ValueError) as fast_error:
                        actions.decode(action, wait)
                    with pytest.raises(ValueError) as full_error:
                        actions.decode(reference, wait)
                    assert str(fast_error.value).split(" = ")[0] == str(full_error.value).split(" = ")[0]
    with pytest.raises(ValueError, match="shape"):
        actions.decode(np.array([0, 0, 0]), wait)


def test_frozen_record_is_the_dataclass_instance() -> None:
    # commit_batch and the env's reset build their records without the frozen __init__: the same instance
    # (equal, same repr, still frozen), and the reset's Workload columns still read-only.
    clock = frozen_record(EpisodeClock, next_task=3, uplink_end=1.5, inference_end=2.0, batches=2, now=1.5)
    assert clock == EpisodeClock(3, 1.5, 2.0, 2, 1.5) and repr(clock) == repr(EpisodeClock(3, 1.5, 2.0, 2, 1.5))
    with pytest.raises(dataclasses.FrozenInstanceError):
        clock.now = 0.0  # type: ignore[misc]
    assert dataclasses.replace(clock, now=4.0) == EpisodeClock(3, 1.5, 2.0, 2, 4.0)
    env = EdgeSDEnv("small")
    env.reset(seed=0)
    for name in WORKLOAD_FIELDS:
        value = getattr(env.episode.workload, name)
        assert value is None or not value.flags.writeable
