"""Reference policies through the env: the oracle is the best, the planner matches it with exact data,
every action mode replays the same plan, and the benchmark is not trivial on the presets."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import sdedge_gym
from sdedge_agents.baselines import (
    Autoregressive,
    BestConstant,
    FixedAction,
    MaxBatch,
    RandomPolicy,
    constant_action_costs,
)
from sdedge_agents.evaluate import run_episodes
from sdedge_agents.oracle import DPOracle, UniformShares, optimal_plan
from sdedge_agents.planner import MPCPlanner
from sdedge_gym.env import EdgeSDEnv


def _mean_return(policy, env, seeds):
    return float(np.mean(run_episodes(policy, env, seeds)))


def test_oracle_never_worse_than_baselines_on_random_episodes():
    env = gym.make("sdedge/EdgeSD-Small-v0")
    seeds = range(5)
    oracle = np.array(run_episodes(DPOracle(env), env, seeds))
    for policy in (MaxBatch(env, 2), FixedAction(env, 2, 3), BestConstant(env), Autoregressive(env),
                   RandomPolicy(env, seed=1), MPCPlanner(env)):
        other = np.array(run_episodes(policy, env, seeds))
        assert np.all(oracle >= other - 1e-9 * np.abs(other)), type(policy).__name__


@pytest.mark.parametrize("env_id", ["sdedge/EdgeSD-Small-Stochastic-v0"])
def test_oracle_is_exact_in_hindsight_on_sampled_ids(env_id):
    env = gym.make(env_id)
    for seed in range(3):
        returns = run_episodes(DPOracle(env), env, [seed])
        plan = optimal_plan(env.unwrapped.model, env.unwrapped.episode)
        assert returns[0] == pytest.approx(-plan.cost, rel=1e-9)
        assert all(r <= returns[0] + 1e-9 for r in run_episodes(RandomPolicy(env, seed), env, [seed]))


def test_planner_with_exact_information_is_the_oracle():
    env = gym.make("sdedge/EdgeSD-Small-v0")
    seeds = range(4)
    np.testing.assert_allclose(run_episodes(MPCPlanner(env, exact=True), env, seeds),
                               run_episodes(DPOracle(env), env, seeds), rtol=1e-12)


def test_oracle_notices_new_episodes_without_episode_start():
    env = gym.make("sdedge/EdgeSD-Small-v0")
    oracle = DPOracle(env)
    first = run_episodes(oracle, env, [3, 4])
    fresh = [run_episodes(DPOracle(env), env, [s])[0] for s in (3, 4)]
    np.testing.assert_allclose(first, fresh, rtol=1e-12)


@pytest.mark.parametrize("mode", ["hybrid", "dict"])
def test_oracle_replays_in_every_action_mode(mode):
    discrete = EdgeSDEnv("small")
    other = EdgeSDEnv("small", action_mode=mode)
    for seed in range(3):
        want = run_episodes(DPOracle(discrete), discrete, [seed])[0]
        got = run_episodes(DPOracle(other), other, [seed])[0]
        assert got == pytest.approx(want, rel=1e-5)  # float32 shares: ~1e-7 of the slot


def test_uniform_shares_needs_band_control():
    with pytest.raises(ValueError, match="hybrid"):
        UniformShares(EdgeSDEnv("small"))
    with pytest.raises(ValueError, match="batch_size"):
        FixedAction(EdgeSDEnv("small"), 9, 0)


def _gap(preset: str, seeds) -> float:
    env = EdgeSDEnv(preset)
    oracle = -_mean_return(DPOracle(env), env, seeds)
    constant = -_mean_return(BestConstant(env), env, seeds)
    return constant / oracle - 1.0


def test_best_constant_is_measurably_worse_than_the_oracle():
    assert _gap("small", range(8)) >= 0.03
    assert _gap("paper", range(2)) >= 0.02


def test_autoregressive_is_worse_than_the_best_speculation_length():
    for preset in ("small", "paper"):
        costs = constant_action_costs(sdedge_gym.make_scenario(preset))
        assert costs[:, 0].min() > 1.05 * costs[:, 1:].min()


def test_uniform_shares_are_worse_than_the_closed_form_on_the_uplink_preset():
    env = EdgeSDEnv("uplink", action_mode="dict", num_tasks=20)
    seeds = range(2)
    closed = _mean_return(DPOracle(env), env, seeds)
    uniform = _mean_return(UniformShares(env), env, seeds)
    assert -uniform > 1.05 * -closed
