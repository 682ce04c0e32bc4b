"""Prioritised episode replay: training episodes on which the policy is furthest from the oracle are played again.

Why: some events are rare and costly. On ``sdedge/EdgeSD-v0`` about 2 % of episodes hold a user in a deep fade
(Rayleigh gain near zero at the cell edge: its upload alone over the whole band takes more than 30 s, against
~0.65 s for the median user). The batch that carries that user waits for its upload, so the right action is to
end the batch before it and start the next one with it; an agent that does not makes the tasks ahead of the
fade in its batch wait for it too, and loses up to tens of percent on the episode. Sampled as they come, such
episodes are a few of every hundred, and RL agents trained from reward do not learn them (docs/BENCHMARK.md, "Rare
events: deep fades").

Prioritised level replay (Jiang, Grefenstette and Rocktäschel, ICML 2021) replays the training instances with
the most left to learn. Here the score of an episode is the policy's gap to the exact oracle on it, which this
package computes in milliseconds: ``score = mean over the group's rollouts of objective / oracle - 1``. The
oracle chooses which episodes are trained on, never an action: no labels, no reward shaping; the agent still
learns from its rewards alone (a curriculum).

* A buffer of the ``capacity`` highest-scoring episodes seen (fresh or replayed; the lowest evicted).
* Each update replays ``fraction`` of its groups (rounded) from the buffer, drawn without replacement with
  probability proportional to 1 / rank by score (PLR's rank prioritisation at temperature 1), once the buffer
  holds that many; the other groups are fresh episodes from the leaders' streams.
* A replayed episode's score is replaced by the one its new rollouts give, so an episode the policy has
  learned falls down the ranking and out of the buffer.

Offline ids only (an online episode's oracle is the hindsight DP with release times, not wired here).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sdedge_agents.oracle import optimal_plan
from sdedge_gym.episode import Episode, ServingModel

REPLAY_CAPACITY = 256  # episodes kept (a few hundred: the rare ones stay in, at a few kB of arrays each)


@dataclass(eq=False)  # entries are compared by identity: an Episode's arrays have no truth value
class ReplayEntry:
    """One training episode, its oracle objective (computed once) and the policy's last gap on it."""

    episode: Episode
    oracle: float
    score: float


class EpisodeReplay:
    """The buffer of the module docstring; ``rng`` draws the replayed episodes (the run's, so runs repeat)."""

    def __init__(self, fraction: float, capacity: int = REPLAY_CAPACITY,
                 rng: np.random.Generator | None = None) -> None:
        if not (isinstance(fraction, int | float) and 0.0 <= fraction < 1.0):
            raise ValueError(f"replay fraction = {fraction!r} is invalid; allowed: a number in [0, 1)")
        if not (isinstance(capacity, int) and capacity >= 1):
            raise ValueError(f"replay capacity = {capacity!r} is invalid; allowed: an integer >= 1")
        self.fraction, self.capacity = float(fraction), capacity
        self.rng = np.random.default_rng() if rng is None else rng
        self.entries: list[ReplayEntry] = []

    def __len__(self) -> int:
        return len(self.entries)

    def draw(self, groups: int) -> list[ReplayEntry]:
        """The entries to replay in an update of ``groups`` groups: none until the buffer holds enough."""
        count = round(self.fraction * groups)
        if count == 0 or len(self.entries) < count:
            return []
        ranked = sorted(self.entries, key=lambda entry: -entry.score)
        weights = 1.0 / np.arange(1, len(ranked) + 1)
        chosen = self.rng.choice(len(ranked), size=count, replace=False, p=weights / weights.sum())
        return [ranked[i] for i in chosen]

    def record(self, model: ServingModel, episode: Episode, objective: float,
               entry: ReplayEntry | None = None) -> ReplayEntry:
        """Score ``episode`` by the policy's mean ``objective`` on it: a replayed ``entry`` is re-scored, a fresh
        episode gets its oracle and joins the buffer if it ranks among the ``capacity`` highest."""
        if entry is None:
            oracle = optimal_plan(model, episode).cost
            entry = ReplayEntry(episode, oracle, objective / oracle - 1.0)
            self.entries.append(entry)
        else:
            entry.score = objective / entry.oracle - 1.0
        if len(self.entries) > self.capacity:
            del self.entries[int(np.argmin([e.score for e in self.entries]))]
        return entry

    def scores(self) -> np.ndarray:
        """The buffer's scores, highest first (for the progress log)."""
        return np.sort([entry.score for entry in self.entries])[::-1]
