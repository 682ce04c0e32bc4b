"""The exact DP oracle (MODEL.md section 11) and the policy that replays its plan.

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
as soon as c_a + w delta <= c_b, w = r / K (mean latency). Under makespan the final time from a is at most
delta later, so delta must be 0: the plain Pareto test. Written out, c_a + w delta <= c_b is the three
inequalities c_a <= c_b, c_a + w u_a <= c_b + w u_b, c_a + w f_a <= c_b + w f_b: plain Pareto dominance
in the coordinates (c, c + w u, c + w f). Both tests are therefore one filter: sort by the first
coordinate, then a 2-D staircase of the other two with a binary search. Plain dominance implies shift
dominance (delta = 0), so under mean latency the shift filter alone drops everything either would.

Bound pruning (exact). An upper bound UB is the cost of a real plan on the same tables: the best constant
(n, l) plan, improved by beam-restricted runs of this DP (the 1, then 16 labels per j of least c + LB,
each pruned by the bound before). A label whose cost so far plus a lower bound LB on its cost to go
exceeds UB (by more than 1e-9 UB, which covers the rounding of the bounds' different operation order)
cannot be on an optimal path, and neither can any label it would lead to. LB is the larger of two
relaxations, each a backwards 1-D DP over j on the tables (r = K - j tasks left, minima over n <= batch
limit and every l):

* service chain: drop the uplink after the first batch, S_m >= F_{m-1}. The first batch starts at
  S_1 >= s0 = max(f, u + Umin_j) (Umin_j = min over n of U[j, n]), so S_m >= s0 + the D's of the
  batches before m, and summing n_m S_m gives, for mean latency,
      cost to go >= r s0 / K + W_j,   W_j = min_{n,l} [C[j,n,l] + (K - j - n) D[j,n,l]] / K + W_{j+n}
  (each D delays every task after its batch), and for makespan  cost to go >= s0 + W'_j - f,
  W'_j = min_{n,l} D[j,n,l] + W'_{j+n};
* uplink chain: drop the service, S_m >= u + the slots of batches 1..m, so for mean latency
      cost to go >= r u / K + V_j,    V_j = min_{n,l} [(K - j) U[j,n] + C[j,n,l]] / K + V_{j+n}
  (each slot delays every task from its batch on), and for makespan  cost to go >= u + V'_j - f,
  V'_j = min_n U[j,n] + (min_l D[j,n,l] if j + n = K else V'_{j+n}).

W_K = V_K = 0 and LB = 0 at j = K. A label that dominates an optimal label has c + LB <= the optimum <=
UB, so the dominance filters and the bound together always keep a label with an optimal continuation.

Release times (the online family's arrivals, ``release=``). A batch that ends with task j - 1 cannot
be dispatched before that task's release a_{j-1}, nor before the current epoch ``now``; waiting longer
never helps (every later time is monotone in the dispatch time), so the map becomes u' = max(u, a_{j-1})
+ U[j, n], the rest unchanged. x -> max(x, a) is monotone and 1-Lipschitz, so Pareto and shift dominance
stay exact; releases only delay, so the lower bounds above (computed without them) stay lower bounds,
and the upper bound's constant plans wait for their releases too. The cost counts completions, and the
plan's reported cost subtracts the constant sum of the releases: sum_k (C_k - a_k) / K, the mean latency
from arrival. Without ``release`` every a is 0 and the map is the offline one, bit for bit (u >= 0).

The DP is exact: it returns the minimum of the objective over every action sequence (tested against
exhaustive search, and pruned against unpruned; with release times against exhaustive search with waits).
In sampled acceptance mode the tables read the episode's acceptance draws, so the plan is optimal in
hindsight. The forward DP, the filters and the
bounds are compiled with numba (``cache=True``); fronts live in flat arrays with an offset per j and a
back-pointer per label for plan recovery.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from sdedge_agents.policy import Policy
from sdedge_gym import compile_cache
from sdedge_gym.episode import Episode, EpisodeClock, ServingModel
from sdedge_gym.reference import constant_plan_cost, segment_cost_after
from sdedge_gym.segments import SegmentTables, segment_tables
from sdedge_gym.uplink import closed_form_allocation

compile_cache.install()  # before this module's @njit(cache=True): cached in the per-user folder, not here

OBJECTIVES = ("mean_latency", "makespan")
BEAM_WIDTHS = (1, 16)  # labels per j in the heuristic runs that tighten the upper bound, in turn
PRUNE_MARGIN = 1e-9  # relative slack of the bound test: far above the bounds' rounding, far below any gap
_RUN = 16  # the merge sort orders runs of this length by insertion first


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
    return _speculation_front(np.ascontiguousarray(tables.duration, dtype=float),
                              np.ascontiguousarray(tables.completion_sum, dtype=float), objective == "makespan")


def non_dominated(u: np.ndarray, f: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Indices of the labels no other label beats or ties in all of (u, f, c) (one of each tie kept).

    Sorted by c (then u, f), a label is dominated iff an earlier one has u and f no larger, i.e. iff it
    lies on or above the 2-D staircase (u, running min of f) of the labels before it (a binary search).
    """
    u, f, c = (np.ascontiguousarray(x, dtype=float) for x in (u, f, c))
    return _pareto_survivors(c, u, f)


def shift_non_dominated(u: np.ndarray, f: np.ndarray, c: np.ndarray, weight: float) -> np.ndarray:
    """Indices of the labels that no other label shift-dominates: b is dropped when some a has
    c_a + weight * max(0, u_a - u_b, f_a - f_b) <= c_b (weight = tasks left / K; one of each tie kept).

    That is plain dominance in (c, c + weight u, c + weight f) (module docstring), so the same filter.
    """
    u, f, c = (np.ascontiguousarray(x, dtype=float) for x in (u, f, c))
    return _shift_survivors(u, f, c, float(weight))


def solve(tables: SegmentTables, objective: str = "mean_latency", num_tasks: int | None = None,
          start: EpisodeClock | None = None, batch_limit: int | None = None, prune: bool = True,
          release: np.ndarray | None = None, now: float = 0.0, end: int | None = None) -> Plan:
    """The minimum-cost sequence of batches serving tasks ``start.next_task``..end-1 from clock ``start``:
    the one DP of every oracle and planner, offline and online.

    ``num_tasks`` is the K that divides the mean-latency cost (default: the table's K); ``batch_limit``
    caps n (default: the table's width); ``end`` stops the plan before task ``end`` (default: the table's
    K; the online planner's horizon). ``release`` (shape (K,), default none) gives each task's release
    time: a batch waits for its last task, and the cost is sum_k (C_k - a_k) / K; ``now`` is the earliest
    dispatch of the first batch (module docstring; the later of ``now`` and ``start.now``). ``prune=False``
    skips the bound pruning (dominance only): the same optimum, more labels; tests compare the two.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective = {objective!r} is invalid; allowed: {' | '.join(map(repr, OBJECTIVES))}")
    clock = EpisodeClock() if start is None else start
    total = tables.num_tasks if end is None else end
    divisor = float(tables.num_tasks if num_tasks is None else num_tasks)
    width = tables.batch_limit if batch_limit is None else min(batch_limit, tables.batch_limit)
    if not (isinstance(total, int | np.integer) and 0 < total <= tables.num_tasks):
        raise ValueError(f"end = {end!r} is invalid; allowed: an integer in [1, {tables.num_tasks}]")
    if not 0 <= clock.next_task < total:
        raise ValueError(f"start.next_task = {clock.next_task} is invalid; allowed: an integer in [0, {total - 1}]")
    if width < 1:
        raise ValueError(f"batch_limit = {batch_limit} is invalid; allowed: an integer >= 1")
    if release is None:
        release = np.zeros(tables.num_tasks)
    release = np.asarray(release, dtype=float)
    if release.shape != (tables.num_tasks,) or not np.all(np.isfinite(release)) or np.any(release < 0):
        raise ValueError(f"release (shape {release.shape}) is invalid; allowed: shape ({tables.num_tasks},), finite "
                         "times >= 0")
    # Tasks from `end` on are not part of this problem: the tables cut there bound and plan tasks < end only.
    slot, duration, completion = (np.ascontiguousarray(x[:total], dtype=float) for x in (
        tables.uplink_slot, tables.duration, tables.completion_sum))
    release = np.ascontiguousarray(release[:total])
    makespan = objective == "makespan"
    keep_l = _speculation_front(duration, completion, makespan)
    first, f0 = clock.next_task, float(clock.inference_end)
    u0 = max(float(clock.uplink_end), float(clock.now), float(now))
    umin, service, uplink = _cost_to_go_bounds(slot, duration, completion, divisor, width, makespan)
    limit = np.inf
    if prune:
        upper = _best_constant_cost(slot, duration, completion, release, first, u0, f0, divisor, width, makespan)
        for beam in BEAM_WIDTHS:  # each run is pruned by the bound of the one before, so the wide one is cheap
            limit = upper + PRUNE_MARGIN * abs(upper)
            times, _, offsets = _forward(slot, duration, completion, release, keep_l, first, u0, f0, divisor, width,
                                         makespan, limit, umin, service, uplink, beam)
            upper = min(upper, float(times[2, offsets[-2]:].min(initial=np.inf)))
        limit = upper + PRUNE_MARGIN * abs(upper)
    times, links, offsets = _forward(slot, duration, completion, release, keep_l, first, u0, f0, divisor, width,
                                     makespan, limit, umin, service, uplink, 0)
    final = times[2, offsets[-2]:]
    if final.size == 0:
        raise RuntimeError("the DP kept no label at the end of the queue: the bounds are inconsistent")
    best = offsets[-2] + int(np.argmin(final))
    cost = float(times[2, best])
    if not makespan:  # the releases are a constant of the problem: subtracted once, from the optimum
        cost -= float(release[first:].sum()) / divisor
    batches = []
    parent, sizes, lengths = links
    while parent[best] >= 0:
        batches.append((int(sizes[best]), int(lengths[best])))
        best = int(parent[best])
    return Plan(first, tuple(reversed(batches)), cost, int(offsets[-1]))


def action_values(tables: SegmentTables, objective: str = "mean_latency", num_tasks: int | None = None,
                  start: EpisodeClock | None = None, batch_limit: int | None = None) -> np.ndarray:
    """Q[n - 1, l]: the cost of committing (n, l) first from clock ``start`` plus the DP's optimum after it
    (:func:`solve` from the clock that batch leads to), in the objective's units (under mean latency the
    completions of the tasks left, summed and divided by ``num_tasks``, as :attr:`Plan.cost`).

    Shape (the tables' width, L + 1). +inf where n exceeds ``batch_limit`` or the tasks left, and where l is
    off the speculation front of the first segment (:func:`speculation_front`): another length l' is then no
    worse (a duration no larger and, under mean latency, a completion sum no larger), so Q[n - 1, l] >=
    Q[n - 1, l'], and the DP never picks it.
    min Q is the optimum :func:`solve` returns from ``start`` (the same sums in another order: equal to
    rounding), and the plan's first batch attains it. One :func:`solve` per entry on the front: the cost of
    labelling every action of a state with its value, which cost-sensitive imitation
    (``sdedge_agents.imitate --temperature``) reads.
    """
    clock = EpisodeClock() if start is None else start
    makespan = objective == "makespan"
    divisor = float(tables.num_tasks if num_tasks is None else num_tasks)
    width = tables.batch_limit if batch_limit is None else min(batch_limit, tables.batch_limit)
    first, left = clock.next_task, tables.num_tasks - clock.next_task
    if objective not in OBJECTIVES:
        raise ValueError(f"objective = {objective!r} is invalid; allowed: {' | '.join(map(repr, OBJECTIVES))}")
    if not 0 <= first < tables.num_tasks:
        raise ValueError(f"start.next_task = {first} is invalid; allowed: an integer in [0, {tables.num_tasks - 1}]")
    front = speculation_front(tables, objective)[first]
    values = np.full(tables.duration.shape[1:], np.inf)
    u0, f0 = max(float(clock.uplink_end), float(clock.now)), float(clock.inference_end)
    for n in range(1, min(width, left) + 1):
        uplink_end = u0 + float(tables.uplink_slot[first, n - 1])
        begin = max(uplink_end, f0)
        for l in np.flatnonzero(front[n - 1]):
            finish = begin + float(tables.duration[first, n - 1, l])
            cost = segment_cost_after(0.0, f0, begin, finish, n, float(tables.completion_sum[first, n - 1, l]),
                                      divisor, makespan)
            if n < left:
                after = EpisodeClock(first + n, uplink_end, finish, clock.batches + 1, uplink_end)
                cost += solve(tables, objective, num_tasks, after, width).cost
            values[n - 1, l] = cost
    return values


@njit(cache=True)
def _speculation_front(duration, completion, makespan):
    """speculation_front on the raw tables (compiled)."""
    num_tasks, width, num_lengths = duration.shape
    keep = np.zeros(duration.shape, dtype=np.bool_)
    for j in range(num_tasks):
        for s in range(width):
            d, c = duration[j, s], completion[j, s]
            if makespan:
                keep[j, s, np.argmin(d)] = True  # the first minimum: the lowest l on ties
                continue
            for i in range(num_lengths):
                dominated = False
                for k in range(num_lengths):
                    if k != i and d[k] <= d[i] and c[k] <= c[i] and (d[k] < d[i] or c[k] < c[i] or k < i):
                        dominated = True
                        break
                keep[j, s, i] = not dominated
    return keep


@njit(cache=True)
def _lex_order(first, second, third):
    """Indices sorting the points by (first, second, third), ties in index order: a merge sort (runs of
    _RUN by insertion, then bottom-up merges). Hand-written because numba's argsort takes seconds to compile."""
    size = first.size
    order = np.arange(size)
    spare = np.empty(size, dtype=np.int64)
    for lo in range(0, size, _RUN):
        for a in range(lo + 1, min(lo + _RUN, size)):
            v = order[a]
            b = a - 1
            while b >= lo and _after(order[b], v, first, second, third):
                order[b + 1] = order[b]
                b -= 1
            order[b + 1] = v
    width = _RUN
    while width < size:
        for lo in range(0, size, 2 * width):
            mid, hi = min(lo + width, size), min(lo + 2 * width, size)
            i, k = lo, mid
            for t in range(lo, hi):
                if k >= hi or (i < mid and not _after(order[i], order[k], first, second, third)):
                    spare[t] = order[i]
                    i += 1
                else:
                    spare[t] = order[k]
                    k += 1
        order, spare = spare, order
        width *= 2
    return order


@njit(cache=True)
def _after(a, b, first, second, third):
    """Does point a sort strictly after point b in (first, second, third)?"""
    if first[a] != first[b]:
        return first[a] > first[b]
    if second[a] != second[b]:
        return second[a] > second[b]
    return third[a] > third[b]


@njit(cache=True)
def _pareto_survivors(c, x, y):
    """Indices (in (c, x, y) order) of the points no other point beats or ties in all of (c, x, y).

    After sorting by (c, x, y), a point is dominated iff an earlier one has x and y no larger: iff it lies
    on or above the staircase of the survivors before it, kept as x ascending with y strictly descending.
    """
    order = _lex_order(c, x, y)
    stair_x = np.empty(order.size)
    stair_y = np.empty(order.size)
    steps = 0
    kept = np.empty(order.size, dtype=np.int64)
    count = 0
    for i in order:
        xi, yi = x[i], y[i]
        lo, hi = 0, steps  # the first step with stair_x > xi
        while lo < hi:
            mid = (lo + hi) // 2
            if stair_x[mid] <= xi:
                lo = mid + 1
            else:
                hi = mid
        k = lo - 1  # the last step with stair_x <= xi: the lowest y among the steps left of xi
        if k >= 0 and stair_y[k] <= yi:
            continue
        kept[count] = i
        count += 1
        # The new point replaces the steps it dominates: one at the same x (its y is larger, else the point
        # would be dominated) and the run to the right with y >= yi.
        begin = k if k >= 0 and stair_x[k] == xi else k + 1
        end = begin
        while end < steps and stair_y[end] >= yi:
            end += 1
        change = 1 - (end - begin)
        if change > 0:
            for t in range(steps - 1, end - 1, -1):
                stair_x[t + 1] = stair_x[t]
                stair_y[t + 1] = stair_y[t]
        elif change < 0:
            for t in range(end, steps):
                stair_x[t + change] = stair_x[t]
                stair_y[t + change] = stair_y[t]
        stair_x[begin] = xi
        stair_y[begin] = yi
        steps += change
    return kept[:count]


@njit(cache=True)
def _shift_survivors(u, f, c, weight):
    """shift_non_dominated (compiled): plain dominance in (c, c + weight u, c + weight f)."""
    x = np.empty(c.size)
    y = np.empty(c.size)
    for i in range(c.size):
        x[i] = c[i] + weight * u[i]
        y[i] = c[i] + weight * f[i]
    return _pareto_survivors(c, x, y)


@njit(cache=True)
def _cost_to_go_bounds(slot, duration, completion, divisor, width, makespan):
    """(Umin, W, V) over j = 0..K of the module docstring's lower bounds (backwards 1-D DPs)."""
    total, _, num_lengths = duration.shape
    umin = np.full(total + 1, np.inf)
    service = np.zeros(total + 1)
    uplink = np.zeros(total + 1)
    for j in range(total - 1, -1, -1):
        best_service = np.inf
        best_uplink = np.inf
        for n in range(1, min(width, total - j) + 1):
            after = total - j - n
            s = slot[j, n - 1]
            umin[j] = min(umin[j], s)
            d_min, c_min, chain_min = np.inf, np.inf, np.inf
            for l in range(num_lengths):
                d, c = duration[j, n - 1, l], completion[j, n - 1, l]
                d_min = min(d_min, d)
                c_min = min(c_min, c)
                chain_min = min(chain_min, c + after * d)
            if makespan:
                best_service = min(best_service, d_min + service[j + n])
                best_uplink = min(best_uplink, s + (d_min if after == 0 else uplink[j + n]))
            else:
                best_service = min(best_service, chain_min / divisor + service[j + n])
                best_uplink = min(best_uplink, ((total - j) * s + c_min) / divisor + uplink[j + n])
        service[j] = best_service
        uplink[j] = best_uplink
    return umin, service, uplink


@njit(cache=True)
def _lower_bound(j, u, f, total, divisor, makespan, umin, service, uplink):
    """A lower bound on the cost to go from label (u, f) at j (module docstring)."""
    if j == total:
        return 0.0
    begin = max(f, u + umin[j])
    if makespan:
        return max(begin + service[j], u + uplink[j]) - f
    share = (total - j) / divisor
    return max(share * begin + service[j], share * u + uplink[j])


@njit(cache=True)
def _best_constant_cost(slot, duration, completion, release, first, u0, f0, divisor, width, makespan):
    """The least cost over the constant plans (n, l) from the start label (the last batch takes what is left)."""
    total, _, num_lengths = duration.shape
    best = np.inf
    for size in range(1, min(width, total - first) + 1):
        for l in range(num_lengths):
            best = min(best, constant_plan_cost(slot, duration, completion, release, first, u0, f0, divisor, size,
                                                 l, makespan))
    return best


@njit(cache=True)
def _grown(values):
    """(rows, m) ``values`` copied into the front of a (rows, 2 m) array."""
    out = np.empty((values.shape[0], 2 * values.shape[1]), dtype=values.dtype)
    out[:, :values.shape[1]] = values
    return out


@njit(cache=True)
def _forward(slot, duration, completion, release, keep_l, first, u0, f0, divisor, width, makespan, limit,
             umin, service, uplink, beam):
    """The forward DP over j = first..K. Returns the labels' times (u, f, c) as a (3, labels) array, their
    links (parent label, n, l) as a (3, labels) array and the offsets: the front at j is labels
    offsets[j - first]:offsets[j - first + 1].

    A candidate with c + LB > ``limit`` is dropped (``limit`` = inf: no bound pruning). ``beam`` > 0 keeps
    only that many labels per j (least c + LB): a heuristic, for the upper bound.
    """
    total, _, num_lengths = duration.shape
    times = np.empty((3, 1024))  # u, f, c of every label kept, front after front
    links = np.empty((3, 1024), dtype=np.int64)  # parent, n, l
    times[0, 0], times[1, 0], times[2, 0] = u0, f0, 0.0
    links[0, 0], links[1, 0], links[2, 0] = -1, 0, 0
    size = 1
    offsets = np.zeros(total - first + 2, dtype=np.int64)
    offsets[1] = 1
    cand_times = np.empty((3, 1024))  # the candidates at j, the same layout
    cand_links = np.empty((3, 1024), dtype=np.int64)
    lengths = np.empty(num_lengths, dtype=np.int64)
    for j in range(first + 1, total + 1):
        m = 0
        for n in range(1, min(width, j - first) + 1):
            p = j - n
            kept_lengths = 0
            for l in range(num_lengths):
                if keep_l[p, n - 1, l]:
                    lengths[kept_lengths] = l
                    kept_lengths += 1
            s = slot[p, n - 1]
            for i in range(offsets[p - first], offsets[p - first + 1]):
                u_next = max(times[0, i], release[j - 1]) + s  # the batch waits for its last task
                begin = max(u_next, times[1, i])
                for t in range(kept_lengths):
                    l = lengths[t]
                    f_next = begin + duration[p, n - 1, l]
                    c_next = segment_cost_after(times[2, i], times[1, i], begin, f_next, n, completion[p, n - 1, l],
                                         divisor, makespan)
                    if c_next + _lower_bound(j, u_next, f_next, total, divisor, makespan, umin, service,
                                             uplink) > limit:
                        continue
                    if m == cand_times.shape[1]:
                        cand_times, cand_links = _grown(cand_times), _grown(cand_links)
                    cand_times[0, m], cand_times[1, m], cand_times[2, m] = u_next, f_next, c_next
                    cand_links[0, m], cand_links[1, m], cand_links[2, m] = i, n, l
                    m += 1
        cu, cf, cc = cand_times[0, :m], cand_times[1, :m], cand_times[2, :m]
        keep = _pareto_survivors(cc, cu, cf) if makespan else _shift_survivors(cu, cf, cc, (total - j) / divisor)
        if 0 < beam < keep.size:
            score = np.empty(keep.size)
            for t in range(keep.size):
                k = keep[t]
                score[t] = cc[k] + _lower_bound(j, cu[k], cf[k], total, divisor, makespan, umin, service, uplink)
            best = _lex_order(score, score, score)
            for t in range(beam):
                best[t] = keep[best[t]]
            keep = best[:beam]
        while size + keep.size > times.shape[1]:
            times, links = _grown(times), _grown(links)
        for k in keep:
            for row in range(3):
                times[row, size] = cand_times[row, k]
                links[row, size] = cand_links[row, k]
            size += 1
        offsets[j - first + 1] = size
    return times[:, :size], links[:, :size], offsets


def optimal_plan(model: ServingModel, episode: Episode, start: EpisodeClock | None = None,
                 allocation: str = "closed_form") -> Plan:
    """The exact optimum of ``episode`` (from ``start``) under the scenario's objective."""
    tables = segment_tables(model, episode, allocation)
    return solve(tables, model.config.objective, episode.num_tasks, start)


def check_allocation(allocation: str, action_mode: str) -> None:
    """ValueError unless the env's action mode can carry the band split ``allocation`` asks for."""
    if allocation == "uniform" and action_mode == "discrete":
        raise ValueError("allocation = 'uniform' needs action_mode 'hybrid' or 'dict' (the discrete mode "
                         "always uses the closed-form split)")


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
        check_allocation(allocation, self.action_mode)
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
        if not self.actions.explicit_band:
            return None
        if self.allocation == "uniform":
            return np.full(batch_size, 1.0 / batch_size)
        return closed_form_shares(self.unwrapped, batch_size)


class UniformShares(DPOracle):
    """The best plan when the band is split equally (the paper's benchmark allocation); hybrid/dict envs."""

    name = "uniform-shares"
    counterpart = "sdedge_agents.online.OnlineUniformShares"

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
