"""Baseline policies: fixed actions, max batching, the best constant action, autoregressive, random.

The tuned baselines (best constant, max batching's l, autoregressive's n) search over constant actions on
*tuning* episodes drawn with seeds of their own (``TUNING_SEEDS``, far from the evaluation seeds
0, 1, 2, ...), scoring each candidate exactly with the episode's segment tables; the search is cached per
scenario so several baselines share it. The search itself is :mod:`sdedge_gym.reference` (the env's
``reward="reference"`` uses the best constant action); its names are re-exported here.
"""

from __future__ import annotations

import numpy as np

from sdedge_agents.oracle import closed_form_shares
from sdedge_agents.policy import Policy
from sdedge_gym.reference import TUNING_SEEDS, constant_action_cost, constant_action_costs  # noqa: F401


class FixedAction(Policy):
    """Always (n, l) with the closed-form split (uniform shares in hybrid/dict if ``uniform_shares``)."""

    name = "fixed"
    counterpart = "sdedge_agents.online.DispatchImmediately"

    def __init__(self, env, batch_size: int, speculation_length: int, uniform_shares: bool = False) -> None:
        super().__init__(env)
        if not (isinstance(batch_size, int | np.integer) and 1 <= batch_size <= self.max_batch):
            raise ValueError(f"batch_size = {batch_size!r} is invalid; allowed: an integer in [1, {self.max_batch}]")
        if not (isinstance(speculation_length, int | np.integer) and 0 <= speculation_length <= self.max_speculation):
            raise ValueError(f"speculation_length = {speculation_length!r} is invalid; allowed: an integer in "
                             f"[0, {self.max_speculation}]")
        if uniform_shares and not self.actions.explicit_band:
            raise ValueError("uniform_shares = True needs action_mode 'hybrid' or 'dict' (discrete mode always uses "
                             "the closed-form split)")
        self.batch_size = int(batch_size)
        self.speculation_length = int(speculation_length)
        self.uniform_shares = uniform_shares

    def act(self, observation):
        n = min(self.batch_size, self.batch_limit())
        shares = None
        if self.actions.explicit_band:
            shares = np.full(n, 1.0 / n) if self.uniform_shares else closed_form_shares(self.unwrapped, n)
        return self.encode(n, self.speculation_length, shares)


class MaxBatch(FixedAction):
    """Max batching: the largest valid batch at every step, with a fixed l (default: the best on tuning)."""

    name = "max-batch"
    counterpart = "sdedge_agents.online.MaxBatchTimeout"

    def __init__(self, env, speculation_length: int | None = None, seeds: tuple[int, ...] = TUNING_SEEDS) -> None:
        if speculation_length is None:
            costs = constant_action_costs(env.unwrapped.scenario, seeds)
            speculation_length = int(np.argmin(costs[-1]))
        super().__init__(env, env.unwrapped.scenario.max_batch, speculation_length)


class BestConstant(FixedAction):
    """The best constant (n, l) over the tuning episodes, closed-form shares."""

    name = "best-constant"

    def __init__(self, env, seeds: tuple[int, ...] = TUNING_SEEDS) -> None:
        costs = constant_action_costs(env.unwrapped.scenario, seeds)
        n, l = np.unravel_index(int(np.argmin(costs)), costs.shape)
        super().__init__(env, int(n) + 1, int(l))


class Autoregressive(FixedAction):
    """Plain autoregressive decoding (l = 0, no draft) with the best batch size on the tuning episodes."""

    name = "autoregressive"
    counterpart = "sdedge_agents.online.Autoregressive"

    def __init__(self, env, seeds: tuple[int, ...] = TUNING_SEEDS) -> None:
        costs = constant_action_costs(env.unwrapped.scenario, seeds)
        super().__init__(env, int(np.argmin(costs[:, 0])) + 1, 0)


class RandomPolicy(Policy):
    """Uniformly random valid actions: n in 1..batch_limit, l in 0..l_max, random shares in hybrid/dict."""

    name = "random"
    counterpart = "sdedge_agents.online.OnlineRandom"

    def __init__(self, env, seed: int | None = 0) -> None:
        super().__init__(env)
        self.rng = np.random.default_rng(seed)

    def act(self, observation):
        n = int(self.rng.integers(1, self.batch_limit() + 1))
        l = int(self.rng.integers(0, self.max_speculation + 1))
        shares = None
        if self.actions.explicit_band:
            shares = self.rng.dirichlet(np.ones(n))
        return self.encode(n, l, shares)
