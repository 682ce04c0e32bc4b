"""The env's ``reward=`` option: the default is unchanged, ``"reference"`` is the advantage over the best constant
action and telescopes to V(s_0) - objective (docs/MODEL.md section 9)."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest

import sdedge_gym  # noqa: F401  (registers the ids)
from sdedge_gym.env import EdgeSDEnv
from sdedge_gym.episode import EpisodeClock
from sdedge_gym.reference import best_constant_action, constant_action_cost, constant_action_costs
from sdedge_gym.segments import segment_tables


def _replay(env: EdgeSDEnv, episode, actions) -> list[float]:
    """The default rewards of ``actions`` (n, l) on ``episode``, n clipped to the tasks left; stops at the end."""
    env.reset(options={"episode": episode})
    rewards = []
    for n, l in actions:
        n = min(n, env.batch_limit())
        _, reward, terminated, _, _ = env.step(np.array([n - 1, l]))
        rewards.append(reward)
        if terminated:
            break
    return rewards


def _reference_actions(env: EdgeSDEnv, steps: int = 100) -> list[tuple[int, int]]:
    return [env.reference_action] * steps


def test_a_bad_reward_names_the_argument_and_the_allowed_values():
    for bad in ("latencyy", None, 1, "Reference"):
        with pytest.raises(ValueError,
                           match=r"reward = .* is invalid; allowed: 'latency' \| 'reference' \| 'relative'"):
            EdgeSDEnv("small", reward=bad)
    with pytest.raises(ValueError, match="reward = 'x' is invalid"):
        gym.make("sdedge/EdgeSD-Small-v0", reward="x")


def test_the_default_reward_is_latency_and_unchanged():
    default, explicit = EdgeSDEnv("small"), EdgeSDEnv("small", reward="latency")
    assert default.reward == explicit.reward == "latency" and default.reference_action is None
    rng = np.random.default_rng(0)
    for env in (default, explicit):
        env.reset(seed=11)
    done = False
    while not done:
        limit, lengths = default.batch_limit(), default.scenario.max_speculation + 1
        action = np.array([rng.integers(0, limit), rng.integers(0, lengths)])
        a = default.step(action)
        b = explicit.step(action)
        assert a[1] == b[1] and set(a[4]) == set(b[4])
        assert "latency_reward" not in a[4] and "reference_cost_to_go" not in a[4]
        done = a[2]
    assert sum(o.cost for o in default.outcomes) == pytest.approx(default.episode_kpis()["mean_latency"], rel=1e-12)


def test_the_reference_action_is_the_best_constant_of_the_tuning_search():
    env = EdgeSDEnv("small", reward="reference")
    costs = constant_action_costs(env.scenario)
    n, l = env.reference_action
    assert costs[n - 1, l] == costs.min()
    assert env.reference_action == best_constant_action(env.scenario)


def test_hand_checked_shaped_rewards_on_a_three_task_episode():
    """r = -cost + V(s) - V(s'), each V replayed on the default env with the reference action from that state."""
    shaped = EdgeSDEnv("small", reward="reference", num_tasks=3)
    plain = EdgeSDEnv("small", num_tasks=3)
    _, info = shaped.reset(seed=5)
    episode = shaped.episode
    reference = shaped.reference_action
    # V(s_0): the reference policy's whole episode; also from the segment tables (the oracle's numbers).
    v0 = -sum(_replay(plain, episode, _reference_actions(shaped)))
    tables = segment_tables(shaped.model, episode)
    assert info["reference_cost_to_go"] == pytest.approx(v0, rel=1e-12)
    assert v0 == pytest.approx(constant_action_cost(tables, "mean_latency", *reference), rel=1e-9)
    # Step 1 commits one task with l = 0; step 2 the other two with l = 3.
    first = _replay(plain, episode, [(1, 0)])[0]
    v1 = -sum(_replay(plain, episode, [(1, 0), *_reference_actions(shaped)])[1:])
    _, r1, terminated, _, info1 = shaped.step(np.array([0, 0]))
    assert not terminated
    assert info1["latency_reward"] == pytest.approx(first, rel=1e-12)
    assert info1["reference_cost_to_go"] == pytest.approx(v1, rel=1e-12)
    assert r1 == pytest.approx(first + v0 - v1, rel=1e-9, abs=1e-12)
    second = _replay(plain, episode, [(1, 0), (2, 3)])[1]
    _, r2, terminated, _, info2 = shaped.step(np.array([1, 3]))
    assert terminated and info2["reference_cost_to_go"] == 0.0
    assert r2 == pytest.approx(second + v1, rel=1e-9, abs=1e-12)
    # The episode's shaped return: its improvement over the reference policy.
    assert r1 + r2 == pytest.approx(v0 - info2["mean_latency"], rel=1e-9, abs=1e-12)


def test_the_reference_policy_earns_zero_at_every_step():
    env = EdgeSDEnv("paper", reward="reference")
    env.reset(seed=2)
    n, l = env.reference_action
    done = False
    while not done:
        _, reward, done, _, info = env.step(np.array([min(n, env.batch_limit()) - 1, l]))
        assert abs(reward) <= 1e-9 * abs(info["latency_reward"])


@pytest.mark.parametrize(("scenario", "overrides"), [
    ("paper", {}),
    ("small", {"objective": "makespan"}),
    ("small", {"acceptance": "sampled", "clairvoyant": False}),
    ("uplink", {}),
])
def test_the_shaped_return_telescopes_to_minus_the_objective_plus_the_reference_cost(scenario, overrides):
    """Sum of shaped rewards = -objective + V(s_0) (= -objective - Phi(s_0)); the unshaped ones sum to -objective."""
    env = EdgeSDEnv(scenario, reward="reference", **overrides)
    rng = np.random.default_rng(1)
    for seed in range(4):
        _, info = env.reset(seed=seed)
        v0 = info["reference_cost_to_go"]
        shaped = unshaped = 0.0
        done = False
        while not done:
            action = np.array([rng.integers(0, env.batch_limit()), rng.integers(0, env.scenario.max_speculation + 1)])
            _, reward, done, _, step_info = env.step(action)
            shaped += reward
            unshaped += step_info["latency_reward"]
        objective = step_info[env.scenario.objective]
        assert unshaped == pytest.approx(-objective, rel=1e-12)
        assert shaped == pytest.approx(v0 - objective, rel=1e-9, abs=1e-9 * objective)


def test_the_reference_cost_to_go_restarts_with_each_episode():
    """A replayed episode gives the same V(s_0); the potential carries nothing over from the last episode."""
    env = EdgeSDEnv("small", reward="reference")
    _, first = env.reset(seed=3)
    episode = env.episode
    env.step(np.array([0, 0]))
    _, again = env.reset(options={"episode": episode})
    assert again["reference_cost_to_go"] == first["reference_cost_to_go"] > 0
    assert env.clock == EpisodeClock()


@pytest.mark.parametrize("env_id", ["sdedge/EdgeSD-v0", "sdedge/EdgeSD-Small-Stochastic-v0",
                                    "sdedge/EdgeSD-Small-Hybrid-v0"])
def test_both_env_checkers_pass_with_the_reference_reward(env_id):
    from gymnasium.utils.env_checker import check_env

    env = gym.make(env_id, reward="reference")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped, skip_render_check=True)
    sb3_checker = pytest.importorskip("stable_baselines3.common.env_checker",
                                      reason="needs the train extra (stable-baselines3, torch)")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sb3_checker.check_env(env.unwrapped)


def test_observe_reference_appends_the_squashed_reference_cost_to_go():
    plain = EdgeSDEnv("paper")
    env = EdgeSDEnv("paper", observe_reference=True)
    assert env.observation_space.shape == (plain.observation_space.shape[0] + 1,)
    assert env.reward == "latency" and env.reference_scale == constant_action_costs(env.scenario).min()
    observation, info = env.reset(seed=4)
    expected, _ = plain.reset(seed=4)
    v0 = info["reference_cost_to_go"]
    assert np.array_equal(observation[:-1], expected)
    assert observation[-1] == np.float32(v0 / (v0 + env.reference_scale))
    done = False
    while not done:
        observation, reward, done, _, step_info = env.step(np.array([env.batch_limit() // 2, 3]))
        expected, expected_reward, *_ = plain.step(np.array([plain.batch_limit() // 2, 3]))
        assert reward == expected_reward  # the default reward: observing V changes no reward
        assert np.array_equal(observation[:-1], expected)
        v = step_info["reference_cost_to_go"]
        assert observation[-1] == np.float32(v / (v + env.reference_scale))
        assert env.observation_space.contains(observation)
    assert observation[-1] == 0.0


def test_observe_reference_is_refused_where_it_would_leak_hidden_values():
    for overrides in ({"clairvoyant": False}, {"acceptance": "sampled"}):
        with pytest.raises(ValueError, match="observe_reference = True is invalid for this scenario"):
            EdgeSDEnv("small", observe_reference=True, **overrides)
    with pytest.raises(ValueError, match=r"observe_reference = 1 is invalid; allowed: True \| False"):
        EdgeSDEnv("small", observe_reference=1)


@pytest.mark.parametrize("env_id, options", [
    ("sdedge/EdgeSD-v0", {"observe_reference": True}),
    ("sdedge/EdgeSD-v0", {"observe_reference": True, "observe_queue": True}),
    ("sdedge/EdgeSD-Paper-Stochastic-v0", {"observe_queue": True}),
])
def test_both_env_checkers_pass_with_the_observation_options(env_id, options):
    from gymnasium.utils.env_checker import check_env

    sb3_check_env = pytest.importorskip("stable_baselines3.common.env_checker",
                                        reason="needs the train extra (stable-baselines3, torch)").check_env

    env = gym.make(env_id, reward="reference", **options)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped, skip_render_check=True)
        sb3_check_env(env.unwrapped)


def test_the_relative_reward_is_the_reference_reward_in_percent_of_the_reference_episode_cost():
    reference, relative = EdgeSDEnv("paper", reward="reference"), EdgeSDEnv("paper", reward="relative")
    _, info = reference.reset(seed=6)
    relative.reset(seed=6)
    v0 = info["reference_cost_to_go"]
    total = 0.0
    done = False
    while not done:
        action = np.array([reference.batch_limit() // 3, 4])
        _, r_reference, done, _, step_info = reference.step(action)
        _, r_relative, _, _, _ = relative.step(action)
        assert r_relative == pytest.approx(100.0 * r_reference / v0, rel=1e-12, abs=1e-12)
        total += r_relative
    assert total == pytest.approx(100.0 * (1.0 - step_info["mean_latency"] / v0), rel=1e-9, abs=1e-9)
