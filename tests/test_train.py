"""sdedge_agents.train (checkpoints, resume, interrupts, validation, the DQN wrapper) and the shipped agents.

Training runs here are tiny (a few hundred to a few thousand env steps); the shipped agents are trained by
scripts/train_pretrained.sh.
"""

from __future__ import annotations

import _thread
import importlib.util
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("stable_baselines3", reason="needs the train extra (stable-baselines3, torch)")
pytest.importorskip("sb3_contrib", reason="needs the train extra (sb3-contrib, torch)")

from stable_baselines3.common.callbacks import BaseCallback

import sdedge_gym  # noqa: F401  (registers the ids)
from sdedge_agents.baselines import RandomPolicy
from sdedge_agents.evaluate import make_policy
from sdedge_agents.pretrained import PRETRAINED, load_pretrained
from sdedge_agents.protocol import VALIDATION_SEED_BASE
from sdedge_agents.train import (
    FlattenVecActions,
    TrainConfig,
    hyperparameters,
    main,
    make_training_env,
    newest_checkpoint,
    parse_config,
    train,
    vectorisation_path,
)

SMALL = "sdedge/EdgeSD-Small-v0"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def one_torch_thread():
    """In-process runs use one torch thread, as the CLI does by default (tiny MLPs; shared cores)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class InterruptAt(BaseCallback):
    """Raises KeyboardInterrupt once the model has taken ``steps`` env steps (a simulated Ctrl-C)."""

    def __init__(self, steps: int) -> None:
        super().__init__()
        self.steps = steps

    def _on_step(self) -> bool:
        if self.num_timesteps >= self.steps:
            raise KeyboardInterrupt
        return True


class CountSteps(BaseCallback):
    """Counts the env steps taken in this learn() call."""

    def __init__(self) -> None:
        super().__init__()
        self.steps = 0

    def _on_step(self) -> bool:
        self.steps += self.training_env.num_envs
        return True


def _run_json(out: Path) -> dict:
    return json.loads((out / "run.json").read_text())


@pytest.mark.parametrize(("env_id", "algo", "n_envs"), [
    (SMALL, "maskable_ppo", 1),
    (SMALL, "maskable_ppo", 2),
    (SMALL, "dqn", 2),
    ("sdedge/EdgeSD-Small-Hybrid-v0", "ppo", 2),
])
def test_tiny_run_writes_checkpoints_model_and_run_json(tmp_path, env_id, algo, n_envs):
    config = TrainConfig(env_id, algo, timesteps=256, n_envs=n_envs, seed=3, out=str(tmp_path),
                         eval_episodes=2, checkpoint_every=128)
    record = train(config)
    assert (tmp_path / "model.zip").is_file()
    newest = newest_checkpoint(tmp_path / "checkpoints")
    assert newest is not None and newest[1] == record["steps"] >= 256
    assert len(list((tmp_path / "checkpoints").glob("model_*_steps.zip"))) >= 2  # periodic + final
    saved = _run_json(tmp_path)
    assert saved == json.loads(json.dumps(record))
    assert saved["status"] == "completed"
    assert saved["config"]["env_id"] == env_id and saved["config"]["n_envs"] == n_envs
    evaluation = saved["evaluation"]
    assert evaluation["seeds"] == [VALIDATION_SEED_BASE, VALIDATION_SEED_BASE + 1]
    assert evaluation["objective"] == "mean_latency"
    assert evaluation["mean"] > 0 and len(evaluation["values"]) == 2


def test_interrupt_leaves_a_checkpoint_and_resume_keeps_the_step_counter(tmp_path):
    config = TrainConfig(SMALL, "a2c", timesteps=400, seed=1, out=str(tmp_path), eval_episodes=1,
                         checkpoint_every=64)
    with pytest.raises(KeyboardInterrupt):
        train(config, callbacks=[InterruptAt(160)])
    assert (tmp_path / "checkpoints" / "interrupted_160.zip").is_file()
    assert not (tmp_path / "model.zip").exists()
    interrupted = _run_json(tmp_path)
    assert interrupted["status"] == "interrupted" and interrupted["steps"] == 160

    counter = CountSteps()
    resumed = train(TrainConfig(**{**config.__dict__, "resume": True}), callbacks=[counter])
    assert resumed["resumed_from"] == {"checkpoint": "interrupted_160.zip", "steps": 160}
    assert resumed["status"] == "completed" and resumed["steps"] >= 400
    # Only the missing steps were trained: the counter carried on from 160.
    assert counter.steps == resumed["steps"] - 160
    assert newest_checkpoint(tmp_path / "checkpoints")[1] == resumed["steps"]
    # The resumed run reports its own time, and the total adds the interrupted run's.
    assert resumed["total_wall_time_s"] == pytest.approx(interrupted["total_wall_time_s"] + resumed["wall_time_s"])
    assert 0 < resumed["wall_time_s"] < resumed["total_wall_time_s"]
    # and logs beside the interrupted run's progress.csv instead of overwriting it
    assert (tmp_path / "logs" / "progress.csv").is_file()
    assert (tmp_path / "logs" / "resumed_160" / "progress.csv").is_file()


def test_resume_refuses_a_different_run_and_a_fresh_run_refuses_to_overwrite(tmp_path):
    config = TrainConfig(SMALL, "a2c", timesteps=64, seed=1, out=str(tmp_path), eval_episodes=0,
                         checkpoint_every=32)
    train(config)
    with pytest.raises(ValueError, match="already holds a run"):
        train(config)
    with pytest.raises(ValueError, match="seed = 2 differs"):
        train(TrainConfig(SMALL, "a2c", timesteps=128, seed=2, out=str(tmp_path), resume=True))
    with pytest.raises(ValueError, match="no checkpoint"):
        train(TrainConfig(SMALL, "a2c", timesteps=64, out=str(tmp_path / "empty"), resume=True))


def _wait_for_checkpoint(out: Path, alive=lambda: True) -> None:
    deadline = time.monotonic() + 60
    while newest_checkpoint(out / "checkpoints") is None:  # training is under way once one exists
        assert alive(), "training ended before its first checkpoint"
        assert time.monotonic() < deadline, "no checkpoint within 60 s"
        time.sleep(0.05)


def test_ctrl_c_saves_interrupted_checkpoint_and_main_exits_non_zero(tmp_path, capsys):
    argv = ["--env", SMALL, "--algo", "a2c", "--timesteps", "10000000", "--out", str(tmp_path),
            "--checkpoint-every", "64"]

    def press_ctrl_c_once_training() -> None:
        try:
            _wait_for_checkpoint(tmp_path)
        finally:  # always: a real Ctrl-C (KeyboardInterrupt in the main thread), and never a run left going
            _thread.interrupt_main()

    watcher = threading.Thread(target=press_ctrl_c_once_training)
    watcher.start()
    code = main(argv)
    watcher.join()
    assert code == 130
    assert "--resume" in capsys.readouterr().err
    assert len(list((tmp_path / "checkpoints").glob("interrupted_*.zip"))) == 1
    assert _run_json(tmp_path)["status"] == "interrupted"


def test_sigterm_saves_interrupted_checkpoint_and_exits_143(tmp_path):
    command = [sys.executable, "-m", "sdedge_agents.train", "--env", SMALL, "--algo", "a2c", "--timesteps", "10000000",
               "--out", str(tmp_path), "--checkpoint-every", "64"]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_checkpoint(tmp_path, alive=lambda: process.poll() is None)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 143, stderr
    assert "interrupted" in stderr and "--resume" in stderr
    interrupted = list((tmp_path / "checkpoints").glob("interrupted_*.zip"))
    assert len(interrupted) == 1
    record = _run_json(tmp_path)
    assert record["status"] == "interrupted" and interrupted[0].name == f"interrupted_{record['steps']}.zip"


@pytest.mark.parametrize(("argv", "message"), [
    (["--algo", "sac"], "invalid choice: 'sac'"),
    (["--algo", "maskable_ppo", "--env", "sdedge/EdgeSD-Small-Hybrid-v0"], "allowed action modes for maskable_ppo"),
    (["--algo", "dqn", "--env", "sdedge/EdgeSD-Small-Dict-v0"], "allowed action modes for dqn: discrete"),
    (["--algo", "ppo", "--env", "sdedge/EdgeSD-Small-Dict-v0"], "discrete | hybrid"),
    (["--env", "CartPole-v1"], "--env = 'CartPole-v1' is unknown"),
    (["--n-envs", "0"], "--n-envs = 0 is invalid"),
    (["--timesteps", "0"], "--timesteps = 0 is invalid"),
    (["--seed", str(VALIDATION_SEED_BASE)], "--seed"),
    (["--checkpoint-every", "0"], "--checkpoint-every = 0 is invalid"),
    (["--eval-episodes", "-1"], "--eval-episodes = -1 is invalid"),
    (["--seed", "498", "--n-envs", "4"], "overlap the test seeds 500..599"),
    (["--eval-every", "100", "--eval-episodes", "0"], "--eval-every > 0 needs --eval-episodes >= 1"),
])
def test_bad_arguments_are_argparse_errors_naming_the_argument(capsys, argv, message):
    base = {"--env": SMALL, "--algo": "maskable_ppo", "--timesteps": "100", "--out": "unused"}
    for flag, value in zip(argv[::2], argv[1::2], strict=True):
        base[flag] = value
    with pytest.raises(SystemExit) as exit_info:
        parse_config([item for pair in base.items() for item in pair])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_n_envs_above_one_uses_the_native_adapter():
    from sdedge_agents import sb3_vec_env
    config = TrainConfig(SMALL, "dqn", timesteps=64, n_envs=3, seed=5, out="unused")
    assert vectorisation_path(config) == "native:sdedge_agents.sb3_vec_env"
    venv = make_training_env(config)  # VecMonitor(FlattenVecActions(SB3VecEnv))
    assert isinstance(venv.venv, FlattenVecActions) and isinstance(venv.venv.venv, sb3_vec_env.SB3VecEnv)
    assert venv.action_space == gym.spaces.Discrete(4 * 5)
    venv.reset()
    # Flat a = (n - 1) * (l_max + 1) + l, as FlattenBatchSpeculation: n = 1, 2, 3 with l = 0, 2, 4.
    venv.step_async(np.array([0 * 5 + 0, 1 * 5 + 2, 2 * 5 + 4]))
    _, _, _, infos = venv.step_wait()
    assert [(i["batch_size"], i["speculation_length"]) for i in infos] == [(1, 0), (2, 2), (3, 4)]
    venv.close()
    assert vectorisation_path(TrainConfig(SMALL, "dqn", timesteps=64, n_envs=1, out="unused")) == "gym.make+Monitor"


def _mean_latency(policy, env, seeds, masked: bool = True) -> float:
    values = []
    for seed in seeds:
        observation, _ = env.reset(seed=seed)
        total, done = 0.0, False
        while not done:
            action, _ = policy.predict(observation)
            observation, reward, terminated, truncated, info = env.step(action)
            # the mask keeps a masked agent's batches valid; an unmasked one (PPO on the Box) may ask for a batch
            # beyond the limit, which the env clips, as documented
            assert not (masked and info["action_clipped"])
            total += reward
            done = terminated or truncated
        values.append(-total)
    return float(np.mean(values))


BUILT = sorted(name for name, agent in PRETRAINED.items() if agent.model_path.exists())


def test_the_small_agents_are_shipped():
    # The paper-size agents join BUILT once scripts/train_pretrained.sh has built them.
    assert {"maskable-ppo-small", "maskable-ppo-small-stochastic"} <= set(BUILT)


@pytest.mark.parametrize("name", BUILT)
def test_pretrained_agent_loads_and_beats_random_valid_actions(name):
    agent = PRETRAINED[name]
    assert agent.model_path.stat().st_size < 2_000_000
    card = agent.card()
    assert card["env_id"] == agent.env_id and card["algo"] == agent.algo
    for key in ("timesteps", "seed", "command", "wall_time_s", "evaluation"):
        assert key in card
    env = gym.make(agent.env_id)
    policy = load_pretrained(name, env)
    seeds = list(range(20))
    random_env = gym.make(agent.env_id)
    masked = agent.algo == "maskable_ppo"
    random_policy = make_policy("random", random_env)  # the online ids' random policy knows the wait
    random_latency = _mean_latency(random_policy, random_env, seeds)
    assert _mean_latency(policy, env, seeds, masked) < random_latency


def test_load_pretrained_errors_name_the_alternatives():
    with pytest.raises(ValueError, match="unknown; allowed: maskable-ppo-small"):
        load_pretrained("no-such-agent", gym.make(SMALL))
    with pytest.raises(ValueError, match="same spaces"):
        load_pretrained("maskable-ppo-small", gym.make("sdedge/EdgeSD-v0"))


def test_importing_pretrained_does_not_import_torch():
    code = "import sys, sdedge_agents.pretrained; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_eval_callback_logs_the_oracle_gap_and_caches_the_oracle(tmp_path):
    config = TrainConfig(SMALL, "maskable_ppo", timesteps=256, n_envs=2, seed=3, out=str(tmp_path),
                         eval_episodes=2, checkpoint_every=1000, eval_every=128)
    train(config)
    rows = (tmp_path / "evaluations.csv").read_text().splitlines()
    assert rows[0] == "timesteps,objective,oracle,oracle_gap_percent,wall_time_s"
    steps = [int(r.split(",")[0]) for r in rows[1:]]
    assert steps[0] == 0 and steps[-1] >= 256 and len(steps) >= 3
    cache = json.loads((tmp_path / "oracle_values.json").read_text())
    assert cache["env_id"] == SMALL and sorted(cache["values"]) == [str(VALIDATION_SEED_BASE + i) for i in range(2)]
    oracle = float(np.mean(list(cache["values"].values())))
    for row in rows[1:]:
        _, objective, logged_oracle, gap, _ = (float(v) for v in row.split(","))
        assert logged_oracle == pytest.approx(oracle, rel=1e-12)
        assert gap == pytest.approx(100 * (objective / oracle - 1), rel=1e-9)
        assert gap >= -1e-9  # the oracle is optimal on this deterministic id
    progress = (tmp_path / "logs" / "progress.csv").read_text().splitlines()[0].split(",")
    assert "eval/oracle_gap_percent" in progress
    if importlib.util.find_spec("tensorboard") is not None:
        assert list((tmp_path / "logs").glob("events.out.tfevents.*"))
    # A second run in the same directory reads the cached oracle instead of solving it again.
    from sdedge_agents.train import oracle_values

    cache["values"][str(VALIDATION_SEED_BASE)] = 123.0
    (tmp_path / "oracle_values.json").write_text(json.dumps(cache))
    assert oracle_values(config, [VALIDATION_SEED_BASE])[0] == 123.0


def test_hyperparameters_come_from_the_yaml_file_and_the_flags_override_them():
    from sdedge_agents.hyperparameters import load_entry
    from sdedge_agents.train import hyperparameters

    for env_id in (SMALL, "sdedge/EdgeSD-v0", "sdedge/EdgeSD-Uplink-v0", "sdedge/EdgeSD-Small-Stochastic-v0",
                   "sdedge/EdgeSD-Paper-Stochastic-v0", "sdedge/EdgeSD-Paper-Hybrid-v0",
                   "sdedge/EdgeSD-Uplink-Hybrid-v0"):
        entry = load_entry(env_id, "maskable_ppo")
        assert entry.algorithm_kwargs["policy_kwargs"] == {"net_arch": [128, 128]}
        assert entry.info_keywords == ("mean_latency", "makespan", "throughput")
    # The file's 256 steps x 8 envs rollout is kept at 4 envs, and capped by a shorter run.
    assert hyperparameters(TrainConfig(SMALL, "ppo", timesteps=10**6, n_envs=4, out="unused"))["n_steps"] == 512
    assert hyperparameters(TrainConfig(SMALL, "ppo", timesteps=512, n_envs=8, out="unused"))["n_steps"] == 64
    config, _ = parse_config(["--env", SMALL, "--algo", "maskable_ppo", "--out", "unused"])
    assert (config.timesteps, config.n_envs) == (250_000, 8)
    config, _ = parse_config(["--env", SMALL, "--algo", "dqn", "--out", "unused", "--timesteps", "7"])
    assert (config.timesteps, config.n_envs) == (7, 1)
    with pytest.raises(ValueError, match="has no entry"):
        load_entry("sdedge/EdgeSD-Small-Dict-v0", "ppo")


@pytest.mark.parametrize("name", BUILT)
def test_shipped_agent_evaluates_to_its_recorded_score_on_two_seeds(name):
    from sdedge_agents.evaluate import run_episodes

    agent = PRETRAINED[name]
    evaluation = agent.card()["evaluation"]
    first = int(evaluation["seeds"].split("..")[0])
    recorded = evaluation["per_episode"][name][:2]
    env = gym.make(agent.env_id)
    values = [-r for r in run_episodes(load_pretrained(name, env), env, [first, first + 1])]
    # The same model and episodes; a tolerance because the env's float operations may be reordered by a
    # faster implementation without changing the model.
    np.testing.assert_allclose(values, recorded, rtol=1e-6)


def test_a_short_maskable_ppo_run_on_the_small_id_beats_random(tmp_path):
    from sdedge_agents.evaluate import run_episodes
    from sdedge_agents.protocol import VALIDATION_SEEDS

    record = train(TrainConfig(SMALL, "maskable_ppo", timesteps=4096, n_envs=8, seed=1000, out=str(tmp_path),
                               eval_episodes=20, checkpoint_every=10_000))
    env = gym.make(SMALL)
    random_mean = -float(np.mean(run_episodes(RandomPolicy(env, seed=0), env, VALIDATION_SEEDS[:20])))
    # two PPO updates already move it well below random (the smoke curve: ~12 % vs ~47 % above the oracle)
    assert record["evaluation"]["mean"] < 0.9 * random_mean


def test_hyperparams_policy_kwargs_is_parsed_like_the_files_and_bad_text_names_the_flag():
    config = TrainConfig(SMALL, "maskable_ppo", timesteps=256, hyperparams=(
        ("policy_kwargs", "dict(net_arch=[32, 32], slot_width=16)"), ("gae_lambda", 0.9)))
    settings = hyperparameters(config)
    assert settings["policy_kwargs"] == {"net_arch": [32, 32], "slot_width": 16}  # the file's replaced whole
    assert settings["gae_lambda"] == 0.9
    bad = TrainConfig(SMALL, "maskable_ppo", timesteps=256, hyperparams=(("policy_kwargs", "net_arch=[32]"),))
    with pytest.raises(ValueError, match="--hyperparams policy_kwargs = 'net_arch=\\[32\\]' is invalid; allowed"):
        hyperparameters(bad)


def test_linear_schedules_are_rl_zoos_and_decay_to_zero_over_the_run(tmp_path):
    from sdedge_agents.hyperparameters import LinearSchedule, parse_schedule
    from sdedge_agents.train import algorithm_class

    assert parse_schedule("lin_1e-3", "x") == LinearSchedule(1e-3) and parse_schedule(2e-4, "x") == 2e-4
    assert LinearSchedule(1e-3)(1.0) == 1e-3 and LinearSchedule(1e-3)(0.25) == 0.25e-3
    for bad in ("lin_", "lin_-1", "lin_inf", "fast", 0, True):
        with pytest.raises(ValueError, match=r"allowed: a number > 0 or \"lin_<number > 0>\""):
            parse_schedule(bad, "x")
    with pytest.raises(ValueError, match="--hyperparams learning_rate = 'lin_x' is invalid"):
        hyperparameters(TrainConfig(SMALL, "maskable_ppo", timesteps=256, hyperparams=(("learning_rate", "lin_x"),)))
    config = TrainConfig(SMALL, "maskable_ppo", timesteps=512, n_envs=2, seed=3, out=str(tmp_path), eval_episodes=1,
                         hyperparams=(("learning_rate", "lin_1e-3"), ("clip_range", "lin_0.2")))
    train(config)
    assert _run_json(tmp_path)["hyperparameters"]["learning_rate"] == "lin_1e-3"  # recorded as given
    model = algorithm_class("maskable_ppo").load(tmp_path / "model.zip", device="cpu")
    assert model.lr_schedule(1.0) == pytest.approx(1e-3) and model.lr_schedule(0.0) == 0.0
    # The last update ran at the learning rate of the progress it was made at: below the initial one.
    assert 0.0 <= model.policy.optimizer.param_groups[0]["lr"] < 1e-3
