"""References for the multi-cell env (sdedge_gym/multicell.py): the exact joint optimum of small instances, a
contention-free lower bound at any size, and joint plans of uncoordinated and centralised planners (upper bounds).

A *plan* of a cell is its sequence of batches (n, l) with the closed-form band split; a joint plan gives one per
cell. The model is deterministic given the episodes, so a cell's plan played open loop is as good as any
closed-loop policy that takes the same actions, and the optimum over joint action sequences of the env's
discrete mode is the optimum over joint plans. Every joint cost here is computed by the env's own dynamics
(:class:`sdedge_gym.multicell.MultiCellDynamics`): the numbers are the env's.

* **Contention-free lower bound** (:func:`contention_free_bound`): each cell served by an MBS of its own, i.e.
  each cell's exact single-cell optimum (:func:`sdedge_agents.oracle.solve`), averaged over all tasks. Sharing
  only delays: by induction along each cell's batches, start = max(ready, F_cell, mbs_free) is never earlier
  than alone, so every joint plan costs at least the sum of its cells' solo costs, which is at least this bound
  (for every policy, any band split: the closed form is the optimal split of every slot).
* **MBS-capacity lower bound** (:func:`mbs_capacity_bound`): the MBS serves every cell's batches one at a
  time, so the sum of completion times is at least a single-machine bound on per-task MBS work (docs/MODEL.md
  §17 has the proof). It grows with the number of cells sharing the MBS, where the contention-free bound does
  not; :func:`lower_bound` is the larger of the two.
* **Exact joint optimum** (:func:`joint_optimum`): branch and bound over joint plans, cells' plans enumerated
  and sorted by their solo cost; a partial joint plan is dropped when the solo costs chosen plus the best solo
  costs of the remaining cells reach the best joint cost found (the bound above, plan by plan). Exponential in
  the tasks: for small instances (a few tasks per cell).
* **Uncoordinated** (:func:`uncoordinated_plans`): each cell plays its own solo-optimal plan (or a single-cell
  baseline, the best constant action) as if it were alone.
* **Centralised planner** (:func:`centralised_plan`): the best combination of a few candidate plans per cell
  (its solo optimum under several batch caps, its best constant action), evaluated jointly. A feasible joint
  plan, so an upper bound on the joint optimum; with the lower bound it brackets the gap of any policy.

:func:`play_episode` scores a closed-loop policy on the PettingZoo env and :func:`reference_latencies` gives the
references of the same episode, so that every trained multi-cell agent (SB3 through SuperSuit, RLlib) is scored
the same way (:func:`score_table`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sdedge_agents.oracle import solve
from sdedge_agents.statistics import mean_interval, paired_difference
from sdedge_gym.episode import Episode, ServingModel
from sdedge_gym.multicell import MultiCellConfig, MultiCellDynamics, MultiCellTwinEnv
from sdedge_gym.reference import best_constant_action, segment_cost_after
from sdedge_gym.segments import SegmentTables, segment_tables

CellPlan = tuple[tuple[int, int], ...]  # (batch_size, speculation_length) in order
BOUND_MARGIN = 1e-9  # relative: the tables' and the kernel's sums differ in float rounding only
MAX_PLANS = 200_000  # per cell: the enumeration is exponential in the tasks


@dataclass(frozen=True)
class JointPlan:
    """One plan per cell and what it costs in the shared env."""

    plans: tuple[CellPlan, ...]
    mean_latency: float  # over all tasks of all cells: the negated return
    cell_mean_latency: tuple[float, ...]
    evaluated: int = 1  # joint plans played to find it


def play(models: Sequence[ServingModel], episodes: Sequence[Episode], plans: Sequence[CellPlan]) -> JointPlan:
    """The joint plan played through the multi-cell dynamics (every acting cell commits its next batch; online,
    a cell waits until the batch's last task has arrived, so that the batch leaves as the DP's does: at the
    later of its uplink's end and that arrival)."""
    dynamics = MultiCellDynamics(models, episodes)
    dynamics.play_out(lambda cell: plans[cell][dynamics.clocks[cell].batches])  # the cell's next batch of its plan
    return JointPlan(tuple(tuple(p) for p in plans), dynamics.mean_latency(),
                     tuple(dynamics.cell_latency(i) for i in range(len(plans))))


def cell_plans(tables: SegmentTables, divisor: float, limit: int = MAX_PLANS) -> list[tuple[float, CellPlan]]:
    """Every plan of one cell with its solo cost sum (n S + C) / divisor on the tables, cheapest first."""
    slot, duration, completion = tables.uplink_slot, tables.duration, tables.completion_sum
    num_tasks, width, lengths = tables.num_tasks, tables.batch_limit, tables.max_speculation + 1
    plans: list[tuple[float, CellPlan]] = []

    def extend(j: int, u: float, f: float, c: float, plan: CellPlan) -> None:
        if j == num_tasks:
            plans.append((c, plan))
            if len(plans) > limit:
                raise ValueError(f"more than {limit} plans in one cell; allowed: an instance small enough to "
                                 "enumerate (fewer tasks, a smaller batch limit or max_speculation)")
            return
        for n in range(1, min(width, num_tasks - j) + 1):
            ready = u + slot[j, n - 1]
            for l in range(lengths):
                begin = max(ready, f)
                finish = begin + duration[j, n - 1, l]
                extend(j + n, ready, finish,
                       segment_cost_after(c, f, begin, finish, n, completion[j, n - 1, l], divisor, False),
                       (*plan, (n, l)))

    extend(0, 0.0, 0.0, 0.0, ())
    plans.sort(key=lambda x: x[0])
    return plans


def contention_free_bound(models: Sequence[ServingModel], episodes: Sequence[Episode]) -> float:
    """Mean latency over all tasks when each cell has an MBS of its own (online: each cell's hindsight optimum,
    which knows its arrivals): a lower bound for every policy."""
    total = sum(e.num_tasks for e in episodes)
    return sum(solve(segment_tables(m, e), "mean_latency", e.num_tasks, release=e.release).cost * e.num_tasks
               for m, e in zip(models, episodes, strict=True)) / total


@dataclass(frozen=True)
class CellWork:
    """A cell's per-task minima over its segments (first task j, size n, any l): what the MBS-capacity bound uses.

    ``rate[k]`` = min over the segments that contain task k of D[j, n - 1, l] / n, so that every batch of the cell
    holds the MBS for at least the sum of its tasks' rates; ``offset[k]`` likewise of C[j, n - 1, l] / n, so that
    its tasks' completion offsets from the batch's start sum to at least theirs. Its first batch is ready at
    ``release`` or later (the shortest first uplink slot)."""

    batch_limit: int  # the largest batch: min(n_max, K)
    rate: np.ndarray  # (K,) s of MBS time per task
    offset: np.ndarray  # (K,) s
    release: float  # s: min over n of U[0, n - 1]


def cell_work(tables: SegmentTables) -> CellWork:
    """The per-task minima of one cell's segment tables (infeasible segments, j + n > K, are inf there)."""
    sizes = np.arange(1, tables.batch_limit + 1)
    per_task_duration = tables.duration.min(axis=2) / sizes  # (K, N): the segment's best D / n
    per_task_completion = tables.completion_sum.min(axis=2) / sizes
    rate, offset = np.full(tables.num_tasks, np.inf), np.full(tables.num_tasks, np.inf)
    for j in range(tables.num_tasks):
        for n in range(1, min(tables.batch_limit, tables.num_tasks - j) + 1):
            rate[j:j + n] = np.minimum(rate[j:j + n], per_task_duration[j, n - 1])
            offset[j:j + n] = np.minimum(offset[j:j + n], per_task_completion[j, n - 1])
    return CellWork(tables.batch_limit, rate, offset, float(np.min(tables.uplink_slot[0])))


def mbs_capacity_bound(models: Sequence[ServingModel], episodes: Sequence[Episode]) -> float:
    """Mean latency over all tasks bounded below by the MBS's serial work (docs/MODEL.md §17), for every policy.

    With p_k and o_k task k's :class:`CellWork` rate and offset, n_i cell i's batch limit, r the earliest release
    over the cells and p_(1) <= ... <= p_(N) the N = sum_i K_i rates sorted:

        sum_k C_k >= N r + sum_j (N - j) p_(j) - sum_i (n_i - 1) / 2 sum_{k in cell i} p_k + sum_k o_k.

    Online, the latency is C_k - a_k: arrivals only delay the batches, so the bound on sum_k C_k holds as it is,
    and sum_k a_k is subtracted.
    """
    works = [cell_work(segment_tables(m, e)) for m, e in zip(models, episodes, strict=True)]
    rates = np.sort(np.concatenate([w.rate for w in works]))
    total = len(rates)
    serial = float(np.dot(rates, np.arange(total - 1, -1, -1)))  # the unit jobs' starts summed, in SPT order
    within = sum((w.batch_limit - 1) / 2 * float(w.rate.sum()) for w in works)  # at most, inside the batches
    offsets = sum(float(w.offset.sum()) for w in works)
    arrivals = sum(float(e.release.sum()) for e in episodes if e.release is not None)
    return (total * min(w.release for w in works) + serial - within + offsets - arrivals) / total


def lower_bound(models: Sequence[ServingModel], episodes: Sequence[Episode]) -> float:
    """The larger of the contention-free and the MBS-capacity lower bounds."""
    return max(contention_free_bound(models, episodes), mbs_capacity_bound(models, episodes))


def joint_optimum(models: Sequence[ServingModel], episodes: Sequence[Episode], limit: int = MAX_PLANS) -> JointPlan:
    """The exact minimum of the mean latency over all joint plans (branch and bound; small offline instances)."""
    if any(e.release is not None for e in episodes):
        raise ValueError("joint_optimum: the episodes have arrival times; allowed: offline episodes (the plans' "
                         "solo costs that bound the search are the offline tables')")
    total = float(sum(e.num_tasks for e in episodes))
    plans = [cell_plans(segment_tables(m, e), total, limit) for m, e in zip(models, episodes, strict=True)]
    rest = np.concatenate([np.cumsum([p[0][0] for p in plans][::-1])[::-1], [0.0]])  # best solo costs from cell i on
    best = uncoordinated_plans(models, episodes)  # a first upper bound
    evaluated = 1
    chosen: list[CellPlan] = []

    def search(cell: int, solo: float) -> None:
        nonlocal best, evaluated
        for cost, plan in plans[cell]:
            if solo + cost + rest[cell + 1] > best.mean_latency * (1 + BOUND_MARGIN):
                break  # the plans are sorted: every later one is bounded out too
            chosen.append(plan)
            if cell + 1 == len(plans):
                candidate = play(models, episodes, chosen)
                evaluated += 1
                if candidate.mean_latency < best.mean_latency:
                    best = candidate
            else:
                search(cell + 1, solo + cost)
            chosen.pop()

    search(0, 0.0)
    return JointPlan(best.plans, best.mean_latency, best.cell_mean_latency, evaluated)


def solo_optimal_plan(model: ServingModel, episode: Episode, batch_limit: int | None = None) -> CellPlan:
    """The cell's exact single-cell optimum (its own MBS; online, in hindsight of its arrivals), optionally with
    a smaller batch cap."""
    return solve(segment_tables(model, episode), "mean_latency", episode.num_tasks, batch_limit=batch_limit,
                 release=episode.release).batches


def constant_plan(model: ServingModel, episode: Episode, batch_size: int, speculation_length: int) -> CellPlan:
    """(n, l) at every step, n clipped to the tasks left as the env clips it."""
    sizes = [batch_size] * (episode.num_tasks // batch_size) + (
        [episode.num_tasks % batch_size] if episode.num_tasks % batch_size else [])
    return tuple((n, speculation_length) for n in sizes)


def uncoordinated_plans(models: Sequence[ServingModel], episodes: Sequence[Episode],
                        baseline: str = "oracle") -> JointPlan:
    """Every cell plays as if alone: its solo-optimal plan (``"oracle"``) or its best constant action
    (``"best-constant"``, the single-cell baseline tuned on the tuning episodes), in the shared env."""
    if baseline == "oracle":
        plans = [solo_optimal_plan(m, e) for m, e in zip(models, episodes, strict=True)]
    elif baseline == "best-constant":
        plans = [constant_plan(m, e, *best_constant_action(m.config)) for m, e in zip(models, episodes, strict=True)]
    else:
        raise ValueError(f"baseline = {baseline!r} is invalid; allowed: 'oracle' | 'best-constant'")
    return play(models, episodes, plans)


def centralised_plan(models: Sequence[ServingModel], episodes: Sequence[Episode],
                     caps: Sequence[int] = (1, 2, 4, 8, 16)) -> JointPlan:
    """The best joint combination of each cell's candidate plans: its solo optimum under each batch cap in
    ``caps`` (and uncapped) and its best constant action. A feasible joint plan: an upper bound on the optimum."""
    candidates = []
    for model, episode in zip(models, episodes, strict=True):
        plans = {solo_optimal_plan(model, episode)}
        plans |= {solo_optimal_plan(model, episode, cap) for cap in caps if cap < model.batch_limit}
        plans.add(constant_plan(model, episode, *best_constant_action(model.config)))
        candidates.append(sorted(plans))
    best: JointPlan | None = None
    evaluated = 0
    for combination in itertools.product(*candidates):
        candidate = play(models, episodes, combination)
        evaluated += 1
        if best is None or candidate.mean_latency < best.mean_latency:
            best = candidate
    return JointPlan(best.plans, best.mean_latency, best.cell_mean_latency, evaluated)


def play_episode(policy: Callable[[str, np.ndarray], Any], config: MultiCellConfig | str, seed: int,
                 action_mode: str = "discrete") -> float:
    """Mean latency of one episode of ``config`` under seed ``seed`` with ``policy(agent, observation) -> action``
    applied to every acting cell of the PettingZoo env (the others send nothing)."""
    from sdedge_gym.multicell_pz import MultiCellParallelEnv  # the multicell extra, only when a policy is played

    env = MultiCellParallelEnv(config, action_mode)
    observations, infos = env.reset(seed=seed)
    latency = np.nan
    while env.agents:
        actions = {a: policy(a, observations[a]) for a in env.agents if infos[a]["acting"]}
        observations, _, _, _, infos = env.step(actions)
        for info in infos.values():
            latency = float(info.get("mean_latency", latency))
    return latency


def play_twin_episode(policy: Callable[[np.ndarray, np.ndarray], Any], config: MultiCellConfig | str, seed: int,
                      action_mode: str = "discrete") -> float:
    """Mean latency of one episode of the centralised twin under seed ``seed`` (the PettingZoo env's episode of
    the same seed) with ``policy(observation, action_mask) -> joint action``."""
    env = MultiCellTwinEnv(config, action_mode)
    observation, info = env.reset(seed=seed)
    done = False
    while not done:
        observation, _, done, _, info = env.step(policy(observation, env.action_masks()))
    return float(info["mean_latency"])


def masked_greedy(model) -> Callable[[np.ndarray, np.ndarray], Any]:
    """A MaskablePPO model of the twin as ``policy(observation, action_mask)``: its deterministic masked action."""
    return lambda observation, mask: model.predict(observation, action_masks=mask, deterministic=True)[0]


def reference_latencies(config: MultiCellConfig | str, seed: int) -> dict[str, float]:
    """The references' mean latency on the episode that seed ``seed`` gives the env (cell i: seed + i)."""
    env = MultiCellTwinEnv(config)
    env.reset(seed=seed)
    models, episodes = [e.model for e in env.core.cell_envs], [e.episode for e in env.core.cell_envs]
    return {"lower bound": lower_bound(models, episodes),
            "uncoordinated oracle": uncoordinated_plans(models, episodes).mean_latency,
            "uncoordinated best-constant": uncoordinated_plans(models, episodes, "best-constant").mean_latency,
            "centralised planner": centralised_plan(models, episodes).mean_latency}


def scored_results(seeds: Sequence[int], agent: str, agent_latencies: np.ndarray, config: MultiCellConfig | str,
                   ) -> dict[str, np.ndarray]:
    """The agent's per-episode mean latencies and the references' (:func:`reference_latencies`) on ``seeds``."""
    references = [reference_latencies(config, seed) for seed in seeds]
    return {agent: np.asarray(agent_latencies), **{key: np.array([row[key] for row in references])
                                                   for key in references[0]}}


def results_record(results: Mapping[str, np.ndarray], seeds: Sequence[int], **settings: Any) -> dict[str, Any]:
    """A trainer's results.json: its ``settings``, the test seeds, per-episode values and mean ± 95 % t-interval."""
    return {**settings, "test_seeds": list(seeds),
            "per_episode": {k: np.asarray(v).tolist() for k, v in results.items()},
            "summary": {k: dict(zip(("mean", "half_width_95"), mean_interval(np.asarray(v)), strict=True))
                        for k, v in results.items()}}


def score_table(results: Mapping[str, np.ndarray]) -> str:
    """A markdown table of per-episode mean latencies (same episodes in every row): the mean with its 95 %
    t-interval, the mean per-episode gap to the centralised planner, and the paired differences (s, mean over
    episodes with a bootstrap 95 % interval) against the uncoordinated best-constant cells and the centralised
    planner (which ``results`` must hold)."""
    planner = np.asarray(results["centralised planner"])
    constant = np.asarray(results["uncoordinated best-constant"])
    lines = ["| policy | mean latency (s) | vs centralised planner | paired vs uncoordinated best-constant (s) | "
             "paired vs centralised planner (s) |", "|---|---:|---:|---:|---:|"]
    for name, values in results.items():
        values = np.asarray(values)
        mean, half = mean_interval(values)
        paired = " | ".join(f"{d:+.3f} [{low:+.3f}, {high:+.3f}]"
                            for d, low, high in (paired_difference(values, ref) for ref in (constant, planner)))
        lines.append(f"| {name} | {mean:.3f} ± {half:.3f} | {100 * (values / planner - 1).mean():+.1f} % | {paired} |")
    return "\n".join(lines)
