"""sdedge_agents.episode_replay: episodes are scored by the policy's gap to the oracle, the highest kept and
replayed by rank; group_ppo --replay replays them in its last groups."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from sdedge_agents.episode_replay import EpisodeReplay, ReplayEntry
from sdedge_agents.evaluate import make_policy, run_episodes
from sdedge_agents.oracle import optimal_plan

SMALL = "sdedge/EdgeSD-Small-v0"


def small_episodes(count: int):
    env = gym.make(SMALL)
    episodes = []
    for seed in range(count):
        env.reset(seed=seed)
        episodes.append(env.unwrapped.episode)
    return env.unwrapped.model, episodes


def test_a_fresh_episode_is_scored_by_its_gap_to_the_oracle():
    env = gym.make(SMALL)
    oracle_latency = -run_episodes(make_policy("oracle", env), env, [3])[0]
    episode, model = env.unwrapped.episode, env.unwrapped.model
    replay = EpisodeReplay(0.5)
    entry = replay.record(model, episode, 1.1 * oracle_latency)
    assert entry.oracle == pytest.approx(oracle_latency, rel=1e-12)  # the DP's optimum is what the oracle plays
    assert entry.score == pytest.approx(0.1, rel=1e-9)
    assert replay.record(model, episode, oracle_latency, entry) is entry  # a replay re-scores, adds nothing
    assert entry.score == pytest.approx(0.0, abs=1e-12) and len(replay) == 1


def test_the_buffer_keeps_the_highest_scores():
    model, episodes = small_episodes(5)
    replay = EpisodeReplay(0.5, capacity=3)
    gaps = [0.3, 0.01, 0.2, 0.05, 0.4]
    for episode, gap in zip(episodes, gaps, strict=True):
        replay.record(model, episode, (1.0 + gap) * optimal_plan(model, episode).cost)
    np.testing.assert_allclose(replay.scores(), [0.4, 0.3, 0.2], rtol=1e-9)
    assert {id(e.episode) for e in replay.entries} == {id(episodes[i]) for i in (0, 2, 4)}


def test_draws_wait_for_a_full_buffer_then_pick_distinct_entries_by_rank():
    _, episodes = small_episodes(2)
    replay = EpisodeReplay(0.25, rng=np.random.default_rng(0))
    assert replay.draw(8) == []  # two groups to replay, nothing in the buffer yet
    entries = [ReplayEntry(episodes[i % 2], 1.0, score) for i, score in enumerate([0.5, 0.4, 0.3, 0.2, 0.1, 0.0])]
    replay.entries = list(entries)
    assert replay.draw(1) == []  # 0.25 of one group rounds to none
    counts = np.zeros(6)
    for _ in range(3000):
        drawn = replay.draw(8)
        assert len(drawn) == 2 and drawn[0] is not drawn[1]
        for entry in drawn:
            counts[entries.index(entry)] += 1
    # Weights 1/rank without replacement: the first-ranked is drawn most, and the order follows the rank.
    assert np.all(np.diff(counts) < 0)
    # P(rank 1 among two successive draws without replacement, weights 1/r): first, or second after rank j.
    weights = 1.0 / np.arange(1, 7)
    total = weights.sum()
    first_of_two = weights[0] / total + sum(w / total * weights[0] / (total - w) for w in weights[1:])
    assert counts[0] / 3000 == pytest.approx(first_of_two, abs=0.03)


@pytest.mark.parametrize(("fraction", "capacity", "message"), [
    (1.0, 4, r"replay fraction = 1\.0 is invalid; allowed: a number in \[0, 1\)"),
    (-0.1, 4, r"replay fraction = -0\.1 is invalid"),
    (0.5, 0, r"replay capacity = 0 is invalid; allowed: an integer >= 1"),
])
def test_bad_settings_raise_naming_them(fraction, capacity, message):
    with pytest.raises(ValueError, match=message):
        EpisodeReplay(fraction, capacity)


pytest.importorskip("sb3_contrib", reason="needs the train extra (sb3-contrib, torch)")


def test_group_ppo_replays_the_buffers_episodes_in_its_last_groups(tmp_path):
    from sdedge_agents.group_ppo import GroupCollector, GroupConfig, build_model
    from sdedge_agents.train import TrainConfig

    run = TrainConfig(SMALL, "maskable_ppo", timesteps=100, n_envs=4, seed=7, out=str(tmp_path), eval_episodes=0,
                      policy="slot")
    config = GroupConfig(run=run, episodes=4, group_size=2, epochs=1, batch_size=16, slot_width=8, net_arch=(16,),
                         replay=0.5)
    policy = build_model(config).policy
    replay = EpisodeReplay(config.replay, rng=np.random.default_rng(0))
    collector = GroupCollector(config, replay)
    collector.collect(policy)
    first = [collector.envs[2 * b].unwrapped.episode for b in range(4)]
    assert collector.replayed == [None] * 4 and len(replay) == 4  # the first update is all fresh, all scored
    assert all(entry.score >= -1e-9 for entry in replay.entries)  # nothing beats the oracle
    collector.collect(policy)
    played = [collector.envs[2 * b].unwrapped.episode for b in range(4)]
    assert collector.replayed[:2] == [None, None]  # fresh groups draw new episodes from their leaders' streams
    assert not any(episode is old for episode in played[:2] for old in first)
    for b in (2, 3):  # the last half replays buffered episodes, every env of the group the same one
        entry = collector.replayed[b]
        assert entry is not None and any(entry.episode is episode for episode in first)
        assert all(env.unwrapped.episode is entry.episode for env in collector.envs[2 * b:2 * b + 2])
    assert len(replay) == 6  # two fresh episodes joined; the replayed ones were re-scored in place
    collector.close()


def test_replay_is_refused_on_online_ids_and_outside_zero_to_one(tmp_path):
    from sdedge_agents.group_ppo import GroupConfig, main
    from sdedge_agents.train import TrainConfig

    run = TrainConfig("sdedge/EdgeSD-Online-v0", "maskable_ppo", timesteps=100, n_envs=2, seed=7, out=str(tmp_path),
                      eval_episodes=0, policy="slot")
    with pytest.raises(ValueError, match=r"--replay = 0\.5 is invalid for the online id"):
        GroupConfig(run=run, replay=0.5)
    with pytest.raises(SystemExit):
        main(["--env", SMALL, "--timesteps", "10", "--out", str(tmp_path), "--replay", "1.5"])


def test_a_run_with_replay_logs_its_buffer(tmp_path):
    from sdedge_agents.group_ppo import REPLAY_HEADER, GroupConfig, train
    from sdedge_agents.train import TrainConfig

    run = TrainConfig(SMALL, "maskable_ppo", timesteps=150, n_envs=3, seed=7, out=str(tmp_path), eval_episodes=0,
                      policy="slot")
    record = train(GroupConfig(run=run, episodes=3, group_size=2, epochs=1, batch_size=16, slot_width=8,
                               net_arch=(16,), replay=0.34))
    lines = (tmp_path / "replay.csv").read_text().splitlines()
    assert lines[0] == REPLAY_HEADER.strip() and len(lines) == record["updates"] + 1
    rows = [line.split(",") for line in lines[1:]]
    assert [int(r[1]) for r in rows] == [0] + [1] * (len(rows) - 1)  # one group of three replayed after the first
    assert [int(r[2]) for r in rows] == [3 + 2 * i for i in range(len(rows))]  # three fresh, then two a update
    assert record["hyperparameters"]["replay"] == 0.34
