"""The segment tables against commit_batch, and the DP oracle against exhaustive search."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from sdedge_agents.oracle import non_dominated, optimal_plan, solve
from sdedge_gym import Episode, EpisodeClock, ServingModel, commit_batch, make_scenario
from sdedge_gym.segments import segment_tables


def _tiny(seed: int, **overrides) -> tuple[ServingModel, Episode]:
    rng = np.random.default_rng(seed)
    scenario = make_scenario("small", num_tasks=int(rng.integers(2, 7)), max_batch=int(rng.integers(1, 4)),
                             max_speculation=int(rng.integers(1, 3)), **overrides)
    scenario = scenario.replace(workload=scenario.workload.replace(output_median=12.0, max_new_tokens=32))
    model = ServingModel.of(scenario)
    return model, Episode.draw(model, rng)


def exhaustive_best(model: ServingModel, episode: Episode) -> float:
    """Minimum episode cost over every action sequence: a depth-first search over commit_batch."""
    cfg = model.config
    best = np.inf

    def search(clock: EpisodeClock, cost: float) -> None:
        nonlocal best
        left = episode.num_tasks - clock.next_task
        if left == 0:
            best = min(best, cost)
            return
        for n in range(1, min(model.batch_limit, left) + 1):
            for l in range(cfg.max_speculation + 1):
                outcome, after = commit_batch(model, episode, clock, n, l)
                search(after, cost + outcome.cost)

    search(EpisodeClock(), 0.0)
    return best


@pytest.mark.parametrize("preset,overrides", [
    ("small", {}), ("small", {"acceptance": "sampled"}), ("paper", {"num_tasks": 30}),
    ("paper", {"num_tasks": 30, "acceptance": "sampled", "pipelining": False}),
    ("uplink", {"num_tasks": 20, "objective": "makespan"}),
])
def test_tables_match_commit_batch(preset, overrides):
    model = ServingModel.of(make_scenario(preset, **overrides))
    episode = Episode.draw(model, np.random.default_rng(7))
    tables = segment_tables(model, episode)
    rng = np.random.default_rng(1)
    for _ in range(25):
        j = int(rng.integers(episode.num_tasks))
        n = int(rng.integers(1, min(model.batch_limit, episode.num_tasks - j) + 1))
        l = int(rng.integers(model.config.max_speculation + 1))
        outcome, _ = commit_batch(model, episode, EpisodeClock(next_task=j, uplink_end=3.0, inference_end=5.0), n, l)
        np.testing.assert_allclose(tables.uplink_slot[j, n - 1], outcome.uplink_slot, rtol=1e-9)
        np.testing.assert_allclose(tables.duration[j, n - 1, l], outcome.finish - outcome.start, rtol=1e-9)
        np.testing.assert_allclose(tables.completion_sum[j, n - 1, l],
                                   (outcome.completion_times - outcome.start).sum(), rtol=1e-9)
    assert np.isinf(tables.uplink_slot[-1, 1:]).all() if tables.batch_limit > 1 else True


def test_non_dominated_matches_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(60):
        m = int(rng.integers(1, 300))
        u, f, c = (rng.integers(0, 5, m).astype(float) for _ in range(3))
        points = list(zip(u.tolist(), f.tolist(), c.tolist(), strict=True))
        want = {p for p in points if not any(q != p and all(a <= b for a, b in zip(q, p, strict=True))
                                             for q in points)}
        got = [points[i] for i in non_dominated(u, f, c)]
        assert len(got) == len(set(got)) and set(got) == want


@pytest.mark.parametrize("acceptance", ["expected", "sampled"])
@pytest.mark.parametrize("objective", ["mean_latency", "makespan"])
def test_oracle_equals_exhaustive_search(acceptance, objective):
    for seed in range(12):
        model, episode = _tiny(seed, acceptance=acceptance, objective=objective)
        plan = optimal_plan(model, episode)
        best = exhaustive_best(model, episode)
        assert plan.cost == pytest.approx(best, rel=1e-9)
        clock, total = EpisodeClock(), 0.0
        for n, l in plan.batches:
            outcome, clock = commit_batch(model, episode, clock, n, l)
            total += outcome.cost
        assert total == pytest.approx(plan.cost, rel=1e-12)


def test_oracle_equals_search_over_env_copies():
    from sdedge_gym.env import EdgeSDEnv

    for seed, overrides in ((0, {}), (1, {"acceptance": "sampled", "objective": "makespan"})):
        env = EdgeSDEnv("small", num_tasks=4, max_batch=2, max_speculation=2, **overrides)
        env.reset(seed=seed)
        best = np.inf

        def search(e, ret):
            nonlocal best
            limit = e.batch_limit()
            for n in range(1, limit + 1):
                for l in range(3):
                    child = copy.deepcopy(e)
                    _, reward, terminated, _, _ = child.step(np.array([n - 1, l]))
                    if terminated:
                        best = min(best, -(ret + reward))
                    else:
                        search(child, ret + reward)

        search(env, 0.0)
        plan = optimal_plan(env.model, env.episode)
        assert plan.cost == pytest.approx(best, rel=1e-9)


def test_solve_from_mid_episode_clock_is_the_tail_optimum():
    model = ServingModel.of(make_scenario("small"))
    episode = Episode.draw(model, np.random.default_rng(5))
    tables = segment_tables(model, episode)
    full = solve(tables, "mean_latency")
    clock, spent = EpisodeClock(), 0.0
    outcome, clock = commit_batch(model, episode, clock, *full.batches[0])
    spent += outcome.cost
    tail = solve(tables, "mean_latency", start=clock)
    assert spent + tail.cost == pytest.approx(full.cost, rel=1e-12)


def test_solve_rejects_bad_arguments():
    model = ServingModel.of(make_scenario("small"))
    tables = segment_tables(model, Episode.draw(model, np.random.default_rng(0)))
    with pytest.raises(ValueError, match="objective"):
        solve(tables, "throughput")
    with pytest.raises(ValueError, match="next_task"):
        solve(tables, start=EpisodeClock(next_task=8))
    with pytest.raises(ValueError, match="allocation"):
        segment_tables(model, Episode.draw(model, np.random.default_rng(0)), allocation="equal")
