"""The multi-cell env (sdedge_gym/multicell.py): the MBS sharing rule, the twin, C = 1 against the single env."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from sdedge_gym.config import ScenarioConfig
from sdedge_gym.env import EdgeSDEnv
from sdedge_gym.multicell import (
    CELL_HARDWARE,
    MULTICELL_PRESETS,
    CellHardware,
    MultiCellConfig,
    MultiCellTwinEnv,
    make_multicell,
    multicell_config,
)
from sdedge_gym.scenarios import make_scenario


def run_twin(env: MultiCellTwinEnv, seed: int, policy) -> tuple[float, dict]:
    """Return and last info of one episode; ``policy(env)`` gives the joint action."""
    env.reset(seed=seed)
    total, done, info = 0.0, False, {}
    while not done:
        _, reward, done, _, info = env.step(policy(env))
        total += reward
    return total, info


@pytest.mark.parametrize("preset", sorted(MULTICELL_PRESETS))
@pytest.mark.parametrize("mode", ["discrete", "hybrid", "dict"])
def test_twin_passes_both_checkers(preset, mode):
    from gymnasium.utils.env_checker import check_env

    sb3_checker = pytest.importorskip("stable_baselines3.common.env_checker",
                                      reason="stable-baselines3 (the train extra) is not installed")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a checker warning is a failure
        check_env(MultiCellTwinEnv(preset, mode), skip_render_check=True)
        if mode == "dict":  # SB3 supports no Dict action space; its checker says so, and nothing else is expected
            warnings.filterwarnings("ignore", message="The action space is not based off a numpy array",
                                    category=UserWarning)
        sb3_checker.check_env(MultiCellTwinEnv(preset, mode))


@pytest.mark.parametrize("preset,mode,num_tasks", [("small", "discrete", None), ("paper", "hybrid", 30),
                                                   ("uplink", "discrete", 20)])
def test_one_cell_is_the_single_env(preset, mode, num_tasks):
    """C = 1: the same observations (the single env's block), rewards, terminations and KPIs, step by step."""
    scenario = make_scenario(preset) if num_tasks is None else make_scenario(preset, num_tasks=num_tasks)
    single, twin = EdgeSDEnv(scenario, action_mode=mode), MultiCellTwinEnv(MultiCellConfig((scenario,)), mode)
    size = single.observation_space.shape[0]
    for seed in range(3):
        single_obs, _ = single.reset(seed=seed)
        twin_obs, _ = twin.reset(seed=seed)
        single.action_space.seed(seed)
        np.testing.assert_array_equal(twin_obs[:size], single_obs)
        done = False
        while not done:
            action = single.action_space.sample()
            single_obs, single_reward, done, _, single_info = single.step(action)
            twin_obs, twin_reward, twin_done, _, twin_info = twin.step(action)
            assert twin_done == done
            assert twin_reward == pytest.approx(single_reward, rel=1e-9, abs=1e-12)
            np.testing.assert_allclose(twin_obs[:size], single_obs, rtol=0, atol=1e-6)
            assert twin_obs[size] == float(not done)  # the one cell acts at every epoch until the end
        assert twin_info["mean_latency"] == pytest.approx(single_info["mean_latency"], rel=1e-9)


def test_hand_computed_contention():
    """Two identical cells, one batch each: the later request waits for the earlier batch to leave the MBS."""
    config = make_multicell("two-identical", num_tasks=4)
    seed, action = 3, np.array([3, 2])  # n = 4 (every task), l = 2
    solo = []
    for i, cell in enumerate(config.cells):
        env = EdgeSDEnv(cell)
        env.reset(seed=seed + i)
        env.step(action)
        solo.append(env.outcomes[0])
    first, second = sorted(solo, key=lambda o: o.ready)
    # By hand: the first request starts at its ready time (as alone); the second at max(ready, first's finish).
    second_start = max(second.ready, first.finish)
    assert second_start > second.ready, "the instance must have contention"
    expected = (first.completion_times.sum() + (second.completion_times + second_start - second.start).sum()) / 8
    total, info = run_twin(MultiCellTwinEnv(config), seed, lambda env: np.concatenate([action, action]))
    assert info["mean_latency"] == pytest.approx(expected, rel=1e-12)
    assert -total == pytest.approx(expected, rel=1e-12)


def test_later_commitment_can_be_served_first():
    """First come, first served by request time, not by commitment: short uploads overtake a long one."""
    slow, fast = CellHardware("rtx-3080", "llama-68m", 0.05e6, 250.0), CellHardware("rtx-3080", "llama-68m", 1e6, 250.0)
    env = MultiCellTwinEnv(multicell_config((slow, fast), num_tasks=4))
    env.reset(seed=0)
    dynamics = env.core.dynamics
    while not all(dynamics.done(i) for i in range(2)):
        env.step(np.array([3, 1, 0, 1]))  # cell 0: all 4 tasks in one (long) slot; cell 1: one task at a time
    (long_batch,), short_batches = dynamics.outcomes
    assert long_batch.uplink_start == 0.0 and len(short_batches) == 4
    overtaking = [o for o in short_batches if o.uplink_start > 0.0 and o.start < long_batch.start]
    assert overtaking, "a batch of cell 1 committed after cell 0's must be served before it"
    # Each batch starts at max(ready, F_cell, mbs_free), the MBS taking them in order of request time.
    mbs_free, finish, last_request = 0.0, [0.0, 0.0], 0.0
    for start, cell, outcome in sorted((o.start, c, o) for c in range(2) for o in dynamics.outcomes[c]):
        request = max(outcome.ready, finish[cell])
        assert request >= last_request
        assert start == max(request, mbs_free)
        mbs_free = finish[cell] = outcome.finish
        last_request = request


def test_return_is_the_mean_latency_over_all_cells_and_seeding_is_deterministic():
    env = MultiCellTwinEnv("four-heterogeneous", "hybrid")
    returns = []
    for seed in (5, 5, 6):
        env.action_space.seed(seed)
        total, info = run_twin(env, seed, lambda e: e.action_space.sample())
        cells = info["cell_mean_latency"]
        counts = np.array([c.num_tasks for c in env.core.config.cells])
        assert -total == pytest.approx(info["mean_latency"], rel=1e-12)
        assert info["mean_latency"] == pytest.approx((cells * counts).sum() / counts.sum(), rel=1e-12)
        returns.append(total)
    assert returns[0] == returns[1] and returns[0] != returns[2]


def test_bad_actions_and_calls():
    env = MultiCellTwinEnv("two-heterogeneous")
    with pytest.raises(RuntimeError, match="before reset"):
        env.step(env.action_space.sample())
    env.reset(seed=0)
    with pytest.raises(ValueError, match="invalid"):
        env.step(np.array([0, 9, 0, 0]))
    with pytest.raises(ValueError, match=r"action_mode = 'box' is invalid; allowed: 'discrete' \| 'hybrid' \| 'dict'"):
        MultiCellTwinEnv("two-heterogeneous", "box")


def test_bad_configs_name_the_field():
    small = make_scenario("small")
    with pytest.raises(ValueError, match=r"MultiCellConfig\.cells = .*1 to 8"):
        MultiCellConfig((small,) * 9)
    with pytest.raises(ValueError, match=r"MultiCellConfig\.cells = "):
        MultiCellConfig(())
    with pytest.raises(ValueError, match=r"cells\[1\] is a dict"):
        MultiCellConfig((small, {}))
    with pytest.raises(ValueError, match=r"cells\[1\]\.target = llama-13b"):
        MultiCellConfig((small, make_scenario("small", config={"target": {"model": {"name": "llama-13b",
                                                                                     "num_layers": 40}}})))
    with pytest.raises(ValueError, match=r"cells\[0\]\.objective = 'makespan'"):
        MultiCellConfig((small.replace(objective="makespan"), small))
    online = make_scenario("small", config={"arrivals": {"process": "poisson", "arrival_rate": 1.0}})
    with pytest.raises(ValueError, match=r"cells\[1\]\.arrivals\.process = 'poisson'"):
        MultiCellConfig((small, online))
    with pytest.raises(ValueError, match=r"CellHardware\.gpu = 'h100'.*allowed"):
        CellHardware("h100", "llama-68m", 1e6, 250.0)
    with pytest.raises(ValueError, match=r"CellHardware\.draft_model = 'gpt-2'"):
        CellHardware("rtx-3080", "gpt-2", 1e6, 250.0)
    with pytest.raises(ValueError, match="unknown multi-cell preset"):
        make_multicell("three-cells")
    with pytest.raises(ValueError, match="num_tasks"):
        multicell_config(CELL_HARDWARE[:2], num_tasks=[3, 4, 5])


def test_presets_are_heterogeneous_and_share_one_mbs():
    for name, factory in MULTICELL_PRESETS.items():
        config = factory()
        assert all(isinstance(c, ScenarioConfig) for c in config.cells)
        assert len({c.target for c in config.cells}) == 1
        if "heterogeneous" in name:
            assert len({(c.draft, c.uplink.bandwidth) for c in config.cells}) == config.num_cells
    assert make_multicell("two-heterogeneous", num_tasks=[3, 5]).num_tasks == 8
