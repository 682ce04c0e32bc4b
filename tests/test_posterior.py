"""The hints' posterior (sdedge_agents.posterior) against the env's own draws, and the posterior planner.

The posterior is checked against the generative model it is derived from: many tasks drawn by
``sdedge_gym.workload.draw_workload``, grouped by their hint (or estimate), must have the hidden values the
posterior predicts, within 4.5 standard errors of the group's mean.
"""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest

import sdedge_gym  # noqa: F401
from sdedge_agents.evaluate import run_episodes
from sdedge_agents.oracle import DPOracle
from sdedge_agents.planner import (
    MPCPlanner,
    PosteriorPlanner,
    WindowPeriod,
    WindowPlanner,
    posterior_episodes,
    shared_slot_mean,
    window_episode,
    window_tables,
)
from sdedge_agents.posterior import (
    alpha_posterior,
    normal_mass,
    output_posterior,
    output_prior,
    sample_hidden,
    stratified_indices,
)
from sdedge_gym.scenarios import make_scenario
from sdedge_gym.segments import segment_tables
from sdedge_gym.workload import MAX_ALPHA_ESTIMATE, draw_workload


@pytest.fixture(scope="module")
def drawn():
    """100,000 tasks of the paper preset (alpha ~ U[0.3, 0.95], so estimates clip at 0.99 often enough)."""
    scenario = make_scenario("paper", num_tasks=100_000)
    return scenario.workload, draw_workload(scenario, np.random.default_rng(7))


def test_normal_mass_is_accurate_in_both_tails() -> None:
    assert normal_mass(-np.inf, np.inf) == 1.0
    assert normal_mass(0.0, np.inf) == pytest.approx(0.5, abs=1e-15)
    # 1 - Phi(9) = 1.1286e-19: a difference of CDFs near 1 would give 0
    assert normal_mass(9.0, np.inf) == pytest.approx(1.1285884059538e-19, rel=1e-10)
    assert normal_mass(-np.inf, -9.0) == pytest.approx(1.1285884059538e-19, rel=1e-10)


def test_the_output_prior_is_the_drawn_distribution(drawn) -> None:
    config, workload = drawn
    values, prior = output_prior(config)
    assert prior.sum() == pytest.approx(1.0, abs=1e-12)
    counts = np.bincount(workload.output_len - config.output_min, minlength=values.size)
    mean = (values * prior).sum()
    sd = np.sqrt(((values - mean) ** 2 * prior).sum())
    assert abs(workload.output_len.mean() - mean) < 4.5 * sd / np.sqrt(workload.num_tasks)
    # the cap's point mass (the clipped tail), as a count
    expected_cap = prior[-1] * workload.num_tasks
    assert abs(counts[-1] - expected_cap) < 4.5 * np.sqrt(expected_cap) + 1


@pytest.mark.parametrize("hint", [40, 96, 128, 200, 400, 512])
def test_the_output_posterior_predicts_the_lengths_behind_a_hint(drawn, hint) -> None:
    config, workload = drawn
    behind = workload.output_len[workload.output_hint == hint]
    assert behind.size >= 30, "too few tasks with this hint to test against"
    values, masses = output_posterior(config, np.array([hint]))
    mean = (values * masses[0]).sum()
    sd = np.sqrt(((values - mean) ** 2 * masses[0]).sum())
    assert abs(behind.mean() - mean) < 4.5 * sd / np.sqrt(behind.size)
    # the prior pulls a hint towards the median: behind a long hint the lengths are shorter on average
    if hint >= 400:
        assert mean < hint


@pytest.mark.parametrize("estimate", [0.35, 0.6, 0.9, MAX_ALPHA_ESTIMATE])
def test_the_alpha_posterior_predicts_the_rates_behind_an_estimate(drawn, estimate) -> None:
    config, workload = drawn
    if estimate == MAX_ALPHA_ESTIMATE:  # the clipped estimates: a tail, not a density
        near = workload.alpha_estimate == MAX_ALPHA_ESTIMATE
    else:
        near = np.abs(workload.alpha_estimate - estimate) < 0.002
    behind = workload.alpha[near]
    assert behind.size >= 200
    midpoints, masses, _ = alpha_posterior(config, np.array([estimate]))
    mean = (midpoints * masses[0]).sum()
    sd = np.sqrt(((midpoints - mean) ** 2 * masses[0]).sum())
    assert abs(behind.mean() - mean) < 4.5 * sd / np.sqrt(behind.size) + 1e-3  # + the 0.002 window's bias


def test_stratified_draws_take_one_value_from_each_quantile_band() -> None:
    masses = np.full((3, 100), 0.01)  # uniform on 0..99: band i of 4 is 25 i .. 25 i + 24
    index = stratified_indices(masses, 4, np.random.default_rng(0))
    for row in index:
        assert sorted(row // 25) == [0, 1, 2, 3]
    # the bands are shuffled per task, so tasks are not drawn in lockstep
    rows = stratified_indices(np.full((50, 100), 0.01), 4, np.random.default_rng(1)) // 25
    assert len({tuple(r) for r in rows}) > 1


def test_sample_hidden_shapes_ranges_and_point_posteriors() -> None:
    config = make_scenario("paper").workload
    hints, estimates = np.array([1, 128, 512]), np.array([0.0, 0.5, MAX_ALPHA_ESTIMATE])
    output, alpha = sample_hidden(config, hints, estimates, 8, np.random.default_rng(0))
    assert output.shape == alpha.shape == (8, 3) and output.dtype == np.int64
    assert output.min() >= config.output_min and output.max() <= config.max_new_tokens
    assert alpha.min() >= config.alpha_min and alpha.max() <= config.alpha_max
    exact = config.replace(output_hint_sigma=0.0, alpha_estimate_noise=0.0)
    output, alpha = sample_hidden(exact, np.array([64, 300]), np.array([0.4, 0.7]), 5, np.random.default_rng(0))
    assert (output == [64, 300]).all() and (alpha == [0.4, 0.7]).all()


def test_a_hint_the_model_cannot_produce_is_refused() -> None:
    config = make_scenario("paper").workload.replace(output_hint_sigma=0.0)
    with pytest.raises(ValueError, match="output_hint"):
        output_posterior(config, np.array([2]))  # O >= output_min = 8, and the hint is exact


def test_the_posterior_planner_is_the_oracle_on_a_clairvoyant_id() -> None:
    env = gym.make("sdedge/EdgeSD-Small-v0")
    seeds = range(3)
    assert run_episodes(PosteriorPlanner(env), env, seeds) == pytest.approx(run_episodes(DPOracle(env), env, seeds),
                                                                           rel=1e-12)


def test_the_posterior_planner_is_deterministic_and_plans_on_the_hints() -> None:
    env = gym.make("sdedge/EdgeSD-Small-Stochastic-v0")
    seeds = range(4)
    first = run_episodes(PosteriorPlanner(env, samples=4, seed=3), env, seeds)
    # played in the other order, each episode gets the same actions: the draws are seeded per episode
    assert run_episodes(PosteriorPlanner(env, samples=4, seed=3), env, seeds[::-1]) == first[::-1]
    assert np.isfinite(first).all()
    oracle = run_episodes(DPOracle(env), env, seeds)
    assert all(o >= f - 1e-9 for o, f in zip(oracle, first, strict=True))  # returns: the oracle is never worse
    assert run_episodes(MPCPlanner(env), env, seeds) != first  # it is not the plain planner


@pytest.mark.parametrize("samples", [0, -1, 2.5, "4"])
def test_bad_samples_are_refused_by_name(samples) -> None:
    env = gym.make("sdedge/EdgeSD-Small-Stochastic-v0")
    with pytest.raises(ValueError, match="samples"):
        PosteriorPlanner(env, samples=samples)


def test_the_posterior_window_planner_is_the_window_planner_on_a_clairvoyant_id() -> None:
    env = gym.make("sdedge/EdgeSD-Small-v0", num_tasks=30)
    seeds = range(3)
    assert (run_episodes(PosteriorPlanner(env, window=True), env, seeds)
            == run_episodes(WindowPlanner(env), env, seeds))


def test_the_posterior_window_planner_reads_only_the_window() -> None:
    """Its action is a function of the observation: hints past the window do not change it."""
    env = gym.make("sdedge/EdgeSD-Small-Stochastic-v0", num_tasks=30)
    env.reset(seed=5)
    planner = PosteriorPlanner(env, samples=4, window=True)
    base = env.unwrapped
    first = planner.choose()
    w = base.episode.workload
    hints = w.output_hint.copy()
    hints[base.scenario.max_batch:] = base.scenario.workload.max_new_tokens  # past the window
    base.episode = dataclasses.replace(base.episode, workload=dataclasses.replace(w, output_hint=hints))
    assert planner.choose() == first


def test_segment_tables_reuse_given_slots_and_check_their_shape() -> None:
    """Draws of the hidden lengths share the slots: passed in, they are used as they are, and the service
    tables are those of a call that solves the slots itself."""
    env = gym.make("sdedge/EdgeSD-Small-Stochastic-v0", num_tasks=12)
    env.reset(seed=3)
    base = env.unwrapped
    draws = list(posterior_episodes(base.episode, base.scenario, 2, 0, slice(None)))
    first = segment_tables(base.model, draws[0])
    again = segment_tables(base.model, draws[1])
    reused = segment_tables(base.model, draws[1], uplink_slot=first.uplink_slot)
    assert reused.uplink_slot is first.uplink_slot
    np.testing.assert_array_equal(again.uplink_slot, first.uplink_slot)  # the premise: same payloads, channels
    np.testing.assert_array_equal(reused.duration, again.duration)
    np.testing.assert_array_equal(reused.completion_sum, again.completion_sum)
    with pytest.raises(ValueError, match=r"uplink_slot has shape \(12, 3\); allowed: \(4, "):
        segment_tables(base.model, draws[1], first_tasks=4, uplink_slot=first.uplink_slot[:, :3])


def test_the_window_draws_average_before_tiling() -> None:
    """The posterior window planner's tables (the draws' head tables averaged, sharing their slots, then tiled)
    equal the average of each draw's own window_tables, bit for bit: tiling copies entries, so it commutes with
    the mean, and the sums are the same in the same order."""
    env = gym.make("sdedge/EdgeSD-Paper-Stochastic-v0")
    env.reset(seed=11)
    base = env.unwrapped
    first, window = 30, base.scenario.max_batch
    period = WindowPeriod.of(base.model, base.episode, first, window)
    assert period.length is not None  # the tiled case
    draws = list(posterior_episodes(base.episode, base.scenario, 3, 0, slice(first, first + period.seen)))
    tiled = shared_slot_mean(draws, lambda draw, _: window_tables(base.model, draw, first, window, True))
    head = period.tile(shared_slot_mean(draws, lambda draw, slot: period.head_tables(
        base.model, window_episode(draw, first, window, True, period.length), slot)))
    np.testing.assert_array_equal(head.uplink_slot, tiled.uplink_slot)
    np.testing.assert_array_equal(head.duration, tiled.duration)
    np.testing.assert_array_equal(head.completion_sum, tiled.completion_sum)


def test_the_online_posterior_planner_is_planner_exact_on_a_clairvoyant_id_and_differs_otherwise() -> None:
    from sdedge_agents.online import OnlinePlanner

    kwargs = {"num_tasks": 12, "max_batch": 4, "max_speculation": 3}
    seeds = range(3)
    for forecast in ("none", "phantom"):
        env = gym.make("sdedge/EdgeSD-Online-v0", **kwargs)
        assert (run_episodes(OnlinePlanner(env, forecast=forecast, posterior=True), env, seeds)
                == run_episodes(OnlinePlanner(env, exact=True, forecast=forecast), env, seeds))
        env = gym.make("sdedge/EdgeSD-Online-Stochastic-v0", **kwargs)
        posterior = run_episodes(OnlinePlanner(env, forecast=forecast, posterior=True), env, seeds)
        assert np.isfinite(posterior).all()
        assert posterior != run_episodes(OnlinePlanner(env, forecast=forecast), env, seeds)
    with pytest.raises(ValueError, match="exact = True and posterior = True"):
        OnlinePlanner(env, exact=True, posterior=True, forecast="none")


def test_shared_slot_mean_of_no_draws_is_refused() -> None:
    with pytest.raises(ValueError, match="episodes is empty"):
        shared_slot_mean([], lambda draw, slot: None)
