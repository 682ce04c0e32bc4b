"""The service-chain speculation length: the rule (sdedge_gym.service_chain), the env's speculation="service_chain"
option, and the chain-l: wrapper (sdedge_agents.service_chain) and its spec."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import sdedge_gym  # noqa: F401
from sdedge_agents.baselines import FixedAction
from sdedge_agents.evaluate import check_policy_spec, evaluate, make_policy
from sdedge_agents.service_chain import ServiceChainSpeculation
from sdedge_gym.actions import action_mask
from sdedge_gym.episode import EpisodeClock, predicted_episode
from sdedge_gym.segments import segment_tables
from sdedge_gym.service_chain import service_chain_length


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


class _Replay:
    """A policy that plays the action it is given (set before each predict)."""

    action = None

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        return self.action, state


@pytest.mark.parametrize("env_id", ["sdedge/EdgeSD-v0", "sdedge/EdgeSD-Small-Stochastic-v0", "sdedge/EdgeSD-Online-v0"])
def test_env_option_plays_what_the_wrapper_plays(env_id):
    """speculation="service_chain" on any action equals the default env under the chain-l wrapper of that action:
    the same commits in the same order, so the rewards and the played l agree to the bit (random actions: l and
    out-of-limit n and, online, waits the env may not honour)."""
    ruled, plain = gym.make(env_id, speculation="service_chain"), gym.make(env_id)
    replay = _Replay()
    wrapper = ServiceChainSpeculation(plain, replay)
    ruled.action_space.seed(0)
    lengths = set()
    for seed in range(3):
        _, _ = ruled.reset(seed=seed)
        observation, _ = plain.reset(seed=seed)
        done = False
        while not done:
            replay.action = ruled.action_space.sample()
            _, reward, terminated, truncated, info = ruled.step(replay.action)
            observation, expected_reward, _, _, expected = plain.step(wrapper.predict(observation)[0])
            assert reward == expected_reward
            assert info["speculation_length"] == expected["speculation_length"]
            assert info["batch_size"] == expected["batch_size"]
            lengths.add(int(info["speculation_length"]))
            done = terminated or truncated
    assert len(lengths) > 1  # the rule's l varies with the batch, whatever the action's l was


def test_env_option_masks_l_to_zero_and_plays_the_rule():
    env = gym.make("sdedge/EdgeSD-v0", speculation="service_chain")
    unwrapped = env.unwrapped
    n_max, l_max = unwrapped.scenario.max_batch, unwrapped.scenario.max_speculation
    _, info = env.reset(seed=3)
    while True:
        mask = info["action_mask"]
        assert mask[n_max] and not mask[n_max + 1:].any()  # l: only the placeholder 0
        np.testing.assert_array_equal(mask[:n_max], action_mask(unwrapped.batch_limit(), n_max, l_max)[:n_max])
        n = min(9, unwrapped.batch_limit())
        view = predicted_episode(unwrapped.episode, exact=True)
        rule = service_chain_length(unwrapped.model, view, unwrapped.clock, n)
        _, _, terminated, _, info = env.step(np.array([8, l_max]))
        assert info["speculation_length"] == rule and info["batch_size"] == n
        if terminated:
            break


def test_env_option_in_the_hybrid_mode_and_its_errors():
    """Any action mode: the hybrid action's band split is kept, its l entry ignored. A bad value names the allowed."""
    env_id = "sdedge/EdgeSD-Paper-Hybrid-v0"
    env, plain = gym.make(env_id, speculation="service_chain"), gym.make(env_id)
    env.reset(seed=1)
    plain.reset(seed=1)
    unwrapped = env.unwrapped
    action = np.zeros(env.action_space.shape, dtype=np.float32)
    action[:2] = (0.3, 1.0)  # some n; the largest l
    action[2:] = np.linspace(-1, 1, action.size - 2)  # an uneven band split
    view = predicted_episode(unwrapped.episode, exact=True)
    n = unwrapped.actions.decode(action)[1]
    rule = service_chain_length(unwrapped.model, view, unwrapped.clock, n)
    info, expected = env.step(action)[4], plain.step(action)[4]
    assert info["speculation_length"] == rule != expected["speculation_length"]
    np.testing.assert_array_equal(info["bandwidth"], expected["bandwidth"])  # the action's split, not the closed form
    with pytest.raises(ValueError, match=r"speculation = 'rule' is invalid; allowed: 'action' \| 'service_chain'"):
        gym.make("sdedge/EdgeSD-v0", speculation="rule")


@pytest.mark.parametrize("env_id", ["sdedge/EdgeSD-Small-v0", "sdedge/EdgeSD-Online-v0"])
def test_env_option_passes_the_checkers(env_id):
    from gymnasium.utils.env_checker import check_env as gym_check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    gym_check_env(gym.make(env_id, speculation="service_chain").unwrapped, skip_render_check=True)
    sb3_check_env(gym.make(env_id, speculation="service_chain"))


def test_evaluation_env_kwargs_keep_the_run_options_but_reward(tmp_path):
    """A model trained with speculation="service_chain" is tested with it (any spec around the model), never with
    the training reward; references and models without a run get nothing."""
    import json

    from sdedge_agents.protocol import evaluation_env_kwargs

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"config": {"env_kwargs": [["reward", "reference"],
                                                                        ["speculation", "service_chain"]]}}))
    model = run / "model.zip"
    expected = {"speculation": "service_chain"}
    assert evaluation_env_kwargs(f"sb3:MaskablePPO:{model}") == expected
    assert evaluation_env_kwargs(f"chain-l:sb3:MaskablePPO:{model}") == expected
    assert evaluation_env_kwargs(f"ensemble:{model}+{tmp_path / 'other.zip'}") == expected
    assert evaluation_env_kwargs(f"sb3:MaskablePPO:{run / 'checkpoints' / 'model_100000_steps.zip'}") == expected
    assert evaluation_env_kwargs("planner") == {}
    assert evaluation_env_kwargs("chain-l:ensemble:pretrained:dagger-paper+pretrained:group-ppo-paper") == {}
    assert evaluation_env_kwargs(f"sb3:MaskablePPO:{tmp_path / 'elsewhere.zip'}") == {}


def test_agent_trained_with_the_option_plays_the_same_in_either_env(monkeypatch):
    """A shipped agent declared speculation="service_chain" plays its n with l*(n): in an env with the option as it
    is, in a default env through the chain-l wrapper. Its n does not depend on the l mask, so both episodes are the
    same commits (rewards equal to the bit). An online agent with the context head, the hardest case: its l head
    reads the batch of its most likely n."""
    pytest.importorskip("sb3_contrib")
    from sdedge_agents import pretrained

    shipped = pretrained.PRETRAINED["maskable-ppo-reference-context-group-online"]
    as_chain = pretrained.PretrainedAgent("chain-agent", shipped.env_id, shipped.algo, shipped.model_file,
                                          shipped.card_file, speculation="service_chain")
    monkeypatch.setitem(pretrained.PRETRAINED, "chain-agent", as_chain)
    ruled, plain = gym.make(shipped.env_id, speculation="service_chain"), gym.make(shipped.env_id)
    in_env, wrapped = pretrained.load_pretrained("chain-agent", ruled), pretrained.load_pretrained("chain-agent", plain)
    assert isinstance(wrapped, ServiceChainSpeculation) and not isinstance(in_env, ServiceChainSpeculation)
    for seed in range(2):
        observations = [ruled.reset(seed=seed)[0], plain.reset(seed=seed)[0]]
        done, steps = False, 0
        while not done:
            ruled_step = ruled.step(in_env.predict(observations[0])[0])
            plain_step = plain.step(wrapped.predict(observations[1])[0])
            assert ruled_step[1] == plain_step[1]
            assert ruled_step[4]["batch_size"] == plain_step[4]["batch_size"]
            if ruled_step[4]["batch_size"] > 0:  # a wait serves nothing; its info echoes the action's l
                assert ruled_step[4]["speculation_length"] == plain_step[4]["speculation_length"]
            observations = [ruled_step[0], plain_step[0]]
            done, steps = ruled_step[2], steps + 1
        assert plain_step[2] and steps > 10


def test_shipped_agent_trained_with_the_option_plays_the_same_in_either_env():
    """maskable-ppo-reference-chain-group-paper, declared speculation="service_chain": in a default env it plays
    through the chain-l wrapper, episode for episode what it plays in an env with the option."""
    pytest.importorskip("sb3_contrib")
    from sdedge_agents.evaluate import run_episodes
    from sdedge_agents.pretrained import PRETRAINED, load_pretrained

    name = "maskable-ppo-reference-chain-group-paper"
    assert PRETRAINED[name].speculation == "service_chain"
    ruled, plain = gym.make("sdedge/EdgeSD-v0", speculation="service_chain"), gym.make("sdedge/EdgeSD-v0")
    wrapped = load_pretrained(name, plain)
    assert isinstance(wrapped, ServiceChainSpeculation)
    assert run_episodes(load_pretrained(name, ruled), ruled, [3, 4]) == run_episodes(wrapped, plain, [3, 4])
