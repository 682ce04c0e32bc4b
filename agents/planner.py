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

import numpy as np
from numba import njit

from sdedge_agents.oracle import DPOracle, solve
from sdedge_gym import compile_cache
from sdedge_gym.episode import Episode, ServingModel
from sdedge_gym.reference import best_constant_action, constant_plan_cost, segment_cost_after
from sdedge_gym.segments import SegmentTables, segment_tables
from sdedge_gym.workload import WORKLOAD_FIELDS, Workload

compile_cache.install()  # before this module's @njit(cache=True): cached in the per-user folder, not here


def predicted_episode(episode: Episode, exact: bool = False) -> Episode:
    """The episode as the planner believes it: hints and estimates (or the truth), expected acceptance."""
    w = episode.workload
    if exact:
        view = dataclasses.replace(w, uniforms=None)
    else:
        view = dataclasses.replace(w, output_len=np.asarray(w.output_hint, dtype=np.int64),
                                   alpha=np.asarray(w.alpha_estimate, dtype=float), uniforms=None)
    return Episode(view, episode.channel, None)


class MPCPlanner(DPOracle):
    """Model-predictive control: the DP on predicted lengths and expected acceptance, re-solved each step."""

    name = "planner"
    counterpart = "sdedge_agents.online.OnlinePlanner"

    def __init__(self, env, exact: bool = False) -> None:
        super().__init__(env)
        self.exact = exact

    def choose(self) -> tuple[int, int]:
        env = self.unwrapped
        if env.episode is not self._episode:
            self._episode = env.episode
            self._tables = segment_tables(env.model, predicted_episode(env.episode, self.exact))
        self.plan = solve(self._tables, env.scenario.objective, env.episode.num_tasks, env.clock)
        return self.plan.batches[0]


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

    def choose(self) -> tuple[int, int]:
        env = self.unwrapped
        clock = env.clock
        tables = window_tables(env.model, env.episode, clock.next_task, env.scenario.max_batch,
                               env.scenario.clairvoyant)
        # The remaining queue from a clock shifted to its first task; the cost is still divided by K.
        start = dataclasses.replace(clock, next_task=0)
        self.plan = solve(tables, env.scenario.objective, env.episode.num_tasks, start)
        return self.plan.batches[0]


def window_tables(model: ServingModel, episode: Episode, next_task: int, window: int, exact: bool) -> SegmentTables:
    """``segment_tables(model, window_episode(episode, next_task, window, exact))``, computed on one period.

    That queue repeats its first ``seen = min(left, window)`` tasks, so segment (j, n) is the very batch of
    segment (j mod seen, n) (the same tasks in the same order, so the same numbers) unless it runs past
    the queue's end: the first seen rows of the tables of its first seen + n_max - 1 tasks, tiled, hold
    every entry.
    """
    left = episode.num_tasks - next_task
    seen = min(left, window)
    width = min(model.batch_limit, left)
    head = min(left, seen + width - 1)
    if head == left:
        return segment_tables(model, window_episode(episode, next_task, window, exact))
    tables = segment_tables(model, window_episode(episode, next_task, window, exact, head), first_tasks=seen)
    rows = np.arange(left) % seen
    past_end = (np.arange(left)[:, None] + np.arange(1, width + 1)[None, :]) > left
    slot, duration, completion = (tables.uplink_slot[rows], tables.duration[rows], tables.completion_sum[rows])
    slot[past_end] = np.inf
    duration[past_end] = np.inf
    completion[past_end] = np.inf
    return SegmentTables(slot, duration, completion, tables.allocation)


class RolloutPlanner(MPCPlanner):
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
