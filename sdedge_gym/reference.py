"""The best constant action of a scenario and its cost to go: the reference of the env's ``reward="reference"``.

The best constant action (n, l) is the constant action with the lowest mean episode cost over three *tuning*
episodes (``TUNING_SEEDS``, drawn with ``Episode.draw`` and seeds far from every training, validation and
test seed), each candidate scored exactly with the episode's segment tables. It is the action of the
``best-constant`` baseline (``sdedge_agents.baselines``, which imports this search); on the paper preset
(``sdedge/EdgeSD-v0``) it is n = 22 (the memory batch limit), l = 5.

Its cost to go from a state (next task, end of the last uplink slot, end of the last service) is what the
rest of the episode would cost if that action were committed at every remaining step (n clipped to the tasks
left, closed-form band split): :func:`reference_cost_to_go`, one call of the compiled kernel.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numba import njit

from sdedge_gym import kernels
from sdedge_gym.config import ScenarioConfig
from sdedge_gym.episode import Episode, EpisodeClock, ServingModel
from sdedge_gym.segments import SegmentTables, segment_tables

TUNING_SEEDS = (1_000_000, 1_000_001, 1_000_002)


@njit(cache=True)
def segment_cost_after(c, f, begin, f_next, n, completion_sum, divisor, makespan):
    """The cost so far after a segment of n tasks that starts at ``begin`` and ends at ``f_next``, on the
    segment tables: c + (n S + C) / K (mean latency) or c + (f' - f) (makespan) — the one definition every
    DP, bound and constant plan uses (the env's kernel sums the same completions task by task)."""
    if makespan:
        return c + (f_next - f)
    return c + (n * begin + completion_sum) / divisor


@njit(cache=True)
def constant_plan_cost(slot, duration, completion, release, first, u0, f0, divisor, size, l, makespan):
    """The cost (completions, before any release times are subtracted) of committing (size, l) at every step
    from the label (u0, f0) at ``first``; the last batch takes what is left, as the env clips it."""
    total = duration.shape[0]
    u, f, c = u0, f0, 0.0
    j = first
    while j < total:
        n = min(size, total - j)
        u = max(u, release[j + n - 1]) + slot[j, n - 1]
        begin = max(u, f)
        f_next = begin + duration[j, n - 1, l]
        c = segment_cost_after(c, f, begin, f_next, n, completion[j, n - 1, l], divisor, makespan)
        f = f_next
        j += n
    return c


def constant_action_cost(tables: SegmentTables, objective: str, batch_size: int, speculation_length: int) -> float:
    """Episode cost of committing (n, l) at every step from the start (n clipped to the tasks left, as the env
    does), on the segment tables."""
    slot, duration, completion = (np.ascontiguousarray(x, dtype=float) for x in (
        tables.uplink_slot, tables.duration, tables.completion_sum))
    size = min(batch_size, tables.batch_limit)
    return float(constant_plan_cost(slot, duration, completion, np.zeros(tables.num_tasks), 0, 0.0, 0.0,
                                    float(tables.num_tasks), size, speculation_length, objective == "makespan"))


@lru_cache(maxsize=8)
def constant_action_costs(scenario: ScenarioConfig, seeds: tuple[int, ...] = TUNING_SEEDS) -> np.ndarray:
    """(N, L + 1): mean episode cost of every constant action (n, l) over the tuning episodes."""
    model = ServingModel.of(scenario)
    costs = np.zeros((model.batch_limit, scenario.max_speculation + 1))
    for seed in seeds:
        episode = Episode.draw(model, np.random.default_rng(seed))
        tables = segment_tables(model, episode)
        for n in range(1, model.batch_limit + 1):
            for l in range(scenario.max_speculation + 1):
                costs[n - 1, l] += constant_action_cost(tables, scenario.objective, n, l) / len(seeds)
    return costs


def best_constant_action(scenario: ScenarioConfig) -> tuple[int, int]:
    """(n, l) of the lowest mean cost over the tuning episodes (the ``best-constant`` baseline's action)."""
    costs = constant_action_costs(scenario)
    n, l = np.unravel_index(int(np.argmin(costs)), costs.shape)
    return int(n) + 1, int(l)


# The online reference rule's timeout (s): max-batch-with-timeout as sdedge_agents.online.MaxBatchTimeout's default.
REFERENCE_TIMEOUT = 10.0


@lru_cache(maxsize=16)
def best_lengths_by_batch(scenario: ScenarioConfig) -> tuple[int, ...]:
    """For n = 1..n_lim, the best constant l for batches of n on the offline tuning episodes of the scenario's
    offline counterpart (arrivals dropped): the l of the online rules (dispatch-immediately, max-batch-timeout)."""
    offline = scenario.replace(arrivals=scenario.arrivals.replace(process="offline", trace="", load=None))
    return tuple(int(l) for l in np.argmin(constant_action_costs(offline), axis=1))


def timeout_cost_to_go(model: ServingModel, episode: Episode, clock: EpisodeClock, lengths: tuple[int, ...],
                       timeout: float = REFERENCE_TIMEOUT) -> float:
    """What the rest of an online ``episode`` costs from ``clock`` (epoch ``clock.now``) under
    max-batch-with-timeout (max batch n_lim, l = ``lengths[n - 1]``, ``timeout`` s), on the episode's own
    arrival times: the online env's reward="reference" potential (:func:`sdedge_gym.kernels.timeout_cost_to_go`);
    0 once every task is dispatched."""
    if clock.next_task >= episode.num_tasks:
        return 0.0
    prompt, output, alpha, payload, channel, runs = episode.kernel_arrays
    limit, release = model.batch_limit, np.asarray(episode.release, dtype=float)
    return kernels.timeout_cost_to_go(
        model.kernel_parameters, prompt, output, alpha, payload, channel, runs, release, clock.next_task, limit,
        float(timeout), np.asarray(lengths, dtype=np.int64), episode.runs is not None,
        np.empty(limit), np.empty(limit), clock.uplink_end, clock.inference_end, clock.now, model.workspace)


def reference_cost_to_go(model: ServingModel, episode: Episode, clock: EpisodeClock, batch_size: int,
                         speculation_length: int) -> float:
    """What the rest of ``episode`` costs from ``clock`` when (batch_size, speculation_length) is committed at
    every step (n clipped to the tasks left, closed-form split); 0 once every task is committed.

    The batches are the ones :func:`sdedge_gym.episode.commit_batch` would commit, timed by the same kernel
    (:func:`sdedge_gym.kernels.constant_cost_to_go`), so the sum is exactly the env's rewards' under that policy.
    """
    if clock.next_task >= episode.num_tasks:
        return 0.0
    prompt, output, alpha, payload, channel, runs = episode.kernel_arrays
    scratch = np.empty(batch_size)  # the kernel writes each batch's shares and completion times here
    return kernels.constant_cost_to_go(
        model.kernel_parameters, prompt, output, alpha, payload, channel, runs, clock.next_task, int(batch_size),
        int(speculation_length), episode.runs is not None, scratch, np.empty(batch_size),
        max(clock.uplink_end, clock.now), clock.inference_end, model.config.objective == "mean_latency",
        model.workspace)
