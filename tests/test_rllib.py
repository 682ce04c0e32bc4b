"""RLlib on Ray: one PPO training iteration on a local Ray instance through scripts/train_rllib.py, then the
project's evaluation harness on the trained module.

Skipped when Ray is not installed: Ray pins gymnasium 1.2.2, so it lives in a venv of its own
(docs/INTEGRATIONS.md); run this file with that venv's python.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import gymnasium
import numpy as np
import pytest

pytest.importorskip("ray.rllib", reason="Ray RLlib is not installed (the rllib extra, in a venv of its own: "
                                        "docs/INTEGRATIONS.md)")
import ray

from sdedge_agents.rllib import RLlibGreedyPolicy

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train_rllib.py"


@pytest.fixture(scope="module")
def rllib():
    spec = importlib.util.spec_from_file_location("train_rllib", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["train_rllib"] = module
    spec.loader.exec_module(module)
    ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False)
    yield module
    ray.shutdown()


def _args(rllib, env_id: str):
    return rllib.parse_args(["--env", env_id, "--iterations", "1", "--num-env-runners", "2",
                             "--train-batch-size", "128", "--minibatch-size", "64", "--epochs", "1"])


def test_one_iteration_with_two_env_runners_then_the_harness_against_the_oracle(rllib) -> None:
    from sdedge_agents.evaluate import evaluate

    args = _args(rllib, "sdedge/EdgeSD-Small-v0")
    algo, result = rllib.train(args, progress=False)
    try:
        assert result["num_env_steps_sampled_lifetime"] >= 128
        assert result["env_runners"]["episode_return_mean"] < 0  # minus a mean latency
        assert algo.env_runner_group.num_healthy_remote_workers() == 2
        module = algo.get_module()
        results = {r.policy: r for r in evaluate(
            args.env, 3, 100, policies=["rllib-ppo"], progress=False,
            factories={"rllib-ppo": lambda env: RLlibGreedyPolicy(module, env.action_space)})}
    finally:
        algo.stop()
    # The oracle is the exact optimum of every deterministic episode: no policy beats it (DP vs rollout:
    # two float computations of the same latency, hence the tolerance).
    oracle, agent = np.array(results["oracle"].values), np.array(results["rllib-ppo"].values)
    assert np.all(agent >= oracle * (1 - 1e-9))
    assert results["rllib-ppo"].gap_percent >= -1e-7


def test_dict_id_trains_and_its_greedy_actions_are_in_the_space(rllib) -> None:
    # RLlib samples Discrete entries from 0: the 0-based batch_size_minus_one is what makes this id work.
    import gymnasium as gym

    algo, result = rllib.train(_args(rllib, "sdedge/EdgeSD-Small-Dict-v0"), progress=False)
    try:
        assert result["env_runners"]["episode_return_mean"] < 0
        env = gym.make("sdedge/EdgeSD-Small-Dict-v0")
        policy = RLlibGreedyPolicy(algo.get_module(), env.action_space)
        observation, _ = env.reset(seed=0)
        terminated = False
        while not terminated:
            action, _ = policy.predict(observation)
            assert env.action_space.contains({k: np.asarray(v, dtype=env.action_space[k].dtype)
                                              for k, v in action.items()}), action
            observation, _, terminated, _, _ = env.step(action)
    finally:
        algo.stop()


def test_reproduce_paper_over_ray_gives_the_serial_numbers(rllib) -> None:
    # The fixture's Ray instance is up: ray_mapper joins it. The same episode_costs on the same inputs, in
    # another process of the same machine: the same float operations in the same order, so bit-equal.
    spec = importlib.util.spec_from_file_location("reproduce_paper", SCRIPT.parent / "reproduce_paper.py")
    reproduce = importlib.util.module_from_spec(spec)
    sys.modules["reproduce_paper"] = reproduce
    spec.loader.exec_module(reproduce)
    sweep = reproduce.build_sweeps(reproduce.QUICK)[0]  # K = 10 and 20 requests
    serial = reproduce.Sweep(sweep.name, sweep.parameter, sweep.axis_label,
                             [reproduce.Point(p.sweep, p.x, p.label, p.scenario) for p in sweep.points])
    reproduce.run_sweeps([serial], (0, 1), progress=False)
    reproduce.run_sweeps([sweep], (0, 1), progress=False, mapper=reproduce.ray_mapper())
    assert [p.costs for p in sweep.points] == [p.costs for p in serial.points]
    assert all(len(costs) == 2 for p in sweep.points for costs in p.costs.values())


# The multi-cell env on RLlib's multi-agent API (sdedge_agents.rllib, scripts/train_rllib_multicell.py).

def _constant_cells_episode(env_config: dict):
    """One episode of ActingCells with (n, l) = (2, 3) for every acting cell, recorded in RLlib's own
    MultiAgentEpisode as the env runners record it; returns (episode, per-step observed agents, PettingZoo
    rewards summed per cell, mean latency)."""
    from ray.rllib.env.multi_agent_episode import MultiAgentEpisode

    from sdedge_agents.rllib import ActingCells

    pytest.importorskip("pettingzoo", reason="needs the multicell extra (pettingzoo)")

    env = ActingCells(env_config)
    episode = MultiAgentEpisode(observation_space=gymnasium.spaces.Dict(env.observation_spaces),
                                action_space=gymnasium.spaces.Dict(env.action_spaces))
    observations, infos = env.reset(seed=500)
    episode.add_env_reset(observations=observations, infos=infos)
    observed, own, latency = [set(observations)], dict.fromkeys(env.possible_agents, 0.0), np.nan
    done = False
    while not done:
        actions = {a: np.array([2, 3]) for a in observations}
        mask = env.env.core.acting_mask()
        acting = {a for a in env.env.agents if mask[env.env.possible_agents.index(a)]}
        assert set(actions) == acting  # exactly the cells whose uplink is free observe, and so act
        # The PettingZoo env's own rewards, for the check below (the wrapper may replace them by the team's).
        observations, rewards, terminateds, truncateds, infos = env.step(actions)
        for a, reward in rewards.items():
            own[a] += reward if not env.team_reward else 0.0
        for info in infos.values():
            latency = float(info.get("mean_latency", latency))
        episode.add_env_step(observations=observations, actions=actions, rewards=rewards, infos=infos,
                             terminateds=terminateds, truncateds=truncateds)
        observed.append(set(observations))
        done = terminateds["__all__"]
    return episode, observed, own, latency


def test_acting_cells_observe_only_when_acting_and_rllib_keeps_every_reward() -> None:
    import sdedge_agents.multicell as references

    episode, observed, own, latency = _constant_cells_episode({"preset": "two-heterogeneous", "team_reward": False})
    assert episode.is_done and len(observed) > 2 and any(len(agents) == 1 for agents in observed[1:-1])
    # RLlib adds the rewards of the epochs an agent did not observe to its next transition: each cell's return
    # in RLlib's episode is its cell's whole cost (the same float additions in another order, hence rel 1e-12),
    # and the cells' returns add up to minus the mean latency over all tasks.
    for agent, total in own.items():
        assert episode.agent_episodes[agent].get_return() == pytest.approx(total, rel=1e-12)
    assert sum(own.values()) == pytest.approx(-latency, rel=1e-12)
    # The same constant policy scored through the PettingZoo env by the references' harness.
    assert latency == pytest.approx(references.play_episode(lambda agent, obs: np.array([2, 3]),
                                                            "two-heterogeneous", 500), rel=1e-12)
    team, _, _, team_latency = _constant_cells_episode({"preset": "two-heterogeneous"})
    assert team_latency == latency
    for agent in own:  # every cell is rewarded with the team's cost: minus the mean latency, to the last epoch
        assert team.agent_episodes[agent].get_return() == pytest.approx(-latency, rel=1e-12)


def test_acting_cells_rejects_an_unknown_config_key_by_name() -> None:
    from sdedge_agents.rllib import ActingCells

    pytest.importorskip("pettingzoo", reason="needs the multicell extra (pettingzoo)")

    with pytest.raises(ValueError, match=r"\['cells'\].*allowed: preset, action_mode, team_reward"):
        ActingCells({"cells": 2})


def test_multicell_one_iteration_shared_policy_then_scored_against_the_references(rllib) -> None:
    pytest.importorskip("pettingzoo", reason="needs the multicell extra (pettingzoo)")
    spec = importlib.util.spec_from_file_location("train_rllib_multicell", SCRIPT.parent / "train_rllib_multicell.py")
    script = importlib.util.module_from_spec(spec)
    sys.modules["train_rllib_multicell"] = script
    spec.loader.exec_module(script)
    args = script.parse_args(["--preset", "two-heterogeneous", "--iterations", "1", "--num-env-runners", "2",
                              "--train-batch-size", "128", "--minibatch-size", "64", "--epochs", "1",
                              "--episodes", "2"])
    algo, result = script.train(args, progress=False)
    try:
        assert result["num_env_steps_sampled_lifetime"] >= 128
        # Parameter sharing: one module, "shared", for both cells, and none per cell.
        assert algo.get_module("shared") is not None and algo.get_module("cell_0") is None
        results = script.score(algo, args)
    finally:
        algo.stop()
    agent, bound = results["rllib-ppo"], results["lower bound"]
    assert agent.shape == (2,) and np.all(np.isfinite(agent))
    assert np.all(agent >= bound * (1 - 1e-9))  # no policy beats the lower bound
    with pytest.raises(SystemExit):
        script.parse_args(["--policies", "each"])


def test_the_integrations_multi_agent_example_runs_as_written(rllib) -> None:
    """docs/INTEGRATIONS.md's RLlib multi-agent block, executed verbatim under the fixture's Ray instance."""
    pytest.importorskip("pettingzoo", reason="needs the multicell extra (pettingzoo)")
    doc = (SCRIPT.parents[1] / "docs" / "INTEGRATIONS.md").read_text()
    section = doc[doc.index("## Several cells on RLlib (multi-agent)"):]
    start = section.index("```python\n") + len("```python\n")
    block = section[start:section.index("\n```", start)]
    namespace: dict = {}
    exec(compile(block, "INTEGRATIONS.md", "exec"), namespace)
    algo, result = namespace["algo"], namespace["result"]
    try:
        assert result["num_env_steps_sampled_lifetime"] >= 256
        assert algo.get_module("shared") is not None and algo.get_module("cell_0") is None
        assert result["env_runners"]["episode_return_mean"] < 0
    finally:
        algo.stop()
