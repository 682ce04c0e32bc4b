"""Online cells (arrivals over time in every cell, sdedge_gym/multicell.py): C = 1 against the online env, waits,
the latency accounting and the references with arrivals."""

from __future__ import annotations

import numpy as np
import pytest

from sdedge_agents.multicell import (
    centralised_plan,
    constant_plan,
    contention_free_bound,
    joint_optimum,
    lower_bound,
    mbs_capacity_bound,
    play,
    solo_optimal_plan,
    uncoordinated_plans,
)
from sdedge_agents.oracle import solve
from sdedge_gym.multicell import (
    CELL_HARDWARE,
    ONLINE_LOAD,
    MultiCellConfig,
    MultiCellTwinEnv,
    make_multicell,
    multicell_config,
    online_cells,
)
from sdedge_gym.online_env import EdgeSDOnlineEnv, max_batch_capacity
from sdedge_gym.scenarios import make_scenario
from sdedge_gym.segments import segment_tables


def masked_sample(rng: np.random.Generator, mask: np.ndarray, n_max: int) -> np.ndarray:
    """A uniformly drawn valid discrete online action: [n - 1 or n_max (wait), l] from the env's mask."""
    head, tail = np.flatnonzero(mask[:n_max + 1]), np.flatnonzero(mask[n_max + 1:])
    return np.array([rng.choice(head), rng.choice(tail)])


def cells_of(env: MultiCellTwinEnv):
    return [e.model for e in env.core.cell_envs], [e.episode for e in env.core.cell_envs]


@pytest.mark.parametrize("preset,num_tasks", [("small", None), ("paper", 20)])
def test_one_online_cell_is_the_online_env(preset, num_tasks):
    """C = 1: the online env's observations, rewards and KPIs step by step, under random valid actions with
    waits (the same kernel calls in the same order: rewards to 1e-12, C_k - a_k summed in another order)."""
    kwargs = {} if num_tasks is None else {"num_tasks": num_tasks}
    scenario = make_scenario(preset, config={"arrivals": {"process": "poisson", "arrival_rate": 0.4}}, **kwargs)
    single, twin = EdgeSDOnlineEnv(scenario), MultiCellTwinEnv(MultiCellConfig((scenario,)))
    size, n_max = single.observation_space.shape[0], scenario.max_batch
    rng = np.random.default_rng(0)
    waits = 0
    for seed in range(3):
        single_obs, single_info = single.reset(seed=seed)
        twin_obs, twin_info = twin.reset(seed=seed)
        np.testing.assert_array_equal(twin_obs[:size], single_obs)
        np.testing.assert_array_equal(twin_info["action_mask"], single.action_masks())
        done = False
        while not done:
            action = masked_sample(rng, single.action_masks(), n_max)
            waits += int(action[0] == n_max)
            single_obs, single_reward, done, _, single_info = single.step(action)
            twin_obs, twin_reward, twin_done, _, twin_info = twin.step(action)
            assert twin_done == done
            np.testing.assert_array_equal(twin_obs[:size], single_obs)
            assert twin_reward == pytest.approx(single_reward, rel=1e-12, abs=1e-12)
            np.testing.assert_array_equal(twin_info["action_mask"], single.action_masks())
        assert twin_info["mean_latency"] == pytest.approx(single_info["mean_latency"], rel=1e-12)
    assert waits > 5  # the comparison went through waits


def test_a_waiting_cell_moves_to_its_next_arrival_and_the_other_cell_is_unaffected():
    env = MultiCellTwinEnv("two-heterogeneous-online")
    env.reset(seed=3)
    dynamics = env.core.dynamics
    first = [float(r[0]) for r in dynamics.releases]
    assert [c.now for c in dynamics.clocks] == first  # each cell's first epoch is its first arrival
    assert dynamics.now == min(first)
    cell = int(np.argmin(first))
    other = 1 - cell
    n_max = env.core.cell_envs[0].scenario.max_batch
    wait, dispatch = [n_max, 0], [0, 0]
    action = np.array(wait + dispatch if cell == 0 else dispatch + wait)
    _, reward, _, _, info = env.step(action)
    assert reward == 0.0 and info["acted"][cell] and not info["acted"][other]
    assert dynamics.clocks[cell].now == float(dynamics.releases[cell][1])  # its second arrival
    assert dynamics.clocks[cell].next_task == 0 and dynamics.clocks[other].next_task == 0
    assert dynamics.clocks[other].now == first[other]


def test_the_return_is_minus_the_mean_of_completion_minus_arrival():
    env = MultiCellTwinEnv("four-heterogeneous-online")
    rng = np.random.default_rng(1)
    env.reset(seed=7)
    total, done = 0.0, False
    while not done:
        mask = env.action_masks()
        width = mask.size // env.core.num_cells
        action = np.concatenate([masked_sample(rng, mask[i * width:(i + 1) * width], e.scenario.max_batch)
                                 for i, e in enumerate(env.core.cell_envs)])
        _, reward, done, _, info = env.step(action)
        total += reward
    dynamics = env.core.dynamics
    completions = [np.concatenate([o.completion_times for o in outcomes]) for outcomes in dynamics.outcomes]
    latencies = np.concatenate([c - r for c, r in zip(completions, dynamics.releases, strict=True)])
    assert np.all(latencies > 0) and len(latencies) == dynamics.num_tasks
    assert info["mean_latency"] == pytest.approx(latencies.mean(), rel=1e-12)
    assert total == pytest.approx(-latencies.mean(), rel=1e-9)
    for i, (c, r) in enumerate(zip(completions, dynamics.releases, strict=True)):
        assert info["cell_mean_latency"][i] == pytest.approx((c - r).mean(), rel=1e-12)


def test_online_presets_spread_one_mbs_load_over_the_cells():
    for preset in ("two-identical", "two-heterogeneous", "four-heterogeneous"):
        offline, online = make_multicell(preset), make_multicell(f"{preset}-online")
        assert online.online and not offline.online and online.name == f"{preset}-online"
        for base, cell in zip(offline.cells, online.cells, strict=True):
            assert cell.arrivals.process == "poisson"
            rate = ONLINE_LOAD * max_batch_capacity(base) / online.num_cells
            assert cell.arrivals.arrival_rate == pytest.approx(rate, rel=1e-12)
            assert cell.replace(arrivals=base.arrivals) == base.replace(name=cell.name)
    assert make_multicell("two-heterogeneous", online=True, load=0.5).cells[0].arrivals.arrival_rate == pytest.approx(
        0.5 / 0.7 * make_multicell("two-heterogeneous-online").cells[0].arrivals.arrival_rate, rel=1e-12)


def test_bad_online_configs_name_the_field():
    offline = make_scenario("small")
    online = make_scenario("small", config={"arrivals": {"process": "poisson"}})
    with pytest.raises(ValueError, match=r"cells\[1\]\.arrivals\.process = 'poisson'.*every cell offline or every"):
        MultiCellConfig((offline, online))
    with pytest.raises(ValueError, match="load = 0 is invalid"):
        online_cells(multicell_config(CELL_HARDWARE[:2]), load=0)


@pytest.mark.parametrize("preset,seed", [("two-heterogeneous-online", 0), ("four-heterogeneous-online", 1)])
def test_online_references_bracket_every_plan(preset, seed):
    env = MultiCellTwinEnv(preset)
    env.reset(seed=seed)
    models, episodes = cells_of(env)
    bound = lower_bound(models, episodes)
    assert bound == max(contention_free_bound(models, episodes), mbs_capacity_bound(models, episodes))
    oracle = uncoordinated_plans(models, episodes)
    planner = centralised_plan(models, episodes)
    assert bound <= planner.mean_latency * (1 + 1e-9) and planner.mean_latency <= oracle.mean_latency * (1 + 1e-12)
    rng = np.random.default_rng(seed)
    for _ in range(20):  # random joint plans of constant actions: never below either bound
        plans = [constant_plan(m, e, int(rng.integers(1, m.batch_limit + 1)), int(rng.integers(0, 5)))
                 for m, e in zip(models, episodes, strict=True)]
        assert play(models, episodes, plans).mean_latency >= bound * (1 - 1e-9)
    with pytest.raises(ValueError, match="arrival times"):
        joint_optimum(models, episodes)


def test_one_cells_hindsight_plan_played_with_waits_costs_what_the_dp_says():
    """play() waits for each batch's last arrival: with one cell, the DP's cost of its plan to 1e-9."""
    scenario = make_scenario("small", config={"arrivals": {"process": "poisson", "arrival_rate": 0.5}})
    env = MultiCellTwinEnv(MultiCellConfig((scenario,)))
    for seed in range(4):
        env.reset(seed=seed)
        (model,), (episode,) = cells_of(env)
        plan = solve(segment_tables(model, episode), "mean_latency", episode.num_tasks, release=episode.release)
        assert plan.batches == solo_optimal_plan(model, episode)
        assert play([model], [episode], [plan.batches]).mean_latency == pytest.approx(plan.cost, rel=1e-9)
        assert contention_free_bound([model], [episode]) == pytest.approx(plan.cost, rel=1e-12)


def test_a_registered_id_takes_online_and_load():
    import gymnasium as gym

    import sdedge_gym  # noqa: F401  (registers the ids)

    env = gym.make("sdedge/EdgeSD-MultiCell-TwoHeterogeneous-Hybrid-v0", online=True, load=0.5)
    twin = env.unwrapped
    assert twin.core.config == make_multicell("two-heterogeneous", online=True, load=0.5)
    assert all(isinstance(e, EdgeSDOnlineEnv) for e in twin.core.cell_envs)
    _, info = env.reset(seed=0)
    first = [float(e.episode.release[0]) for e in twin.core.cell_envs]
    assert list(info["acting"]) == [f == min(first) for f in first]  # the first arrival's cell acts first
