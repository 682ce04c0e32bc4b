"""The twin's reward="reference" (sdedge_gym/multicell.py): potential-based shaping with every cell's best
constant action as the reference policy."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from sdedge_agents.multicell import uncoordinated_plans
from sdedge_gym.multicell import MultiCellTwinEnv


def discrete_action(env: MultiCellTwinEnv, per_cell) -> np.ndarray:
    return np.concatenate([[n - 1, l] for n, l in per_cell])


@pytest.mark.parametrize("preset", ["two-heterogeneous", "four-heterogeneous", "two-heterogeneous-online"])
def test_the_return_is_the_improvement_over_the_reference(preset):
    env = MultiCellTwinEnv(preset, reward="reference")
    rng = np.random.default_rng(0)
    for seed in range(3):
        _, info = env.reset(seed=seed)
        start, total, done = float(info["reference_cost_to_go"]), 0.0, False
        models = [e.model for e in env.core.cell_envs]
        episodes = [e.episode for e in env.core.cell_envs]
        # V(s_0) is the uncoordinated best-constant cells' mean latency, the references' own number.
        assert start == pytest.approx(uncoordinated_plans(models, episodes, "best-constant").mean_latency, rel=1e-12)
        while not done:
            mask = env.action_masks()
            width = mask.size // env.core.num_cells
            parts = []
            for i, cell_env in enumerate(env.core.cell_envs):
                cell_mask = mask[i * width:(i + 1) * width]
                head = cell_mask.size - (cell_env.scenario.max_speculation + 1)
                parts.append([rng.choice(np.flatnonzero(cell_mask[:head])),
                              rng.choice(np.flatnonzero(cell_mask[head:]))])
            _, reward, done, _, info = env.step(np.concatenate(parts))
            total += reward
        # Shaping telescopes: sum of (-cost + V(s) - V(s')) = V(s_0) - objective (float sums: 1e-9).
        assert total == pytest.approx(start - info["mean_latency"], rel=1e-9, abs=1e-9)
        assert info["reference_cost_to_go"] == 0.0


def test_following_the_reference_earns_zero_at_every_step():
    env = MultiCellTwinEnv("four-heterogeneous", reward="reference")
    env.reset(seed=5)
    action = discrete_action(env, env.reference_actions)
    done = False
    while not done:
        _, reward, done, _, _ = env.step(action)  # the env clips n to the tasks left, as the reference does
        assert reward == pytest.approx(0.0, abs=1e-9)


def test_the_default_reward_is_unchanged_and_a_bad_reward_names_the_argument():
    latency = MultiCellTwinEnv("two-heterogeneous")
    reference = MultiCellTwinEnv("two-heterogeneous", reward="reference")
    _, info = latency.reset(seed=2)
    reference.reset(seed=2)
    assert "reference_cost_to_go" not in info
    action = discrete_action(latency, [(3, 2), (2, 4)])
    _, default_reward, _, _, _ = latency.step(action)
    _, _, _, _, reference_info = reference.step(action)
    assert default_reward == -float(reference_info["cell_cost"].sum())
    with pytest.raises(ValueError, match=r"reward = 'shaped' is invalid; allowed: 'latency' \| 'reference'"):
        MultiCellTwinEnv("two-heterogeneous", reward="shaped")


def test_the_reference_twin_passes_the_checker():
    from gymnasium.utils.env_checker import check_env

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(MultiCellTwinEnv("two-heterogeneous", reward="reference"), skip_render_check=True)


def test_the_twin_training_script_scores_its_agent_against_the_references(tmp_path):
    import importlib.util
    import json
    from pathlib import Path

    pytest.importorskip("sb3_contrib", reason="needs the train extra (sb3-contrib, torch)")
    path = Path(__file__).resolve().parents[1] / "scripts" / "train_multicell_twin.py"
    spec = importlib.util.spec_from_file_location("train_multicell_twin", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    argv = ["--timesteps", "512", "--eval-every", "256", "--eval-episodes", "1", "--episodes", "2", "--out",
            str(tmp_path)]
    assert script.main(argv) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["command"] == "python scripts/train_multicell_twin.py " + " ".join(argv)
    agent = results["per_episode"]["twin MaskablePPO (reference reward)"]
    assert len(agent) == 2 and all(a >= b * (1 - 1e-9) for a, b in zip(agent, results["per_episode"]["lower bound"],
                                                                        strict=True))
    rows = (tmp_path / "evaluations.csv").read_text().splitlines()
    # SB3 trains whole rollouts (8 envs x 256 steps): 2048 steps, evaluated every 256.
    assert rows[0] == "timesteps,mean_latency,wall_time_s"
    assert [int(row.split(",")[0]) for row in rows[1:]] == list(range(256, 2049, 256))
    with pytest.raises(SystemExit):
        script.main(["--gae-lambda", "0"])
