"""The service-chain speculation length (sdedge_agents.service_chain): the rule, the wrapper and its spec."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import sdedge_gym  # noqa: F401
from sdedge_agents.baselines import FixedAction
from sdedge_agents.evaluate import check_policy_spec, evaluate, make_policy
from sdedge_agents.planner import predicted_episode
from sdedge_agents.service_chain import ServiceChainSpeculation, service_chain_length
from sdedge_gym.episode import EpisodeClock
from sdedge_gym.segments import segment_tables


@pytest.mark.parametrize("objective", ["mean_latency", "makespan"])
@pytest.mark.parametrize("seed", range(4))
def test_rule_is_the_argmin_of_the_segment_tables_values(objective, seed):
    """Another route to the same numbers: the DP's segment tables (closed form over pieces, the commit's kernel
    used by neither) give every (first task, n, l) batch's slot U, duration D and completion sum C, so from a
    clock (u, f) the batch starts at S = max(u + U, f), ends at F = S + D, and its completions sum to n S + C.
    The rule's l must reach the least of sum C_k + r F (or F) over l, to 1e-9 relative (two float routes)."""
    env = gym.make("sdedge/EdgeSD-Small-v0", objective=objective, num_tasks=12)
    env.reset(seed=seed)
    unwrapped = env.unwrapped
    model, episode = unwrapped.model, unwrapped.episode
    tables = segment_tables(model, episode)
    rng = np.random.default_rng(seed)
    for _ in range(10):
        first = int(rng.integers(0, episode.num_tasks))
        clock = EpisodeClock(next_task=first, uplink_end=float(rng.uniform(0, 20)),
                             inference_end=float(rng.uniform(0, 40)))
        n = int(rng.integers(1, min(model.batch_limit, episode.num_tasks - first) + 1))
        start = max(clock.uplink_end + tables.uplink_slot[first, n - 1], clock.inference_end)
        finish = start + tables.duration[first, n - 1]
        values = finish.copy()
        if objective == "mean_latency":
            values = n * start + tables.completion_sum[first, n - 1] + (episode.num_tasks - first - n) * finish
        chosen = service_chain_length(model, episode, clock, n)
        assert values[chosen] <= values.min() * (1 + 1e-9)


def test_wrapper_keeps_the_inner_batch_size_and_plays_the_rule():
    env = gym.make("sdedge/EdgeSD-v0")
    unwrapped = env.unwrapped
    policy = ServiceChainSpeculation(env, FixedAction(env, 7, 0))
    observation, _ = env.reset(seed=5)
    done, lengths = False, set()
    while not done:
        action = policy.predict(observation)[0]
        n = min(7, unwrapped.batch_limit())
        assert action[0] == n - 1
        assert action[1] == service_chain_length(unwrapped.model, unwrapped.episode, unwrapped.clock, n)
        lengths.add(int(action[1]))
        observation, _, terminated, truncated, _ = env.step(action)
        done = terminated or truncated
    assert lengths != {0}  # the rule chose something other than the inner policy's l


def test_rule_reads_the_hints_where_the_id_hides_the_truth():
    """On a non-clairvoyant id the batch is timed as the observation shows it: hints, estimates, expected acceptance."""
    env = gym.make("sdedge/EdgeSD-Small-Stochastic-v0")
    unwrapped = env.unwrapped
    policy = ServiceChainSpeculation(env, FixedAction(env, 4, 0))
    disagree = 0
    for seed in range(6):
        observation, _ = env.reset(seed=seed)
        view = predicted_episode(unwrapped.episode)
        n = min(4, unwrapped.batch_limit())
        action = policy.predict(observation)[0]
        assert action[1] == service_chain_length(unwrapped.model, view, unwrapped.clock, n)
        disagree += action[1] != service_chain_length(unwrapped.model, predicted_episode(unwrapped.episode, True),
                                                      unwrapped.clock, n)
    assert disagree > 0  # the truth would have chosen otherwise somewhere: the hints are what is read


def test_spec_runs_through_evaluate_and_improves_max_batch():
    """chain-l:max-batch keeps max batching's n; its l is chosen per batch, so it is no worse here than the
    fixed l max batching tuned (measured on these episodes, not a theorem)."""
    results = {r.policy: np.mean(r.values) for r in evaluate("sdedge/EdgeSD-Small-v0", episodes=6, seed=11,
                                                             policies=["max-batch", "chain-l:max-batch"],
                                                             progress=False)}
    assert results["chain-l:max-batch"] <= results["max-batch"] + 1e-9  # values are the objective: lower is better


def test_spec_errors_name_what_is_allowed():
    with pytest.raises(ValueError, match="discrete action mode"):
        make_policy("chain-l:max-batch", gym.make("sdedge/EdgeSD-v0", action_mode="dict"))
    with pytest.raises(ValueError, match="unknown"):
        check_policy_spec("chain-l:no-such-policy", gym.make("sdedge/EdgeSD-v0").unwrapped)
    with pytest.raises(ValueError, match="action_mode"):
        ServiceChainSpeculation(gym.make("sdedge/EdgeSD-Paper-Hybrid-v0"), None)
    with pytest.raises(ValueError, match="unknown for an online env"):
        check_policy_spec("chain-l:max-batch", gym.make("sdedge/EdgeSD-Online-v0").unwrapped)


def test_online_waits_stay_waits_and_dispatches_get_the_rule():
    """On the online id: the inner policy's waits pass through; a dispatch keeps its n and plays l*(n), timed from
    the decision epoch (the rule on the env's clock, whose ``now`` is the epoch)."""
    env = gym.make("sdedge/EdgeSD-Online-v0")
    unwrapped = env.unwrapped
    inner = make_policy("max-batch-timeout", env)
    policy = make_policy("chain-l:max-batch-timeout", env)
    waits = dispatches = 0
    for seed in range(2):
        observation, _ = env.reset(seed=seed)
        done = False
        while not done:
            expected = np.asarray(inner.predict(observation)[0])
            action = np.asarray(policy.predict(observation)[0])
            if expected[0] == unwrapped.scenario.max_batch:
                np.testing.assert_array_equal(action, expected)
                waits += 1
            else:
                n = min(int(expected[0]) + 1, unwrapped.batch_limit())
                view = predicted_episode(unwrapped.episode, exact=unwrapped.scenario.clairvoyant)
                assert action[0] == n - 1
                assert action[1] == service_chain_length(unwrapped.model, view, unwrapped.clock, n)
                dispatches += 1
            observation, _, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
    assert waits > 0 and dispatches > 0


def test_chain_rows_follow_each_row_with_its_wrapped_twin():
    from sdedge_agents.protocol import chain_rows

    rows = [("a", [(1000, "sb3:MaskablePPO:x.zip"), (2000, None)]), ("b", [(1000, "ensemble:x.zip+y.zip")])]
    assert chain_rows(rows) == [
        ("a", [(1000, "sb3:MaskablePPO:x.zip"), (2000, None)]),
        ("a, service-chain l", [(1000, "chain-l:sb3:MaskablePPO:x.zip"), (2000, None)]),
        ("b", [(1000, "ensemble:x.zip+y.zip")]),
        ("b, service-chain l", [(1000, "chain-l:ensemble:x.zip+y.zip")]),
    ]
