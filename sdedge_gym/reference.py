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

from sdedge_gym import kernels
from sdedge_gym.config import ScenarioConfig
from sdedge_gym.episode import Episode, EpisodeClock, ServingModel
from sdedge_gym.segments import SegmentTables, segment_tables

TUNING_SEEDS = (1_000_000, 1_000_001, 1_000_002)


def constant_action_cost(tables: SegmentTables, objective: str, batch_size: int, speculation_length: int) -> float:
    """Episode cost of committing (n, l) at every step (n clipped to the tasks left, as the env does)."""
    total = tables.num_tasks
    n_full = min(batch_size, tables.batch_limit)
    uplink_end = inference_end = cost = 0.0
    j = 0
    while j < total:
        n = min(n_full, total - j)
        uplink_end += tables.uplink_slot[j, n - 1]
        begin = max(uplink_end, inference_end)
        finish = begin + tables.duration[j, n - 1, speculation_length]
        if objective == "mean_latency":
            cost += (n * begin + tables.completion_sum[j, n - 1, speculation_length]) / total
        else:
            cost += finish - inference_end
        inference_end = finish
        j += n
    return float(cost)


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
        int(speculation_length), episode.runs is not None, scratch, np.empty(batch_size), clock.uplink_end,
        clock.inference_end, model.config.objective == "mean_latency", model.workspace)
