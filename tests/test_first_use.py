"""What a new user meets first: progress output in logs, argument errors, the time-limit recipe, the tree."""

from __future__ import annotations

import gc
import io
import shutil
import subprocess
import warnings
from pathlib import Path

import gymnasium as gym
import pytest
from gymnasium.wrappers import TimeAwareObservation

import sdedge_gym  # noqa: F401
from sdedge_agents import evaluate as evaluate_module
from sdedge_agents.evaluate import ProgressLines
from sdedge_gym.arrivals import read_trace

REPO = Path(__file__).resolve().parents[1]


def test_progress_in_a_log_is_one_line_per_tenth_without_carriage_returns(monkeypatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    counter = ProgressLines(70)
    counter.set_description("oracle")
    for _ in range(70):
        counter.update(1)
    counter.close()
    text = stream.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert lines[0] == "oracle 7/70 episodes" and lines[-1] == "oracle 70/70 episodes" and len(lines) == 10


def test_evaluate_help_explains_every_flag(capsys) -> None:
    with pytest.raises(SystemExit):
        evaluate_module.main(["--help"])
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m sdedge_agents.evaluate ")
    assert "--no-progress no progress output on stderr" in " ".join(out.split())


def test_an_sb3_policy_that_is_not_a_zip_is_an_argparse_error(capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        evaluate_module.main(["--env", "sdedge/EdgeSD-Small-v0", "--policies", f"sb3:PPO:{REPO / 'README.md'}"])
    assert stop.value.code == 2
    assert "README.md' is not a zip archive; allowed: sb3:ALGO:PATH" in capsys.readouterr().err


def test_a_trace_that_is_a_directory_or_binary_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=rf"trace '{tmp_path}': is a directory, not a file"):
        read_trace(tmp_path)
    binary = tmp_path / "trace.csv"
    binary.write_bytes(b"arrival_time,prompt_tokens,output_tokens\n\xff\xfe\x00\x01")
    with pytest.raises(ValueError, match=r"trace\.csv': byte \d+ is not UTF-8 text"):
        read_trace(binary)
    with pytest.raises(ValueError, match="is a directory"):
        gym.make("sdedge/EdgeSD-Online-v0", config={"arrivals": {"process": "trace", "trace": str(tmp_path)}})


def test_time_aware_observation_with_the_documented_time_limit() -> None:
    env = TimeAwareObservation(gym.make("sdedge/EdgeSD-Small-v0", max_episode_steps=8))
    observation, _ = env.reset(seed=0)
    assert observation.shape == (env.unwrapped.observation_space.shape[0] + 1,) and observation[-1] == 0
    truncated = terminated = False
    while not (terminated or truncated):
        observation, _, terminated, truncated, _ = env.step(env.action_space.sample())
    assert terminated and not truncated  # K = 8 steps at most: the limit never cuts an episode


def test_training_closes_its_log_files(tmp_path: Path, capsys) -> None:
    pytest.importorskip("stable_baselines3", reason="sdedge_agents.train needs the train extra")
    from sdedge_agents.train import TrainConfig, train

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        train(TrainConfig("sdedge/EdgeSD-Small-v0", "a2c", timesteps=32, seed=1, out=str(tmp_path),
                          eval_episodes=0, checkpoint_every=1000))
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
    # the harness's A2C collects 16 env steps a rollout: 32 is a whole number of them, so nothing is said
    assert "trains" not in capsys.readouterr().err


def test_the_budget_is_rounded_up_to_whole_rollouts_and_said(tmp_path: Path, capsys) -> None:
    pytest.importorskip("stable_baselines3", reason="sdedge_agents.train needs the train extra")
    from sdedge_agents.train import TrainConfig, train

    record = train(TrainConfig("sdedge/EdgeSD-Small-v0", "a2c", timesteps=22, seed=1, out=str(tmp_path),
                               eval_episodes=0, checkpoint_every=1000))
    assert record["steps"] == 32
    assert "--timesteps = 22 trains 32 steps: a2c stops after whole rollouts of 16 env steps" in capsys.readouterr().err


def test_the_repository_tracks_no_logs() -> None:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    assert not [f for f in files if f.endswith(".log")]
