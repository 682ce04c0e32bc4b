"""The value of every first action (sdedge_agents.oracle.action_values) against exhaustive search, and the
planners' values (the labels of cost-sensitive imitation) against their own plans."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest

import sdedge_gym  # noqa: F401  (registers the ids)
from sdedge_agents.evaluate import make_policy
from sdedge_agents.oracle import action_values, solve, speculation_front
from sdedge_gym import Episode, EpisodeClock, ServingModel, commit_batch, make_scenario
from sdedge_gym.segments import segment_tables
from tests.test_oracle import _tiny


def _best_from(model: ServingModel, episode: Episode, clock: EpisodeClock) -> float:
    """Minimum cost of the tasks left from ``clock`` over every action sequence (depth-first, commit_batch)."""
    left = episode.num_tasks - clock.next_task
    if left == 0:
        return 0.0
    best = np.inf
    for n in range(1, min(model.batch_limit, left) + 1):
        for l in range(model.config.max_speculation + 1):
            outcome, after = commit_batch(model, episode, clock, n, l)
            best = min(best, outcome.cost + _best_from(model, episode, after))
    return best


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("objective", ["mean_latency", "makespan"])
def test_every_value_on_the_front_is_the_exhaustive_best_after_that_action(seed: int, objective: str) -> None:
    model, episode = _tiny(seed, objective=objective)
    tables = segment_tables(model, episode)
    rng = np.random.default_rng(seed)
    clock = EpisodeClock()
    if episode.num_tasks > 2:  # also from a mid-episode clock
        _, clock = commit_batch(model, episode, clock, int(rng.integers(1, min(model.batch_limit, 2) + 1)), 1)
    values = action_values(tables, objective, episode.num_tasks, clock)
    front = speculation_front(tables, objective)[clock.next_task]
    left = episode.num_tasks - clock.next_task
    assert values.shape == (model.batch_limit, model.config.max_speculation + 1)
    for n in range(1, model.batch_limit + 1):
        for l in range(model.config.max_speculation + 1):
            if n > left or not front[n - 1, l]:
                assert values[n - 1, l] == np.inf
                continue
            outcome, after = commit_batch(model, episode, clock, n, l)
            expected = outcome.cost + _best_from(model, episode, after)
            # the tables' sums against commit_batch's task-by-task ones: rounding apart
            assert values[n - 1, l] == pytest.approx(expected, rel=1e-9, abs=1e-12)
    # off the front an action is never better than the best on it (the DP never picks it)
    assert values.min() == pytest.approx(_best_from(model, episode, clock), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("preset, objective", [("paper", "mean_latency"), ("uplink", "makespan")])
def test_the_least_value_is_the_plan_and_its_first_batch(preset: str, objective: str) -> None:
    model = ServingModel.of(make_scenario(preset, num_tasks=40, objective=objective))
    episode = Episode.draw(model, np.random.default_rng(3))
    tables = segment_tables(model, episode)
    clock = EpisodeClock()
    for _ in range(3):
        plan = solve(tables, objective, episode.num_tasks, clock)
        values = action_values(tables, objective, episode.num_tasks, clock)
        # Q sums the first batch's cost and the DP's cost after it; the DP sums the same batch costs in one running
        # total: the same terms added in another order, so equal to a few ulps of a ~50 s cost (1e-12 relative).
        assert values.min() == pytest.approx(plan.cost, rel=1e-12)
        n, l = plan.batches[0]
        assert values[n - 1, l] == pytest.approx(values.min(), rel=1e-12)
        _, clock = commit_batch(model, episode, clock, n, l)


def test_a_batch_limit_and_a_short_queue_leave_no_value() -> None:
    model = ServingModel.of(make_scenario("small", num_tasks=5))
    episode = Episode.draw(model, np.random.default_rng(0))
    tables = segment_tables(model, episode)
    capped = action_values(tables, "mean_latency", 5, EpisodeClock(), batch_limit=2)
    assert np.all(np.isinf(capped[2:])) and np.isfinite(capped[:2]).any(axis=1).all()
    _, clock = commit_batch(model, episode, EpisodeClock(), 3, 1)  # two tasks left
    tail = action_values(tables, "mean_latency", 5, clock)
    assert np.all(np.isinf(tail[2:])) and np.isfinite(tail[:2]).any(axis=1).all()
    with pytest.raises(ValueError, match="objective"):
        action_values(tables, "throughput")
    with pytest.raises(ValueError, match="next_task"):
        action_values(tables, "mean_latency", 5, dataclasses.replace(clock, next_task=5))


@pytest.mark.parametrize("env_id, teacher", [
    ("sdedge/EdgeSD-v0", "window-planner"), ("sdedge/EdgeSD-Paper-Stochastic-v0", "planner"),
    ("sdedge/EdgeSD-Small-Stochastic-v0", "posterior-window-planner"),
    ("sdedge/EdgeSD-Small-Stochastic-v0", "posterior-planner"),
])
def test_a_planners_values_have_the_action_shape_and_its_choice_as_least(env_id: str, teacher: str) -> None:
    env = gym.make(env_id)
    env.reset(seed=11)
    planner = make_policy(teacher, env)
    u = env.unwrapped
    for _ in range(3):
        values = planner.action_values()
        assert values.shape == (u.scenario.max_batch, u.scenario.max_speculation + 1)
        mask = u.action_masks()[:u.scenario.max_batch]
        assert np.all(np.isinf(values[~mask])) and np.isfinite(values[mask]).any()
        n, l = planner.choose()
        # the same terms in another order as above (1e-12 relative); exact ties may pick another argmin
        assert values[n - 1, l] == pytest.approx(values.min(), rel=1e-12)
        assert planner.plan.cost == pytest.approx(values.min(), rel=1e-12)
        _, _, terminated, _, _ = env.step(planner.encode(n, l))
        if terminated:
            break


def test_the_rollout_planner_has_no_dp_values() -> None:
    """Its choice is one step of policy improvement, not the DP's: it must not offer the DP's values as its own."""
    env = gym.make("sdedge/EdgeSD-Small-v0")
    env.reset(seed=0)
    assert not hasattr(make_policy("rollout", env), "action_values")
