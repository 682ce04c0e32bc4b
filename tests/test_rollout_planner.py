"""The rollout planner: one step of policy improvement over the best constant action.

Its choice is checked against a brute force on the env itself (every (n, l) committed with the env's own
``commit_batch``, then the best constant action's cost to go from the clock it leads to, by the env's
reference kernel), and its episodes against the policies it sits between.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import sdedge_gym  # noqa: F401  (registers the ids)
from sdedge_agents.evaluate import make_policy, run_episodes
from sdedge_gym.episode import commit_batch
from sdedge_gym.reference import best_constant_action, reference_cost_to_go


def brute_force_values(env) -> dict[tuple[int, int], float]:
    """Batch cost + reference cost to go after it, for every valid (n, l), on the env's true episode."""
    env = env.unwrapped
    reference = best_constant_action(env.scenario)
    values = {}
    for n in range(1, env.batch_limit() + 1):
        for l in range(env.scenario.max_speculation + 1):
            outcome, clock = commit_batch(env.model, env.episode, env.clock, n, l, env._bandwidth(None, n))
            values[n, l] = outcome.cost + reference_cost_to_go(env.model, env.episode, clock, *reference)
    return values


@pytest.mark.parametrize("env_id", ["sdedge/EdgeSD-Small-v0", "sdedge/EdgeSD-v0"])
def test_rollout_commits_the_action_of_least_cost_plus_reference_cost_to_go(env_id: str) -> None:
    env = gym.make(env_id)
    policy = make_policy("rollout", env)
    for seed in (3, 4):
        observation, _ = env.reset(seed=seed)
        done = False
        while not done:
            values = brute_force_values(env)
            action, _ = policy.predict(observation)
            _, n, l, _ = env.unwrapped.actions.decode(action)
            best = min(values.values())
            # The planner's tables and the env's kernel sum the same terms in a different order: 1e-9 relative.
            assert values[n, l] <= best * (1 + 1e-9), (seed, (n, l), values[n, l], best)
            observation, _, terminated, truncated, _ = env.step(action)
            done = terminated or truncated


@pytest.mark.parametrize("env_id", ["sdedge/EdgeSD-Small-v0", "sdedge/EdgeSD-v0"])
def test_rollout_is_no_worse_than_the_best_constant_and_no_better_than_the_oracle(env_id: str) -> None:
    # Clairvoyant, expected acceptance: the tables are the truth, so the rollout's cost improvement holds
    # episode by episode (the base policy is one of the plans it compares at its first step, and so on).
    env = gym.make(env_id)
    seeds = list(range(30, 38))
    returns = {name: np.array(run_episodes(make_policy(name, env), env, seeds))
               for name in ("oracle", "rollout", "best-constant")}
    assert np.all(returns["rollout"] <= returns["oracle"] + 1e-9 * np.abs(returns["oracle"]))
    assert np.all(returns["rollout"] >= returns["best-constant"] - 1e-9 * np.abs(returns["best-constant"]))
    assert returns["rollout"].mean() > returns["best-constant"].mean()  # strictly better on these episodes


def test_rollout_emits_the_closed_form_split_in_hybrid_mode() -> None:
    # The same scenario in both modes: the hybrid env reproduces the closed-form shares up to float32 rounding.
    seeds = [5, 6, 7]
    discrete = gym.make("sdedge/EdgeSD-v0")
    hybrid = gym.make("sdedge/EdgeSD-Paper-Hybrid-v0")
    want = run_episodes(make_policy("rollout", discrete), discrete, seeds)
    got = run_episodes(make_policy("rollout", hybrid), hybrid, seeds)
    np.testing.assert_allclose(got, want, rtol=1e-6)
