"""CleanRL's own ppo.py, with docs/INTEGRATIONS.md's diff applied, trains on a discrete id and logs returns."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _recipe_diff() -> str:
    """The ```diff block of the section "CleanRL's own `ppo.py`" (the doc is the recipe's one copy)."""
    doc = (REPO / "docs" / "INTEGRATIONS.md").read_text()
    section = doc.split("## CleanRL's own `ppo.py`", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```diff\n(.*?)```", section, flags=re.DOTALL)
    assert len(blocks) == 1, "the section holds exactly one diff"
    return blocks[0]


def test_the_recipe_changes_only_the_wrapper_and_the_gymnasium_1x_lines() -> None:
    added = [line for line in _recipe_diff().splitlines() if line.startswith("+") and not line.startswith("+++")]
    code = [line[1:].strip() for line in added if line[1:].strip()]
    assert code[0].startswith("from sdedge_gym.wrappers import FlattenBatchSpeculation")
    assert code[1].startswith("env = FlattenBatchSpeculation(env)")
    assert code[2].startswith("autoreset_mode=gym.vector.AutoresetMode.SAME_STEP")
    assert all("final_info" in line or "episode" in line for line in code[3:])  # the episode log only


def test_cleanrl_ppo_runs_unmodified_but_for_the_recipe(tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="CleanRL's ppo.py needs torch (the train extra)")
    pytest.importorskip("tensorboard", reason="CleanRL's ppo.py needs tensorboard (the train extra)")
    pytest.importorskip("tyro", reason="CleanRL's ppo.py parses its flags with tyro (the cleanrl extra)")
    if shutil.which("patch") is None:
        pytest.skip("the recipe is applied with patch(1), which is not installed")
    shutil.copy(REPO / "tests" / "cleanrl" / "ppo.py", tmp_path / "ppo.py")
    (tmp_path / "cleanrl-sdedge.patch").write_text(_recipe_diff())
    subprocess.run(["patch", "ppo.py", "cleanrl-sdedge.patch"], cwd=tmp_path, check=True, capture_output=True)
    command = [sys.executable, "ppo.py", "--env-id", "sdedge/EdgeSD-Small-v0", "--total-timesteps", "512",
               "--num-envs", "2", "--num-steps", "64", "--no-cuda"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    returns = [float(r) for r in re.findall(r"episodic_return=(-?[\d.]+)", done.stdout)]
    # 8 tasks of a few seconds each: a return is minus a mean latency, negative and finite
    assert len(returns) >= 10 and all(-100 < r < 0 for r in returns)
    assert "SPS:" in done.stdout
    assert list((tmp_path / "runs").iterdir())  # CleanRL's TensorBoard run folder
