"""sdedge_agents.train's --env-kwargs and --hyperparams (the reward ablation's flags); training runs here are tiny."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("stable_baselines3", reason="needs the train extra (stable-baselines3, torch)")
pytest.importorskip("sb3_contrib", reason="needs the train extra (sb3-contrib, torch)")

from sdedge_agents.train import (
    TrainConfig,
    evaluate_model,
    hyperparameters,
    make_single_env,
    name_values,
    parse_config,
    train,
    vectorisation_path,
)

SMALL = "sdedge/EdgeSD-Small-v0"


def test_name_values_reads_literals_and_bare_words():
    assert name_values("--x", ["reward=reference", "gae_lambda=0.9", "num_tasks=5", "flag=True", "s='a b'"]) == (
        ("reward", "reference"), ("gae_lambda", 0.9), ("num_tasks", 5), ("flag", True), ("s", "a b"))
    for bad in ("reward", "=1", "1x=2"):
        with pytest.raises(ValueError, match=f"--x item '{bad}' is invalid; allowed: NAME=VALUE"):
            name_values("--x", [bad])


def test_the_flags_reach_the_config_the_hyperparameters_and_the_vectorisation():
    config, _ = parse_config(["--env", SMALL, "--algo", "maskable_ppo", "--out", "unused", "--n-envs", "2",
                              "--env-kwargs", "reward=reference", "--hyperparams", "gae_lambda=0.9", "ent_coef=0.01"])
    assert config.env_kwargs == (("reward", "reference"),)
    assert config.evaluation_env_kwargs() == {}
    settings = hyperparameters(config)
    assert settings["gae_lambda"] == 0.9 and settings["ent_coef"] == 0.01 and settings["gamma"] == 1.0
    # The native vector env has no reward= option: runs with --env-kwargs train on DummyVecEnv.
    assert vectorisation_path(config) == "sb3:DummyVecEnv"
    assert make_single_env(config).unwrapped.reward == "reference"
    assert make_single_env(config, evaluation=True).unwrapped.reward == "latency"


@pytest.mark.parametrize(("argv", "message"), [
    (["--env-kwargs", "reward=bogus"], "reward = 'bogus' is invalid; allowed: 'latency' | 'reference' | 'relative'"),
    (["--env-kwargs", "colour=1"], "--env-kwargs {'colour': 1} is invalid"),
    (["--hyperparams", "gae_lambda"], "--hyperparams item 'gae_lambda' is invalid"),
])
def test_bad_items_are_argparse_errors_naming_the_flag(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        parse_config(["--env", SMALL, "--algo", "maskable_ppo", "--out", "unused", *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_a_reference_reward_run_is_evaluated_on_the_objective(tmp_path):
    config = TrainConfig(SMALL, "maskable_ppo", timesteps=256, n_envs=2, seed=3, out=str(tmp_path),
                         eval_episodes=2, checkpoint_every=128, env_kwargs=(("reward", "reference"),),
                         hyperparams=(("gae_lambda", 0.9),))
    record = train(config)
    saved = json.loads((tmp_path / "run.json").read_text())
    assert saved["config"]["env_kwargs"] == [["reward", "reference"]]
    assert saved["hyperparameters"]["gae_lambda"] == 0.9
    assert saved["vectorisation"] == "sb3:DummyVecEnv"
    # The final evaluation scores the mean latency (the default reward's return), not the shaped return.
    from sb3_contrib import MaskablePPO

    model = MaskablePPO.load(tmp_path / "model.zip", device="cpu")
    plain = evaluate_model(model, TrainConfig(SMALL, "maskable_ppo", timesteps=1, out=str(tmp_path)),
                           record["evaluation"]["seeds"])
    assert record["evaluation"]["values"] == plain["values"] and min(plain["values"]) > 0
    # --resume must keep the reward: a run with another --env-kwargs is refused.
    other = TrainConfig(SMALL, "maskable_ppo", timesteps=512, n_envs=2, seed=3, out=str(tmp_path), resume=True,
                        env_kwargs=(("reward", "latency"),))
    with pytest.raises(ValueError, match="resume: env_kwargs"):
        train(other)


def test_policy_slot_trains_the_sequence_policy_from_reward(tmp_path):
    from sdedge_agents.slot_policy import MaskableSlotPolicy

    config = TrainConfig(SMALL, "maskable_ppo", timesteps=128, n_envs=2, seed=3, out=str(tmp_path),
                         eval_episodes=1, checkpoint_every=128, env_kwargs=(("reward", "reference"),), policy="slot")
    record = train(config)
    assert record["config"]["policy"] == "slot" and record["evaluation"]["mean"] > 0
    from sb3_contrib import MaskablePPO

    assert isinstance(MaskablePPO.load(tmp_path / "model.zip", device="cpu").policy, MaskableSlotPolicy)
    with pytest.raises(ValueError, match=r"--policy = 'gru' is invalid; allowed: mlp \| slot"):
        TrainConfig(SMALL, "maskable_ppo", timesteps=1, policy="gru")
    with pytest.raises(ValueError, match="--policy slot needs --algo maskable_ppo"):
        TrainConfig(SMALL, "dqn", timesteps=1, policy="slot")


def test_the_online_sequence_policy_puts_the_wait_after_the_batch_sizes():
    import gymnasium as gym
    import numpy as np
    import torch
    from sb3_contrib import MaskablePPO

    from sdedge_agents.slot_policy import MaskableSlotPolicy, OnlineMaskableSlotPolicy
    from sdedge_agents.train import policy_class

    online = "sdedge/EdgeSD-Online-v0"
    assert policy_class(TrainConfig(online, "maskable_ppo", timesteps=1, policy="slot")) is OnlineMaskableSlotPolicy
    assert policy_class(TrainConfig(SMALL, "maskable_ppo", timesteps=1, policy="slot")) is MaskableSlotPolicy
    env = gym.make(online)
    n_max = env.unwrapped.scenario.max_batch
    model = MaskablePPO(OnlineMaskableSlotPolicy, env, n_steps=32, batch_size=16, seed=0, device="cpu")
    observation, info = env.reset(seed=3)
    while not env.unwrapped.can_wait():  # an epoch where both waiting and dispatching are allowed
        observation, _, _, _, info = env.step(np.array([0, 2]))
    # The whole-observation MLP's first output is the wait logit: made large, the policy waits ...
    with torch.no_grad():
        model.policy.mlp_extractor.speculation[-1].bias[0] += 1e4
    assert model.predict(observation, action_masks=info["action_mask"], deterministic=True)[0][0] == n_max
    # ... unless the mask forbids it; and the task window's scores choose n as offline.
    mask = info["action_mask"].copy()
    mask[n_max] = False
    with torch.no_grad():
        model.policy.mlp_extractor.end_head[-1].bias += 1e4  # every slot alike: the first valid size stays
        model.policy.mlp_extractor.speculation[-1].bias[0] -= 2e4
    action = model.predict(observation, action_masks=mask, deterministic=True)[0]
    assert 0 <= action[0] < n_max
    model.learn(64)  # PPO updates run on it
    with pytest.raises(ValueError, match="OnlineMaskableSlotPolicy needs the online observation"):
        MaskablePPO(OnlineMaskableSlotPolicy, gym.make("sdedge/EdgeSD-v0"), device="cpu")
    with pytest.raises(ValueError, match=r"online ids: OnlineMaskableSlotPolicy"):
        MaskablePPO(MaskableSlotPolicy, env, device="cpu")


def test_speculation_context_feeds_the_most_likely_batch_to_the_speculation_head(tmp_path):
    import gymnasium as gym
    import torch
    from sb3_contrib import MaskablePPO

    from sdedge_agents.slot_policy import BATCH_LIMIT_FEATURE, MaskableSlotPolicy, TaskSequenceExtractor

    env = gym.make(SMALL)
    model = MaskablePPO(MaskableSlotPolicy, env, n_steps=32, batch_size=16, seed=0, device="cpu",
                        policy_kwargs={"slot_width": 8, "speculation_context": True})
    extractor = model.policy.mlp_extractor
    observation_dim = env.observation_space.shape[0]
    assert extractor.speculation[0].in_features == observation_dim + 2 * 8
    # The context is the mean encoding of the tasks of the most likely valid batch size: here 2 of 4 slots,
    # since slot 3 scores highest but the batch limit is 2 and slot 4 holds no task.
    hidden = torch.arange(4 * 16, dtype=torch.float32).reshape(1, 4, 16)
    scores = torch.tensor([[0.0, 1.0, 5.0, 9.0]])
    glob = torch.zeros(1, 4)
    glob[0, BATCH_LIMIT_FEATURE] = 2 / 4
    tasks = torch.ones(1, 4, 6)
    tasks[0, 3, 0] = 0.0
    _, weights, context = extractor._chosen_batch(hidden, scores, glob, tasks)
    torch.testing.assert_close(context, hidden[:, :2].mean(1))
    assert float(weights[0, 2:].sum()) < 1e-12
    model.learn(64)
    model.save(tmp_path / "model.zip")
    loaded = MaskablePPO.load(tmp_path / "model.zip", device="cpu")
    assert loaded.policy.mlp_extractor.speculation_context
    with pytest.raises(ValueError, match="speculation_context = True is invalid on the hybrid ids"):
        TaskSequenceExtractor(observation_dim, 4, 0, True, (16,), 8, speculation_context=True)


def test_run_stoppable_maps_interrupts_and_errors_to_exit_codes_and_restores_the_handlers(capsys):
    import signal

    from sdedge_agents.train import TrainingInterrupted, run_stoppable

    before = signal.getsignal(signal.SIGTERM)

    def interrupted_by(signum):
        def run(stop):
            assert signal.getsignal(signal.SIGTERM) is stop  # the handler asks the run to stop
            raise TrainingInterrupted(signum)
        return run

    assert run_stoppable(interrupted_by(signal.SIGTERM), lambda: "saved here") == 143
    assert run_stoppable(interrupted_by(signal.SIGINT), lambda: "saved here") == 130

    def bad(stop):
        raise ValueError("--x = 1 is invalid")

    assert run_stoppable(bad, lambda: "unused") == 2
    assert run_stoppable(lambda stop: {"steps": 3}, lambda: "unused") == {"steps": 3}
    err = capsys.readouterr().err
    assert err.count("saved here") == 2 and "error: --x = 1 is invalid" in err
    assert signal.getsignal(signal.SIGTERM) is before
