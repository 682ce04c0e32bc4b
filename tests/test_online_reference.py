"""The online env's reward="reference": potential shaping with max-batch-with-timeout replayed on the episode's own
arrival times (sdedge_gym.reference.timeout_cost_to_go), and training across loads (sdedge_agents.train --loads)."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest

import sdedge_gym  # noqa: F401  (registers the ids)
from sdedge_agents.online import MaxBatchTimeout
from sdedge_gym.online_env import EdgeSDOnlineEnv, max_batch_capacity
from sdedge_gym.reference import REFERENCE_TIMEOUT, best_lengths_by_batch, timeout_cost_to_go

ONLINE = "sdedge/EdgeSD-Online-v0"


def random_valid_action(env, rng: np.random.Generator) -> np.ndarray:
    mask = env.unwrapped.action_masks()
    n_max = env.unwrapped.scenario.max_batch
    choices = np.flatnonzero(mask[:n_max + 1])  # n = 1..n_max, then the wait
    return np.array([rng.choice(choices), rng.integers(0, mask.size - n_max - 1)])


@pytest.mark.parametrize("env_id, arrival_rate", [(ONLINE, None), (ONLINE, 0.3), ("sdedge/EdgeSD-Online-Stochastic-v0",
                                                                                   None)])
def test_following_the_rule_earns_zero_and_v0_is_the_rules_latency(env_id, arrival_rate):
    kwargs = {} if arrival_rate is None else {"config": {"arrivals": {"arrival_rate": arrival_rate}}}
    env = gym.make(env_id, reward="reference", **kwargs)
    plain = gym.make(env_id, **kwargs)
    rule = MaxBatchTimeout(env)
    assert rule.timeout == REFERENCE_TIMEOUT
    for seed in (0, 1):
        observation, info = env.reset(seed=seed)
        plain.reset(seed=seed)
        done, rewards, defaults = False, [], []
        while not done:
            action, _ = rule.predict(observation)
            observation, reward, done, _, step_info = env.step(action)
            _, default, *_ = plain.step(action)
            assert step_info["latency_reward"] == default  # the default reward, bit for bit
            rewards.append(reward)
            defaults.append(default)
        # V(s) - V(s') is the rule's own step cost on its own trajectory: the compiled replay and the env agree
        # (different summation orders of the same terms: 1e-9).
        assert max(abs(r) for r in rewards) < 1e-9
        assert info["reference_cost_to_go"] == pytest.approx(-sum(defaults), rel=1e-9)
        assert info["reference_cost_to_go"] == pytest.approx(step_info["mean_latency"], rel=1e-9)


def test_the_return_telescopes_to_v0_minus_the_mean_latency_under_random_actions_with_waits():
    env = gym.make(ONLINE, reward="reference")
    relative = gym.make(ONLINE, reward="relative")
    rng = np.random.default_rng(5)
    for seed in range(3):
        _, info = env.reset(seed=seed)
        relative.reset(seed=seed)
        v0 = info["reference_cost_to_go"]
        total, done, waits = 0.0, False, 0
        while not done:
            action = random_valid_action(env, rng)
            waits += int(action[0] == env.unwrapped.scenario.max_batch)
            _, reward, done, _, step_info = env.step(action)
            _, relative_reward, *_ = relative.step(action)
            assert relative_reward == pytest.approx(100.0 * reward / v0, rel=1e-12, abs=1e-12)
            total += reward
        assert waits > 0 and step_info["reference_cost_to_go"] == 0.0
        assert total == pytest.approx(v0 - step_info["mean_latency"], rel=1e-9, abs=1e-9)


def test_v_from_any_state_is_what_the_rule_then_costs():
    env = gym.make(ONLINE)
    unwrapped = env.unwrapped
    lengths = best_lengths_by_batch(unwrapped.scenario)
    rng = np.random.default_rng(2)
    observation, _ = env.reset(seed=7)
    for _ in range(6):  # a state reached by random dispatches and waits
        observation, *_ = env.step(random_valid_action(env, rng))
    expected = timeout_cost_to_go(unwrapped.model, unwrapped.episode, unwrapped.clock, lengths)
    rule, total, done = MaxBatchTimeout(env), 0.0, False
    while not done:
        observation, reward, done, *_ = env.step(rule.predict(observation)[0])
        total += reward
    assert expected == pytest.approx(-total, rel=1e-9)
    assert timeout_cost_to_go(unwrapped.model, unwrapped.episode, unwrapped.clock, lengths) == 0.0


def test_options_and_checkers():
    from gymnasium.utils.env_checker import check_env

    with pytest.raises(ValueError, match=r"reward = 'best' is invalid; allowed: 'latency' \| 'reference'"):
        EdgeSDOnlineEnv("small", reward="best")
    env = gym.make(ONLINE, reward="reference")
    assert env.unwrapped.reference_lengths == best_lengths_by_batch(env.unwrapped.scenario)
    sb3_check_env = pytest.importorskip("stable_baselines3.common.env_checker",
                                        reason="needs the train extra (stable-baselines3, torch)").check_env
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped, skip_render_check=True)
        sb3_check_env(env.unwrapped)


def test_train_loads_give_each_training_env_its_arrival_rate(tmp_path):
    pytest.importorskip("sb3_contrib", reason="needs the train extra (sb3-contrib, torch)")
    from sdedge_agents.train import TrainConfig, make_single_env, make_training_env, parse_config

    loads = (0.3, 0.6, 0.9)
    config = TrainConfig(ONLINE, "maskable_ppo", timesteps=64, n_envs=4, out=str(tmp_path), loads=loads,
                         env_kwargs=(("reward", "reference"),))
    venv = make_training_env(config)
    capacity = max_batch_capacity(gym.make(ONLINE).unwrapped.scenario)
    rates = [env.unwrapped.scenario.arrivals.arrival_rate for env in venv.envs]
    np.testing.assert_allclose(rates, [0.3 * capacity, 0.6 * capacity, 0.9 * capacity, 0.3 * capacity], rtol=1e-12)
    assert all(env.unwrapped.reward == "reference" for env in venv.envs)
    evaluation = make_single_env(config, evaluation=True).unwrapped  # the id's own load, the default reward
    assert evaluation.reward == "latency" and evaluation.scenario.arrivals.arrival_rate == pytest.approx(0.757)
    config, _ = parse_config(["--env", ONLINE, "--algo", "maskable_ppo", "--out", "x", "--loads", "0.3,0.5"])
    assert config.loads == (0.3, 0.5)
    with pytest.raises(SystemExit):
        parse_config(["--env", ONLINE, "--algo", "maskable_ppo", "--out", "x", "--loads", "0.3,high"])
    with pytest.raises(ValueError, match="--loads needs an online id with Poisson arrivals"):
        TrainConfig("sdedge/EdgeSD-v0", "maskable_ppo", timesteps=1, loads=(0.5,))
    with pytest.raises(ValueError, match=r"--loads = \(0.0,\) is invalid"):
        TrainConfig(ONLINE, "maskable_ppo", timesteps=1, loads=(0.0,))
