"""The online-serving environment: requests arrive over time and the agent may wait for more.

A thin layer over the same core as :class:`sdedge_gym.env.EdgeSDEnv`: :func:`sdedge_gym.episode.commit_batch`
serves a batch, :mod:`sdedge_gym.arrivals` draws the arrival times, and the observation reuses the
offline env's feature helpers. Only the decision epochs, the wait action and the latency accounting are
new (docs/MODEL.md section 15).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from sdedge_gym import kernels
from sdedge_gym.actions import action_mode
from sdedge_gym.arrivals import Trace, draw_arrivals, read_trace, trace_offsets, trace_rate, trace_tokens, trace_window
from sdedge_gym.config import ScenarioConfig
from sdedge_gym.env import EdgeSDEnv, ObservationScales, episode_from_draws
from sdedge_gym.episode import BatchOutcome, Episode, ServingModel
from sdedge_gym.reference import best_lengths_by_batch, timeout_cost_to_go
from sdedge_gym.scenarios import make_scenario
from sdedge_gym.segments import segment_tables
from sdedge_gym.workload import MAX_ALPHA_ESTIMATE, raw_draws

ONLINE_FEATURES = ("waiting_beyond_window", "arrival_rate")  # after the offline observation and the ages
ONLINE_INFO_KEYS = ("waited", "dispatch_time", "time", "arrived", "queue_length", "latencies")  # after the offline
LATENCY_PERCENTILES = (50, 95, 99)
# The last step's episode KPIs (EdgeSDOnlineEnv.episode_kpis), in its order: the vector env reports the same.
ONLINE_KPI_KEYS = ("mean_latency", *(f"p{q}_latency" for q in LATENCY_PERCENTILES), "slo_attainment", "makespan",
                   "throughput", "request_throughput")
CAPACITY_SEEDS = (0, 1, 2, 3, 4)


def online_observation_size(max_batch: int) -> int:
    """4 global + 6 per task (the offline observation), then n_max ages, then the two online features."""
    return EdgeSDOnlineEnv.observation_size(max_batch)


def encode_online_action(mode: str, batch_size: int, speculation_length: int, max_batch: int,
                         max_speculation: int, shares=None, wait: bool = False):
    """The online action of ``mode``: commit (n, l) with ``shares`` (see ``encode_action``), or with ``wait``
    the wait action (still carrying l, and in hybrid/dict n and the shares, used if the wait is refused)."""
    return action_mode(mode, max_batch, max_speculation).encode(batch_size, speculation_length, shares, wait=wait)


def max_batch_capacity(scenario: ScenarioConfig, seeds: tuple[int, ...] = CAPACITY_SEEDS,
                       trace: Trace | None = None) -> float:
    """Requests/s the system serves with back-to-back full batches: n_lim / min_l max(E[U], E[D_l]).

    U and D_l are the uplink slot and service duration of n_lim-task windows of the offline episodes of
    ``seeds`` (every window j..j+n_lim-1). Uploads and service are a two-stage pipeline, so in steady state
    a full batch leaves every max(E[U], E[D_l]) seconds; l is the one that maximises that rate. With a
    ``trace``, episode i has the (clipped) token counts of the trace's K requests from offset i x
    (training part - K) / len(seeds): the capacity on the trace's length mix, read from its training part.
    """
    offline = scenario.replace(arrivals=scenario.arrivals.replace(process="offline", trace="", load=None))
    model = ServingModel.of(offline)
    parameters = kernels.workload_parameters(offline, ObservationScales.of(model), MAX_ALPHA_ESTIMATE)
    n, k = model.batch_limit, scenario.num_tasks
    slots, durations = [], []
    for index, seed in enumerate(seeds):
        tokens = None
        if trace is not None:
            last = trace_offsets(trace, k, "train")[1]
            window = trace_window(trace, k, index * last // len(seeds))
            tokens = trace_tokens(window, scenario.workload.prompt_max, scenario.workload.max_new_tokens)
        episode, _ = episode_from_draws(offline, parameters, raw_draws(offline, np.random.default_rng(seed)), tokens)
        tables = segment_tables(model, episode)
        last = episode.num_tasks - n + 1
        slots.append(tables.uplink_slot[:last, n - 1])
        durations.append(tables.duration[:last, n - 1, :])
    cycle = np.maximum(np.concatenate(slots).mean(), np.concatenate(durations).mean(axis=0))
    return float(n / cycle.min())


@functools.lru_cache(maxsize=32)
def trace_capacity(scenario: ScenarioConfig) -> float:
    """:func:`max_batch_capacity` on the length mix of the scenario's trace (``arrivals.trace``): the rate that
    ``ArrivalConfig.load`` is a fraction of. Cached per scenario (each env of a vector env asks for it)."""
    return max_batch_capacity(scenario, trace=read_trace(scenario.arrivals.trace))


class EdgeSDOnlineEnv(EdgeSDEnv):
    """
    ## Description

    Online edge LLM serving with speculative decoding. The hardware, uplink and batch service are those
    of :class:`sdedge_gym.env.EdgeSDEnv`, but the K requests arrive over time (Poisson, a two-state
    Markov-modulated Poisson process, or a CSV trace; ``ArrivalConfig``). At each decision epoch the
    agent either dispatches the next n *arrived* requests in queue order (with speculation length l and,
    in hybrid/dict mode, the band split) or waits for the next arrival. The objective is the mean
    latency, completion minus arrival; the episode-end ``info`` adds tail latencies, SLO attainment and
    throughput. The model is specified in docs/MODEL.md, section 15.

    **Decision epochs.** An epoch is a time t at which the uplink is free (t >= the end of the last
    uplink slot) and at least one request has arrived and waits: after reset and after every dispatch,
    t = max(end of the last slot, arrival of the next queued request); a wait moves t to the next
    arrival time (every request arriving then becomes visible at once). A batch dispatched at t has its
    uplink slot start at t; the rest of its service is the offline model (service starts when it is
    uploaded and the previous batch has finished).

    ## Action Space

    The offline layouts with a wait added (``n_max`` = ``max_batch``, ``l_max`` = ``max_speculation``):

    | mode       | space                                            | meaning                                  |
    |------------|--------------------------------------------------|------------------------------------------|
    | "discrete" | ``MultiDiscrete([n_max + 1, l_max + 1])``        | ``[n - 1, l]``; ``[n_max, any]`` waits   |
    | "hybrid"   | ``Box(-1, 1, (3 + n_max,), float32)``            | entries 0 .. 1 + n_max as offline; the   |
    |            |                                                  | last entry > 0 waits                     |
    | "dict"     | the offline ``Dict`` plus ``wait=Discrete(2)``   | ``wait = 1`` waits (the other keys are   |
    |            |                                                  | still validated, then unused)            |

    ``encode_online_action`` builds any mode's action. The mask (``action_masks()``, ``info["action_mask"]``)
    is MaskablePPO's MultiDiscrete layout: ``n_max`` entries for n = 1..n_max (valid up to
    ``batch_limit()`` = min(memory/action limit, arrived requests waiting)), one entry for *wait* (valid
    while some request has not arrived yet), then ``l_max + 1`` entries for l (all valid). At the terminal
    state (never acted on) only n = 1 is marked valid, as offline, so that maskable samplers never see an
    empty mask. A batch above ``batch_limit()`` is clipped to it, a wait
    when nothing more can arrive dispatches ``batch_limit()`` requests with the action's l and band
    entries; both set ``info["action_clipped"]``. Out-of-space actions raise
    ``ValueError`` naming the entry.

    ## Observation Space

    ``Box(0, 1, (4 + 7 n_max + 2,), float32)``. Entries 0 .. 3 + 6 n_max are the offline observation
    (``EdgeSDEnv``'s table) with two changes: its time u is the epoch time t (u = t while the uplink is
    free), and its task window shows only requests that have *arrived* (later queue slots are zeros, so
    nothing of the future leaks). Then:

    | index              | feature               | value                                                | range  |
    |--------------------|-----------------------|------------------------------------------------------|--------|
    | 4 + 6 n_max + i    | age                   | w / (w + slo); w = t - arrival of window slot i (0   | [0, 1) |
    |                    |                       | for an empty slot)                                   |        |
    | 4 + 7 n_max        | waiting_beyond_window | arrived requests waiting behind the window / K       | [0, 1] |
    | 4 + 7 n_max + 1    | arrival_rate          | r / (r + arrival_rate): r = (m - 1) / (t - a_first), | [0, 1] |
    |                    |                       | the m = min(arrived, n_max + 1) latest arrivals,     |        |
    |                    |                       | a_first the earliest of them; 0 if m < 2, 1 if t =   |        |
    |                    |                       | a_first (a burst at one instant)                     |        |

    ``slo`` is the scenario's ``ArrivalConfig.slo``; ``arrival_rate`` is ``mean_arrival_rate``: the
    ``ArrivalConfig.arrival_rate``, or on a trace the trace's mean rate after the load's rescaling (fixed
    scales).

    ## Rewards

    A dispatch of batch m earns ``-sum_{k in m} (C_k - a_k) / K`` (completion minus arrival, s); a wait
    earns 0. The undiscounted return is exactly minus the mean latency. Only objective "mean_latency".
    This is ``reward="latency"``, the default.

    ``reward="reference"`` adds potential-based shaping as the offline env's does, with the online reference
    rule: max-batch-with-timeout (dispatch the waiting requests, at most n_lim, when n_lim wait, the oldest
    has waited ``REFERENCE_TIMEOUT`` = 10 s or no arrival is left, else wait; l per batch size n the best
    constant l for batches of n offline; the ``max-batch-timeout`` policy of ``sdedge_agents.online``),
    replayed by the compiled kernel from the current state on the episode's own arrival times
    (``sdedge_gym.reference.timeout_cost_to_go``). V(s) reads arrivals that have not happened: it is an
    input-driven baseline (Mao et al., 2019), a function of the full state (the episode's arrival times
    included), so the shaped return is still V(s_0) - mean latency with V(s_0) independent of the policy
    and the optimal policy unchanged; it is never an observation. A step's reward is then
    ``r = -cost + V(s) - V(s')`` for dispatches and waits alike (a wait's cost is 0), with
    ``info["latency_reward"]`` and ``info["reference_cost_to_go"]`` as offline; ``reward="relative"`` is
    the same in % of V(s_0). Following the rule earns 0 at every step.

    ## Starting State

    ``reset`` draws the offline env's workload from ``self.np_random`` and then the arrival times (after
    every other draw, so the tasks are the offline episode's); a trace supplies the times and token
    counts of its first K rows. t starts at the first arrival. ``options={"episode": e}`` (an
    :class:`~sdedge_gym.episode.Episode`, e.g. one of the vector env's ``episodes``) replays that episode
    with its arrival times ``e.release``; ``options={"workload": w}``, or an episode without release times,
    replays the tasks and draws the arrival times from ``self.np_random``. Other option keys are ignored.

    ## Episode End

    Terminated when every request has been dispatched (at most 2K steps: K dispatches, fewer than K
    waits). Never truncated; ``gymnasium.make(id, max_episode_steps=2 * K)`` gives wrappers that need a
    time limit (``TimeAwareObservation``) one that never truncates.

    ## Info

    Every step: the offline keys (``batch_size``, 0 on a wait; ``speculation_length``, ``bandwidth``,
    ``uplink_slot``, ``wait`` = the ready batch's wait for the previous service, ``service_time``,
    ``completion_times``, ``tokens``, ``accepted_drafts``, ``action_clipped``, ``action_mask``) and
    ``waited`` (the step was a wait), ``dispatch_time`` (its epoch t), ``time`` (the next epoch),
    ``arrived`` (requests arrived by then), ``queue_length`` (arrived, not dispatched) and ``latencies``
    (C_k - a_k, length n_max like ``completion_times``). At the last step also ``mean_latency``,
    ``p50_latency``, ``p95_latency``, ``p99_latency``, ``slo_attainment`` (fraction with latency <= slo),
    ``makespan`` (last completion, s), ``throughput`` (output tokens / s) and ``request_throughput``
    (requests / s), both over [first arrival, last completion].

    ## Arguments

    ```python
    env = gymnasium.make("sdedge/EdgeSD-Online-v0", config={"arrivals": {"arrival_rate": 0.5, "slo": 30}})
    env = gymnasium.make("sdedge/EdgeSD-Online-v0", config={"arrivals": {"process": "trace", "trace": PATH}})
    EdgeSDOnlineEnv(scenario="paper", action_mode="discrete", render_mode=None, config=None, arrivals=None,
                    reward="latency", speculation="action", **overrides)
    ```

    As ``EdgeSDEnv`` (``reward`` as under Rewards; ``speculation="service_chain"`` as offline, the batch timed from
    the decision epoch and r counting every request after the batch, arrived or not, a wait staying a wait;
    ``observe_reference`` and ``observe_queue`` are offline options and raise ``TypeError``), plus ``arrivals``, a
    dict merged over the preset's ``ArrivalConfig`` before ``config`` (the registered ids set it to Poisson at 0.757
    requests/s; ``gymnasium.make(id, arrivals=...)`` replaces that dict whole, so change single fields through
    ``config``).
    ``config["arrivals"]`` sets the ``ArrivalConfig`` (process "offline" | "poisson" | "mmpp" | "trace",
    ``arrival_rate``, ``burst_rate``, ``calm_duration``, ``burst_duration``, ``trace``, ``slo``). With process
    "offline" every request arrives at 0 and the env reproduces ``EdgeSDEnv`` step for step. A trace is read at
    construction; a malformed one raises ``ValueError`` naming the file, the row and the column.

    ## Version History

    * v0: initial release. The ``reward`` and ``speculation`` options were added later; their defaults are the
      v0 env.
    """

    has_wait: ClassVar[bool] = True

    def __init__(self, scenario: str | ScenarioConfig = "paper", action_mode: str = "discrete",
                 render_mode: str | None = None, config: Mapping[str, Any] | ScenarioConfig | None = None,
                 arrivals: Mapping[str, Any] | None = None, reward: str = "latency", **overrides: Any) -> None:
        # V(s) would show future arrivals as a feature; the queue past the window has not arrived yet.
        for option in ("observe_reference", "observe_queue"):
            if option in overrides:
                raise TypeError(f"{type(self).__name__}() got an unexpected keyword argument {option!r} (the "
                                "reference and queue features are offline options)")
        self._id_arrivals = arrivals  # read by _make_scenario, during the base constructor
        super().__init__(scenario, action_mode, render_mode, config, reward=reward, **overrides)
        n_max = self.scenario.max_batch
        arrivals, k = self.scenario.arrivals, self.scenario.num_tasks
        self.trace: Trace | None = None  # the whole trace (process "trace")
        self.trace_offset: int | None = None  # the current episode's first row in it
        self._offsets = (0, 0)  # the window starts this env draws from (inclusive)
        self._time_scale = 1.0  # trace seconds -> episode seconds
        self._offset_option: Any = None
        # The scale of the observation's arrival-rate feature: the scenario's mean rate (requests / s).
        self.mean_arrival_rate = arrivals.arrival_rate
        if arrivals.process == "trace":
            self.trace = read_trace(arrivals.trace)
            self._offsets = trace_offsets(self.trace, k, arrivals.trace_window)
            if arrivals.load is not None:
                self._time_scale = trace_rate(self.trace) / (arrivals.load * trace_capacity(self.scenario))
            self.mean_arrival_rate = trace_rate(self.trace) / self._time_scale
        table = self._mask_table  # the offline rows; the wait column is inserted after n_max
        self._mask_table = np.stack([np.insert(table, n_max, False, axis=1), np.insert(table, n_max, True, axis=1)])

    # The online state is the offline one (the episode and its clock): the arrival times are the episode's
    # release times and the decision epoch is the clock's `now`.

    @property
    def arrival(self) -> np.ndarray:
        """a_k, s, non-decreasing: ``episode.release`` (empty before the first reset)."""
        return np.zeros(0) if self.episode is None else self.episode.release

    @property
    def now(self) -> float:
        """The current decision epoch t, s (``clock.now``)."""
        return self.clock.now

    @property
    def arrived(self) -> int:
        """Requests with a_k <= t."""
        if self.episode is None:
            return 0
        return int(np.searchsorted(self.episode.release, self.clock.now, side="right"))

    @classmethod
    def observation_size(cls, max_batch: int) -> int:
        """The offline observation, then n_max ages, then the two online features."""
        return super().observation_size(max_batch) + max_batch + len(ONLINE_FEATURES)

    def _make_scenario(self, scenario: str | ScenarioConfig, config: Mapping[str, Any] | ScenarioConfig | None,
                       overrides: dict[str, Any]) -> ScenarioConfig:
        # The id's arrivals go over the preset and under the caller's config, so that config={"arrivals":
        # {"slo": 30}} keeps the id's process and rate.
        arrivals = self._id_arrivals
        base = make_scenario(scenario, {"arrivals": dict(arrivals)} if arrivals else None)
        made = make_scenario(base, config, **overrides)
        if made.objective != "mean_latency":
            raise ValueError(f"ScenarioConfig.objective = {made.objective!r} is invalid for the online env; "
                             "allowed: 'mean_latency'")
        return made

    # ------------------------------------------------------------------ Gymnasium API

    def _episode_from(self, options: Mapping[str, Any] | None) -> tuple[Episode, np.ndarray]:
        """A drawn episode, or the offline env's replays: ``options={"episode": e}`` replays ``e`` with its
        arrival times (``e.release``); a replayed ``"workload"`` gets its arrival times drawn. On a trace,
        ``options={"trace_offset": j}`` starts the window at row j instead of a drawn offset."""
        options = options or {}
        self._offset_option = options.get("trace_offset")
        if self._offset_option is not None and self.trace is None:
            raise ValueError("reset option 'trace_offset' is invalid here; allowed: only with ArrivalConfig.process "
                             "= 'trace'")
        episode, table = super()._episode_from(options)
        if episode.release is None:
            if "episode" in options:
                raise ValueError("options['episode'] has no arrival times (release is None); allowed: an online "
                                 "episode (env.episode of an online env)")
            episode = dataclasses.replace(episode, release=self._arrivals(self._trace_window()))
        else:
            release = np.asarray(episode.release, dtype=float)
            if (release.shape != (self.scenario.num_tasks,) or not np.all(np.isfinite(release)) or np.any(release < 0)
                    or np.any(np.diff(release) < 0)):
                raise ValueError(f"options['episode'].release is invalid; allowed: {self.scenario.num_tasks} finite, "
                                 "non-negative, non-decreasing arrival times (s)")
        return episode, table

    def _draw_episode(self) -> tuple[Episode, np.ndarray]:
        """The offline env's draws, then (on a trace) the window's offset, then the arrival times: the same
        seed gives the offline episode's tasks (a trace replaces only the token counts)."""
        cfg = self.scenario
        draws = raw_draws(cfg, self.np_random)
        window = self._trace_window()
        tokens = None if window is None else trace_tokens(window, cfg.workload.prompt_max, cfg.workload.max_new_tokens)
        episode, table = episode_from_draws(cfg, self._workload_parameters, draws, tokens)
        return dataclasses.replace(episode, release=self._arrivals(window)), table

    def _trace_window(self) -> Trace | None:
        """This episode's K requests of the trace (None without one): at the reset option's offset, or at
        one drawn from ``self.np_random`` (no draw when the window is fixed, as "first")."""
        if self.trace is None:
            return None
        low, high = self._offsets
        offset = self._offset_option
        if offset is None:
            offset = low if high == low else int(self.np_random.integers(low, high + 1))
        elif (not isinstance(offset, int | np.integer) or isinstance(offset, bool)
              or not 0 <= offset <= self.trace.num_requests - self.scenario.num_tasks):
            raise ValueError(f"reset option trace_offset = {offset!r} is invalid; allowed: an integer in "
                             f"[0, {self.trace.num_requests - self.scenario.num_tasks}]")
        window = trace_window(self.trace, self.scenario.num_tasks, int(offset))
        self.trace_offset = int(offset)
        return window

    def _arrivals(self, window: Trace | None) -> np.ndarray:
        """The episode's arrival times: the trace window's (rescaled by the load) or drawn."""
        cfg = self.scenario
        if window is not None:
            arrival = window.arrival_time * self._time_scale
        else:
            arrival = draw_arrivals(cfg.arrivals, cfg.num_tasks, self.np_random)
        arrival.setflags(write=False)
        return arrival

    def _start_episode(self) -> None:
        self._next_epoch()

    def step(self, action):
        self._check_steppable()
        wait, requested, speculation_length, weights = self.actions.decode(action, wait=True)
        dispatch_time = self.now
        if wait and self.can_wait():
            self.clock = dataclasses.replace(self.clock, now=float(self.arrival[self.arrived]))
            info = self._step_info(None, 0, speculation_length, False, dispatch_time)
            reward = self._shaped_reward(0.0, info) if self.uses_reference else 0.0
            return self._observation(), reward, False, False, info
        limit = self.batch_limit()
        batch_size = limit if wait else min(requested, limit)
        first = self.clock.next_task
        speculation_length = self._played_length(batch_size, speculation_length)
        outcome = self._commit(batch_size, speculation_length, weights, self.clock)  # the slot starts at t
        arrival_sum = float(self.arrival[first:first + batch_size].sum())
        # cost = sum_k C_k / K; subtracting sum_k a_k / K makes the reward minus the batch's latency share.
        # With every a_k = 0 this is cost - 0.0: the offline reward bit for bit.
        reward = -(outcome.cost - arrival_sum / self.episode.num_tasks)
        terminated = self.clock.next_task >= self.episode.num_tasks
        self._next_epoch()
        info = self._step_info(outcome, batch_size, speculation_length, wait or batch_size != requested,
                               dispatch_time)
        if self.uses_reference:
            reward = self._shaped_reward(reward, info)
        if terminated:
            info.update(self._kpi_info())
        return self._observation(), float(reward), bool(terminated), False, info

    def _set_up_reference(self) -> None:
        """The online reference rule: max-batch-with-timeout (n_lim, REFERENCE_TIMEOUT s, l per n as
        ``best_lengths_by_batch``), replayed on the episode's own arrival times."""
        self.reference_lengths = best_lengths_by_batch(self.scenario)

    def _reference_cost_to_go(self) -> float:
        return timeout_cost_to_go(self.model, self.episode, self.clock, self.reference_lengths)

    def render(self):
        frame = super().render()  # the offline dashboard or Gantt chart of the same batches
        if self.render_mode == "ansi" and self.episode is not None:
            frame += (f"online   t = {self.now:.2f} s, arrived {self.arrived}/{self.episode.num_tasks}, "
                      f"waiting {self.arrived - self.clock.next_task}\n")
        return frame

    # ------------------------------------------------------------------ epochs, masks and KPIs

    def _next_epoch(self) -> None:
        """Move t to the next decision epoch: the uplink free and the next queued request arrived."""
        clock = self.clock
        if clock.next_task < self.episode.num_tasks:  # terminal: t stays at the last slot's end (u)
            self.clock = dataclasses.replace(clock, now=max(clock.uplink_end, float(self.arrival[clock.next_task])))

    def batch_limit(self) -> int:
        """The largest valid batch now: min(memory/action limit, arrived requests waiting); 0 when done."""
        if self.episode is None:
            return 0
        return min(self.model.batch_limit, self.arrived - self.clock.next_task)

    def can_wait(self) -> bool:
        """A wait is valid while a request has still to arrive (and the episode is not over)."""
        return self.episode is not None and self.arrived < self.episode.num_tasks

    def action_masks(self) -> np.ndarray:
        """Valid actions in MaskablePPO's layout: [n = 1..n_max] + [wait] + [l = 0..l_max]."""
        return self._mask_table[int(self.can_wait()), self.batch_limit()].copy()

    def latencies(self) -> np.ndarray:
        """C_k - a_k of the requests dispatched so far, in queue order (s)."""
        if not self.outcomes:
            return np.zeros(0)
        completion = np.concatenate([o.completion_times for o in self.outcomes])
        return completion - self.arrival[:completion.size]

    def episode_kpis(self) -> dict[str, float]:
        """Latency statistics (s), SLO attainment, makespan (s) and throughputs of the dispatched requests."""
        latency = self.latencies()
        if latency.size == 0:
            return {"mean_latency": 0.0, **{f"p{q}_latency": 0.0 for q in LATENCY_PERCENTILES},
                    "slo_attainment": 0.0, "makespan": 0.0, "throughput": 0.0, "request_throughput": 0.0}
        completion = np.concatenate([o.completion_times for o in self.outcomes])
        makespan = float(completion.max())
        span = makespan - float(self.arrival[0])
        tokens = sum(o.tokens for o in self.outcomes)
        kpis = {"mean_latency": float(latency.mean())}
        kpis.update({f"p{q}_latency": float(np.percentile(latency, q)) for q in LATENCY_PERCENTILES})
        kpis.update({"slo_attainment": float(np.mean(latency <= self.scenario.arrivals.slo)), "makespan": makespan,
                     "throughput": tokens / span if span > 0 else 0.0,
                     "request_throughput": latency.size / span if span > 0 else 0.0})
        return kpis

    # ------------------------------------------------------------------ observation and info

    def _uplink_time(self) -> float:
        return self.now  # the global features read the epoch: the uplink is free, maybe waiting for arrivals

    def _visible_tasks(self) -> int:
        return min(self.scenario.max_batch, self.arrived - self.clock.next_task)  # arrived requests only

    def _observation(self) -> np.ndarray:
        """The offline observation of the arrived requests, then their ages and the two online features."""
        clock, n_max = self.clock, self.scenario.max_batch
        k = self.episode.num_tasks
        visible = self._visible_tasks()
        extra = np.zeros(n_max + len(ONLINE_FEATURES), dtype=np.float32)
        slo = self.scenario.arrivals.slo
        age = self.now - self.arrival[clock.next_task: clock.next_task + visible]
        extra[:visible] = age / (age + slo)
        extra[n_max] = max(self.arrived - clock.next_task - n_max, 0) / k
        recent = min(self.arrived, n_max + 1)
        if recent >= 2:
            span = self.now - float(self.arrival[self.arrived - recent])
            extra[n_max + 1] = (recent - 1) / ((recent - 1) + self.mean_arrival_rate * span)
        return np.concatenate([super()._observation(), extra])

    def _step_info(self, outcome: BatchOutcome | None, batch_size: int, speculation_length: int, clipped: bool,
                   dispatch_time: float = 0.0) -> dict[str, Any]:
        """The offline keys, then ONLINE_INFO_KEYS (a wait serves nothing: ``outcome`` None)."""
        info = super()._step_info(outcome, batch_size, speculation_length, clipped)
        latency = np.zeros(self.scenario.max_batch)
        if outcome is not None:
            latency[:batch_size] = outcome.completion_times - self.arrival[outcome.first_task:
                                                                           outcome.first_task + batch_size]
        info.update({
            "waited": np.array(outcome is None),
            "dispatch_time": np.float64(dispatch_time),
            "time": np.float64(self.now),
            "arrived": np.int64(self.arrived),
            "queue_length": np.int64(self.arrived - self.clock.next_task),
            "latencies": latency,
        })
        return info

