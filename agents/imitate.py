"""Train a Stable-Baselines3 policy by imitating a planner (DAgger), with checkpoints, resume and the oracle gap.

    python -m sdedge_agents.imitate --env sdedge/EdgeSD-v0 --algo maskable_ppo --seed 1000 --out runs/dagger-paper

Pure RL with the harness defaults settles on a nearly constant (n, l) on the paper-size ids (docs/BENCHMARK.md).
This trainer distils a planner into the same network instead: DAgger (Ross et al., 2011). Iteration 0 runs
the teacher and records (observation, teacher action); every later iteration runs the *learner*, with the
teacher's own action taken instead with probability beta = beta_decay^k, and labels every visited state with
what the teacher would do there; after each iteration the policy is fitted to all the labels gathered so far.
The teacher is by default ``window-planner`` (:class:`sdedge_agents.planner.WindowPlanner`): the DP on exactly what
the observation shows, so that its action is a function of the observation and the labels are learnable
without hidden information. On the non-clairvoyant ids ``posterior-window-planner`` is the stronger teacher of
that kind (the DP on the expected cost under the hints' posterior, :class:`sdedge_agents.planner.PosteriorPlanner`).
The agent itself reads only the observation (and the action mask); ``--env-kwargs`` makes that the observation of
``gymnasium.make(id, **kwargs)``, e.g. ``observe_queue=True`` adds the summary of the queue past the window.

The model is an ordinary SB3 ``MaskablePPO`` (discrete ids) or ``PPO`` (hybrid ids) with the id's
hyperparameters from ``agents/hyperparams.yml`` (``--net-arch`` overrides the network): it loads and
evaluates like any sdedge_agents.train model (``sb3:MaskablePPO:PATH``) and can be fine-tuned with PPO. The losses:

* discrete: the negative log-likelihood of the teacher's (n, l) under the policy (masked for MaskablePPO);
  with ``--temperature tau`` > 0 (cost-sensitive imitation, after AggreVaTe, Ross and Bagnell 2014), the
  teacher labels every action of a state with its value Q(n, l) (the cost it expects from committing (n, l)
  and then following its plan, :func:`sdedge_agents.oracle.action_values`) and the loss is the cross-entropy
  to the soft target p(n, l) ~ exp(-(Q(n, l) - min Q) / tau), tau in the objective's units (s): the policy
  is a product of a batch-size and a speculation-length distribution, and the product closest to p (least
  KL(p || pi)) has p's marginals, so each head is fitted to its marginal. A wrong n that costs little is
  then a small error and one that costs much a large one, where the 0-1 label of the teacher's argmin says
  neither; tau -> 0 is the hard label. Dearer labels: one DP solve per action on the speculation front.
  With ``--speculation-context`` (the sequence policy's l head also reads the batch its most likely n forms,
  :mod:`sdedge_agents.slot_policy`) the l head's target is instead p(l | n) at the n the policy itself would
  choose: the best speculation length depends on the batch (an l off a batch's speculation front is never
  better than one on it, and the teacher's l is the best for the teacher's n, not for the learner's); with
  hard labels and ``--label-context`` the l head instead reads, while fitting, the batch of the *label's* n
  (teacher forcing, as an autoregressive p(n) p(l | n) is fitted), so that a label whose n the learner would
  not choose still teaches the l that goes with its own batch;
* hybrid (a Box of two bins and n_max band logits): for the deterministic action (the Gaussian mean mu),
  the squared error of the two bin coordinates to the teacher's bin centres, the cross-entropy between the
  teacher's band shares above the floor and softmax(LOGIT_SCALE mu) over the batch (the env's split is
  invariant to a common shift of the logits, so is this loss), and a penalty on |mu| beyond 1 (the env
  clips there);
* the value head: the squared error to the return-to-go of the visited trajectory, divided by the returns'
  variance (a start for PPO fine-tuning; it does not touch the policy head, whose network is separate).

Writes into ``--out`` what sdedge_agents.train writes (``run.json``, ``evaluations.csv``, ``oracle_values.json``,
``model.zip``) plus ``checkpoints/iteration_<k>.zip`` and ``checkpoints/dataset.npz`` (the labels so far) after
every iteration; ``--resume`` continues after the last saved iteration (nothing of a finished iteration is lost
on Ctrl-C or SIGTERM, which stop it at the next episode or fit pass; the fit's Adam moments start afresh). After
each iteration the deterministic policy's oracle gap on the validation episodes
(``sdedge_agents.protocol.VALIDATION_SEEDS[:--eval-episodes]``) goes to ``evaluations.csv`` with the env steps
collected so far as its timesteps; ``model.zip`` is the iteration with the lowest validation objective
(checkpoint choice on validation episodes, as the protocol allows). Iteration k's episodes continue the random
stream of ``reset(seed=seed + k)``, so the seeds seed .. seed + iterations - 1 must avoid the held-out ones.
Needs the ``train`` extra.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from sdedge_agents.band_split import share_cross_entropy
from sdedge_agents.evaluate import make_policy
from sdedge_agents.hyperparameters import load_entry
from sdedge_agents.protocol import VALIDATION_SEEDS, training_seeds_overlap
from sdedge_agents.runs import RunDirectory, check_int, jsonable, read_run, write_run
from sdedge_agents.train import (
    EVALUATIONS_HEADER,
    MAX_TRAINING_SEED,
    StopRequest,
    TrainConfig,
    add_torch_threads,
    algorithm_class,
    append_evaluation,
    check_torch_threads,
    evaluate_model,
    masked_predict,
    name_values,
    oracle_values,
    raise_if_stopped,
    run_stoppable,
)
from sdedge_gym.actions import hybrid_batch_and_speculation, shares_from_logits
from sdedge_gym.registration import ENV_TABLE

# The algorithms whose policies imitation fits, and the action modes each can drive (a subset of train's).
IMITATION_ACTION_MODES: dict[str, tuple[str, ...]] = {"maskable_ppo": ("discrete",), "ppo": ("discrete", "hybrid")}
TEACHERS: tuple[str, ...] = ("window-planner", "planner", "oracle", "posterior-window-planner", "posterior-planner")
# The teachers that can label every action with its value (MPCPlanner.action_values): --temperature > 0.
VALUE_TEACHERS: tuple[str, ...] = ("window-planner", "planner", "posterior-window-planner", "posterior-planner")
POLICIES: tuple[str, ...] = ("mlp", "slot")
# Options added after the first runs, with the value a run from before them had (for --resume's check).
_ADDED_LATER: dict[str, Any] = {"env_kwargs": (), "temperature": 0.0, "speculation_context": False,
                                 "label_context": False}
BIN_WEIGHT = 100.0  # the bins are 2 / n_max wide: an error of a tenth of a bin costs about as much as the split
RANGE_WEIGHT = 10.0


@dataclass(frozen=True)
class ImitationConfig(RunDirectory):
    """The arguments of one DAgger run (the CLI's, validated)."""

    env_id: str
    algo: str
    seed: int = 0
    out: str = "runs/dagger"
    teacher: str = "window-planner"
    iterations: int = 8
    episodes_per_iteration: int = 600
    beta_decay: float = 0.5
    epochs: int = 20
    batch_size: int = 256
    learning_rate: float = 1e-3
    net_arch: tuple[int, ...] = (256, 256)
    policy: str = "slot"  # "slot": sdedge_agents.slot_policy (the task window as a sequence); "mlp": SB3's MlpPolicy
    log_std_init: float = -2.0  # hybrid: the Gaussian's initial log-std (PPO's 0 would be noise of a whole bin range)
    eval_episodes: int = 20
    resume: bool = False
    n_envs: int = 1  # one env collects the episodes (the teacher reads its episode and clock)
    env_kwargs: tuple[tuple[str, Any], ...] = ()  # gymnasium.make keyword arguments, e.g. observe_queue=True
    temperature: float = 0.0  # > 0: cost-sensitive labels, soft targets exp(-(Q - min Q) / temperature); 0: hard
    speculation_context: bool = False  # the slot policy's l head reads the batch of its most likely n
    label_context: bool = False  # with speculation_context, hard labels: the fit's l head reads the label's batch

    def __post_init__(self) -> None:
        if self.env_id not in ENV_TABLE:
            raise ValueError(f"--env = {self.env_id!r} is unknown; allowed: one of "
                             "sdedge_gym.SINGLE_CELL_ENV_IDS, e.g. "
                             "'sdedge/EdgeSD-v0' (see sdedge_gym/registration.py)")
        if self.algo not in IMITATION_ACTION_MODES:
            raise ValueError(f"--algo = {self.algo!r} is invalid; allowed: {' | '.join(IMITATION_ACTION_MODES)}")
        mode = ENV_TABLE[self.env_id]["action_mode"]
        if mode not in IMITATION_ACTION_MODES[self.algo]:
            raise ValueError(f"--algo = {self.algo!r} cannot drive --env {self.env_id!r} (action_mode {mode!r}); "
                             f"allowed action modes for {self.algo}: {' | '.join(IMITATION_ACTION_MODES[self.algo])}")
        if self.teacher not in TEACHERS:
            raise ValueError(f"--teacher = {self.teacher!r} is invalid; allowed: {' | '.join(TEACHERS)}")
        check_int("--iterations", self.iterations, 1)
        check_int("--seed", self.seed, 0, MAX_TRAINING_SEED - self.iterations + 1)
        overlap = training_seeds_overlap(self.seed, self.iterations)
        if overlap:
            raise ValueError(f"--seed = {self.seed} is invalid: the iterations reset seeds {self.seed}.."
                             f"{self.seed + self.iterations - 1} and {overlap}; allowed: e.g. 1000, 2000, 3000")
        check_int("--episodes-per-iteration", self.episodes_per_iteration, 1)
        check_int("--epochs", self.epochs, 1)
        check_int("--batch-size", self.batch_size, 1)
        check_int("--eval-episodes", self.eval_episodes, 1, len(VALIDATION_SEEDS))
        if not 0.0 <= self.beta_decay <= 1.0:
            raise ValueError(f"--beta-decay = {self.beta_decay!r} is invalid; allowed: a number in [0, 1]")
        if not self.learning_rate > 0.0:
            raise ValueError(f"--learning-rate = {self.learning_rate!r} is invalid; allowed: a number > 0")
        if self.policy not in POLICIES:
            raise ValueError(f"--policy = {self.policy!r} is invalid; allowed: {' | '.join(POLICIES)}")
        if self.policy == "slot" and self.algo == "ppo" and mode != "hybrid":
            raise ValueError(f"--policy slot with --algo ppo needs a hybrid id (use --algo maskable_ppo on the "
                             f"discrete ones); --env {self.env_id!r} has action_mode {mode!r}")
        if not (isinstance(self.temperature, int | float) and math.isfinite(self.temperature)
                and self.temperature >= 0.0):
            raise ValueError(f"--temperature = {self.temperature!r} is invalid; allowed: a number >= 0 (s of the "
                             "objective; 0: the teacher's action as a hard label)")
        if self.temperature > 0.0 and (self.teacher not in VALUE_TEACHERS or self.algo != "maskable_ppo"):
            raise ValueError(f"--temperature {self.temperature} needs --algo maskable_ppo and a teacher that values "
                             f"every action; allowed teachers: {' | '.join(VALUE_TEACHERS)} (got --algo {self.algo}, "
                             f"--teacher {self.teacher})")
        if self.speculation_context and (self.policy != "slot" or mode != "discrete"):
            raise ValueError(f"--speculation-context needs --policy slot on a discrete id (got --policy {self.policy}, "
                             f"action_mode {mode!r})")
        if self.label_context and not (self.speculation_context and self.temperature == 0.0):
            raise ValueError("--label-context needs --speculation-context and hard labels (--temperature 0; with "
                             f"--temperature the l head is fitted to the best l for its own batch); got "
                             f"--speculation-context {self.speculation_context}, --temperature {self.temperature}")
        if not self.net_arch or any(not isinstance(w, int) or w < 1 for w in self.net_arch):
            raise ValueError(f"--net-arch = {self.net_arch!r} is invalid; allowed: layer widths >= 1, e.g. 256,256")
        self.train_config()  # checks --env-kwargs against the id, with the env's own message

    def train_config(self) -> TrainConfig:
        """The sdedge_agents.train view of this run: its hyperparameter entry, evaluation and oracle cache."""
        return TrainConfig(env_id=self.env_id, algo=self.algo, timesteps=1, n_envs=1, seed=self.seed,
                           out=self.out, eval_episodes=self.eval_episodes, env_kwargs=self.env_kwargs)


def new_model(config: ImitationConfig, env: gym.Env):
    """The (Maskable)PPO the policy lives in: the id's hyperparameters as its file gives them (the settings a
    PPO fine-tuning run starts from; the fit does not read them), ``--net-arch`` for the networks."""
    settings = copy.deepcopy(load_entry(config.env_id, config.algo).algorithm_kwargs)
    kwargs = dict(settings.get("policy_kwargs") or {})
    kwargs["net_arch"] = list(config.net_arch)
    if config.speculation_context:
        kwargs["speculation_context"] = True
    if config.action_mode == "hybrid":
        kwargs["log_std_init"] = config.log_std_init
    settings["policy_kwargs"] = kwargs
    policy = "MlpPolicy"
    if config.policy == "slot":
        from sdedge_agents.slot_policy import MaskableSlotPolicy, SlotPolicy

        policy = MaskableSlotPolicy if config.algo == "maskable_ppo" else SlotPolicy
    model = algorithm_class(config.algo)(policy, env, seed=config.seed, device="cpu", **settings)
    return model, settings


# ---------------------------------------------------------------------- labels


@dataclass
class Labels:
    """Visited observations, their action masks, the teacher's actions there and the returns-to-go; with
    cost-sensitive labels also the teacher's values Q[n - 1, l] of every action (else ``values`` is empty)."""

    observations: list[np.ndarray]
    masks: list[np.ndarray]
    actions: list[np.ndarray]
    returns: list[float]
    values: list[np.ndarray]

    @classmethod
    def empty(cls) -> Labels:
        return cls([], [], [], [], [])

    def __len__(self) -> int:
        return len(self.actions)

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, observations=np.asarray(self.observations, dtype=np.float32),
                            masks=np.asarray(self.masks, dtype=bool), actions=np.asarray(self.actions),
                            returns=np.asarray(self.returns, dtype=float), values=np.asarray(self.values, dtype=float))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Labels:
        data = np.load(path)
        values = list(data["values"]) if "values" in data.files else []  # a dataset from before the option
        return cls(list(data["observations"]), list(data["masks"]), list(data["actions"]), list(data["returns"]),
                   values)


def collect(env: gym.Env, teacher, model, episodes: int, beta: float, rng: np.random.Generator,
            labels: Labels, stop: StopRequest | None = None, valued: bool = False) -> int:
    """Run ``episodes`` episodes (teacher with probability ``beta`` at each step, else the learner) and label
    every visited state with the teacher's action; returns the env steps taken. ``valued``: also with the
    teacher's values of every action (``teacher.action_values()``), whose argmin is then the action (the plan's
    first batch up to ties). A ``stop`` request ends it between episodes with :class:`TrainingInterrupted`."""
    steps = 0
    for _ in range(episodes):
        raise_if_stopped(stop)
        observation, _ = env.reset()
        rewards, done = [], False
        while not done:
            if valued:
                values = teacher.action_values()
                n, l = np.unravel_index(int(np.argmin(values)), values.shape)
                target = teacher.encode(int(n) + 1, int(l))
                labels.values.append(values)
            else:
                target, _ = teacher.predict(observation, deterministic=True)
            labels.observations.append(np.asarray(observation, dtype=np.float32))
            labels.masks.append(np.asarray(env.unwrapped.action_masks(), dtype=bool))
            labels.actions.append(np.asarray(target))
            action = target if rng.random() < beta else masked_predict(model, env, observation)[0]
            observation, reward, terminated, truncated, _ = env.step(action)
            rewards.append(float(reward))
            done = terminated or truncated
        labels.returns.extend(np.cumsum(rewards[::-1])[::-1].tolist())
        steps += len(rewards)
    return steps


# ---------------------------------------------------------------------- the fit


def hybrid_loss(mean: torch.Tensor, actions: torch.Tensor, max_batch: int, max_speculation: int) -> torch.Tensor:
    """The hybrid imitation loss of the module docstring: deterministic actions ``mean`` against the teacher's
    hybrid ``actions`` (both (m, 2 + n_max))."""
    teacher = actions.numpy()
    batch_size, _ = hybrid_batch_and_speculation(teacher, max_batch, max_speculation)
    shares = torch.as_tensor(shares_from_logits(teacher[:, 2:], batch_size), dtype=torch.float32)
    split = share_cross_entropy(mean[:, 2:], shares, torch.as_tensor(batch_size))
    bins = ((mean[:, :2] - actions[:, :2]) ** 2).sum(dim=1).mean()
    beyond = (torch.relu(mean.abs() - 1.0) ** 2).sum(dim=1).mean()
    return split + BIN_WEIGHT * bins + RANGE_WEIGHT * beyond


@dataclass(frozen=True)
class SoftTargets:
    """The cost-sensitive targets of values Q (m, N, L) (module docstring): the marginals over n (m, N) and over
    l (m, L) of p(n, l) ~ exp(-(Q - min Q) / temperature), and p(l | n) (m, N, L); +inf values get no mass
    (a row of p(l | n) whose n is invalid is all zeros)."""

    by_size: torch.Tensor
    by_length: torch.Tensor
    by_length_given_size: torch.Tensor

    @classmethod
    def of(cls, values: np.ndarray, temperature: float) -> SoftTargets:
        best = values.reshape(len(values), -1).min(axis=1)[:, None, None]
        weights = np.exp(-(values - best) / temperature)  # exp(-inf) = 0: invalid and dominated actions
        weights /= weights.sum(axis=(1, 2), keepdims=True)
        best_length = values.min(axis=2, keepdims=True)
        given = np.exp(-(values - np.where(np.isfinite(best_length), best_length, 0.0)) / temperature)
        given /= np.maximum(given.sum(axis=2, keepdims=True), np.finfo(float).tiny)
        return cls(*(torch.as_tensor(x, dtype=torch.float32) for x in (weights.sum(axis=2), weights.sum(axis=1),
                                                                        given)))


def fit(model, labels: Labels, config: ImitationConfig, optimizer, generator: torch.Generator,
        space_limits: tuple[int, int], stop: StopRequest | None = None) -> float:
    """``config.epochs`` passes over all labels; returns the last pass's mean policy loss. A ``stop`` request
    ends it between passes with :class:`TrainingInterrupted`."""
    policy = model.policy
    observations = torch.as_tensor(np.asarray(labels.observations, dtype=np.float32))
    masks = torch.as_tensor(np.asarray(labels.masks, dtype=bool))
    actions = torch.as_tensor(np.asarray(labels.actions))
    returns = torch.as_tensor(np.asarray(labels.returns, dtype=np.float32))
    soft = SoftTargets.of(np.asarray(labels.values), config.temperature) if config.temperature > 0.0 else None
    # The value loss is divided by the returns' variance; where there is none (one label, or returns all equal,
    # where torch's variance is nan or 0) by 1, so that it neither poisons the fit with nan nor, through the
    # gradient clipping shared with the policy, starves the policy's step.
    spread = float(returns.var()) if len(returns) > 1 else 0.0
    scale = spread if spread > 1e-8 else 1.0
    masked = config.algo == "maskable_ppo"
    policy.set_training_mode(True)
    total = 0.0
    for _ in range(config.epochs):
        raise_if_stopped(stop)
        order = torch.randperm(len(labels), generator=generator)
        total = 0.0
        for start in range(0, len(labels), config.batch_size):
            index = order[start:start + config.batch_size]
            if config.action_mode == "hybrid":
                mean = policy.get_distribution(observations[index]).distribution.mean
                policy_loss = hybrid_loss(mean, actions[index].float(), *space_limits)
                values = policy.predict_values(observations[index])
            elif soft is not None:
                size, length = policy.get_distribution(observations[index], action_masks=masks[index]).distributions
                if config.speculation_context:  # l's target at the batch the l head reads: the learner's own n
                    chosen = size.probs.detach().argmax(dim=1)
                    length_target = soft.by_length_given_size[index, chosen]
                else:
                    length_target = soft.by_length[index]
                policy_loss = -((soft.by_size[index] * size.logits).sum(dim=1).mean()
                                + (length_target * length.logits).sum(dim=1).mean())
                values = policy.predict_values(observations[index])
            elif config.label_context:  # teacher forcing: l's label at the batch the label's n forms
                features = policy.extract_features(observations[index], policy.pi_features_extractor)
                latent = policy.mlp_extractor.forward_actor(features, size=actions[index, 0] + 1)
                distribution = policy._get_action_dist_from_latent(latent)
                distribution.apply_masking(masks[index])
                policy_loss = -distribution.log_prob(actions[index]).mean()
                values = policy.predict_values(observations[index])
            elif masked:
                values, log_prob, _ = policy.evaluate_actions(observations[index], actions[index],
                                                              action_masks=masks[index])
                policy_loss = -log_prob.mean()
            else:
                values, log_prob, _ = policy.evaluate_actions(observations[index], actions[index])
                policy_loss = -log_prob.mean()
            value_loss = ((values.flatten() - returns[index]) ** 2).mean() / scale
            optimizer.zero_grad()
            (policy_loss + 0.5 * value_loss).backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
            optimizer.step()
            total += float(policy_loss.detach()) * len(index)
        total /= len(labels)
    policy.set_training_mode(False)
    return total


# ---------------------------------------------------------------------- the run


def _iteration_path(config: ImitationConfig, iteration: int) -> Path:
    return config.checkpoint_dir / f"iteration_{iteration}.zip"


def imitate(config: ImitationConfig, verbose: int = 0, stop: StopRequest | None = None) -> dict[str, Any]:
    """Run (or resume) the DAgger run described by ``config``; returns the final run.json record.

    ``stop`` (a signal handler's flag, :func:`sdedge_agents.train.run_stoppable`) ends the run between episodes
    or fit epochs with :class:`TrainingInterrupted`: the unfinished iteration is dropped, the finished ones
    are on disk, and ``run.json`` says "interrupted"."""
    out_dir, checkpoint_dir = config.out_dir, config.checkpoint_dir
    previous = read_run(out_dir)
    if config.resume:
        if previous is None or not previous.get("iterations"):
            raise ValueError(f"resume: no finished iteration in {out_dir}; allowed: an --out directory of an earlier "
                             "sdedge_agents.imitate run (drop --resume to start a new run)")
        for key in ("env_id", "algo", "seed", "teacher", "episodes_per_iteration", "net_arch", "policy", "env_kwargs",
                    "temperature", "speculation_context", "label_context"):
            before = previous["config"].get(key, _ADDED_LATER.get(key))  # a run from before an option has none
            if jsonable(before) != jsonable(getattr(config, key)):
                raise ValueError(f"resume: {key} = {getattr(config, key)!r} differs from the run in {out_dir} "
                                 f"({before!r}); allowed: the same value as that run")
    elif previous is not None or (out_dir / "model.zip").exists():
        raise ValueError(f"--out = {str(out_dir)!r} already holds a run; allowed: pass --resume to continue it, or a "
                         "new --out directory")
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    env = gym.make(config.env_id, **dict(config.env_kwargs))
    scenario = env.unwrapped.scenario
    teacher = make_policy(config.teacher, env)
    model, settings = new_model(config, env)
    done_iterations: list[dict[str, Any]] = []
    labels, steps, wall_before = Labels.empty(), 0, 0.0
    if config.resume:
        done_iterations = previous["iterations"]
        last = done_iterations[-1]["iteration"]
        model = algorithm_class(config.algo).load(_iteration_path(config, last), env=env, device="cpu")
        labels = Labels.load(checkpoint_dir / "dataset.npz")
        steps = int(previous["steps"])
        wall_before = float(previous["total_wall_time_s"])
    optimizer = torch.optim.Adam(model.policy.parameters(), lr=config.learning_rate)
    train_view = config.train_config()
    seeds = list(VALIDATION_SEEDS[: config.eval_episodes])
    oracle = float(np.mean(oracle_values(train_view, seeds)))
    evaluations = out_dir / "evaluations.csv"
    if not evaluations.exists():
        evaluations.write_text(EVALUATIONS_HEADER)
    record: dict[str, Any] = {
        "config": jsonable(asdict(config)),
        "trainer": "sdedge_agents.imitate (DAgger)",
        "hyperparameters": previous["hyperparameters"] if config.resume else jsonable(settings),
        "hyperparameters_source": load_entry(config.env_id, config.algo).source,
        "vectorisation": "gym.make (one env: the teacher reads its episode)",
        "status": "running",
        "steps": steps,
        "iterations": done_iterations,
        "best_iteration": previous.get("best_iteration") if config.resume else None,
        "wall_time_s": 0.0,
        "total_wall_time_s": wall_before,
        "evaluation": None,
    }
    write_run(out_dir, record)
    start = time.perf_counter()
    generator = torch.Generator().manual_seed(config.seed)
    limits = (scenario.max_batch, scenario.max_speculation)
    try:
        for iteration in range(len(done_iterations), config.iterations):
            beta = config.beta_decay ** iteration
            env.reset(seed=config.seed + iteration)  # the iteration's episodes continue this stream
            rng = np.random.default_rng([config.seed, iteration])
            steps += collect(env, teacher, model, config.episodes_per_iteration, beta, rng, labels, stop,
                             valued=config.temperature > 0.0)
            loss = fit(model, labels, config, optimizer, generator, limits, stop)
            value = evaluate_model(model, train_view, seeds)["mean"]
            elapsed = time.perf_counter() - start
            model.save(_iteration_path(config, iteration))
            labels.save(checkpoint_dir / "dataset.npz")
            gap = append_evaluation(evaluations, steps, value, oracle, elapsed)  # after the checkpoint it scores
            done_iterations.append({"iteration": iteration, "beta": beta, "labels": len(labels), "steps": steps,
                                    "loss": loss, "validation_objective": value, "oracle_gap_percent": gap})
            best = min(done_iterations, key=lambda r: r["validation_objective"])["iteration"]
            record.update(steps=steps, iterations=done_iterations, best_iteration=best, wall_time_s=elapsed,
                          total_wall_time_s=wall_before + elapsed)
            write_run(out_dir, record)
            if verbose:
                print(f"iteration {iteration}: beta {beta:.3f}, {len(labels)} labels, loss {loss:.3f}, validation "
                      f"{value:.3f} s ({gap:+.2f} % to the oracle), {elapsed:.0f} s", flush=True)
    except KeyboardInterrupt:
        elapsed = time.perf_counter() - start
        record.update(status="interrupted", wall_time_s=elapsed, total_wall_time_s=wall_before + elapsed)
        write_run(out_dir, record)
        raise
    finally:
        env.close()
    best = record["best_iteration"]
    shutil.copyfile(_iteration_path(config, best), out_dir / "model.zip")
    chosen = algorithm_class(config.algo).load(out_dir / "model.zip", device="cpu")
    record["evaluation"] = evaluate_model(chosen, train_view, seeds)
    record["status"] = "completed"
    write_run(out_dir, record)
    return record


# ---------------------------------------------------------------------- CLI


def _widths(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--net-arch = {text!r} is invalid; allowed: comma-separated layer "
                                         "widths, e.g. 256,256") from None


def build_parser() -> argparse.ArgumentParser:
    defaults = ImitationConfig(env_id="sdedge/EdgeSD-v0", algo="maskable_ppo")
    parser = argparse.ArgumentParser(prog="python -m sdedge_agents.imitate", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", required=True, help="a registered id, e.g. sdedge/EdgeSD-v0")
    parser.add_argument("--algo", required=True, choices=tuple(IMITATION_ACTION_MODES))
    parser.add_argument("--seed", type=int, default=0, help="iteration k resets its env with seed + k")
    parser.add_argument("--out", required=True, help="run directory (checkpoints/, model.zip, run.json)")
    parser.add_argument("--teacher", default=defaults.teacher, choices=TEACHERS)
    parser.add_argument("--iterations", type=int, default=defaults.iterations)
    parser.add_argument("--episodes-per-iteration", type=int, default=defaults.episodes_per_iteration)
    parser.add_argument("--beta-decay", type=float, default=defaults.beta_decay,
                        help="iteration k takes the teacher's action with probability beta_decay^k")
    parser.add_argument("--epochs", type=int, default=defaults.epochs, help="passes over all labels per iteration")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--net-arch", type=_widths, default=defaults.net_arch, help="e.g. 256,256")
    parser.add_argument("--policy", choices=POLICIES, default=defaults.policy,
                        help="the network: slot (sdedge_agents.slot_policy: the task window as a sequence, the "
                        "default) "
                             "or mlp (SB3's MlpPolicy)")
    parser.add_argument("--eval-episodes", type=int, default=defaults.eval_episodes,
                        help="validation episodes scored after every iteration (at most 100)")
    parser.add_argument("--env-kwargs", nargs="+", default=[], metavar="NAME=VALUE",
                        help="gymnasium.make keyword arguments of the env, e.g. observe_queue=True")
    parser.add_argument("--temperature", type=float, default=defaults.temperature,
                        help="> 0: cost-sensitive labels, the teacher's value of every action turned into soft "
                             "targets exp(-(Q - min Q) / T), T in s of the objective (e.g. 0.05); 0: the teacher's "
                             "action as a hard label")
    parser.add_argument("--speculation-context", action="store_true",
                        help="the slot policy's speculation-length head also reads the batch its most likely batch "
                             "size forms (with --temperature: fitted to the best l for that batch)")
    parser.add_argument("--label-context", action="store_true",
                        help="with --speculation-context and hard labels: while fitting, the l head reads the batch "
                             "of the label's batch size (teacher forcing) instead of the learner's most likely one")
    parser.add_argument("--resume", action="store_true", help="continue after the last saved iteration in --out")
    # One thread, as sdedge_agents.train: with torch's default, one per core, a DAgger iteration beside one
    # training run on 2 cores took 620 s against 75-120 s.
    add_torch_threads(parser)
    parser.add_argument("--verbose", type=int, default=1)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = ImitationConfig(env_id=args.env, algo=args.algo, seed=args.seed, out=args.out, teacher=args.teacher,
                                 iterations=args.iterations, episodes_per_iteration=args.episodes_per_iteration,
                                 beta_decay=args.beta_decay, epochs=args.epochs, batch_size=args.batch_size,
                                 learning_rate=args.learning_rate, net_arch=args.net_arch,
                                 policy=args.policy,
                                 eval_episodes=args.eval_episodes, resume=args.resume,
                                 env_kwargs=name_values("--env-kwargs", args.env_kwargs),
                                 temperature=args.temperature, speculation_context=args.speculation_context,
                                 label_context=args.label_context)
    except ValueError as error:
        build_parser().error(str(error))
    check_torch_threads(build_parser(), args.torch_threads)
    torch.set_num_threads(args.torch_threads)
    record = run_stoppable(
        lambda stop: imitate(config, verbose=args.verbose, stop=stop),
        lambda: f"interrupted: the finished iterations are in {config.checkpoint_dir}; rerun with --resume")
    if isinstance(record, int):
        return record
    print(json.dumps({"best_iteration": record["best_iteration"], "steps": record["steps"],
                      "validation": record["evaluation"]["mean"], "wall_time_s": record["total_wall_time_s"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
