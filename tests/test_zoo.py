"""rl-zoo3's real CLI on the project's hyperparameter files: ppo, ppo_mask (sdedge_agents.zoo) with enjoy, DQN.

A few hundred env steps each (``-params`` shrinks the rollout); skipped when rl_zoo3 is not installed.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("rl_zoo3", reason="rl_zoo3 is not installed (pip install 'sdedge-gym[zoo]')")

REPO = Path(__file__).resolve().parents[1]
SMALL = "sdedge/EdgeSD-Small-v0"
KPIS = ["mean_latency", "makespan", "throughput"]


def _run(args: list[str], cwd: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done.stdout


def _monitor_rows(run_dir: Path) -> list[dict[str, str]]:
    path = next(run_dir.glob("*.monitor.csv"))
    lines = path.read_text().splitlines()[1:]  # the first line is the monitor's JSON header
    return list(csv.DictReader(lines))


def test_rl_zoo3_ppo_trains_with_the_project_file_and_logs_the_kpis(tmp_path):
    _run(["rl_zoo3.train", "--algo", "ppo", "--env", SMALL, "--gym-packages", "sdedge_gym", "--conf-file",
          str(REPO / "agents/hyperparams.yml"), "-n", "256", "-params", "n_steps:32", "n_envs:2", "batch_size:64",
          "-f", str(tmp_path / "logs"), "--seed", "1000"], tmp_path)
    run_dir = tmp_path / "logs" / "ppo" / "sdedge-EdgeSD-Small-v0_1"
    assert (run_dir / "sdedge-EdgeSD-Small-v0.zip").is_file()
    rows = _monitor_rows(run_dir)
    assert rows and all(k in rows[0] for k in KPIS)
    # the monitor's return is minus the episode's mean latency (the objective), as the env defines it
    assert float(rows[0]["r"]) == pytest.approx(-float(rows[0]["mean_latency"]), abs=1e-5)


def test_agents_zoo_adds_maskable_ppo_evaluates_with_masks_and_enjoy_runs(tmp_path):
    logs = tmp_path / "logs"
    _run(["sdedge_agents.zoo", "train", "--algo", "ppo_mask", "--env", SMALL, "--gym-packages", "sdedge_gym",
          "--conf-file", str(REPO / "agents/hyperparams.yml"), "-n", "256", "-params", "n_steps:32", "n_envs:2",
          "batch_size:64", "--eval-freq", "64", "--eval-episodes", "2", "-f", str(logs), "--seed", "1000"], tmp_path)
    run_dir = logs / "ppo_mask" / "sdedge-EdgeSD-Small-v0_1"
    assert (run_dir / "evaluations.npz").is_file()  # the (masked) evaluation callback ran
    out = _run(["sdedge_agents.zoo", "enjoy", "--algo", "ppo_mask", "--env", SMALL, "--gym-packages", "sdedge_gym",
                "-f", str(logs), "--no-render", "-n", "60"], tmp_path)
    assert "Mean reward" in out


def test_agents_zoo_still_trains_and_evaluates_plain_ppo(tmp_path):
    logs = tmp_path / "logs"
    _run(["sdedge_agents.zoo", "train", "--algo", "ppo", "--env", SMALL, "--gym-packages", "sdedge_gym", "--conf-file",
          str(REPO / "agents/hyperparams.yml"), "-n", "128", "-params", "n_steps:32", "n_envs:2", "batch_size:64",
          "--eval-freq", "64", "--eval-episodes", "2", "-f", str(logs), "--seed", "1000"], tmp_path)
    assert (logs / "ppo" / "sdedge-EdgeSD-Small-v0_1" / "evaluations.npz").is_file()


def test_masked_predict_in_enjoy_never_asks_for_an_invalid_batch():
    import gymnasium as gym
    import numpy as np
    from stable_baselines3.common.vec_env import DummyVecEnv

    import sdedge_gym  # noqa: F401
    from sdedge_agents.zoo import ZooMaskablePPO

    venv = DummyVecEnv([lambda: gym.make(SMALL)])
    model = ZooMaskablePPO("MlpPolicy", venv, n_steps=16, batch_size=16, seed=0, device="cpu")
    ZooMaskablePPO.mask_source = venv
    try:
        obs = venv.reset()
        for _ in range(40):
            limit = int(venv.envs[0].unwrapped.batch_limit())
            action, _ = model.predict(obs, deterministic=False)
            assert int(action[0][0]) + 1 <= limit
            obs, _, _, infos = venv.step(action)
            assert not infos[0]["action_clipped"]
    finally:
        ZooMaskablePPO.mask_source = None
    assert np.all(np.isfinite(obs))


def test_rl_zoo3_dqn_runs_through_the_flatten_wrapper(tmp_path):
    _run(["rl_zoo3.train", "--algo", "dqn", "--env", SMALL, "--gym-packages", "sdedge_gym", "--conf-file",
          str(REPO / "agents/hyperparams-dqn.yml"), "-n", "300", "-params", "learning_starts:50",
          "-f", str(tmp_path / "logs"), "--seed", "1000"], tmp_path)
    run_dir = tmp_path / "logs" / "dqn" / "sdedge-EdgeSD-Small-v0_1"
    config = (run_dir / "sdedge-EdgeSD-Small-v0" / "config.yml").read_text()
    assert "sdedge_gym.wrappers.FlattenBatchSpeculation" in config
    assert all(k in _monitor_rows(run_dir)[0] for k in KPIS)
