"""A natively vectorised EdgeSD environment: the single env's compiled kernel, looped over environments.

``gymnasium.make_vec(id, num_envs=N)`` builds it for every offline id (``vector_entry_point``; the online ids'
is its subclass :class:`sdedge_gym.online_vector_env.EdgeSDOnlineVectorEnv`). One step commits a batch in
every environment with one call of :func:`sdedge_gym.kernels.commit_many`, the same kernel the single env
calls for its one batch: the dynamics are computed by the same compiled code, so a sub-env's step gives the
single env's numbers on the same episode (to the last bit where the inputs are the same; the tests allow 1e-9
relative).

Seeding (the contract): ``reset(seed=s)`` gives sub-env i the first episode of the single env seeded
``s + i`` (as ``SyncVectorEnv`` seeds it), from that sub-env's own Generator. Episodes after an
autoreset are drawn for all resetting envs at once, in one batched call, from the vector env's own
Generator (seeded from ``s``): the vector env is deterministic given its seed, and each episode is a
draw from the scenario's workload distribution, but sub-env i's later episodes are not the single env's
later episodes (drawing per env would cost a Python Generator call per resetting env, the bottleneck at
large widths). ``reset(options={"workload": ...})`` on the single env replays any episode exactly.

Autoreset (``metadata["autoreset_mode"]``): ``NEXT_STEP`` (the default, as Gymnasium's own vector envs)
or ``SAME_STEP`` (``final_obs`` and ``final_info`` in ``infos``), chosen with ``autoreset_mode=``
(``gymnasium.make_vec(id, num_envs=N, vectorization_mode="vector_entry_point", autoreset_mode="SameStep")``;
TorchRL's ``GymWrapper`` accepts only ``SAME_STEP``).

Infos are Gymnasium's vector infos: one array per key over environments plus a ``_key`` mask of the
environments that have it. The per-task arrays ``bandwidth`` and ``completion_times`` are padded to
``(num_envs, n_max)`` with zeros beyond each env's batch size (a batch's size varies across environments).

``action_masks()`` gives the masks of every env, ``(num_envs, n_max + l_max + 1)``, in MaskablePPO's
layout; an env whose episode has just ended (waiting for its ``NEXT_STEP`` reset) has the terminal mask,
where only n = 1 is a valid batch size (every mask keeps a valid entry; that action is never acted on:
the next step resets the env).

``max_episode_steps`` (which ``gymnasium.make_vec`` passes when given one) is accepted when it cannot
bind: an episode ends by itself within K = num_tasks steps, so a limit >= K, or None, truncates nothing.
A limit below K raises ``ValueError``: this env does not truncate episodes (use
``vectorization_mode="sync"``, which wraps each sub-env in Gymnasium's ``TimeLimit``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numba
import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from sdedge_gym import kernels
from sdedge_gym.config import ScenarioConfig
from sdedge_gym.env import (
    GLOBAL_FEATURES,
    KPI_KEYS,
    EdgeSDEnv,
    ObservationScales,
    derive_columns,
    global_feature_values,
)
from sdedge_gym.env import STEP_INFO_KEYS as SINGLE_ENV_INFO_KEYS
from sdedge_gym.episode import NO_RUNS, Episode, EpisodeClocks, ServingModel
from sdedge_gym.scenarios import check_override_keys
from sdedge_gym.workload import WORKLOAD_FIELDS, Workload, raw_draws

AUTORESET_MODES = (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP)
# The single env's info keys, as per-env arrays with "_key" masks (the action mask is built apart: every env
# has one after every step).
STEP_INFO_KEYS = tuple(key for key in SINGLE_ENV_INFO_KEYS if key != "action_mask")
# Mixed into the reset seed for the autoreset stream, so that it never replays a sub-env's own stream.
AUTORESET_STREAM = 0x5D3D6E
# Workload columns the vector env keeps stacked over envs (what steps, observations and `episodes` read).
STACKED_COLUMNS = tuple(name for name in WORKLOAD_FIELDS if name != "uniforms")
BATCHED_NO_RUNS = NO_RUNS[None]  # the kernel's placeholder for "no acceptance draws", one env axis more
# Info arrays of one entry per task of the batch (zero-padded to n_max), and the dtypes SyncVectorEnv gives the
# single env's info values that are not float64 (its 0-d bool arrays stack into bool arrays).
PER_TASK_INFO_KEYS = ("bandwidth", "completion_times")
INFO_DTYPES = {"batch_size": np.int64, "speculation_length": np.int64, "action_clipped": np.bool_}
# Below this many stepping envs per worker thread, one thread serves them all (a parallel region's start-up
# costs more than it saves on a few batches).
PARALLEL_MIN_ENVS = 32

class EdgeSDVectorEnv(VectorEnv):
    """``num_envs`` copies of :class:`~sdedge_gym.env.EdgeSDEnv` stepped together with numpy.

    ``EdgeSDVectorEnv(num_envs=1, scenario="paper", action_mode="discrete", autoreset_mode=NEXT_STEP,
    render_mode=None, config=None, num_threads=1, max_episode_steps=None, **overrides)``: the single env's
    arguments (its docstring is the env card: spaces, reward, observation, info) plus ``num_envs``,
    ``autoreset_mode``, ``max_episode_steps`` (None or >= num_tasks; see the module docstring) and
    ``num_threads``: with more than one, the kernel serves chunks of envs on that many threads (it pays on
    an idle machine at hundreds of envs; on a shared one, or beside a learner's own threads, one thread is
    steadier, hence the default). Actions are the
    single env's, batched: an array ``(num_envs, ...)`` in the discrete and hybrid modes, a dict of arrays
    in the dict mode. Attributes: ``scenario``, ``model``, ``scales``, ``action_mode``, ``episodes`` (the
    current :class:`~sdedge_gym.episode.Episode` of every env), ``clocks`` (every env's
    :class:`~sdedge_gym.episode.EpisodeClock` as an :class:`~sdedge_gym.episode.EpisodeClocks`; ``clocks.row(i)``
    is sub-env i's clock as the single env holds it) and, read from it, ``next_task``, ``uplink_end``,
    ``inference_end``.
    """

    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}  # noqa: RUF012
    # What a subclass for another env family changes (EdgeSDOnlineVectorEnv): the single env whose spaces,
    # masks and episodes it reproduces, and the info keys it reports every step and at an episode's end.
    single_env_class: ClassVar[type[EdgeSDEnv]] = EdgeSDEnv
    info_keys: ClassVar[tuple[str, ...]] = STEP_INFO_KEYS
    kpi_keys: ClassVar[tuple[str, ...]] = KPI_KEYS
    per_task_info_keys: ClassVar[tuple[str, ...]] = PER_TASK_INFO_KEYS
    info_dtypes: ClassVar[dict[str, type]] = INFO_DTYPES

    def __init__(self, num_envs: int = 1, scenario: str | ScenarioConfig = "paper", action_mode: str = "discrete",
                 autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP, render_mode: str | None = None,
                 config: Mapping[str, Any] | ScenarioConfig | None = None, num_threads: int = 1,
                 max_episode_steps: int | None = None, **overrides: Any) -> None:
        check_override_keys(type(self).__name__, overrides)
        if not isinstance(num_envs, int | np.integer) or isinstance(num_envs, bool) or num_envs < 1:
            raise ValueError(f"num_envs = {num_envs!r} is invalid; allowed: an integer >= 1")
        threads = numba.config.NUMBA_NUM_THREADS
        if (not isinstance(num_threads, int | np.integer) or isinstance(num_threads, bool)
                or not 1 <= num_threads <= threads):
            raise ValueError(f"num_threads = {num_threads!r} is invalid; allowed: an integer in [1, {threads}] "
                             "(numba's thread count)")
        self.num_threads = int(num_threads)
        try:
            autoreset_mode = AutoresetMode(autoreset_mode)
        except ValueError:
            autoreset_mode = None
        if autoreset_mode not in AUTORESET_MODES:
            raise ValueError(f"autoreset_mode is invalid; allowed: "
                             f"{' | '.join(repr(m.value) for m in AUTORESET_MODES)} (or the AutoresetMode)")
        if render_mode is not None:
            raise ValueError(f"render_mode = {render_mode!r} is invalid for the vector env; allowed: None "
                             "(render a single EdgeSDEnv instead)")
        # The single env validates the arguments and defines the spaces: the two can never disagree.
        template = self._single_env(scenario, action_mode, config, overrides)
        self.scenario: ScenarioConfig = template.scenario
        longest = self.longest_episode(self.scenario.num_tasks)
        if max_episode_steps is not None and (not isinstance(max_episode_steps, int | np.integer)
                                              or max_episode_steps < longest):
            raise ValueError(f"max_episode_steps = {max_episode_steps!r} is invalid for the native vector env; "
                             f"allowed: None or an integer >= {self.longest_episode_name} ({longest}), which "
                             f"never binds (episodes end within {self.longest_episode_name} steps). This env does "
                             "not truncate: for a shorter limit use gymnasium.make_vec(..., vectorization_mode='sync')")
        self.max_episode_steps = max_episode_steps
        self.model: ServingModel = template.model
        self.scales: ObservationScales = template.scales
        self._workload_parameters = template._workload_parameters
        self.action_mode = action_mode
        self.actions = template.actions
        self.render_mode = None
        self.num_envs = int(num_envs)
        self.metadata = {**type(self).metadata, "autoreset_mode": autoreset_mode}
        self.autoreset_mode = autoreset_mode
        self.single_action_space = template.action_space
        self.single_observation_space = template.observation_space
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)

        cfg = self.scenario
        e, k, n_max = self.num_envs, cfg.num_tasks, cfg.max_batch
        self.n_max, self.l_max, self.num_tasks = n_max, cfg.max_speculation, k
        self._mask_table = template._mask_table  # the single env's masks, indexed by its batch limit (and wait)
        self._rngs: list[np.random.Generator | None] = [None] * e
        self._autoreset_rng: np.random.Generator | None = None
        # Every env's episode, stacked: (num_envs, K) workload columns, the kernel's task arrays, and the
        # observation's task table.
        self._columns = {name: np.zeros((e, k), dtype=np.int64 if name in ("prompt_len", "output_len") else float)
                         for name in STACKED_COLUMNS}
        self._prompt = np.zeros((e, k))
        self._channel = np.ones((e, k))
        self._runs = (np.zeros((e, k, cfg.workload.max_new_tokens), dtype=np.int32)
                      if cfg.acceptance == "sampled" else None)
        self._task_table = np.zeros((e, k + n_max, 6), dtype=np.float32)
        self._all_visible = np.full(e, n_max, dtype=np.int64)  # _visible_tasks' None: every row of the window
        # One kernel workspace per worker thread (chunks of envs are served in parallel).
        self._works = np.stack([kernels.workspace(cfg) for _ in range(self.num_threads)])
        # Every env's episode state (the single env's EpisodeClock as arrays) and running KPIs
        self.clocks = EpisodeClocks.zeros(e)
        self._completion_sum = np.zeros(e)
        self._completion_max = np.zeros(e)
        self._tokens = np.zeros(e)
        self._needs_reset = np.zeros(e, dtype=bool)  # NEXT_STEP: reset on the next step
        self._started = False

    def _single_env(self, scenario: str | ScenarioConfig, action_mode: str,
                    config: Mapping[str, Any] | ScenarioConfig | None, overrides: dict[str, Any]) -> EdgeSDEnv:
        """The single env of these arguments (it validates them): the template of spaces, scales and masks."""
        return self.single_env_class(scenario, action_mode, None, config, **overrides)

    longest_episode_name: ClassVar[str] = "num_tasks"

    @staticmethod
    def longest_episode(num_tasks: int) -> int:
        """The most steps an episode takes (``longest_episode_name``): one task a step."""
        return num_tasks

    # ------------------------------------------------------------------ Gymnasium API

    def reset(self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None):
        """Reset every env (or those of ``options["reset_mask"]``); int seeds give sub-env i ``seed + i``."""
        if seed is None:
            seeds: list[int | None] = [None] * self.num_envs
        elif isinstance(seed, int | np.integer):
            seeds = [int(seed) + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"seed has {len(seeds)} entries; allowed: None, an int, or {self.num_envs} seeds")
        mask = np.ones(self.num_envs, dtype=bool)
        if options is not None and "reset_mask" in options:
            mask = np.asarray(options["reset_mask"])
            if mask.shape != (self.num_envs,) or mask.dtype != np.bool_ or not mask.any():
                raise ValueError(f"options['reset_mask'] is invalid; allowed: a bool array of shape "
                                 f"({self.num_envs},) with at least one True")
        indices = np.flatnonzero(mask)
        self._reset_episodes(indices, seeds, seed is not None)
        self._needs_reset[indices] = False
        self._started = True
        infos = {"action_mask": self.action_masks(), "_action_mask": mask.copy()}
        infos["action_mask"][~mask] = False
        return self._observations(), infos

    def step(self, actions):
        if not self._started:
            raise RuntimeError(f"{type(self).__name__}.step() called before reset(); call reset() first")
        waits, requested, spec_len, weights = self.actions.decode_many(actions, self.num_envs,
                                                                       wait=self.single_env_class.has_wait)
        e = self.num_envs
        resetting = self._needs_reset.copy()
        stepping = np.flatnonzero(~resetting)
        rewards = np.zeros(e)
        terminated = np.zeros(e, dtype=bool)
        infos = self._empty_infos()

        if stepping.size:
            self._advance(stepping, waits[stepping], requested[stepping], spec_len[stepping],
                          None if weights is None else weights[stepping], rewards, terminated, infos)

        if self.autoreset_mode == AutoresetMode.NEXT_STEP:
            if resetting.any():
                self._autoreset(np.flatnonzero(resetting))
            self._needs_reset = terminated.copy()
            observations = self._observations()
        else:
            observations = self._observations()
            done = np.flatnonzero(terminated)
            if done.size:
                infos = self._same_step_reset(done, observations, infos)
                observations = self._observations()
            resetting = terminated
        infos["action_mask"] = self.action_masks()
        infos["_action_mask"] = np.ones(e, dtype=bool)
        if resetting.any():  # a freshly reset env reports only its reset info (action_mask), as SyncVectorEnv
            for key in (*self.info_keys, *self.kpi_keys):
                infos[key][resetting] = 0
                infos["_" + key][resetting] = False
        return observations, rewards, terminated, np.zeros(e, dtype=bool), _present_keys(infos)

    def close_extras(self, **kwargs: Any) -> None:
        # Gymnasium 1.1's __del__ closes an env whose __init__ raised (a bad argument): nothing to release
        self._started = False

    @property
    def episodes(self) -> list[Episode | None]:
        """The current :class:`~sdedge_gym.episode.Episode` of every env (built on demand from the stacked
        columns; in sampled mode with the acceptance runs and without the raw uniforms)."""
        if not self._started:
            return [None] * self.num_envs
        out = []
        for i in range(self.num_envs):
            workload = Workload(**{name: self._columns[name][i].copy() for name in STACKED_COLUMNS}, uniforms=None)
            out.append(Episode(workload, self._channel[i].copy(), None if self._runs is None else self._runs[i].copy()))
        return out

    # ------------------------------------------------------------------ the episode state

    @property
    def next_task(self) -> np.ndarray:
        """(num_envs,) tasks committed in each env (``clocks.next_task``)."""
        return self.clocks.next_task

    @property
    def uplink_end(self) -> np.ndarray:
        """(num_envs,) end of each env's last uplink slot, s (``clocks.uplink_end``)."""
        return self.clocks.uplink_end

    @property
    def inference_end(self) -> np.ndarray:
        """(num_envs,) end of each env's last batch's service, s (``clocks.inference_end``)."""
        return self.clocks.inference_end

    @property
    def _clock_arrays(self) -> tuple[np.ndarray, ...]:
        """The clock's arrays in the order :func:`kernels.commit_many` takes them."""
        c = self.clocks
        return c.next_task, c.uplink_end, c.inference_end, c.batches, c.now

    # ------------------------------------------------------------------ masks

    def batch_limit(self) -> np.ndarray:
        """(num_envs,) the largest valid batch of every env: min(memory/action limit, tasks left)."""
        return np.minimum(self.model.batch_limit, self.num_tasks - self.next_task)

    def action_masks(self) -> np.ndarray:
        """(num_envs, n_max + l_max + 1) bool: every env's valid actions in MaskablePPO's layout."""
        return self._mask_table[self.batch_limit()]  # fancy indexing: a fresh, writable array

    # ------------------------------------------------------------------ internals

    def _reset_episodes(self, indices: np.ndarray, seeds: list[int | None], seeded: bool) -> None:
        """New episodes for ``indices`` at ``reset``: sub-env i's from its own Generator, seeded ``seeds[i]``
        (or continuing its stream when None); ``seeded``: the call had a seed, which reseeds the autoreset stream."""
        if not self._started:
            self._rngs = [None] * self.num_envs
        if seeded or self._autoreset_rng is None:  # the autoreset stream follows the reset seeds
            given = [int(x) for x in seeds if x is not None]
            self._autoreset_rng = np.random.default_rng(np.random.SeedSequence([*given, AUTORESET_STREAM])
                                                        if given else None)
        for i in indices:
            if seeds[i] is not None or self._rngs[i] is None:
                self._rngs[i], _ = seeding.np_random(seeds[i])
        raws = [raw_draws(self.scenario, self._rngs[i]) for i in indices]
        self._store(indices, tuple(None if x[0] is None else np.stack(x) for x in zip(*raws, strict=True)))

    def _autoreset(self, indices: np.ndarray) -> None:
        """New episodes for ``indices``, drawn for all of them in one batched call from the autoreset stream."""
        self._store(indices, raw_draws(self.scenario, self._autoreset_rng, count=indices.size))

    def _store(self, indices: np.ndarray, raw: tuple) -> None:
        """Derive the episodes of the raw draws ``raw`` (rows over ``indices``) and start them (:meth:`_write`).

        One call of the single env's compiled derivation (:func:`sdedge_gym.env.derive_columns`) for all of
        them: workload columns, channel figures, acceptance runs and the observation's task table.
        """
        if indices.size == 0:
            return
        self._write(indices, derive_columns(self.scenario, self._workload_parameters, raw, self.num_tasks))

    def _write(self, indices: np.ndarray, columns: Mapping[str, Any]) -> None:
        """Stack the episodes ``columns`` (rows over ``indices``: the workload columns, ``channel``, ``runs``
        and the observation's ``table``, K rows) into the env's arrays and restart those envs' clocks."""
        if self._runs is not None:
            self._runs[indices] = columns["runs"]
        for name in STACKED_COLUMNS:
            self._columns[name][indices] = columns[name]
        self._prompt[indices] = columns["prompt_len"]
        self._channel[indices] = columns["channel"]
        self._task_table[indices, : self.num_tasks] = columns["table"][:, : self.num_tasks]
        self.clocks.restart(indices)
        self._completion_sum[indices] = 0.0
        self._completion_max[indices] = 0.0
        self._tokens[indices] = 0.0

    def _observations(self) -> np.ndarray:
        """(num_envs, 4 + 6 n_max) float32: the single env's observation of every env."""
        observations = np.empty((self.num_envs, EdgeSDEnv.observation_size(self.n_max)), dtype=np.float32)
        observations[:, :len(GLOBAL_FEATURES)] = global_feature_values(
            self.model, self.scales, self.num_tasks, self.next_task, self._uplink_times(), self.inference_end,
            self.batch_limit())
        visible = self._visible_tasks()  # the rows the single env hides are zeros
        kernels.task_windows(self._task_table, self.next_task, self._all_visible if visible is None else visible,
                             observations, len(GLOBAL_FEATURES))
        return observations

    def _uplink_times(self) -> np.ndarray:
        """(num_envs,) the time u the global features read: the uplink's end (the single env's ``_uplink_time``)."""
        return self.uplink_end

    def _visible_tasks(self) -> np.ndarray | None:
        """(num_envs,) rows of the task window shown (the single env's ``_visible_tasks``); None: all n_max."""
        return None

    def _advance(self, envs: np.ndarray, waits: np.ndarray, requested: np.ndarray, spec_len: np.ndarray,
                 weights: np.ndarray | None, rewards: np.ndarray, terminated: np.ndarray,
                 infos: dict[str, np.ndarray]) -> None:
        """Step ``envs`` (the rest of the arguments are their rows): commit one batch in each (no waits)."""
        size = np.minimum(requested, self.batch_limit()[envs])
        self._dispatch(envs, size, spec_len, weights, size != requested, rewards, terminated, infos)

    def _dispatch(self, envs: np.ndarray, size: np.ndarray, spec_len: np.ndarray, weights: np.ndarray | None,
                  clipped: np.ndarray, rewards: np.ndarray, terminated: np.ndarray,
                  infos: dict[str, np.ndarray]) -> None:
        """Commit ``size`` tasks at ``spec_len`` in each of ``envs``; write their rewards, ends and infos (the
        step's keys, and the KPIs of the envs whose episode ends)."""
        step = self._commit(envs, size, spec_len, weights)
        step["action_clipped"] = clipped
        rewards[envs] = step["reward"]
        terminated[envs] = self.next_task[envs] >= self.num_tasks
        for key in self.info_keys:
            if key in step:
                infos[key][envs] = step[key]
                infos["_" + key][envs] = True
        done = envs[terminated[envs]]
        if done.size:
            for key, values in self._episode_kpis(done).items():
                infos[key][done] = values
                infos["_" + key][done] = True

    def _episode_kpis(self, done: np.ndarray) -> dict[str, np.ndarray]:
        """The KPIs (``kpi_keys``) of the envs ``done``, whose episodes just ended (the single env's
        ``episode_kpis``)."""
        makespan = self._completion_max[done]
        return {"mean_latency": self._completion_sum[done] / self.num_tasks, "makespan": makespan,
                "throughput": np.where(makespan > 0, self._tokens[done] / np.where(makespan > 0, makespan, 1.0), 0.0)}

    def _commit(self, envs: np.ndarray, batch_size: np.ndarray, spec_len: np.ndarray, weights) -> dict[str, Any]:
        """Commit ``batch_size`` tasks (valid sizes) in each of ``envs``: one call of the compiled kernel."""
        cfg = self.scenario
        e = self.num_envs
        size = np.zeros(e, dtype=np.int64)
        size[envs] = batch_size
        lengths = np.zeros(e, dtype=np.int64)
        lengths[envs] = spec_len
        bandwidth = np.zeros((e, self.n_max))
        explicit = self.actions.explicit_band
        if explicit:
            bandwidth[envs] = self.actions.shares(weights, size[envs]) * cfg.uplink.bandwidth
        completion = np.zeros((e, self.n_max))
        results = np.zeros((e, kernels.NUM_RESULTS))
        sampled = self._runs is not None
        threads = min(self.num_threads, max(1, envs.size // PARALLEL_MIN_ENVS))
        commit = kernels.commit_many if threads == 1 else kernels.commit_many_parallel
        commit(
            self.model.kernel_parameters, self._prompt, self._columns["output_len"], self._columns["alpha"],
            self._columns["payload_bits"], self._channel, self._runs if sampled else BATCHED_NO_RUNS, envs, size,
            lengths, sampled, explicit, bandwidth, completion, results, *self._clock_arrays, self._completion_sum,
            self._completion_max, self._tokens,
            cfg.objective == "mean_latency",
            self._works[0] if threads == 1 else self._works[:threads])
        r = results[envs]
        return {
            "reward": -r[:, kernels.COST], "batch_size": size[envs], "speculation_length": spec_len,
            "bandwidth": bandwidth[envs], "uplink_slot": r[:, kernels.SLOT], "wait": r[:, kernels.WAIT],
            "service_time": r[:, kernels.SERVICE_TIME], "completion_times": completion[envs],
            "tokens": r[:, kernels.TOKENS], "accepted_drafts": r[:, kernels.ACCEPTED], "cost": r[:, kernels.COST],
        }

    def _same_step_reset(self, done: np.ndarray, observations: np.ndarray, infos: dict[str, Any]) -> dict[str, Any]:
        """SAME_STEP: keep the terminal observation and info of ``done`` envs, then reset them."""
        final_obs = np.full(self.num_envs, None, dtype=object)
        for i in done:
            final_obs[i] = observations[i]
        final_info: dict[str, Any] = {}
        for key in (*self.info_keys, *self.kpi_keys):
            values = np.zeros_like(infos[key])
            values[done] = infos[key][done]
            final_info[key], final_info["_" + key] = values, np.zeros(self.num_envs, dtype=bool)
            final_info["_" + key][done] = infos["_" + key][done]
        masks = self.action_masks()
        final_info["action_mask"] = np.zeros_like(masks)
        final_info["action_mask"][done] = masks[done]
        final_info["_action_mask"] = np.zeros(self.num_envs, dtype=bool)
        final_info["_action_mask"][done] = True
        flag = np.zeros(self.num_envs, dtype=bool)
        flag[done] = True
        infos = {**infos, "final_obs": final_obs, "_final_obs": flag, "final_info": final_info,
                 "_final_info": flag.copy()}
        self._autoreset(done)
        return infos

    def _empty_infos(self) -> dict[str, np.ndarray]:
        """Zeroed info arrays (``info_keys`` and ``kpi_keys``) of the dtypes SyncVectorEnv would give the single
        env's info values, and their all-False ``_key`` masks."""
        e = self.num_envs
        infos: dict[str, np.ndarray] = {}
        for key in (*self.info_keys, *self.kpi_keys):
            shape = (e, self.n_max) if key in self.per_task_info_keys else (e,)
            infos[key] = np.zeros(shape, dtype=self.info_dtypes.get(key, np.float64))
            infos["_" + key] = np.zeros(e, dtype=bool)
        return infos


def _present_keys(infos: dict[str, Any]) -> dict[str, Any]:
    """Drop the keys no env has (as SyncVectorEnv never creates them), recursively for ``final_info``."""
    out = {}
    for key, value in infos.items():
        if key.startswith("_"):
            continue
        if isinstance(value, dict):
            value = _present_keys(value)
        if infos["_" + key].any():
            out[key], out["_" + key] = value, infos["_" + key]
    return out

