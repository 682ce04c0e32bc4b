"""The exact DP oracle (MODEL.md section 8) and the policy that replays its plan.

Batches are contiguous segments of the queue. After the first j tasks the state is a label
(uplink end u, inference end f, cost so far c). Serving segment (j, n, l) with the closed-form band split
maps a label monotonically:

    u' = u + U[j, n],   S = max(u', f),   f' = S + D[j, n, l],
    c' = c + (n S + C[j, n, l]) / K           (mean_latency)   or   c' = c + (f' - f)   (makespan)

so a label that is no better in all three coordinates than another at the same j can never lead to a
better episode. The DP keeps, at every j, only the non-dominated labels (a Pareto front) and, within a
segment, only the speculation lengths not dominated in (D, C).

It prunes harder with *shift dominance*. The dynamics are max-plus: monotone in (u, f) and
shift-equivariant (starting everything d later makes every later time exactly d later). So from label a,
every future completion is at most delta = max(0, u_a - u_b, f_a - f_b) later than from label b under
the same continuation, and with r = K - j tasks left, a is at least as good as b for every continuation
as soon as c_a + r * delta / K <= c_b (mean latency). Under makespan the final time from a is at most
delta later, so delta must be 0: the plain Pareto test. At K = 100 this keeps ~10x fewer labels.

The DP is exact: it returns the minimum of the objective over every action sequence (tested against
exhaustive search). In sampled acceptance mode the
tables read the episode's acceptance draws, so the plan is optimal in hindsight.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agents.policy import Policy
from sdedge_gym.actions import encode_action
from sdedge_gym.episode import Episode, EpisodeClock, ServingModel
from sdedge_gym.segments import SegmentTables, segment_tables
from sdedge_gym.uplink import closed_form_allocation

OBJECTIVES = ("mean_latency", "makespan")
_FRONT_BLOCK = 128  # candidates compared pairwise at once in the Pareto filter


@dataclass(frozen=True)
class Plan:
    """An optimal sequence of batches from a start state, and its cost."""

    first_task: int  # where the plan starts (the clock's next_task)
    batches: tuple[tuple[int, int], ...]  # (batch_size n, speculation_length l) in order
    cost: float  # sum of the batches' costs: the negated return from the start state
    labels: int  # Pareto labels kept over all j (a measure of the DP's work)

    def action_at(self, next_task: int) -> tuple[int, int] | None:
        """The (n, l) this plan commits when ``next_task`` tasks are done, or None if it never stands there."""
        task = self.first_task
        for n, l in self.batches:
            if task == next_task:
                return n, l
            task += n
        return None


def speculation_front(tables: SegmentTables, objective: str) -> np.ndarray:
    """(K, N, L + 1) bool: speculation lengths not dominated within their segment.

    Under makespan only D matters (keep the smallest, lowest l on ties); under mean latency l is dropped
    when another l' has D' <= D and C' <= C (ties keep the lowest l).
    """
    d, c = tables.duration, tables.completion_sum
    lengths = np.arange(d.shape[-1])
    if objective == "makespan":
        best = np.argmin(d, axis=-1)
        return lengths == best[..., None]
    # other[..., i, k]: does l = k dominate (or equal with a lower index) l = i?
    no_worse = (d[..., None, :] <= d[..., :, None]) & (c[..., None, :] <= c[..., :, None])
    better = (d[..., None, :] < d[..., :, None]) | (c[..., None, :] < c[..., :, None])
    earlier = lengths[None, :] < lengths[:, None]
    dominated = (no_worse & (better | earlier)).any(axis=-1)
    return ~dominated


def non_dominated(u: np.ndarray, f: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Indices of the labels no other label beats or ties in all of (u, f, c) (one of each tie kept).

    Sorted by c (then u, f), a label is dominated iff an earlier one has u and f no larger, i.e. iff it
    lies on or above the 2-D staircase (u, running min of f) of the labels before it. Candidates go
    through in blocks: each block is checked against the staircase of the earlier blocks (a binary
    search) and pairwise among itself, then its survivors are merged into the staircase.
    """
    order = np.lexsort((f, u, c))
    su, sf = u[order], f[order]
    kept: list[np.ndarray] = []
    stair_u = np.empty(0)
    stair_f = np.empty(0)
    for start in range(0, order.size, _FRONT_BLOCK):
        bu, bf = su[start:start + _FRONT_BLOCK], sf[start:start + _FRONT_BLOCK]
        size = bu.size
        step = np.searchsorted(stair_u, bu, side="right") - 1
        dominated = (step >= 0) & (stair_f[np.maximum(step, 0)] <= bf) if stair_u.size else np.zeros(size, bool)
        within = (bu[None, :] <= bu[:, None]) & (bf[None, :] <= bf[:, None])
        within &= np.tri(size, size, -1, dtype=bool)  # only earlier candidates of the block
        dominated |= within.any(axis=1)
        survivors = np.flatnonzero(~dominated)
        kept.append(order[start + survivors])
        merged_u = np.concatenate([stair_u, bu[survivors]])
        merged_f = np.concatenate([stair_f, bf[survivors]])
        by_u = np.lexsort((merged_f, merged_u))
        merged_u, merged_f = merged_u[by_u], merged_f[by_u]
        running = np.minimum.accumulate(merged_f)
        corner = np.ones(merged_u.size, dtype=bool)
        corner[1:] = merged_f[1:] < running[:-1]  # a strict improvement in f: a corner of the staircase
        stair_u, stair_f = merged_u[corner], merged_f[corner]
    return np.concatenate(kept) if kept else np.empty(0, dtype=np.int64)


def shift_non_dominated(u: np.ndarray, f: np.ndarray, c: np.ndarray, weight: float) -> np.ndarray:
    """Indices of the labels that no other label shift-dominates: b is dropped when some a has
    c_a + weight * max(0, u_a - u_b, f_a - f_b) <= c_b (weight = tasks left / K; one of each tie kept).

    Pairwise in blocks over the labels sorted by cost: only a cheaper (or equal, earlier) label can
    shift-dominate, since the penalty term is never negative.
    """
    order = np.lexsort((f, u, c))
    su, sf, sc = u[order], f[order], c[order]
    dominated = np.zeros(order.size, dtype=bool)
    for start in range(0, order.size, _FRONT_BLOCK):
        stop = min(start + _FRONT_BLOCK, order.size)
        alive = np.flatnonzero(~dominated[:stop])  # the dominators: surviving labels up to this block
        du = su[alive][None, :] - su[start:stop, None]
        df = sf[alive][None, :] - sf[start:stop, None]
        bound = sc[alive][None, :] + weight * np.maximum(np.maximum(du, df), 0.0)
        beats = (bound <= sc[start:stop, None]) & (alive[None, :] < np.arange(start, stop)[:, None])
        dominated[start:stop] |= beats.any(axis=1)
    return order[~dominated]


def solve(tables: SegmentTables, objective: str = "mean_latency", num_tasks: int | None = None,
          start: EpisodeClock | None = None, batch_limit: int | None = None) -> Plan:
    """The minimum-cost sequence of batches serving tasks ``start.next_task``..K-1 from clock ``start``.

    ``num_tasks`` is the K that divides the mean-latency cost (default: the table's K); ``batch_limit``
    caps n (default: the table's width).
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective = {objective!r} is invalid; allowed: {' | '.join(map(repr, OBJECTIVES))}")
    clock = EpisodeClock() if start is None else start
    total = tables.num_tasks
    divisor = float(total if num_tasks is None else num_tasks)
    width = tables.batch_limit if batch_limit is None else min(batch_limit, tables.batch_limit)
    if not 0 <= clock.next_task < total:
        raise ValueError(f"start.next_task = {clock.next_task} is invalid; allowed: an integer in [0, {total - 1}]")
    if width < 1:
        raise ValueError(f"batch_limit = {batch_limit} is invalid; allowed: an integer >= 1")
    keep_l = speculation_front(tables, objective)
    first = clock.next_task
    # Labels at each j: u, f, c and the back-pointer (previous j, label index there, n, l).
    fronts: dict[int, tuple[np.ndarray, ...]] = {
        first: (np.array([clock.uplink_end]), np.array([clock.inference_end]), np.zeros(1),
                np.full(1, -1), np.full(1, -1), np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64)),
    }
    labels = 1
    for j in range(first + 1, total + 1):
        parts = []
        for n in range(1, min(width, j - first) + 1):
            p = j - n
            u, f, c = fronts[p][:3]
            lengths = np.flatnonzero(keep_l[p, n - 1])
            u_next = u + tables.uplink_slot[p, n - 1]
            begin = np.maximum(u_next, f)
            f_next = begin[:, None] + tables.duration[p, n - 1, lengths][None, :]
            if objective == "mean_latency":
                c_next = c[:, None] + (n * begin[:, None] + tables.completion_sum[p, n - 1, lengths][None, :]) / divisor
            else:
                c_next = c[:, None] + (f_next - f[:, None])
            count, width_l = f_next.shape
            parts.append((np.repeat(u_next, width_l), f_next.ravel(), c_next.ravel(), np.full(count * width_l, p),
                          np.repeat(np.arange(count), width_l), np.full(count * width_l, n),
                          np.tile(lengths, count)))
        merged = [np.concatenate(column) for column in zip(*parts, strict=True)]
        keep = non_dominated(merged[0], merged[1], merged[2])
        if objective == "mean_latency" and keep.size > 1:
            weight = (total - j) / divisor
            keep = keep[shift_non_dominated(merged[0][keep], merged[1][keep], merged[2][keep], weight)]
        fronts[j] = tuple(column[keep] for column in merged)
        labels += keep.size
    u, f, c, prev, index, sizes, lengths = fronts[total]
    best = int(np.argmin(c))
    cost = float(c[best])
    batches = []
    j = total
    while j != first:
        _, _, _, prev, index, sizes, lengths = fronts[j]
        batches.append((int(sizes[best]), int(lengths[best])))
        j, best = int(prev[best]), int(index[best])
    return Plan(first, tuple(reversed(batches)), cost, labels)


def optimal_plan(model: ServingModel, episode: Episode, start: EpisodeClock | None = None,
                 allocation: str = "closed_form") -> Plan:
    """The exact optimum of ``episode`` (from ``start``) under the scenario's objective."""
    tables = segment_tables(model, episode, allocation)
    return solve(tables, model.config.objective, episode.num_tasks, start)


class DPOracle(Policy):
    """The exact optimum, replayed: plans once per episode from the env's episode data.

    It notices a new episode by itself (the env's ``episode`` object changes), and re-plans from the
    current clock if the episode was driven off its plan. Works in every action mode: in "hybrid" and
    "dict" it emits the closed-form shares (as logits / weights), so the env reproduces them up to the
    float32 rounding of the action (about 1e-7 of the slot length). With ``allocation="uniform"`` it is
    the best plan under equal shares (the benchmark split), which needs a "hybrid" or "dict" env.
    """

    name = "oracle"

    def __init__(self, env, allocation: str = "closed_form") -> None:
        super().__init__(env)
        if allocation == "uniform" and self.action_mode == "discrete":
            raise ValueError("allocation = 'uniform' needs action_mode 'hybrid' or 'dict' (the discrete mode "
                             "always uses the closed-form split)")
        self.allocation = allocation
        self._episode: Episode | None = None
        self._tables: SegmentTables | None = None
        self.plan: Plan | None = None

    def choose(self) -> tuple[int, int]:
        env = self.unwrapped
        if env.episode is not self._episode:
            self._episode = env.episode
            self._tables = segment_tables(env.model, env.episode, self.allocation)
            self.plan = None
        clock = env.clock
        step = None if self.plan is None else self.plan.action_at(clock.next_task)
        if step is None:
            self.plan = solve(self._tables, env.scenario.objective, env.episode.num_tasks, clock)
            step = self.plan.batches[0]
        return step

    def act(self, observation):
        n, l = self.choose()
        return self.encode(n, l, self.shares(n))

    def shares(self, batch_size: int) -> np.ndarray | None:
        """Band shares of the next ``batch_size`` tasks under this policy's allocation (None: discrete)."""
        if self.action_mode == "discrete":
            return None
        if self.allocation == "uniform":
            return np.full(batch_size, 1.0 / batch_size)
        return closed_form_shares(self.unwrapped, batch_size)

    def encode(self, batch_size: int, speculation_length: int, shares: np.ndarray | None):
        cfg = self.unwrapped.scenario
        return encode_action(self.action_mode, batch_size, speculation_length, cfg.max_batch, cfg.max_speculation,
                             shares)


class UniformShares(DPOracle):
    """The best plan when the band is split equally (the paper's benchmark allocation); hybrid/dict envs."""

    name = "uniform-shares"

    def __init__(self, env) -> None:
        super().__init__(env, allocation="uniform")


def closed_form_shares(env, batch_size: int) -> np.ndarray:
    """Closed-form band shares (summing to 1) of the next ``batch_size`` tasks of an unwrapped env."""
    first = env.clock.next_task
    uplink = env.scenario.uplink
    sl = slice(first, first + batch_size)
    _, band = closed_form_allocation(env.episode.workload.payload_bits[sl], env.episode.channel[sl],
                                     uplink.bandwidth, uplink.rate_model)
    return band / uplink.bandwidth
