"""A natively vectorised EdgeSD environment: numpy across environments over the same core.

``gymnasium.make_vec(id, num_envs=N)`` builds it for every registered id (``vector_entry_point``).
Sub-env i is the single :class:`~sdedge_gym.env.EdgeSDEnv` seeded with ``seed + i`` (as ``SyncVectorEnv``
seeds it): the same episodes, observations, rewards and infos, step for step. What differs is how it is
computed: one step commits a batch in every environment with array calls across environments (the
vectorised uplink solver, task progress, round times and pipeline schedule that the oracle's segment
tables use), grouped by speculation length, so that no Python loop runs over environments in the step's
hot path. The only per-environment loop draws a new workload when an episode ends, from that sub-env's
own ``numpy.random.Generator``: that is what keeps each sub-env identical to the single env.

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
from typing import Any

import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from sdedge_gym.actions import (
    DICT_ACTION_KEYS,
    action_mask_table,
    finite_array,
    hybrid_batch_and_speculation,
    shares_from_logits,
    shares_from_weights,
)
from sdedge_gym.config import ScenarioConfig
from sdedge_gym.env import EdgeSDEnv, ObservationScales, global_feature_values
from sdedge_gym.episode import Episode, ServingModel
from sdedge_gym.scenarios import check_override_keys
from sdedge_gym.service import (
    RoundTimes,
    completion_offsets,
    micro_batch_index,
    micro_batch_load,
    pipeline_schedule,
    round_times,
    serve_batch,
)
from sdedge_gym.speculation import acceptance_runs, task_progress
from sdedge_gym.uplink import channel_coefficient, closed_form_allocation, slot_length, user_rate
from sdedge_gym.workload import draw_workloads

AUTORESET_MODES = (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP)
STEP_INFO_KEYS = ("batch_size", "speculation_length", "bandwidth", "uplink_slot", "wait", "service_time",
                  "completion_times", "tokens", "accepted_drafts", "action_clipped")
KPI_KEYS = ("mean_latency", "makespan", "throughput")
# When EdgeSDVectorEnv._serve merges speculation-length groups into one pipeline-schedule call (measured on
# the small and paper presets): one round of the schedule's loop costs about as much as this many padded
# (row, round) cells, and past this many rows a merged call's column-wise writes to its (rows, rounds)
# arrays fall out of cache and cost more than the round loops they save.
ROUND_COST_IN_ROW_ROUNDS = 250
MERGE_MAX_ROWS = 128


class EdgeSDVectorEnv(VectorEnv):
    """``num_envs`` copies of :class:`~sdedge_gym.env.EdgeSDEnv` stepped together with numpy.

    ``EdgeSDVectorEnv(num_envs=1, scenario="paper", action_mode="discrete", autoreset_mode=NEXT_STEP,
    render_mode=None, config=None, max_episode_steps=None, **overrides)``: the single env's arguments (its
    docstring is the env card: spaces, reward, observation, info) plus ``num_envs``, ``autoreset_mode`` and
    ``max_episode_steps`` (None or >= num_tasks; see the module docstring). Actions are the
    single env's, batched: an array ``(num_envs, ...)`` in the discrete and hybrid modes, a dict of arrays
    in the dict mode. Attributes: ``scenario``, ``model``, ``scales``, ``action_mode``, ``episodes`` (the
    current :class:`~sdedge_gym.episode.Episode` of every env), ``next_task``, ``uplink_end``,
    ``inference_end``.
    """

    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}  # noqa: RUF012

    def __init__(self, num_envs: int = 1, scenario: str | ScenarioConfig = "paper", action_mode: str = "discrete",
                 autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP, render_mode: str | None = None,
                 config: Mapping[str, Any] | ScenarioConfig | None = None, max_episode_steps: int | None = None,
                 **overrides: Any) -> None:
        check_override_keys(type(self).__name__, overrides)
        if not isinstance(num_envs, int | np.integer) or isinstance(num_envs, bool) or num_envs < 1:
            raise ValueError(f"num_envs = {num_envs!r} is invalid; allowed: an integer >= 1")
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
        template = EdgeSDEnv(scenario, action_mode, None, config, **overrides)
        self.scenario: ScenarioConfig = template.scenario
        if max_episode_steps is not None and (not isinstance(max_episode_steps, int | np.integer)
                                              or max_episode_steps < self.scenario.num_tasks):
            raise ValueError(f"max_episode_steps = {max_episode_steps!r} is invalid for the native vector env; "
                             f"allowed: None or an integer >= num_tasks ({self.scenario.num_tasks}), which never "
                             "binds (episodes end within num_tasks steps). This env does not truncate: for a "
                             "shorter limit use gymnasium.make_vec(..., vectorization_mode='sync')")
        self.max_episode_steps = max_episode_steps
        self.model: ServingModel = template.model
        self.scales: ObservationScales = template.scales
        self.action_mode = action_mode
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
        self._mask_table = action_mask_table(n_max, cfg.max_speculation)  # row b: the mask of batch limit b
        self._rngs: list[np.random.Generator | None] = [None] * e
        self.episodes: list[Episode | None] = [None] * e
        # Every env's episode, stacked: (num_envs, K) task columns and the observation's task table.
        self._prompt = np.zeros((e, k))
        self._output = np.zeros((e, k), dtype=np.int64)
        self._payload = np.zeros((e, k))
        self._channel = np.ones((e, k))
        self._alpha = np.zeros((e, k))
        self._runs = (np.zeros((e, k, cfg.workload.max_new_tokens), dtype=np.int32)
                      if cfg.acceptance == "sampled" else None)
        self._task_table = np.zeros((e, k + n_max, 6), dtype=np.float32)
        # Clocks and running KPIs
        self.next_task = np.zeros(e, dtype=np.int64)
        self.uplink_end = np.zeros(e)
        self.inference_end = np.zeros(e)
        self._completion_sum = np.zeros(e)
        self._completion_max = np.zeros(e)
        self._tokens = np.zeros(e)
        self._needs_reset = np.zeros(e, dtype=bool)  # NEXT_STEP: reset on the next step
        self._started = False

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
        elif not self._started:
            self._rngs = [None] * self.num_envs
        indices = np.flatnonzero(mask)
        for i in indices:
            if seeds[i] is not None or self._rngs[i] is None:
                self._rngs[i], _ = seeding.np_random(seeds[i])
        self._draw(indices)
        self._needs_reset[indices] = False
        self._started = True
        infos = {"action_mask": self.action_masks(), "_action_mask": mask.copy()}
        infos["action_mask"][~mask] = False
        return self._observations(), infos

    def step(self, actions):
        if not self._started:
            raise RuntimeError("EdgeSDVectorEnv.step() called before reset(); call reset() first")
        requested, spec_len, weights = self._decode(actions)
        e = self.num_envs
        resetting = self._needs_reset.copy()
        stepping = np.flatnonzero(~resetting)
        rewards = np.zeros(e)
        terminated = np.zeros(e, dtype=bool)
        infos = _empty_step_infos(e, self.n_max)

        if stepping.size:
            step = self._commit(stepping, requested[stepping], spec_len[stepping],
                                None if weights is None else weights[stepping])
            rewards[stepping] = step["reward"]
            terminated[stepping] = self.next_task[stepping] >= self.num_tasks
            for key in STEP_INFO_KEYS:
                infos[key][stepping] = step[key]
                infos["_" + key][stepping] = True
            done = stepping[terminated[stepping]]
            if done.size:
                makespan = self._completion_max[done]
                infos["mean_latency"][done] = self._completion_sum[done] / self.num_tasks
                infos["makespan"][done] = makespan
                infos["throughput"][done] = np.where(makespan > 0, self._tokens[done] / np.where(
                    makespan > 0, makespan, 1.0), 0.0)
                for key in KPI_KEYS:
                    infos["_" + key][done] = True

        if self.autoreset_mode == AutoresetMode.NEXT_STEP:
            if resetting.any():
                self._draw(np.flatnonzero(resetting))
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
            for key in (*STEP_INFO_KEYS, *KPI_KEYS):
                infos[key][resetting] = 0
                infos["_" + key][resetting] = False
        return observations, rewards, terminated, np.zeros(e, dtype=bool), _present_keys(infos)

    def close_extras(self, **kwargs: Any) -> None:
        self.episodes = [None] * self.num_envs

    # ------------------------------------------------------------------ masks

    def batch_limit(self) -> np.ndarray:
        """(num_envs,) the largest valid batch of every env: min(memory/action limit, tasks left)."""
        return np.minimum(self.model.batch_limit, self.num_tasks - self.next_task)

    def action_masks(self) -> np.ndarray:
        """(num_envs, n_max + l_max + 1) bool: every env's valid actions in MaskablePPO's layout."""
        return self._mask_table[self.batch_limit()]  # fancy indexing: a fresh, writable array

    # ------------------------------------------------------------------ internals

    def _draw(self, indices: np.ndarray) -> None:
        """New episodes for ``indices``, each from its env's own Generator (the single env's reset).

        Only the draws run per env; what an Episode derives from its workload (channel coefficients,
        acceptance runs) and the observation's task table are computed for all of them at once.
        """
        if indices.size == 0:
            return
        cfg = self.scenario
        # Draws per env from its own Generator, derived columns computed once across the resetting envs.
        columns, workloads = draw_workloads(cfg, [self._rngs[i] for i in indices])
        channel = channel_coefficient(cfg.uplink, columns["channel_gain"], columns["spectral_efficiency"])
        runs = None
        if self._runs is not None:
            runs = acceptance_runs(columns["uniforms"], columns["alpha"])
            self._runs[indices] = runs
        for j, (i, workload) in enumerate(zip(indices, workloads, strict=True)):
            self.episodes[i] = Episode(workload, channel[j], None if runs is None else runs[j])
        self._prompt[indices] = columns["prompt_len"]
        self._output[indices] = columns["output_len"]
        self._payload[indices] = columns["payload_bits"]
        self._channel[indices] = channel
        self._alpha[indices] = columns["alpha"]
        self._task_table[indices, : self.num_tasks] = task_features(
            self.model, self.scales, channel, columns["prompt_len"], columns["payload_bits"],
            columns["alpha"] if cfg.clairvoyant else columns["alpha_estimate"],
            columns["output_len"] if cfg.clairvoyant else columns["output_hint"])
        self.next_task[indices] = 0
        self.uplink_end[indices] = 0.0
        self.inference_end[indices] = 0.0
        self._completion_sum[indices] = 0.0
        self._completion_max[indices] = 0.0
        self._tokens[indices] = 0.0

    def _observations(self) -> np.ndarray:
        """(num_envs, 4 + 6 n_max) float32: the single env's observation of every env."""
        global_features = global_feature_values(self.model, self.scales, self.num_tasks, self.next_task,
                                                self.uplink_end, self.inference_end, self.batch_limit())
        rows = self.next_task[:, None] + np.arange(self.n_max)
        window = np.take_along_axis(self._task_table, rows[:, :, None], axis=1)
        return np.concatenate([global_features, window.reshape(self.num_envs, -1)], axis=1)

    def _commit(self, envs: np.ndarray, requested: np.ndarray, spec_len: np.ndarray, weights) -> dict[str, Any]:
        """Commit one batch in each of ``envs`` (what ``commit_batch`` does, across envs)."""
        cfg = self.scenario
        limit = np.minimum(self.model.batch_limit, self.num_tasks - self.next_task[envs])
        size = np.minimum(requested, limit)
        width = self.n_max
        rows = np.minimum(self.next_task[envs][:, None] + np.arange(width), self.num_tasks - 1)
        member = np.arange(width) < size[:, None]
        env_rows = envs[:, None]
        payload = np.where(member, self._payload[env_rows, rows], 0.0)  # zero payload: padding
        channel = self._channel[env_rows, rows]
        band = cfg.uplink.bandwidth
        if self.action_mode == "discrete":
            slot, bandwidth = closed_form_allocation(payload, channel, band, cfg.uplink.rate_model)
        else:
            shares = shares_from_logits if self.action_mode == "hybrid" else shares_from_weights
            bandwidth = shares(weights, size) * band
            slot = slot_length(payload, bandwidth, channel, cfg.uplink.rate_model)

        prompt = np.where(member, self._prompt[env_rows, rows], 0.0)
        output = np.where(member, self._output[env_rows, rows], 0)
        alpha = self._alpha[env_rows, rows]
        offsets, duration, accepted = self._serve(envs, rows, size, spec_len, prompt, output, alpha)

        ready = self.uplink_end[envs] + slot
        start = np.maximum(ready, self.inference_end[envs])
        finish = start + duration
        completion = np.where(member, start[:, None] + offsets, 0.0)
        if cfg.objective == "mean_latency":
            cost = completion.sum(axis=-1) / self.num_tasks
        else:
            cost = finish - self.inference_end[envs]
        tokens = output.sum(axis=-1).astype(float)
        info = {
            "reward": -cost, "batch_size": size, "speculation_length": spec_len,
            "bandwidth": np.where(member, bandwidth, 0.0), "uplink_slot": slot, "wait": start - ready,
            "service_time": finish - start, "completion_times": completion, "tokens": tokens,
            "accepted_drafts": accepted, "action_clipped": size != requested,
        }
        self.next_task[envs] += size
        self.uplink_end[envs] = ready
        self.inference_end[envs] = finish
        self._completion_sum[envs] += completion.sum(axis=-1)
        self._completion_max[envs] = np.maximum(self._completion_max[envs],
                                                np.where(member, completion, -np.inf).max(axis=-1))
        self._tokens[envs] += tokens
        return info

    def _serve(self, envs: np.ndarray, rows: np.ndarray, size: np.ndarray, spec_len: np.ndarray, prompt: np.ndarray,
               output: np.ndarray, alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``serve_batch`` of every env's padded batch: (completion offsets, duration, accepted drafts).

        Task progress and round times take a scalar speculation length, so they run once per length in
        use (at most l_max + 1 array calls, none per env). The pipeline schedule's numpy loop runs once per
        round, so its fixed cost is paid per round of every call: groups of different lengths are merged
        into one schedule call, their round times padded with inactive rounds, when the padding costs less
        than the round loop it saves (:data:`ROUND_COST_IN_ROW_ROUNDS`, :data:`MERGE_MAX_ROWS`). Each row's
        recursion is independent of the others and an inactive round changes nothing, so any merge gives
        serve_batch's floats exactly.
        """
        cfg, model = self.scenario, self.model
        width = rows.shape[-1]
        offsets = np.zeros((envs.size, width))
        duration = np.zeros(envs.size)
        accepted = np.zeros(envs.size)
        groups = []  # (env positions, speculation length, task progress)
        for l in np.unique(spec_len).tolist():
            group = np.flatnonzero(spec_len == l)
            runs = None if self._runs is None else self._runs[envs[group][:, None], rows[group]]
            groups.append((group, l, task_progress(output[group], alpha[group], l, runs)))
        # Longest first; a group joins the last merged set if padding it to that set's rounds is cheaper.
        groups.sort(key=lambda g: -g[2].max_rounds)
        merged: list[list[tuple]] = []
        for g in groups:
            if (merged and sum(h[0].size for h in merged[-1]) + g[0].size <= MERGE_MAX_ROWS
                    and g[0].size * (merged[-1][0][2].max_rounds - g[2].max_rounds)
                    <= ROUND_COST_IN_ROW_ROUNDS * g[2].max_rounds):
                merged[-1].append(g)
            else:
                merged.append([g])
        for part in merged:
            if len(part) == 1:  # alone: serve_batch itself
                group, l, progress = part[0]
                service = serve_batch(model.draft, model.target, cfg.fronthaul, prompt[group], output[group],
                                      progress, l, cfg.pipelining, batch_size=size[group])
                offsets[group] = service.completion
                duration[group] = service.duration
                accepted[group] = service.accepted_drafts
                continue
            # serve_batch's steps, with one schedule call over the part's groups
            index = np.concatenate([g[0] for g in part])
            which = micro_batch_index(size[index], width, cfg.pipelining)
            rounds = np.zeros((index.size, width), dtype=np.int64)
            num_rounds = part[0][2].max_rounds
            padded = [[np.zeros((index.size, num_rounds)) for _ in range(3)] for _ in (0, 1)]
            active = [np.zeros((index.size, num_rounds), dtype=bool) for _ in (0, 1)]
            begin = 0
            for group, l, progress in part:
                block = slice(begin, begin + group.size)
                begin += group.size
                rounds[block] = progress.rounds
                accepted[group] = progress.accepted_drafts.sum(axis=-1)
                for x in (0, 1):
                    load = micro_batch_load(prompt[group], progress, which[block] == x)
                    times = round_times(model.draft, model.target, cfg.fronthaul, load, l)
                    for column, value in zip(padded[x], (times.draft, times.fronthaul, times.verify), strict=True):
                        column[block, : progress.max_rounds] = value
                    active[x][block, : progress.max_rounds] = load.active > 0
            schedule_a, schedule_b = pipeline_schedule(RoundTimes(*padded[0]), active[0], RoundTimes(*padded[1]),
                                                       active[1])
            offsets[index] = completion_offsets(schedule_a, schedule_b, which, rounds)
            duration[index] = np.maximum(schedule_a.verify_end[..., -1], schedule_b.verify_end[..., -1])
        return offsets, duration, accepted

    def _same_step_reset(self, done: np.ndarray, observations: np.ndarray, infos: dict[str, Any]) -> dict[str, Any]:
        """SAME_STEP: keep the terminal observation and info of ``done`` envs, then reset them."""
        final_obs = np.full(self.num_envs, None, dtype=object)
        for i in done:
            final_obs[i] = observations[i]
        final_info: dict[str, Any] = {}
        for key in (*STEP_INFO_KEYS, *KPI_KEYS):
            values = np.zeros_like(infos[key])
            values[done] = infos[key][done]
            final_info[key], final_info["_" + key] = values, np.zeros(self.num_envs, dtype=bool)
            final_info["_" + key][done] = infos["_" + key][done]
        final_info["action_mask"] = np.zeros((self.num_envs, self.n_max + self.l_max + 1), dtype=bool)
        final_info["action_mask"][done] = self.action_masks()[done]
        final_info["_action_mask"] = np.zeros(self.num_envs, dtype=bool)
        final_info["_action_mask"][done] = True
        flag = np.zeros(self.num_envs, dtype=bool)
        flag[done] = True
        infos = {**infos, "final_obs": final_obs, "_final_obs": flag, "final_info": final_info,
                 "_final_info": flag.copy()}
        self._draw(done)
        return infos

    def _decode(self, actions) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(requested n, l, bandwidth logits or weights) per env; ValueError for an out-of-space action."""
        e, n_max, l_max = self.num_envs, self.n_max, self.l_max
        if self.action_mode == "discrete":
            values = finite_array(actions, "actions", (e, 2), f"integers [n - 1, l] per env with 0 <= n - 1 < {n_max} "
                                                          f"and 0 <= l <= {l_max}")
            _integers_in(values[:, 0], "actions[:, 0] (batch_size - 1)", 0, n_max - 1)
            _integers_in(values[:, 1], "actions[:, 1] (speculation_length)", 0, l_max)
            return values[:, 0].astype(np.int64) + 1, values[:, 1].astype(np.int64), None
        if self.action_mode == "hybrid":
            values = finite_array(actions, "actions", (e, 2 + n_max), f"{2 + n_max} numbers in [-1, 1] per env")
            outside = np.argwhere((values < -1.0) | (values > 1.0))
            if outside.size:
                i, j = outside[0]
                raise ValueError(f"actions[{i}, {j}] = {values[i, j].item()!r} is invalid for action_mode 'hybrid'; "
                                 "allowed: a number in [-1, 1]")
            n, l = hybrid_batch_and_speculation(values, n_max, l_max)
            return n, l, values[:, 2:]
        if not isinstance(actions, Mapping) or set(actions) != set(DICT_ACTION_KEYS):
            got = sorted(actions) if isinstance(actions, Mapping) else type(actions).__name__
            raise ValueError(f"actions = {got!r} is invalid for action_mode 'dict'; allowed: a mapping with "
                             f"exactly the keys {sorted(DICT_ACTION_KEYS)} of arrays over envs")
        n = finite_array(actions["batch_size_minus_one"], "actions['batch_size_minus_one']", (e,),
                         f"integers in [0, {n_max - 1}]")
        l = finite_array(actions["speculation_length"], "actions['speculation_length']", (e,),
                     f"integers in [0, {l_max}]")
        _integers_in(n, "actions['batch_size_minus_one']", 0, n_max - 1)
        _integers_in(l, "actions['speculation_length']", 0, l_max)
        weights = finite_array(actions["bandwidth"], "actions['bandwidth']", (e, n_max), f"{n_max} numbers in [0, 1]")
        if np.any((weights < 0.0) | (weights > 1.0)):
            raise ValueError(f"actions['bandwidth'] has entries outside [0, 1]; allowed: {n_max} numbers in "
                             "[0, 1] per env")
        return n.astype(np.int64) + 1, l.astype(np.int64), weights


def task_features(model: ServingModel, scales: ObservationScales, channel, prompt_len, payload_bits, acceptance,
                  output_len) -> np.ndarray:
    """(..., K, 6) the observation's per-task features, over any leading axes (here: envs).

    The same columns as :func:`sdedge_gym.env.task_feature_table` (``acceptance`` and ``output_len`` are
    the clairvoyant or the estimated values); the vector env tests check that both agree.
    """
    efficiency = user_rate(scales.equal_share, channel, model.config.uplink.rate_model) / scales.equal_share
    return np.stack([
        np.ones(np.shape(prompt_len)),
        prompt_len / scales.prompt_len,
        payload_bits / scales.payload,
        efficiency / (efficiency + scales.spectral_efficiency),
        acceptance,
        output_len / scales.output_len,
    ], axis=-1)


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


def _empty_step_infos(num_envs: int, n_max: int) -> dict[str, np.ndarray]:
    """Zeroed info arrays of the dtypes SyncVectorEnv would give the single env's info values."""
    dtypes = {"batch_size": np.int64, "speculation_length": np.int64, "action_clipped": np.bool_}
    infos: dict[str, np.ndarray] = {}
    for key in (*STEP_INFO_KEYS, *KPI_KEYS):
        shape = (num_envs, n_max) if key in ("bandwidth", "completion_times") else (num_envs,)
        infos[key] = np.zeros(shape, dtype=dtypes.get(key, np.float64))
        infos["_" + key] = np.zeros(num_envs, dtype=bool)
    return infos




def _integers_in(values: np.ndarray, name: str, low: int, high: int) -> None:
    bad = np.flatnonzero((values != np.rint(values)) | (values < low) | (values > high))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"{name}[{i}] = {values[i].item()!r} is invalid; allowed: an integer in [{low}, {high}]")
