"""Train a Stable-Baselines3 agent on an ``sdedge`` id, with checkpoints, resume and a final evaluation.

    python -m sdedge_agents.train --env sdedge/EdgeSD-Small-v0 --algo maskable_ppo --seed 1000 --out runs/small

Hyperparameters, the budget (``--timesteps``) and ``--n-envs`` come from the id's entry in the rl-zoo3-format
files of :mod:`sdedge_agents.hyperparameters` (``agents/hyperparams.yml`` for ppo and maskable_ppo); the flags
override them. When ``--n-envs`` overrides the file's, ``n_steps`` is rescaled so that a rollout keeps the
file's ``n_steps x n_envs`` transitions (capped at ``--timesteps``).

Writes into ``--out``:

* ``checkpoints/model_<steps>_steps.zip`` every ``--checkpoint-every`` env steps (SB3's CheckpointCallback),
  and ``checkpoints/interrupted_<steps>.zip`` when the run is stopped by Ctrl-C or SIGTERM (the process
  then exits with 130 or 143). A signal only asks the run to stop: training ends at the next env step,
  never in the middle of writing a checkpoint (a second Ctrl-C stops at once);
* ``model.zip``, the final model;
* ``run.json``: the arguments, the hyperparameters and their source, the status, the steps done, the wall
  time (``wall_time_s`` of this invocation, ``total_wall_time_s`` over the run and every run it resumed)
  and the final evaluation (the objective, mean latency or makespan in s, over ``--eval-episodes`` validation
  episodes seeded ``sdedge_agents.protocol.VALIDATION_SEEDS``, which no training env is ever seeded with);
* ``logs/``: SB3's logger as ``progress.csv`` and TensorBoard event files (``tensorboard --logdir
  runs/``; TensorBoard needs the ``train`` extra's ``tensorboard``, the CSV does not), plus stdout with
  ``--verbose 1``; a resumed run logs into ``logs/resumed_<steps>/``;
* ``evaluations.csv`` (with ``--eval-every`` > 0): every that many env steps, the deterministic policy's
  mean objective on the ``--eval-episodes`` validation episodes, the oracle's on the same episodes and the
  **oracle gap** in % (also logged as ``eval/oracle_gap_percent``); the oracle's per-episode values are
  computed once and cached in ``oracle_values.json``. ``scripts/plot_training.py`` draws the curves.

``--progress-bar`` (SB3's tqdm/rich bar) is on by default when tqdm and rich are installed and stdout is a
terminal, off otherwise (logs of batch jobs stay free of bar redraws); ``--no-progress-bar`` turns it off.

``--resume`` continues from the newest checkpoint in ``--out`` (interrupted or periodic) with the same
env, algorithm, number of envs and seed, keeping the step counter: ``--timesteps`` is the total to reach.
It restores the policy and optimiser, not the envs' random streams nor DQN's replay buffer (refilled
after ``learning_starts`` steps).

``--env-kwargs NAME=VALUE ...`` passes keyword arguments to ``gymnasium.make`` for the training envs (e.g.
``reward=reference``, the env's shaped reward; values are Python literals, else strings); such runs train on
SB3's DummyVecEnv (the native vector env has no reward option), and the evaluations drop ``reward`` so that
they score the objective (and keep the others, e.g. ``speculation=service_chain``, which change what the agent
sees or plays). ``--hyperparams NAME=VALUE ...`` overrides the algorithm's keyword arguments of the
hyperparameter file (e.g. ``gae_lambda=0.9``; ``policy_kwargs="dict(net_arch=[128, 128], slot_width=128)"``
replaces the file's policy_kwargs whole; ``learning_rate`` and ``clip_range`` also take rl-zoo3's
``lin_<number>``, decayed linearly to 0 over the run); both are recorded in run.json. ``--policy slot`` trains the
sequence policy of :mod:`sdedge_agents.slot_policy` (a per-task "the batch ends here" head) from reward instead
of SB3's MlpPolicy.

Algorithms and action modes: ``ppo`` and ``a2c`` work on the discrete and hybrid ids, ``maskable_ppo``
(which reads the env's ``action_masks()``) and ``dqn`` (on the env flattened by
:class:`FlattenBatchSpeculation`) on the discrete ids only. This module needs the ``train`` extra
(``pip install 'sdedge-gym[train]'``); the ``sdedge_gym`` package itself never imports torch.
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import re
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

import sdedge_gym  # noqa: F401  (registers the ids)
from sdedge_agents.hyperparameters import SCHEDULED, load_entry, parse_call_dict, parse_schedule
from sdedge_agents.protocol import VALIDATION_SEEDS, training_seeds_overlap
from sdedge_agents.runs import RunDirectory, check_int, jsonable, read_run, write_run
from sdedge_gym.online_env import max_batch_capacity
from sdedge_gym.registration import ENV_TABLE, ONLINE_ENV_IDS
from sdedge_gym.wrappers import FlattenBatchSpeculation

TRAIN_EXTRA_HINT = "pip install 'sdedge-gym[train]'"
try:
    import torch
    from sb3_contrib import MaskablePPO
    from stable_baselines3 import A2C, DQN, PPO
    from stable_baselines3.common.callbacks import BaseCallback, CheckpointCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.logger import configure
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv, VecEnvWrapper, VecMonitor
except ImportError as error:  # the optional extra is missing: say which one
    raise ImportError(f"sdedge_agents.train needs stable-baselines3, sb3-contrib and torch: {TRAIN_EXTRA_HINT} "
                      f"({error})") from error

ALGORITHMS: tuple[str, ...] = ("ppo", "maskable_ppo", "a2c", "dqn")
POLICIES: tuple[str, ...] = ("mlp", "slot")
# Which action modes each algorithm can drive ("dict" needs a custom hybrid algorithm, none of these).
ALGORITHM_ACTION_MODES: dict[str, tuple[str, ...]] = {
    "ppo": ("discrete", "hybrid"),
    "a2c": ("discrete", "hybrid"),
    "maskable_ppo": ("discrete",),
    "dqn": ("discrete",),
}
# Training envs are seeded seed .. seed + n_envs - 1 (their later episodes continue those streams); those seeds
# must avoid the held-out test and validation seeds of sdedge_agents.protocol.
MAX_TRAINING_SEED = VALIDATION_SEEDS[0] - 1
CHECKPOINT_PREFIX = "model"
INTERRUPTED_PREFIX = "interrupted"
_CHECKPOINT_NAME = re.compile(rf"^(?:{CHECKPOINT_PREFIX}_(\d+)_steps|{INTERRUPTED_PREFIX}_(\d+))\.zip$")
# The arguments a resumed run must share with the run it continues (timesteps may grow, the rest is free).
_RESUME_MUST_MATCH = ("env_id", "algo", "n_envs", "seed", "env_kwargs", "loads")


@dataclass(frozen=True)
class TrainConfig(RunDirectory):
    """The arguments of one training run (the CLI's, validated)."""

    env_id: str
    algo: str
    timesteps: int
    n_envs: int = 1
    seed: int = 0
    out: str = "runs/agent"
    resume: bool = False
    eval_episodes: int = 20
    checkpoint_every: int = 10_000
    eval_every: int = 0  # env steps between oracle-gap evaluations (0: none)
    progress_bar: bool = False
    # (name, value) pairs: --env-kwargs for gymnasium.make (e.g. reward="reference"), --hyperparams over the file's.
    env_kwargs: tuple[tuple[str, Any], ...] = ()
    hyperparams: tuple[tuple[str, Any], ...] = ()
    policy: str = "mlp"  # "mlp": SB3's MlpPolicy; "slot": sdedge_agents.slot_policy (the task window as a sequence)
    # Online ids: training env i serves Poisson arrivals at loads[i % len(loads)] x the max-batch capacity
    # (sdedge_gym.online_env.max_batch_capacity); the evaluations stay at the id's own load.
    loads: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.env_id not in ENV_TABLE:
            raise ValueError(f"--env = {self.env_id!r} is unknown; allowed: one of "
                             "sdedge_gym.SINGLE_CELL_ENV_IDS, e.g. "
                             "'sdedge/EdgeSD-Small-v0' (see sdedge_gym/registration.py)")
        if self.algo not in ALGORITHMS:
            raise ValueError(f"--algo = {self.algo!r} is invalid; allowed: {' | '.join(ALGORITHMS)}")
        mode = self.action_mode
        if mode not in ALGORITHM_ACTION_MODES[self.algo]:
            raise ValueError(f"--algo = {self.algo!r} cannot drive --env {self.env_id!r} (action_mode {mode!r}); "
                             f"allowed action modes for {self.algo}: "
                             f"{' | '.join(ALGORITHM_ACTION_MODES[self.algo])}")
        # Messages name the CLI flags: that is where users meet these values.
        check_int("--timesteps", self.timesteps, 1)
        check_int("--n-envs", self.n_envs, 1)
        check_int("--seed", self.seed, 0, MAX_TRAINING_SEED - self.n_envs + 1)
        overlap = training_seeds_overlap(self.seed, self.n_envs)
        if overlap:
            last = self.seed + self.n_envs - 1
            raise ValueError(f"--seed = {self.seed} is invalid: training envs are seeded {self.seed}..{last} "
                             f"and {overlap}; allowed: seeds whose range avoids the held-out seeds of "
                             "sdedge_agents.protocol, "
                             "e.g. 1000, 2000, 3000")
        check_int("--eval-episodes", self.eval_episodes, 0, len(VALIDATION_SEEDS))
        check_int("--checkpoint-every", self.checkpoint_every, 1)
        check_int("--eval-every", self.eval_every, 0)
        if self.eval_every > 0 and self.eval_episodes == 0:
            raise ValueError("--eval-every > 0 needs --eval-episodes >= 1 (the episodes the oracle gap is measured on)")
        if self.policy not in POLICIES:
            raise ValueError(f"--policy = {self.policy!r} is invalid; allowed: {' | '.join(POLICIES)}")
        if self.policy == "slot" and self.algo not in ("maskable_ppo", "ppo"):
            raise ValueError(f"--policy slot needs --algo maskable_ppo (discrete ids) or ppo (hybrid ids); got "
                             f"{self.algo!r}")
        if self.loads:
            arrivals = ENV_TABLE[self.env_id].get("arrivals", {})
            if self.env_id not in ONLINE_ENV_IDS or arrivals.get("process") != "poisson":
                raise ValueError(f"--loads needs an online id with Poisson arrivals; got --env {self.env_id!r}; "
                                 "allowed: e.g. sdedge/EdgeSD-Online-v0")
            if any(not (isinstance(x, int | float) and 0.0 < x < 10.0) for x in self.loads):
                raise ValueError(f"--loads = {self.loads!r} is invalid; allowed: loads in (0, 10), e.g. 0.3,0.5,0.7")
            if "config" in dict(self.env_kwargs):
                raise ValueError("--loads and --env-kwargs config=... are exclusive (--loads sets config's arrivals)")
        if self.env_kwargs:  # a bad one fails here, with the env's own message, not in the middle of the run
            try:
                gym.make(self.env_id, **dict(self.env_kwargs)).close()
            except (TypeError, ValueError) as error:
                raise ValueError(f"--env-kwargs {dict(self.env_kwargs)!r} is invalid for {self.env_id}: "
                                 f"{error}") from error

    def evaluation_env_kwargs(self) -> dict[str, Any]:
        """--env-kwargs without ``reward``: evaluations score the objective, which is the default reward's return."""
        return {name: value for name, value in self.env_kwargs if name != "reward"}


# ---------------------------------------------------------------------- envs and models


def make_single_env(config: TrainConfig, evaluation: bool = False, index: int = 0) -> gym.Env:
    """One env of the run (DQN's flattened), as the evaluation and the n_envs == 1 training path use it;
    with the run's --env-kwargs (without ``reward`` for an ``evaluation`` env); training env ``index`` at its
    load of --loads."""
    kwargs = config.evaluation_env_kwargs() if evaluation else dict(config.env_kwargs)
    if config.loads and not evaluation:
        rate = config.loads[index % len(config.loads)] * load_capacity(config.env_id)
        kwargs["config"] = {"arrivals": {"arrival_rate": rate}}
    env = gym.make(config.env_id, **kwargs)
    if config.algo == "dqn":
        env = FlattenBatchSpeculation(env)
    return env


def make_training_env(config: TrainConfig):
    """The training VecEnv — the one place where the vectorisation is chosen.

    * n_envs == 1: ``gym.make`` + Monitor (SB3 wraps it in a DummyVecEnv);
    * n_envs > 1: the native numpy vector env through ``sdedge_agents.sb3_vec_env`` on the ids that have one
      (every registered id, offline and online), otherwise SB3's ``make_vec_env`` (DummyVecEnv, Monitor per env).
    Env i's first episode is seeded ``seed + i`` (by SB3's ``model.set_random_seed`` / ``VecEnv.seed``).
    """
    keywords = load_entry(config.env_id, config.algo).info_keywords
    if config.n_envs == 1:
        return DummyVecEnv([lambda: Monitor(make_single_env(config), info_keywords=keywords)])
    native = _native_vec_env(config, keywords)
    if native is not None:
        return native
    if config.loads:  # one load per env: SB3's make_vec_env builds every env alike
        def make(index: int):
            return lambda: Monitor(make_single_env(config, index=index), info_keywords=keywords)

        venv = DummyVecEnv([make(i) for i in range(config.n_envs)])
        venv.seed(config.seed)  # env i's first episode from seed + i, as make_vec_env seeds them
        return venv
    return make_vec_env(lambda: make_single_env(config), n_envs=config.n_envs, seed=config.seed,
                        vec_env_cls=DummyVecEnv, monitor_kwargs={"info_keywords": keywords})


def load_capacity(env_id: str) -> float:
    """The max-batch capacity (requests/s) of an online id's scenario: what --loads multiplies."""
    return max_batch_capacity(gym.make(env_id).unwrapped.scenario)


def vectorisation_path(config: TrainConfig) -> str:
    """Which path :func:`make_training_env` takes for ``config`` (recorded in run.json)."""
    if config.n_envs == 1:
        return "gym.make+Monitor"
    return "native:sdedge_agents.sb3_vec_env" if _native_adapter_available(config) else "sb3:DummyVecEnv"


def _native_adapter_available(config: TrainConfig) -> bool:
    # Runs with --env-kwargs train on DummyVecEnv: the native vector env has no reward= option (and an id
    # without a vector_entry_point has no native vector env).
    return not config.env_kwargs and not config.loads and gym.spec(config.env_id).vector_entry_point is not None


def _native_vec_env(config: TrainConfig, info_keywords: tuple[str, ...] = ()):
    """The native SB3 adapter with a VecMonitor, or None on an id without a native vector env."""
    if not _native_adapter_available(config):
        return None
    from sdedge_agents.sb3_vec_env import make_sb3_vec_env

    venv = make_sb3_vec_env(config.env_id, num_envs=config.n_envs, seed=config.seed)
    if config.algo == "dqn":
        venv = FlattenVecActions(venv)
    return VecMonitor(venv, info_keywords=info_keywords)


class FlattenVecActions(VecEnvWrapper):
    """:class:`FlattenBatchSpeculation` for a whole VecEnv (the native adapter has no per-env wrappers)."""

    def __init__(self, venv) -> None:
        nvec = venv.action_space.nvec
        self.speculation_choices = int(nvec[1])
        super().__init__(venv, action_space=spaces.Discrete(int(nvec[0]) * self.speculation_choices))

    def step_async(self, actions: np.ndarray) -> None:
        flat = np.asarray(actions, dtype=np.int64).reshape(-1)
        self.venv.step_async(np.stack(np.divmod(flat, self.speculation_choices), axis=1))

    def step_wait(self):
        return self.venv.step_wait()

    def reset(self):
        return self.venv.reset()


def policy_class(config: TrainConfig) -> Any:
    """SB3's "MlpPolicy", or the sequence policy of sdedge_agents.slot_policy with ``--policy slot``."""
    if config.policy == "mlp":
        return "MlpPolicy"
    from sdedge_agents.slot_policy import MaskableSlotPolicy, OnlineMaskableSlotPolicy, SlotPolicy

    if config.algo == "ppo":
        return SlotPolicy
    return OnlineMaskableSlotPolicy if config.env_id in ONLINE_ENV_IDS else MaskableSlotPolicy


def algorithm_class(algo: str):
    """The SB3 / sb3-contrib class of ``algo``."""
    return {"ppo": PPO, "maskable_ppo": MaskablePPO, "a2c": A2C, "dqn": DQN}[algo]


def hyperparameters(config: TrainConfig) -> dict[str, Any]:
    """The algorithm's keyword arguments for this run, from the id's entry in its hyperparameter file.

    The reasons for the values are in the files (agents/hyperparams.yml). The only adjustment made here:
    a rollout (``n_steps`` per env) keeps the file's n_steps x n_envs transitions whatever ``--n-envs`` is,
    and is no longer than the whole run (a rollout longer than the run would only overshoot it).
    """
    entry = load_entry(config.env_id, config.algo)
    overrides = dict(config.hyperparams)
    if "policy_kwargs" in overrides:  # as in the file: "dict(net_arch=[...], ...)", replacing the file's whole
        overrides["policy_kwargs"] = parse_call_dict(overrides["policy_kwargs"], "--hyperparams policy_kwargs")
    for name in SCHEDULED:  # a number or "lin_<number>"; the string is kept for run.json
        if name in overrides:
            parse_schedule(overrides[name], f"--hyperparams {name}")
    settings = {**copy.deepcopy(entry.algorithm_kwargs), **overrides}
    if "n_steps" in settings and config.algo != "dqn":
        rollout = min(int(settings["n_steps"]) * entry.n_envs, config.timesteps)
        settings["n_steps"] = max(rollout // config.n_envs, 8)
        if "batch_size" in settings:
            settings["batch_size"] = min(int(settings["batch_size"]), settings["n_steps"] * config.n_envs)
    return settings


def algorithm_kwargs(settings: dict[str, Any]) -> dict[str, Any]:
    """The recorded hyperparameters as SB3 takes them: a copy (SB3 adds entries, e.g. A2C's optimizer class, to
    the policy_kwargs it is given), with rl-zoo3's "lin_<number>" schedules made callables."""
    kwargs = copy.deepcopy(settings)
    for name in SCHEDULED:
        if name in kwargs:
            kwargs[name] = parse_schedule(kwargs[name], name)
    return kwargs


# ---------------------------------------------------------------------- checkpoints


def newest_checkpoint(checkpoint_dir: Path) -> tuple[Path, int] | None:
    """(path, steps) of the checkpoint with the most steps (periodic or interrupted), or None."""
    found = []
    if checkpoint_dir.is_dir():
        for path in checkpoint_dir.iterdir():
            match = _CHECKPOINT_NAME.match(path.name)
            if match:
                steps = int(match.group(1) or match.group(2))
                # On equal steps prefer the interrupted save: it was written last.
                found.append((steps, path.name.startswith(INTERRUPTED_PREFIX), path))
    if not found:
        return None
    steps, _, path = max(found)
    return path, steps


# ---------------------------------------------------------------------- evaluation


def masked_predict(model, env: gym.Env, observation: np.ndarray, deterministic: bool = True):
    """``model.predict`` with the env's action mask when the model is a MaskablePPO."""
    if isinstance(model, MaskablePPO):
        mask = env.get_wrapper_attr("action_masks")()
        return model.predict(observation, deterministic=deterministic, action_masks=mask)
    return model.predict(observation, deterministic=deterministic)


def evaluate_model(model, config: TrainConfig, seeds: Sequence[int]) -> dict[str, Any]:
    """The objective (mean latency or makespan, s) of the deterministic policy on episodes ``seeds``."""
    env = make_single_env(config, evaluation=True)
    objective = env.unwrapped.scenario.objective
    values = []
    for seed in seeds:
        observation, _ = env.reset(seed=int(seed))
        total, done = 0.0, False
        while not done:
            action, _ = masked_predict(model, env, observation)
            observation, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
        values.append(-total)  # the return is exactly minus the objective
    env.close()
    return {"objective": objective, "mean": float(np.mean(values)), "std": float(np.std(values)),
            "episodes": len(values), "seeds": [int(s) for s in seeds], "values": values}


def oracle_values(config: TrainConfig, seeds: Sequence[int]) -> list[float]:
    """The oracle's objective on each of ``seeds``, computed once per (id, seed) and cached in the run dir."""
    from sdedge_agents.evaluate import make_policy, run_episodes

    path = config.out_dir / "oracle_values.json"
    cache = json.loads(path.read_text()) if path.exists() else {"env_id": config.env_id, "values": {}}
    if cache["env_id"] != config.env_id:
        raise ValueError(f"{path} holds the oracle of {cache['env_id']!r}, not {config.env_id!r}; allowed: a run "
                         "directory of this id (or delete the file)")
    missing = [int(s) for s in seeds if str(int(s)) not in cache["values"]]
    if missing:
        env = gym.make(config.env_id, **config.evaluation_env_kwargs())
        # "oracle" names the offline DP oracle or, on an online id, the hindsight oracle with release times
        for seed, ret in zip(missing, run_episodes(make_policy("oracle", env), env, missing), strict=True):
            cache["values"][str(seed)] = -ret
        env.close()
        path.write_text(json.dumps(cache, indent=2) + "\n")
    return [float(cache["values"][str(int(s))]) for s in seeds]


EVALUATIONS_HEADER = "timesteps,objective,oracle,oracle_gap_percent,wall_time_s\n"


def append_evaluation(path: Path, timesteps: int, mean: float, oracle: float, wall_time_s: float) -> float:
    """Append one row to a run's ``evaluations.csv`` (the policy's mean objective against the oracle's);
    returns the oracle gap in %."""
    gap = 100.0 * (mean / oracle - 1.0)
    with path.open("a") as handle:
        handle.write(f"{timesteps},{mean!r},{oracle!r},{gap!r},{wall_time_s:.3f}\n")
    return gap


class OracleGapCallback(BaseCallback):
    """Every ``every`` env steps (and at the start of a fresh run): the deterministic policy's gap to the oracle.

    Scored on the validation episodes of the run (``VALIDATION_SEEDS[:eval_episodes]``); logged as
    ``eval/objective``, ``eval/oracle_gap_percent`` and appended to ``evaluations.csv`` in the run dir.
    """

    def __init__(self, config: TrainConfig, every: int) -> None:
        super().__init__()
        self.config, self.every = config, every
        self.seeds = list(VALIDATION_SEEDS[: config.eval_episodes])
        self.path = config.out_dir / "evaluations.csv"
        self.next_at = 0
        self.start = time.perf_counter()

    def _on_training_start(self) -> None:
        self.oracle = float(np.mean(oracle_values(self.config, self.seeds)))
        if not self.path.exists():
            self.path.write_text(EVALUATIONS_HEADER)
        if self.num_timesteps == 0:
            self._evaluate()
        self.next_at = (self.num_timesteps // self.every + 1) * self.every

    def _on_step(self) -> bool:
        if self.num_timesteps >= self.next_at:
            self._evaluate()
            self.next_at = (self.num_timesteps // self.every + 1) * self.every
        return True

    def _evaluate(self) -> None:
        mean = evaluate_model(self.model, self.config, self.seeds)["mean"]
        gap = append_evaluation(self.path, self.num_timesteps, mean, self.oracle, time.perf_counter() - self.start)
        self.logger.record("eval/objective", mean)
        self.logger.record("eval/oracle_gap_percent", gap)


def progress_bar_default() -> bool:
    """On when SB3's bar can be drawn (tqdm and rich installed) and stdout is a terminal."""
    import importlib.util

    installed = all(importlib.util.find_spec(name) is not None for name in ("tqdm", "rich"))
    return installed and sys.stdout.isatty()


def logger_formats(verbose: int) -> list[str]:
    """SB3 logger outputs: CSV always, TensorBoard when installed, stdout with ``--verbose`` >= 1."""
    import importlib.util

    formats = ["stdout"] if verbose >= 1 else []
    formats.append("csv")
    if importlib.util.find_spec("tensorboard") is not None:
        formats.append("tensorboard")
    return formats


# ---------------------------------------------------------------------- the run


class TrainingInterrupted(KeyboardInterrupt):
    """The run was stopped by a signal (Ctrl-C or SIGTERM); its interrupted checkpoint is saved."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"signal {signum}")
        self.signum = signum


class StopRequest:
    """A signal handler that asks the training loop to stop instead of raising where it happens to be.

    Raising KeyboardInterrupt from the handler could land inside torch.save while SB3 writes a checkpoint,
    which turns it into a RuntimeError and leaves a corrupt file; a flag checked at every env step cannot.
    A second signal while the run is stopping raises at once (the user insists).
    """

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt(f"signal {signum} while stopping")
        self.signum = signum


def raise_if_stopped(stop: StopRequest | None) -> None:
    """:class:`TrainingInterrupted` once ``stop`` has been requested: a trainer calls it where stopping is safe."""
    if stop is not None and stop.signum is not None:
        raise TrainingInterrupted(stop.signum)


class StopOnRequest(BaseCallback):
    """Ends ``learn`` at the next env step once a :class:`StopRequest` has been made."""

    def __init__(self, request: StopRequest) -> None:
        super().__init__()
        self.request = request

    def _on_step(self) -> bool:
        return self.request.signum is None


def steps_per_rollout(model: Any) -> int:
    """Env steps one collection of ``model.learn`` adds (learn stops only at a multiple of it)."""
    if hasattr(model, "n_steps"):  # on-policy (PPO, MaskablePPO, A2C): n_steps per env
        return int(model.n_steps) * model.n_envs
    train_freq = model.train_freq  # off-policy (DQN): train_freq steps per env, or whole episodes
    return (int(train_freq.frequency) if train_freq.unit.value == "step" else 1) * model.n_envs


def train(config: TrainConfig, callbacks: Sequence[Any] = (), verbose: int = 0,
          stop: StopRequest | None = None) -> dict[str, Any]:
    """Run (or resume) the training described by ``config``; returns the final run.json record.

    When ``stop`` is requested (the signal handler :func:`main` installs) or a KeyboardInterrupt reaches
    the loop, the model is saved to ``checkpoints/interrupted_<steps>.zip``, run.json is marked
    "interrupted" and a KeyboardInterrupt (:class:`TrainingInterrupted` for a signal) propagates.
    ``callbacks`` are extra SB3 callbacks (tests use one to simulate an interrupt).
    """
    out_dir, checkpoint_dir = config.out_dir, config.checkpoint_dir
    previous = read_run(out_dir)
    newest = newest_checkpoint(checkpoint_dir)
    if config.resume:
        if newest is None:
            raise ValueError(f"resume: no checkpoint in {checkpoint_dir}; allowed: an --out directory of an earlier "
                             "run that saved checkpoints (drop --resume to start a new run)")
        if previous is not None:
            for key in _RESUME_MUST_MATCH:
                if jsonable(previous["config"].get(key, ())) != jsonable(getattr(config, key)):
                    raise ValueError(f"resume: {key} = {getattr(config, key)!r} differs from the run in {out_dir} "
                                     f"({previous['config'][key]!r}); allowed: the same "
                                     f"{', '.join(_RESUME_MUST_MATCH)} as that run")
    elif newest is not None or (out_dir / "model.zip").exists():
        raise ValueError(f"--out = {str(out_dir)!r} already holds a run; allowed: pass --resume to continue it, or a "
                         "new --out directory")
    checkpoint_dir.mkdir(parents=True, exist_ok=True)

    env = make_training_env(config)
    cls = algorithm_class(config.algo)
    if config.resume:
        path, _ = newest
        model = cls.load(path, env=env, device="cpu")  # keeps the hyperparameters it was created with
        resumed_from = {"checkpoint": path.name, "steps": int(model.num_timesteps)}
        settings = previous["hyperparameters"] if previous else None
    else:
        settings = hyperparameters(config)
        model = cls(policy_class(config), env, seed=config.seed, device="cpu", verbose=verbose,
                    **algorithm_kwargs(settings))
        resumed_from = None
    # SB3's CSV output rewrites progress.csv: a resumed run logs into a folder of its own.
    log_dir = out_dir / "logs" if resumed_from is None else out_dir / "logs" / f"resumed_{resumed_from['steps']}"
    model.set_logger(configure(str(log_dir), logger_formats(verbose)))
    # Earlier runs recorded only wall_time_s, which was then the total.
    wall_before = 0.0
    if config.resume and previous:
        wall_before = float(previous.get("total_wall_time_s", previous.get("wall_time_s", 0.0)))
    record: dict[str, Any] = {
        "config": asdict(config),
        "hyperparameters": jsonable(settings),
        "hyperparameters_source": load_entry(config.env_id, config.algo).source,
        "vectorisation": vectorisation_path(config),
        "status": "running",
        "resumed_from": resumed_from,
        "steps": int(model.num_timesteps),
        "wall_time_s": 0.0,
        "total_wall_time_s": wall_before,
        "evaluation": None,
    }
    write_run(out_dir, record)

    # CheckpointCallback counts calls, one per vector step of n_envs transitions.
    checkpoint = CheckpointCallback(save_freq=max(config.checkpoint_every // config.n_envs, 1),
                                    save_path=str(checkpoint_dir), name_prefix=CHECKPOINT_PREFIX)
    # SB3 stops only after whole rollouts: train to the next multiple, say so, and let the bar show it.
    per_rollout = steps_per_rollout(model)
    remaining = -(-max(config.timesteps - model.num_timesteps, 0) // per_rollout) * per_rollout
    if model.num_timesteps + remaining != config.timesteps:
        print(f"--timesteps = {config.timesteps:,} trains {model.num_timesteps + remaining:,} steps: "
              f"{config.algo} stops after whole rollouts of {per_rollout:,} env steps", file=sys.stderr)
    stopper = [] if stop is None else [StopOnRequest(stop)]
    evaluator = [OracleGapCallback(config, config.eval_every)] if config.eval_every > 0 else []
    start = time.perf_counter()
    try:
        if remaining > 0:
            model.learn(total_timesteps=remaining, callback=[checkpoint, *evaluator, *stopper, *callbacks],
                        reset_num_timesteps=not config.resume, progress_bar=config.progress_bar)
        raise_if_stopped(stop)
    except KeyboardInterrupt:
        model.save(checkpoint_dir / f"{INTERRUPTED_PREFIX}_{model.num_timesteps}.zip")
        elapsed = time.perf_counter() - start
        record.update(status="interrupted", steps=int(model.num_timesteps), wall_time_s=elapsed,
                      total_wall_time_s=wall_before + elapsed)
        write_run(out_dir, record)
        raise
    finally:
        env.close()
        model.logger.close()  # progress.csv and the TensorBoard writer
    model.save(out_dir / "model.zip")
    # The final model is also the newest checkpoint, so that --resume with more --timesteps extends this run.
    final_checkpoint = checkpoint_dir / f"{CHECKPOINT_PREFIX}_{model.num_timesteps}_steps.zip"
    if not final_checkpoint.exists():
        model.save(final_checkpoint)
    elapsed = time.perf_counter() - start
    record.update(steps=int(model.num_timesteps), wall_time_s=elapsed, total_wall_time_s=wall_before + elapsed)
    if config.eval_episodes > 0:
        record["evaluation"] = evaluate_model(model, config, VALIDATION_SEEDS[: config.eval_episodes])
    record["status"] = "completed"
    write_run(out_dir, record)
    return record


# ---------------------------------------------------------------------- CLI


def add_torch_threads(parser: argparse.ArgumentParser) -> None:
    """``--torch-threads``, as every training command has it (check it with :func:`check_torch_threads`)."""
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="torch intra-op threads (default 1: the policies are small MLPs, more threads only "
                             "add synchronisation and contend on a shared machine)")


def check_torch_threads(parser: argparse.ArgumentParser, threads: int) -> None:
    """Exit through ``parser`` unless ``--torch-threads`` is at least 1."""
    if threads < 1:
        parser.error(f"--torch-threads = {threads} is invalid; allowed: an integer >= 1")


def build_parser(prog: str = "python -m sdedge_agents.train") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", required=True, help="a registered id, e.g. sdedge/EdgeSD-Small-v0")
    parser.add_argument("--algo", required=True, choices=ALGORITHMS)
    parser.add_argument("--timesteps", type=int, default=None,
                        help="total env steps to reach, rounded up to whole rollouts (n_steps x n_envs), which "
                             "is where SB3 stops (default: n_timesteps of the id's hyperparameter entry)")
    parser.add_argument("--n-envs", type=int, default=None,
                        help="parallel envs (default: n_envs of the id's hyperparameter entry)")
    parser.add_argument("--seed", type=int, default=0,
                        help="training seed; envs are seeded seed..seed + n_envs - 1, which must avoid the held-out "
                             "seeds of sdedge_agents.protocol (500..599 and >= 900000)")
    parser.add_argument("--out", required=True, help="run directory (checkpoints/, model.zip, run.json)")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    parser.add_argument("--eval-episodes", type=int, default=20,
                        help="validation episodes of the final evaluation and of --eval-every (0: none; at most 100)")
    parser.add_argument("--checkpoint-every", type=int, default=10_000, help="env steps between checkpoints")
    parser.add_argument("--eval-every", type=int, default=0,
                        help="env steps between oracle-gap evaluations on the --eval-episodes validation episodes "
                             "(0: none), written to evaluations.csv and the logs")
    parser.add_argument("--progress-bar", action=argparse.BooleanOptionalAction, default=None,
                        help="SB3's progress bar (default: on when tqdm and rich are installed and stdout is a "
                             "terminal)")
    add_torch_threads(parser)
    parser.add_argument("--env-kwargs", nargs="+", default=[], metavar="NAME=VALUE",
                        help="keyword arguments of gymnasium.make for the training envs, e.g. reward=reference (values "
                             "are Python literals, else strings); the evaluations drop reward= and score the objective")
    parser.add_argument("--loads", default="", metavar="L1,L2,...",
                        help="online Poisson ids: training env i at load L[i mod len] x the max-batch capacity, "
                             "e.g. 0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0 (the evaluations stay at the id's load)")
    parser.add_argument("--hyperparams", nargs="+", default=[], metavar="NAME=VALUE",
                        help="algorithm keyword arguments over the hyperparameter file's, e.g. gae_lambda=0.9")
    parser.add_argument("--policy", choices=POLICIES, default="mlp",
                        help="the network: mlp (SB3's MlpPolicy, net_arch from the file) or slot "
                             "(sdedge_agents.slot_policy: the task window as a sequence, a per-task 'the batch ends "
                             "here' head; net_arch sizes its speculation MLP and critic)")
    parser.add_argument("--verbose", type=int, default=0, choices=(0, 1, 2), help="SB3 verbosity")
    return parser


def name_values(flag: str, items: Sequence[str]) -> tuple[tuple[str, Any], ...]:
    """NAME=VALUE items as (name, value) pairs; a value is a Python literal (0.9, True, "x") or else a string."""
    pairs = []
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name.isidentifier():
            raise ValueError(f"{flag} item {item!r} is invalid; allowed: NAME=VALUE with NAME an identifier")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text  # a bare word: reward=reference
        pairs.append((name, value))
    return tuple(pairs)


def parse_loads(text: str) -> tuple[float, ...]:
    """--loads' value: numbers separated by commas ("" for none)."""
    try:
        return tuple(float(x) for x in text.split(",")) if text else ()
    except ValueError:
        raise ValueError(f"--loads = {text!r} is invalid; allowed: numbers separated by commas, e.g. "
                         "0.3,0.5,0.7") from None


def parse_config(argv: Sequence[str] | None = None,
                 prog: str = "python -m sdedge_agents.train") -> tuple[TrainConfig, argparse.Namespace]:
    """(config, all arguments) from the command line; bad values exit through argparse with a message."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    check_torch_threads(parser, args.torch_threads)
    try:
        # The id, the algorithm and its action mode first (their messages), then the id's hyperparameter entry.
        TrainConfig(env_id=args.env, algo=args.algo, timesteps=1)
        entry = load_entry(args.env, args.algo)
        progress = progress_bar_default() if args.progress_bar is None else args.progress_bar
        env_kwargs = name_values("--env-kwargs", args.env_kwargs)
        hyperparams = name_values("--hyperparams", args.hyperparams)
        loads = parse_loads(args.loads)
        config = TrainConfig(env_id=args.env, algo=args.algo,
                             timesteps=entry.n_timesteps if args.timesteps is None else args.timesteps,
                             n_envs=entry.n_envs if args.n_envs is None else args.n_envs,
                             seed=args.seed, out=args.out, resume=args.resume, eval_episodes=args.eval_episodes,
                             checkpoint_every=args.checkpoint_every, eval_every=args.eval_every,
                             progress_bar=progress, env_kwargs=env_kwargs, hyperparams=hyperparams,
                             policy=args.policy, loads=loads)
    except ValueError as error:
        parser.error(str(error))
    return config, args


def run_stoppable(run: Callable[[StopRequest], dict[str, Any]],
                  interrupted: Callable[[], str]) -> dict[str, Any] | int:
    """``run(stop)`` with SIGINT and SIGTERM turned into ``stop`` requests (the handlers restored after): its
    record, or an exit code: 130 (SIGINT) or 143 (SIGTERM) after an interrupt, printing ``interrupted()``;
    2 after a ValueError, printing it."""
    stop = StopRequest()
    previous_handlers = {signum: signal.signal(signum, stop) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        return run(stop)
    except KeyboardInterrupt as interrupt:
        print(interrupted(), file=sys.stderr)
        return 143 if getattr(interrupt, "signum", None) == signal.SIGTERM else 130
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        for signum, handler in previous_handlers.items():
            signal.signal(signum, handler)


def main(argv: Sequence[str] | None = None, prog: str = "python -m sdedge_agents.train") -> int:
    """The command line (``prog`` is what usage lines call it: ``sdedge-gym train`` passes its own)."""
    config, args = parse_config(argv, prog)
    torch.set_num_threads(args.torch_threads)

    def interrupted() -> str:
        newest = newest_checkpoint(config.checkpoint_dir)
        where = newest[0] if newest else config.checkpoint_dir
        return f"interrupted: saved {where}; continue with the same arguments and --resume"

    record = run_stoppable(lambda stop: train(config, verbose=args.verbose, stop=stop), interrupted)
    if isinstance(record, int):
        return record
    evaluation = record["evaluation"]
    summary = f"trained {record['steps']} steps in {record['wall_time_s']:.1f} s"
    if config.resume:
        summary += f" (this run; {record['total_wall_time_s']:.1f} s in total since the run started)"
    summary += f" -> {config.out_dir / 'model.zip'}"
    if evaluation is not None:
        seeds = evaluation["seeds"]
        summary += (f"; {evaluation['objective']} {evaluation['mean']:.4f} s over {evaluation['episodes']} validation "
                    f"episodes (seeds {seeds[0]}..{seeds[-1]})")
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
