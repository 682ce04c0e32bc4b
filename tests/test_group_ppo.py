"""sdedge_agents.group_ppo: groups replay one episode, advantages are relative to the group, the run directory
is the harness's (training runs here are tiny)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("sb3_contrib", reason="needs the train extra (sb3-contrib, torch)")

import torch
from sb3_contrib import MaskablePPO

from sdedge_agents.group_ppo import GroupCollector, GroupConfig, build_model, main, train, update
from sdedge_agents.train import StopRequest, TrainConfig, evaluate_model, make_single_env

SMALL = "sdedge/EdgeSD-Small-v0"


def small_config(tmp_path, **kwargs) -> GroupConfig:
    run = TrainConfig(SMALL, "maskable_ppo", timesteps=kwargs.pop("timesteps", 200), n_envs=3, seed=7,
                      out=str(tmp_path), eval_episodes=2, eval_every=kwargs.pop("eval_every", 0),
                      checkpoint_every=100, policy="slot")
    return GroupConfig(run=run, episodes=3, group_size=4, epochs=2, batch_size=16, slot_width=8, net_arch=(16,),
                       **kwargs)


def test_a_group_replays_one_episode_and_its_advantages_are_relative_to_it(tmp_path):
    config = small_config(tmp_path)
    torch.manual_seed(0)
    policy = build_model(config).policy
    collector = GroupCollector(config)
    rollouts = collector.collect(policy)
    envs = collector.envs
    for b in range(3):  # the group plays the leader's episode, the next group another one
        group = envs[4 * b:4 * b + 4]
        assert all(env.unwrapped.episode is group[0].unwrapped.episode for env in group)
    workloads = [envs[4 * b].unwrapped.episode.workload.prompt_len for b in range(3)]
    assert not np.array_equal(workloads[0], workloads[1])
    assert rollouts.advantages.shape == (len(rollouts.actions),)
    assert rollouts.objectives.shape == (12,) and np.all(rollouts.objectives > 0)  # mean latencies
    # Each env stepped until its episode ended: the steps add up to the rollouts' batches.
    assert len(rollouts.actions) == sum(len(env.unwrapped.outcomes) for env in envs)
    collector.close()


@pytest.mark.parametrize("relative", [False, True])
def test_group_advantages_are_zero_mean_per_group(tmp_path, relative):
    config = small_config(tmp_path, relative_advantage=relative)
    policy = build_model(config).policy
    collector = GroupCollector(config)
    rollouts = collector.collect(policy)
    # Rebuild each rollout's advantage from its objective (default reward: return = -objective); relative: in
    # fractions of the group's mean objective.
    objectives = rollouts.objectives.reshape(3, 4)
    mean = objectives.mean(axis=1, keepdims=True)
    expected = -((objectives - mean) / (mean if relative else 1.0)).reshape(-1)
    if expected.std() > 0:
        expected = expected / (expected.std() + 1e-8)
    per_step_rollout = np.concatenate([np.flatnonzero([len(env.unwrapped.outcomes) > t for env in collector.envs])
                                       for t in range(max(len(env.unwrapped.outcomes) for env in collector.envs))])
    np.testing.assert_allclose(rollouts.advantages, expected[per_step_rollout], rtol=1e-9, atol=1e-9)
    collector.close()


def test_an_update_moves_the_policy_towards_the_better_rollouts(tmp_path):
    config = small_config(tmp_path, learning_rate=1e-2)
    torch.manual_seed(0)
    policy = build_model(config).policy
    collector = GroupCollector(config)
    rollouts = collector.collect(policy)
    collector.close()
    obs = torch.as_tensor(rollouts.observations)

    def weighted_log_prob() -> float:
        with torch.no_grad():
            distribution = policy.get_distribution(obs, action_masks=rollouts.masks)
            return float((distribution.log_prob(torch.as_tensor(rollouts.actions)) *
                          torch.as_tensor(rollouts.advantages)).sum())

    before = weighted_log_prob()
    stats = update(policy, rollouts, config, 1e-2, np.random.default_rng(0))
    assert weighted_log_prob() > before  # the surrogate's gradient: more weight on positive advantages
    assert set(stats) == {"policy_loss", "entropy", "approx_kl", "clip_fraction"}


def test_a_run_writes_the_harness_run_directory_and_its_model_plays(tmp_path):
    config = small_config(tmp_path, eval_every=100)
    record = train(config)
    assert record["status"] == "completed" and record["steps"] >= 200
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["algorithm"] == "group_ppo" and run["hyperparameters"]["group_size"] == 4
    assert run["config"]["env_id"] == SMALL and run["config"]["seed"] == 7  # sdedge_agents.train's layout
    lines = (tmp_path / "evaluations.csv").read_text().splitlines()
    assert lines[0] == "timesteps,objective,oracle,oracle_gap_percent,wall_time_s" and len(lines) >= 4
    assert (tmp_path / "progress.csv").read_text().count("\n") == record["updates"] + 1
    assert any((tmp_path / "checkpoints").glob("model_*_steps.zip"))
    model = MaskablePPO.load(tmp_path / "model.zip", device="cpu")
    assert evaluate_model(model, config.run, [900000])["mean"] > 0
    assert model.policy.optimizer.state_dict()["state"] == {}  # saved without Adam's moments
    with pytest.raises(ValueError, match="already holds a run"):
        train(config)


def test_the_learning_rate_is_a_constant_or_decays_linearly_to_zero(tmp_path):
    assert small_config(tmp_path, learning_rate=1e-3).learning_rate_at(0.25) == 1e-3
    assert small_config(tmp_path, learning_rate="lin_1e-3").learning_rate_at(0.25) == pytest.approx(2.5e-4)
    record = train(small_config(tmp_path, learning_rate=1e-3))  # a constant rate trains too
    assert record["status"] == "completed"
    rates = [float(line.split(",")[8]) for line in (tmp_path / "progress.csv").read_text().splitlines()[1:]]
    assert rates and all(rate == 1e-3 for rate in rates)


def test_a_stop_request_saves_an_interrupted_checkpoint(tmp_path):
    stop = StopRequest()
    stop.signum = 15
    with pytest.raises(KeyboardInterrupt):
        train(small_config(tmp_path), stop)
    assert json.loads((tmp_path / "run.json").read_text())["status"] == "interrupted"
    assert len(list((tmp_path / "checkpoints").glob("interrupted_*.zip"))) == 1


@pytest.mark.parametrize(("argv", "message"), [
    (["--env", "sdedge/EdgeSD-Small-Hybrid-v0"], "allowed: an id in discrete action mode"),
    (["--loads", "0.5,x"], "--loads = '0.5,x' is invalid"),
    (["--loads", "0.5"], "--loads needs an online id with Poisson arrivals"),
    (["--group-size", "1"], "--group-size = 1 is invalid; allowed: an integer >= 2"),
    (["--learning-rate", "fast"], "--learning-rate = 'fast' is invalid"),
    (["--learning-rate=-1e-3"], "--learning-rate = -0.001 is invalid"),
    (["--clip-range", "-1"], "--clip-range = -1.0 is invalid"),
    (["--seed", "590"], "--seed = 590 is invalid"),
    (["--torch-threads", "0"], "--torch-threads = 0 is invalid"),
])
def test_bad_arguments_are_argparse_errors_naming_the_flag(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["--env", SMALL, "--timesteps", "10", "--out", str(tmp_path), *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_online_groups_share_the_arrivals_and_the_leaders_load(tmp_path):
    run = TrainConfig("sdedge/EdgeSD-Online-v0", "maskable_ppo", timesteps=100, n_envs=2, seed=7, out=str(tmp_path),
                      eval_episodes=0, policy="slot", loads=(0.3, 0.9))
    config = GroupConfig(run=run, episodes=2, group_size=2, epochs=1, batch_size=64, slot_width=8, net_arch=(16,))
    model = build_model(config)
    assert type(model.policy).__name__ == "OnlineMaskableSlotPolicy"
    collector = GroupCollector(config)
    rollouts = collector.collect(model.policy)
    first, second = (collector.envs[2 * b:2 * b + 2] for b in range(2))
    for group in (first, second):
        np.testing.assert_array_equal(group[0].unwrapped.episode.release, group[1].unwrapped.episode.release)
    rates = [env.unwrapped.scenario.arrivals.arrival_rate for env in collector.envs]
    assert rates[0] == rates[1] and rates[2] == rates[3] and rates[0] < rates[2]  # loads 0.3, then 0.9
    # A step is a batch or a wait: at least one step per batch served.
    assert len(rollouts.actions) >= sum(len(env.unwrapped.outcomes) for env in collector.envs)
    collector.close()


def test_init_starts_from_a_saved_models_network_and_weights(tmp_path):
    first = small_config(tmp_path / "first")
    train(first)
    source = MaskablePPO.load(tmp_path / "first" / "model.zip", device="cpu")
    run = TrainConfig(SMALL, "maskable_ppo", timesteps=50, n_envs=3, seed=7, out=str(tmp_path / "second"),
                      eval_episodes=0, policy="slot")
    config = GroupConfig(run=run, episodes=3, group_size=4, init=str(tmp_path / "first" / "model.zip"))
    model = build_model(config)  # the flags' default widths are ignored: the network is the saved one
    assert model.policy.slot_width == 8
    for name, value in source.policy.state_dict().items():
        torch.testing.assert_close(model.policy.state_dict()[name], value, rtol=0, atol=0)
    record = train(config)  # run.json records the network it trained, the saved one, not the flags' defaults
    assert (record["hyperparameters"]["slot_width"], record["hyperparameters"]["net_arch"]) == (8, [16])
    with pytest.raises(ValueError, match=r"--init = 'nowhere\.zip' is invalid"):
        GroupConfig(run=run, init="nowhere.zip")
    mlp = MaskablePPO("MlpPolicy", make_single_env(run), device="cpu")
    mlp.save(tmp_path / "mlp.zip")
    with pytest.raises(ValueError, match="holds a MaskableActorCriticPolicy; allowed: a model of the sequence policy"):
        build_model(GroupConfig(run=run, init=str(tmp_path / "mlp.zip")))
