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

from agents.oracle import DPOracle, solve
from sdedge_gym.episode import Episode
from sdedge_gym.segments import segment_tables


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
