"""The service-chain speculation length: the l that is best for a given batch, by a model of that batch alone.

For the batch of the next n tasks, started from a clock, each l gives its completion times C_k(l) and its
service end F(l) (the compiled commit, :func:`sdedge_gym.episode.commit_batch`, with the closed-form band
split), and the rule is

    l*(n) = argmin_l  sum_k C_k(l) + r F(l),     r = the tasks left after the batch,

the batch's own completions plus the delay its service puts on every later task when the server, not the
uplink, is the bottleneck (one batch of the oracle's "service chain" lower bound; docs/MODEL.md, section 11).
Ties keep the smallest l. Under the makespan objective l*(n) = argmin_l F(l). Online, the clock's ``now`` is
the decision epoch and r counts every request after the batch, arrived or not.

It is the env's ``speculation="service_chain"`` option (the env plays l*(n) for the agent's n) and the
``chain-l:`` policies of ``sdedge_agents.service_chain`` (any policy's n with l*(n)); both time the batch on
the episode as the observation shows it (:func:`sdedge_gym.episode.predicted_episode`). Nine commits, about
0.1 ms a decision on the paper preset.
"""

from __future__ import annotations

import numpy as np

from sdedge_gym.episode import Episode, EpisodeClock, ServingModel, commit_batch


def service_chain_length(model: ServingModel, episode: Episode, clock: EpisodeClock, batch_size: int) -> int:
    """l*(n) of the module docstring for the batch of the next ``batch_size`` tasks of ``episode`` from ``clock``."""
    mean_latency = model.config.objective == "mean_latency"
    best, best_length = np.inf, 0
    for length in range(model.config.max_speculation + 1):
        outcome, after = commit_batch(model, episode, clock, batch_size, length)
        value = outcome.finish
        if mean_latency:
            value = float(outcome.completion_times.sum()) + (episode.num_tasks - after.next_task) * outcome.finish
        if value < best:
            best, best_length = value, length
    return best_length
