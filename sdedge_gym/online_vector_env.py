"""The online family's native vector env: :class:`~sdedge_gym.vector_env.EdgeSDVectorEnv` with arrivals and waits.

``gymnasium.make_vec(online_id, num_envs=N)`` builds it for every ``sdedge/EdgeSD-Online-*`` id
(``vector_entry_point``). It is the offline vector env (one compiled :func:`sdedge_gym.kernels.commit_many`
call commits a batch in every dispatching env; the same autoreset modes, vector infos, masks and argument
checks) with what :class:`~sdedge_gym.online_env.EdgeSDOnlineEnv` changes in the single env, as arrays
over envs: the wait action, the decision epoch ``clocks.now``, the reward net of arrival times, the
online observation, the online info keys and KPIs.

Seeding (the contract): sub-env i owns an ``EdgeSDOnlineEnv`` that only draws its episodes (its
``reset``: the workload, then the arrival times, or a trace's). ``reset(seed=s)`` seeds it ``s + i``, and
every later episode of sub-env i (autoreset, or ``reset()`` without a seed) is that env's next ``reset()``:
sub-env i's episodes are exactly those of the single env seeded ``s + i`` and reset as often, as
``SyncVectorEnv`` would give, and each replays on a single env with ``reset(options={"episode": e})``
(``episodes[i]`` carries the arrival times in ``release``). The draws cost a Python call per resetting
env (an online episode lasts hundreds of steps, so this is a small share of a step); the steps are
vectorised.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from gymnasium.vector import AutoresetMode

from sdedge_gym.config import ScenarioConfig
from sdedge_gym.env import EdgeSDEnv
from sdedge_gym.episode import Episode
from sdedge_gym.online_env import ONLINE_INFO_KEYS, ONLINE_KPI_KEYS, EdgeSDOnlineEnv
from sdedge_gym.vector_env import INFO_DTYPES, PER_TASK_INFO_KEYS, STACKED_COLUMNS, STEP_INFO_KEYS, EdgeSDVectorEnv


class EdgeSDOnlineVectorEnv(EdgeSDVectorEnv):
    """``num_envs`` copies of :class:`~sdedge_gym.online_env.EdgeSDOnlineEnv` stepped together with numpy.

    ``EdgeSDOnlineVectorEnv(num_envs=1, scenario="paper", action_mode="discrete", autoreset_mode=NEXT_STEP,
    render_mode=None, config=None, num_threads=1, max_episode_steps=None, arrivals=None, **overrides)``: the
    online env's arguments (its docstring is the env card: the wait action, decision epochs, spaces,
    reward, observation, info and KPIs) plus those of :class:`~sdedge_gym.vector_env.EdgeSDVectorEnv`.
    ``max_episode_steps`` is None or >= 2 num_tasks - 1 (K dispatches and at most K - 1 waits: a limit
    that never binds).

    Per step and env, as the single env: a wait while some request has still to arrive moves ``now`` to
    the next arrival (reward 0, nothing served, ``info["waited"]``); otherwise the next n arrived requests
    are dispatched, the uplink slot starting at ``now`` (a wait when nothing more can arrive dispatches
    ``batch_limit()`` requests, ``action_clipped``), with reward ``-(cost - sum of their arrival times / K)``,
    and ``now`` moves to max(uplink end, arrival of the next queued request). ``action_masks()`` is
    ``(num_envs, n_max + 1 + l_max + 1)``: [n = 1..n_max] + [wait] + [l = 0..l_max]. Infos are the single
    env's keys (``env.STEP_INFO_KEYS`` without ``action_mask``, then ``online_env.ONLINE_INFO_KEYS``) and at
    an episode's end ``online_env.ONLINE_KPI_KEYS``, as Gymnasium vector infos.

    Attributes: those of the offline vector env, ``episodes`` (every env's current
    :class:`~sdedge_gym.episode.Episode`, arrival times in ``release``), ``now`` (``clocks.now``) and
    ``arrived`` (requests with an arrival time <= now, per env).
    """

    single_env_class: ClassVar[type[EdgeSDEnv]] = EdgeSDOnlineEnv
    info_keys: ClassVar[tuple[str, ...]] = (*STEP_INFO_KEYS, *ONLINE_INFO_KEYS)
    kpi_keys: ClassVar[tuple[str, ...]] = ONLINE_KPI_KEYS
    per_task_info_keys: ClassVar[tuple[str, ...]] = (*PER_TASK_INFO_KEYS, "latencies")
    info_dtypes: ClassVar[dict[str, type]] = {**INFO_DTYPES, "waited": np.bool_, "arrived": np.int64,
                                              "queue_length": np.int64}
    longest_episode_name: ClassVar[str] = "2 num_tasks - 1"

    def __init__(self, num_envs: int = 1, scenario: str | ScenarioConfig = "paper", action_mode: str = "discrete",
                 autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP, render_mode: str | None = None,
                 config: Mapping[str, Any] | ScenarioConfig | None = None, num_threads: int = 1,
                 max_episode_steps: int | None = None, arrivals: Mapping[str, Any] | None = None,
                 **overrides: Any) -> None:
        self._arrivals = arrivals  # read by _single_env, during the base constructor
        super().__init__(num_envs, scenario, action_mode, autoreset_mode, render_mode, config, num_threads,
                         max_episode_steps, **overrides)
        e, k = self.num_envs, self.num_tasks
        # The per-env episode drawers: copies of the validated template (an env's per-episode state is
        # replaced, never mutated, by its reset, and building one per env from the arguments would repeat the
        # scenario's validation and precomputation num_envs times).
        self._drawers = [copy.copy(self._template) for _ in range(e)]
        self._episode_list: list[Episode | None] = [None] * e
        self._release = np.zeros((e, k))  # a_k of every env's episode, s
        self._task_completion = np.zeros((e, k))  # C_k of the dispatched requests (the latency KPIs read it)
        self.arrived = np.zeros(e, dtype=np.int64)

    def _single_env(self, scenario: str | ScenarioConfig, action_mode: str,
                    config: Mapping[str, Any] | ScenarioConfig | None, overrides: dict[str, Any]) -> EdgeSDEnv:
        self._template = EdgeSDOnlineEnv(scenario, action_mode, None, config, arrivals=self._arrivals, **overrides)
        return self._template

    @staticmethod
    def longest_episode(num_tasks: int) -> int:
        """K dispatches and at most K - 1 waits (a wait needs a request still to arrive)."""
        return 2 * num_tasks - 1

    # ------------------------------------------------------------------ the episode state

    @property
    def now(self) -> np.ndarray:
        """(num_envs,) every env's decision epoch t, s (``clocks.now``)."""
        return self.clocks.now

    @property
    def episodes(self) -> list[Episode | None]:
        """The current :class:`~sdedge_gym.episode.Episode` of every env, arrival times in ``release``."""
        return list(self._episode_list)

    def batch_limit(self) -> np.ndarray:
        """(num_envs,) the largest valid batch of every env: min(memory/action limit, arrived requests waiting)."""
        return np.minimum(self.model.batch_limit, self.arrived - self.next_task)

    def can_wait(self) -> np.ndarray:
        """(num_envs,) bool: a wait is valid (a request has still to arrive)."""
        return self.arrived < self.num_tasks

    def action_masks(self) -> np.ndarray:
        """(num_envs, n_max + 1 + l_max + 1) bool: [n = 1..n_max] + [wait] + [l = 0..l_max] of every env."""
        return self._mask_table[self.can_wait().astype(np.int64), self.batch_limit()]

    # ------------------------------------------------------------------ episodes

    def _reset_episodes(self, indices: np.ndarray, seeds: Sequence[int | None], seeded: bool) -> None:
        """Each env of ``indices`` takes its drawer's next episode (the drawer seeded ``seeds[i]`` if given)."""
        episodes, tables = [], []
        for i in indices:
            drawer = self._drawers[i]
            drawer.reset(seed=seeds[i])
            episodes.append(drawer.episode)
            tables.append(drawer._task_features)
            self._episode_list[i] = drawer.episode
        columns = {name: np.stack([getattr(x.workload, name) for x in episodes]) for name in STACKED_COLUMNS}
        columns.update(channel=np.stack([x.channel for x in episodes]), table=np.stack(tables),
                       runs=None if self._runs is None else np.stack([x.runs for x in episodes]))
        self._write(indices, columns)
        self._release[indices] = np.stack([x.release for x in episodes])
        self._task_completion[indices] = 0.0
        self.clocks.now[indices] = self._release[indices, 0]  # the first epoch: the first arrival
        self._count_arrivals(indices)

    def _autoreset(self, indices: np.ndarray) -> None:
        self._reset_episodes(indices, [None] * self.num_envs, False)

    def _count_arrivals(self, envs: np.ndarray) -> None:
        """``arrived`` of ``envs`` at their ``now`` (the release times are sorted: a count is a search)."""
        self.arrived[envs] = (self._release[envs] <= self.clocks.now[envs, None]).sum(axis=1)

    # ------------------------------------------------------------------ steps

    def _advance(self, envs: np.ndarray, waits: np.ndarray, requested: np.ndarray, spec_len: np.ndarray,
                 weights: np.ndarray | None, rewards: np.ndarray, terminated: np.ndarray,
                 infos: dict[str, np.ndarray]) -> None:
        """Wait in the envs that ask for it and can; dispatch in the others (a refused wait dispatches the
        batch limit); then every env's next epoch and online info."""
        now = self.clocks.now
        infos["dispatch_time"][envs] = now[envs]
        waiting = waits & self.can_wait()[envs]
        if waiting.any():
            held = envs[waiting]
            now[held] = self._release[held, self.arrived[held]]  # the next arrival
            infos["speculation_length"][held] = spec_len[waiting]
            for key in self.info_keys:  # everything else of a wait's info is zero
                infos["_" + key][held] = True
        if not waiting.all():
            go = ~waiting
            sent = envs[go]
            limit = self.batch_limit()[sent]
            size = np.where(waits[go], limit, np.minimum(requested[go], limit))
            self._dispatch(sent, size, spec_len[go], None if weights is None else weights[go],
                           waits[go] | (size != requested[go]), rewards, terminated, infos)
            queued = sent[self.next_task[sent] < self.num_tasks]  # terminal: now stays at the last slot's end
            now[queued] = np.maximum(self.uplink_end[queued], self._release[queued, self.next_task[queued]])
        self._count_arrivals(envs)
        for key in ONLINE_INFO_KEYS:
            infos["_" + key][envs] = True
        infos["waited"][envs] = waiting
        infos["time"][envs] = now[envs]
        infos["arrived"][envs] = self.arrived[envs]
        infos["queue_length"][envs] = self.arrived[envs] - self.next_task[envs]

    def _commit(self, envs: np.ndarray, batch_size: np.ndarray, spec_len: np.ndarray, weights) -> dict[str, Any]:
        """The offline commit (the kernel starts each slot at ``now``), then the latency accounting: the
        reward net of the batch's arrival times, each request's latency and its completion kept for the KPIs."""
        first = self.next_task[envs].copy()
        step = super()._commit(envs, batch_size, spec_len, weights)
        slots = np.arange(self.n_max)
        in_batch = slots < batch_size[:, None]
        rows = np.minimum(first[:, None] + slots, self.num_tasks - 1)
        arrival = np.where(in_batch, self._release[envs[:, None], rows], 0.0)
        # cost = sum_k C_k / K; minus sum_k a_k / K it is the batch's share of the mean latency (the single env's).
        step["reward"] = -(step["cost"] - arrival.sum(axis=1) / self.num_tasks)
        step["latencies"] = np.where(in_batch, step["completion_times"] - arrival, 0.0)
        batch_rows = np.broadcast_to(envs[:, None], rows.shape)
        self._task_completion[batch_rows[in_batch], rows[in_batch]] = step["completion_times"][in_batch]
        return step

    def _episode_kpis(self, done: np.ndarray) -> dict[str, np.ndarray]:
        """The single env's ``episode_kpis`` of the envs ``done``: every request was dispatched."""
        completion = self._task_completion[done]
        latency = completion - self._release[done]
        makespan = completion.max(axis=1)
        span = makespan - self._release[done, 0]
        positive = span > 0
        safe = np.where(positive, span, 1.0)
        kpis = {"mean_latency": latency.mean(axis=1)}
        percentiles = np.percentile(latency, [int(key[1:3]) for key in ONLINE_KPI_KEYS[1:4]], axis=1)
        kpis.update(zip(ONLINE_KPI_KEYS[1:4], percentiles, strict=True))
        kpis.update({"slo_attainment": np.mean(latency <= self.scenario.arrivals.slo, axis=1), "makespan": makespan,
                     "throughput": np.where(positive, self._tokens[done] / safe, 0.0),
                     "request_throughput": np.where(positive, self.num_tasks / safe, 0.0)})
        return kpis

    # ------------------------------------------------------------------ observation

    def _uplink_times(self) -> np.ndarray:
        return self.clocks.now  # the global features read the epoch, as the single env's _uplink_time

    def _visible_tasks(self) -> np.ndarray:
        return np.minimum(self.n_max, self.arrived - self.next_task)  # arrived requests only

    def _observations(self) -> np.ndarray:
        """The offline observation of the arrived requests, then their ages and the two online features."""
        e, n_max, k = self.num_envs, self.n_max, self.num_tasks
        arrivals = self.scenario.arrivals
        now, next_task, arrived = self.clocks.now, self.next_task, self.arrived
        visible = self._visible_tasks()
        rows = np.minimum(next_task[:, None] + np.arange(n_max), k - 1)
        age = now[:, None] - np.take_along_axis(self._release, rows, axis=1)
        extra = np.zeros((e, n_max + 2), dtype=np.float32)
        extra[:, :n_max] = np.where(np.arange(n_max) < visible[:, None], age / (age + arrivals.slo), 0.0)
        extra[:, n_max] = np.maximum(arrived - next_task - n_max, 0) / k
        recent = np.minimum(arrived, n_max + 1)
        earliest = self._release[np.arange(e), np.maximum(arrived - recent, 0)]
        rate = (recent - 1) / np.where(recent >= 2, (recent - 1) + self._template.mean_arrival_rate * (now - earliest),
                                                   1.0)
        extra[:, n_max + 1] = np.where(recent >= 2, rate, 0.0)
        return np.concatenate([super()._observations(), extra], axis=1)
