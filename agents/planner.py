"""A non-clairvoyant model-predictive planner: the oracle's DP on predictions, re-planned every step.

The planner sees what a deployed controller would: prompts, payloads and channels of the queue, an
output-length hint per task and an acceptance estimate, but not the true output lengths, acceptance rates
or acceptance draws. It builds segment tables for the predicted episode (hints as output lengths,
estimates as alphas, expected acceptance), and at every step solves the DP from the env's *actual* clock
over the tasks left and commits the first batch of that plan. With exact information
(``exact=True``: true lengths and alphas) on a deterministic id it is the oracle.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
from numba import njit

from sdedge_agents.oracle import DPOracle, action_values, solve
from sdedge_agents.posterior import sample_hidden
from sdedge_gym import compile_cache
from sdedge_gym.config import ScenarioConfig
from sdedge_gym.episode import Episode, EpisodeClock, ServingModel, predicted_episode
from sdedge_gym.reference import best_constant_action, constant_plan_cost, segment_cost_after
from sdedge_gym.segments import SegmentTables, segment_tables
from sdedge_gym.workload import WORKLOAD_FIELDS, Workload

compile_cache.install()  # before this module's @njit(cache=True): cached in the per-user folder, not here


class MPCPlanner(DPOracle):
    """Model-predictive control: the DP on predicted lengths and expected acceptance, re-solved each step."""

    name = "planner"
    counterpart = "sdedge_agents.online.OnlinePlanner"

    def __init__(self, env, exact: bool = False) -> None:
        super().__init__(env)
        self.exact = exact

    def problem(self) -> tuple[SegmentTables, EpisodeClock]:
        """The tables this planner solves on now and the clock it solves from (a subclass's view of the queue)."""
        env = self.unwrapped
        if env.episode is not self._episode:
            self._episode = env.episode
            self._tables = segment_tables(env.model, predicted_episode(env.episode, self.exact))
        return self._tables, env.clock

    def choose(self) -> tuple[int, int]:
        tables, start = self.problem()
        self.plan = solve(tables, self.unwrapped.scenario.objective, self.unwrapped.episode.num_tasks, start)
        return self.plan.batches[0]

    def action_values(self) -> np.ndarray:
        """Q[n - 1, l] of every action now, on this planner's tables (:func:`sdedge_agents.oracle.action_values`):
        the cost the planner expects from committing (n, l) and then following its plan. Shape (n_max, L + 1),
        the action's; +inf where the mask forbids n and where l is off the speculation front."""
        env = self.unwrapped
        tables, start = self.problem()
        values = action_values(tables, env.scenario.objective, env.episode.num_tasks, start, env.batch_limit())
        out = np.full((env.scenario.max_batch, env.scenario.max_speculation + 1), np.inf)
        out[:values.shape[0]] = values
        return out


POSTERIOR_SAMPLES = 16  # draws of the hidden columns a posterior planner averages its tables over


class PosteriorPlanner(MPCPlanner):
    """MPC on the expected cost under the hints' posterior: the planner's DP on segment tables averaged over
    ``samples`` draws of the hidden output lengths and acceptance rates (``sdedge_agents.posterior``: the exact
    Bayesian posterior of the scenario's workload model given each task's hint and estimate), re-solved from
    the env's clock every step.

    The plain planner puts the hints in as if they were the truth, so it sees a batch's service as that of
    its longest *hint*; the duration of a batch is that of its longest *task*, whose expectation grows with
    the spread of the lengths (Jensen), and this planner's tables carry it. Draws use expected acceptance
    (the acceptance draws average out over a task's rounds; the hint noise does not). The draws are
    stratified per task and seeded by ``seed`` afresh for every table, so an action depends only on what
    the planner reads and the clock. On a clairvoyant id the posterior is the truth (``samples`` is moot).

    ``window=False`` (``posterior-planner``) reads the hints of the whole queue, as ``planner`` does;
    ``window=True`` (``posterior-window-planner``) only what the observation shows, as ``window-planner``
    does: the next n_max tasks' hints, the rest of the queue as repeats of them, tables rebuilt every step.
    """

    name = "posterior-planner"

    def __init__(self, env, samples: int = POSTERIOR_SAMPLES, seed: int = 0, window: bool = False) -> None:
        super().__init__(env)
        if not (isinstance(samples, int | np.integer) and not isinstance(samples, bool) and samples >= 1):
            raise ValueError(f"samples = {samples!r} is invalid; allowed: an integer >= 1")
        self.samples, self.seed, self.window = int(samples), seed, bool(window)
        if self.window:
            self.name = "posterior-window-planner"

    def problem(self) -> tuple[SegmentTables, EpisodeClock]:
        env = self.unwrapped
        clock, model, episode = env.clock, env.model, env.episode
        if self.window:
            first, window = clock.next_task, env.scenario.max_batch
            period = WindowPeriod.of(model, episode, first, window)
            episodes = posterior_episodes(episode, env.scenario, self.samples, self.seed,
                                          slice(first, first + period.seen))
            head = shared_slot_mean(episodes, lambda draw, slot: period.head_tables(
                model, window_episode(draw, first, window, True, period.length), slot))
            return period.tile(head), dataclasses.replace(clock, next_task=0)
        if episode is not self._episode:
            self._episode = episode
            episodes = posterior_episodes(episode, env.scenario, self.samples, self.seed, slice(None))
            self._tables = shared_slot_mean(episodes, lambda draw, slot: segment_tables(model, draw, uplink_slot=slot))
        return self._tables, clock


def posterior_episodes(episode: Episode, scenario: ScenarioConfig, samples: int, seed: int,
                       tasks: slice) -> Iterator[Episode]:
    """``samples`` copies of the episode as the planner may believe it, expected acceptance: the hidden (O_k,
    alpha_k) of ``tasks`` drawn from their posterior given the hints, every other task at its hint and
    estimate (what :func:`predicted_episode` shows); on a clairvoyant scenario one copy, the truth."""
    if scenario.clairvoyant:
        yield predicted_episode(episode, exact=True)
        return
    view = predicted_episode(episode).workload
    output, alpha = sample_hidden(scenario.workload, view.output_len[tasks], view.alpha[tasks], samples,
                                  np.random.default_rng(seed))
    for draw in range(samples):
        lengths, rates = view.output_len.copy(), view.alpha.copy()
        lengths[tasks], rates[tasks] = output[draw], alpha[draw]
        yield Episode(dataclasses.replace(view, output_len=lengths, alpha=rates), episode.channel, None)


def shared_slot_mean(episodes: Iterable[Episode],
                     build: Callable[[Episode, np.ndarray | None], SegmentTables]) -> SegmentTables:
    """The entrywise mean of ``build(episode, slot)`` over draws of one episode that differ only in lengths
    and rates: the first draw's slots are passed to the others (they depend on payloads and channels only).
    The tables are summed as they come, so that one draw's tables are held at a time, not all of them."""
    first: SegmentTables | None = None
    count = 0
    for draw in episodes:
        tables = build(draw, None if first is None else first.uplink_slot)
        if first is None:
            first, duration, completion = tables, tables.duration.copy(), tables.completion_sum.copy()
        else:
            duration += tables.duration
            completion += tables.completion_sum
        count += 1
    if first is None:
        raise ValueError("episodes is empty; allowed: at least one draw")
    return SegmentTables(first.uplink_slot, duration / count, completion / count, first.allocation)


def window_episode(episode: Episode, next_task: int, window: int, exact: bool, length: int | None = None) -> Episode:
    """The queue left at ``next_task`` as an agent's observation shows it: K - next_task tasks.

    Its first ``window`` tasks are tasks ``next_task ..`` as :func:`predicted_episode` sees them (the
    truth when ``exact``); every later one is a repeat of that window in turn, since the observation
    gives only the count of the tasks beyond it. ``length``: only the first that many of those tasks.
    """
    view = predicted_episode(episode, exact)
    left = episode.num_tasks - next_task
    seen = min(left, window)
    order = next_task + np.arange(left if length is None else min(length, left)) % seen
    w = view.workload
    tasks = Workload(**{name: None if getattr(w, name) is None else np.asarray(getattr(w, name))[order]
                        for name in WORKLOAD_FIELDS})
    return Episode(tasks, view.channel[order], None)


class WindowPlanner(MPCPlanner):
    """MPC on exactly what the env's observation shows: the next ``max_batch`` tasks (true lengths and
    acceptance rates on a clairvoyant id, hints and estimates otherwise), the rest of the queue as repeats
    of them; re-solved every step. The observation determines its action, so it is both a bound on what
    a learner of the observation can reach without more information and the teacher of ``sdedge_agents.imitate``.
    """

    name = "window-planner"

    def problem(self) -> tuple[SegmentTables, EpisodeClock]:
        env = self.unwrapped
        clock = env.clock
        tables = window_tables(env.model, env.episode, clock.next_task, env.scenario.max_batch,
                               env.scenario.clairvoyant)
        # The remaining queue from a clock shifted to its first task; the cost is still divided by K.
        return tables, dataclasses.replace(clock, next_task=0)


def window_tables(model: ServingModel, episode: Episode, next_task: int, window: int, exact: bool) -> SegmentTables:
    """``segment_tables(model, window_episode(episode, next_task, window, exact))``, computed on one period.

    That queue repeats its first ``seen = min(left, window)`` tasks, so segment (j, n) is the very batch of
    segment (j mod seen, n) (the same tasks in the same order, so the same numbers) unless it runs past
    the queue's end: the first seen rows of the tables of its first seen + n_max - 1 tasks, tiled, hold
    every entry.
    """
    period = WindowPeriod.of(model, episode, next_task, window)
    return period.tile(period.head_tables(model, window_episode(episode, next_task, window, exact, period.length)))


@dataclass(frozen=True)
class WindowPeriod:
    """How :func:`window_tables` covers the K - next_task tasks left with one period of ``seen`` tasks."""

    left: int  # tasks left in the queue
    seen: int  # tasks in the window (the period)
    width: int  # largest batch size of the tables
    length: int | None  # tasks of the period's head queue (None: the whole queue, no tiling)

    @classmethod
    def of(cls, model: ServingModel, episode: Episode, next_task: int, window: int) -> WindowPeriod:
        left = episode.num_tasks - next_task
        seen, width = min(left, window), min(model.batch_limit, left)
        head = min(left, seen + width - 1)
        return cls(left, seen, width, None if head == left else head)

    def head_tables(self, model: ServingModel, head: Episode, uplink_slot: np.ndarray | None = None) -> SegmentTables:
        """The tables of ``head`` (the window episode of ``length`` tasks) that :meth:`tile` expands."""
        tiled = self.length is not None  # the head repeats its first seen tasks: each window built once
        return segment_tables(model, head, first_tasks=self.seen if tiled else None, uplink_slot=uplink_slot,
                              period=self.seen if tiled else None)

    def tile(self, tables: SegmentTables) -> SegmentTables:
        """The whole queue's tables from the head's: row j is row j mod seen, segments past the end +inf."""
        if self.length is None:
            return tables
        left, width = self.left, self.width
        rows = np.arange(left) % self.seen
        past_end = (np.arange(left)[:, None] + np.arange(1, width + 1)[None, :]) > left
        slot, duration, completion = (tables.uplink_slot[rows], tables.duration[rows], tables.completion_sum[rows])
        slot[past_end] = np.inf
        duration[past_end] = np.inf
        completion[past_end] = np.inf
        return SegmentTables(slot, duration, completion, tables.allocation)


class RolloutPlanner(DPOracle):
    """One step of policy improvement over the best constant action (a rollout policy, Bertsekas 1997).

    At every step it commits the (n, l) that minimises the batch's own cost plus the cost to go of the
    best constant action (``sdedge_gym.reference``) from the state that batch leads to, on the segment
    tables of the episode as the window planner sees its tasks: the truth on a clairvoyant id, hints and
    estimates otherwise (the whole queue, not only the window). That is the greedy policy of the env's
    ``reward="reference"`` with gamma = 0, whose step reward is exactly this quantity minus the reference's
    own cost to go: the best a contextual-bandit learner of that reward can reach with the queue in view.
    On a clairvoyant deterministic id it is never worse than the best constant action (the rollout's
    cost improvement property; tested).
    """

    name = "rollout"
    counterpart = "sdedge_agents.online.OnlinePlanner"  # no online rollout: the online planner plays its role

    def choose(self) -> tuple[int, int]:
        env = self.unwrapped
        if env.episode is not self._episode:
            self._episode = env.episode
            self._tables = segment_tables(env.model, predicted_episode(env.episode, env.scenario.clairvoyant))
            self._reference = best_constant_action(env.scenario)
        tables, clock = self._tables, env.clock
        slot, duration, completion = (np.ascontiguousarray(x, dtype=float) for x in (
            tables.uplink_slot, tables.duration, tables.completion_sum))
        n, l = rollout_action(slot, duration, completion, clock.next_task, max(clock.uplink_end, clock.now),
                              clock.inference_end, float(env.episode.num_tasks), env.batch_limit(),
                              self._reference[0], self._reference[1], env.scenario.objective == "makespan")
        return int(n), int(l)


@njit(cache=True)
def rollout_action(slot, duration, completion, first, u0, f0, divisor, batch_limit, reference_size,
                   reference_length, makespan):
    """(n, l) of least batch cost + the constant (reference_size, reference_length) plan's cost to go after it,
    from the label (u0, f0) at task ``first``; ties keep the smallest n, then the smallest l."""
    release = np.zeros(duration.shape[0])
    best, best_n, best_l = np.inf, 1, 0
    for n in range(1, batch_limit + 1):
        u = u0 + slot[first, n - 1]
        begin = max(u, f0)
        for l in range(duration.shape[2]):
            f = begin + duration[first, n - 1, l]
            cost = segment_cost_after(0.0, f0, begin, f, n, completion[first, n - 1, l], divisor, makespan)
            cost += constant_plan_cost(slot, duration, completion, release, first + n, u, f, divisor,
                                       reference_size, reference_length, makespan)
            if cost < best:
                best, best_n, best_l = cost, n, l
    return best_n, best_l
