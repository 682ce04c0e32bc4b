"""Parameter-shared PPO over the cells (sdedge_agents/multicell_ppo.py): the SuperSuit path and its evaluation."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pettingzoo", reason="needs the multicell extra (pettingzoo, supersuit)")
pytest.importorskip("supersuit", reason="needs the multicell extra (pettingzoo, supersuit)")

from sdedge_agents.multicell import constant_plan, lower_bound, play, play_episode, reference_latencies, score_table
from sdedge_agents.multicell_ppo import TeamEpisode, evaluate, make_vec_env
from sdedge_gym.multicell import MultiCellTwinEnv, make_multicell
from sdedge_gym.multicell_pz import MultiCellParallelEnv


def test_team_episode_passes_the_parallel_api_test():
    from pettingzoo.test import parallel_api_test

    parallel_api_test(TeamEpisode(MultiCellParallelEnv("four-heterogeneous")), num_cycles=200)


@pytest.mark.parametrize("team_reward", [True, False])
def test_team_episode_keeps_every_agent_and_its_rewards_add_up_to_the_objective(team_reward):
    # Cell 0 has 1 task and the others 8: it finishes first and must stay until the episode ends.
    env = TeamEpisode(MultiCellParallelEnv(make_multicell("four-heterogeneous", num_tasks=(1, 8, 8, 8))), team_reward)
    observations, _ = env.reset(seed=3)
    totals = dict.fromkeys(env.possible_agents, 0.0)
    steps, finished_early = 0, False
    while env.agents:
        assert env.agents == env.possible_agents  # nobody leaves before the end
        actions = {a: env.action_space(a).sample() for a in env.agents}
        observations, rewards, terminations, truncations, infos = env.step(actions)
        assert set(observations) == set(rewards) == set(terminations) == set(env.possible_agents)
        assert len(set(terminations.values())) == 1 and not any(truncations.values())
        finished_early |= not np.any(observations["cell_0"]) and not all(terminations.values())
        for agent, reward in rewards.items():
            totals[agent] += reward
        steps += 1
    latency = next(info["mean_latency"] for info in infos.values() if "mean_latency" in info)
    if team_reward:  # every agent's return is the team's: minus the mean latency
        for total in totals.values():
            assert total == pytest.approx(-latency, rel=1e-9)
    else:
        assert sum(totals.values()) == pytest.approx(-latency, rel=1e-9)
    assert steps > 4 and finished_early  # a cell that finishes first is kept with a zero observation


def test_vector_env_has_a_slot_per_cell_and_resets_all_together():
    venv = make_vec_env("two-heterogeneous", 1000)
    assert venv.num_envs == 2 and venv.observation_space.shape == (31,)
    obs = venv.reset()
    assert obs.shape == (2, 31)
    episodes = 0
    for _ in range(60):  # 8 tasks per cell: an episode ends within 16 joint steps
        obs, rewards, dones, _ = venv.step(np.array([venv.action_space.sample() for _ in range(2)]))
        assert dones[0] == dones[1] and rewards[0] == pytest.approx(rewards[1])  # one episode, one team reward
        episodes += int(dones[0])
    assert episodes >= 4


def test_evaluation_plays_the_policy_on_acting_cells_only():
    """A constant policy scored by play_episode costs what the references' play() of the constant plans costs."""
    for seed in (500, 501):
        latency = play_episode(lambda agent, obs: np.array([1, 3]), "two-heterogeneous", seed)
        twin = MultiCellTwinEnv("two-heterogeneous")
        twin.reset(seed=seed)
        models, episodes = [e.model for e in twin.core.cell_envs], [e.episode for e in twin.core.cell_envs]
        plans = [constant_plan(m, e, 2, 3) for m, e in zip(models, episodes, strict=True)]
        assert latency == pytest.approx(play(models, episodes, plans).mean_latency, rel=1e-12)


def test_a_short_ppo_run_learns_and_is_scored_above_the_lower_bound():
    pytest.importorskip("stable_baselines3", reason="needs the train extra (stable-baselines3, torch)")
    from stable_baselines3 import PPO

    model = PPO("MlpPolicy", make_vec_env("two-heterogeneous", 1000), n_steps=256, batch_size=128, device="cpu")
    model.learn(512)
    latencies = evaluate(model, "two-heterogeneous", [500, 501])
    for seed, latency in zip([500, 501], latencies, strict=True):
        twin = MultiCellTwinEnv("two-heterogeneous")
        twin.reset(seed=seed)
        bound = lower_bound([e.model for e in twin.core.cell_envs], [e.episode for e in twin.core.cell_envs])
        assert np.isfinite(latency) and latency >= bound


def test_the_score_table_brackets_every_policy_between_the_references():
    rows = [reference_latencies("two-heterogeneous", seed) for seed in (500, 501, 502)]
    results = {name: np.array([row[name] for row in rows]) for name in rows[0]}
    for row in rows:  # the lower bound is below every feasible joint plan, the planner the best of its candidates
        assert row["lower bound"] <= row["centralised planner"] <= row["uncoordinated best-constant"]
    table = score_table(results).splitlines()
    assert table[0].startswith("| policy | mean latency (s) | vs centralised planner | paired vs uncoordinated")
    assert len(table) == 2 + len(results)
    planner_row = next(line for line in table if line.startswith("| centralised planner |"))
    gain = np.mean(results["centralised planner"] - results["uncoordinated best-constant"])
    assert f"| +0.0 % | {gain:+.3f} [" in planner_row  # the planner's paired gain over the constant cells
    assert planner_row.endswith("| +0.000 [+0.000, +0.000] |")  # against itself
    bound = results["lower bound"]
    half = 4.302652729749464 * np.std(bound, ddof=1) / np.sqrt(3)  # t(0.975) with 2 degrees of freedom
    assert f"| lower bound | {np.mean(bound):.3f} ± {half:.3f} |" in table[2]
