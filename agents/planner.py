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

from sdedge_agents.oracle import DPOracle, solve
from sdedge_gym.episode import Episode, ServingModel
from sdedge_gym.segments import SegmentTables, segment_tables
from sdedge_gym.workload import WORKLOAD_FIELDS, Workload


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
