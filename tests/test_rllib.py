"""RLlib on Ray: one PPO training iteration on a local Ray instance through scripts/train_rllib.py, then the
project's evaluation harness on the trained module.

Skipped when Ray is not installed: Ray pins gymnasium 1.2.2, so it lives in a venv of its own
(docs/INTEGRATIONS.md); run this file with that venv's python.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray.rllib", reason="Ray RLlib is not installed (the rllib extra, in a venv of its own: "
                                        "docs/INTEGRATIONS.md)")
import ray

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
            factories={"rllib-ppo": lambda env: rllib.RLlibGreedyPolicy(module, env)})}
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
        policy = rllib.RLlibGreedyPolicy(algo.get_module(), env)
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
