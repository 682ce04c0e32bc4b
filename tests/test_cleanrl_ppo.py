"""scripts/cleanrl_ppo.py: a few hundred steps of the single-file PPO on the native vector env."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="scripts/cleanrl_ppo.py needs torch (the train extra)")

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "cleanrl_ppo.py"


@pytest.fixture(scope="module")
def cleanrl():
    spec = importlib.util.spec_from_file_location("cleanrl_ppo", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["cleanrl_ppo"] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def test_short_training_records_episodes_and_the_greedy_policy_respects_the_mask(cleanrl) -> None:
    args = cleanrl.parse_args(["--total-timesteps", "256", "--num-envs", "4", "--num-steps", "32",
                               "--eval-episodes", "0"])
    envs = cleanrl.make_envs(args)
    assert envs.unwrapped.metadata["autoreset_mode"] == gym.vector.AutoresetMode.SAME_STEP
    envs.close()
    agent, returns = cleanrl.train(args)
    # 256 steps over 4 envs of K = 8 tasks: every env finishes episodes; raw returns are minus mean latencies.
    assert len(returns) >= 4 and all(np.isfinite(r) and r < 0 for r in returns)
    env = gym.make("sdedge/EdgeSD-Small-v0", num_tasks=5)  # the last batch is limited to one task
    policy = cleanrl.GreedyAgentPolicy(agent, env)
    observation, _ = env.reset(seed=0)
    terminated = False
    while not terminated:
        action, _ = policy.predict(observation)
        assert action[0] + 1 <= env.unwrapped.batch_limit()
        observation, _, terminated, _, info = env.step(action)
        assert not info["action_clipped"]


def test_masked_batch_sizes_get_no_probability(cleanrl) -> None:
    agent = cleanrl.Agent(28, np.array([4, 5]))
    mask = torch.tensor([[True, False, False, False] + [True] * 5])
    for _ in range(20):
        action, *_ = agent.get_action_and_value(torch.rand(1, 28), mask)
        assert action[0, 0].item() == 0


def test_cli_trains_and_prints_the_evaluation_table(cleanrl, capsys) -> None:
    assert cleanrl.main(["--total-timesteps", "256", "--num-envs", "4", "--num-steps", "64",
                         "--eval-episodes", "2"]) == 0
    out = capsys.readouterr().out
    assert "update 1/1" in out and "| cleanrl-ppo |" in out and "| oracle | " in out


def test_bad_arguments_are_rejected(cleanrl) -> None:
    with pytest.raises(SystemExit):
        cleanrl.parse_args(["--env-id", "sdedge/EdgeSD-Small-Dict-v0"])
    with pytest.raises(SystemExit):
        cleanrl.parse_args(["--num-envs", "3", "--num-steps", "5", "--num-minibatches", "4"])
