"""Several small cells sharing one verifier: the multi-cell model, its presets and its centralised Gymnasium twin.

C cells (1 to 8). Cell i is a whole single-cell scenario (:class:`~sdedge_gym.config.ScenarioConfig`): its own
queue of K_i tasks (all offline, or all online: arriving over time, see below), its own uplink band B_i (cells
use disjoint bands: no inter-cell interference), its own SBS GPU and draft model, its own fronthaul. Every
cell's target node is the one macro base station (MBS):
the configurations must name the same target node. Each cell serves its queue in contiguous batches exactly as
the single env does (two pipelined micro-batches, the closed form or an explicit band split), timed by the same
compiled kernel (:func:`sdedge_gym.episode.commit_batch`). What is new is the MBS sharing rule:

**MBS sharing (first come, first served, one batch at a time).** A batch *requests* the MBS at
q = max(ready, F_cell): when its upload has ended and its cell's previous batch has finished (the single env's
barrier). The MBS accepts requests in order of q (ties broken by the lower cell index) and serves one batch's
whole service at a time: a batch starts at

    start = max(ready, F_cell, mbs_free),   finish = start + duration,   mbs_free = finish

where ``mbs_free`` is the finish of the batch the MBS accepted before it, from any cell. The kernel supports this
directly: it is the single env's ``commit`` with ``inference_end = max(F_cell, mbs_free)``. This over-serialises:
while the MBS verifies one cell's micro-batches it is idle between verify passes (waiting for that cell's
drafts), and another cell's verify passes could run there. Interleaving passes of different cells would break
the per-batch closed form (§7.1 of docs/MODEL.md) that makes a batch cost O(n² + pieces); the batch-level rule is
the simplification this model makes (docs/MODEL.md, multi-cell section).

**Decision epochs.** Cell i decides its next batch when its uplink is free, at u_i (the end of its last slot,
0 at the start). The joint process moves through the epochs t = min over cells with tasks left of u_i; the
cells with u_i = t act together (committed in cell index order; a cell's commitment does not affect another's
uplink, so the order only breaks MBS ties). A batch is committed at its slot's start and its MBS start is fixed
later, once no other commitment can change it: another cell j's next batch is committed at u_j and requests
the MBS after u_j, so a batch that requests by min over the other cells with tasks left of u_j has its place in
the MBS order for good (and so has every batch the MBS takes before it). Its cost is then paid (the reward of
its cell). Once no cell has tasks left every batch is placed. For fixed per-cell plans the result does not
depend on this bookkeeping: it is the FIFO schedule of all batches (:func:`fifo_schedule`).

With C = 1 the MBS is never busy with another cell, mbs_free = F_cell, and the dynamics are the single env's,
kernel call for kernel call (tests/test_multicell.py compares them).

**Online cells.** With online scenarios (every cell's ``arrivals.process`` not "offline"; the ``*-online``
presets), each cell is the online env: its epoch is when its uplink is free *and* its next task has arrived,
or the arrival it waits for (the wait action), and a batch's cost is sum_k (C_k - a_k) / sum_i K_i. Offline,
a_k = 0 and the epoch is the uplink's end: the rules above are that case (docs/MODEL.md §17).

The objective is the mean latency over all tasks of all cells: a batch's cost is sum_k C_k / sum_i K_i, so
that the costs of an episode add up to it. Only the mean-latency objective is supported (the makespan's
per-batch share, finish - F_{m-1}, has no per-cell meaning under contention).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sdedge_gym.catalogue import GPUS, MODELS
from sdedge_gym.config import ScenarioConfig
from sdedge_gym.episode import BatchOutcome, Episode, EpisodeClock, ServingModel, commit_batch

MAX_CELLS = 8
ONLINE_LOAD = 0.7  # the online presets' arrival rate over the cells, in units of one cell's max-batch capacity
# Features appended to each cell's single-env observation.
SHARED_FEATURES = ("acting", "mbs_backlog", "other_tasks_left")
# Action modes of the centralised twin: the single env's (the joint action concatenates or, in "dict", maps the
# cells' actions).
TWIN_ACTION_MODES = ("discrete", "hybrid", "dict")
TWIN_REWARDS = ("latency", "reference")  # the twin's reward= options (MultiCellTwinEnv, Rewards)


@dataclass(frozen=True)
class MultiCellConfig:
    """C cells sharing one MBS: a tuple of per-cell scenarios whose target nodes are the same node."""

    cells: tuple[ScenarioConfig, ...]
    name: str = "multicell"

    def __post_init__(self) -> None:
        cells = self.cells
        if isinstance(cells, list):
            cells = tuple(cells)
            object.__setattr__(self, "cells", cells)
        if not isinstance(cells, tuple) or not 1 <= len(cells) <= MAX_CELLS:
            raise ValueError(f"MultiCellConfig.cells = {self.cells!r} is invalid; allowed: a tuple of 1 to "
                             f"{MAX_CELLS} ScenarioConfig")
        for i, cell in enumerate(cells):
            if not isinstance(cell, ScenarioConfig):
                raise ValueError(f"MultiCellConfig.cells[{i}] is a {type(cell).__name__}; allowed: a ScenarioConfig")
            if cell.arrivals.online != cells[0].arrivals.online:
                raise ValueError(f"MultiCellConfig.cells[{i}].arrivals.process = {cell.arrivals.process!r} is "
                                 f"invalid with cells[0]'s {cells[0].arrivals.process!r}; allowed: every cell "
                                 "offline or every cell online")
            if cell.objective != "mean_latency":
                raise ValueError(f"MultiCellConfig.cells[{i}].objective = {cell.objective!r} is invalid; allowed: "
                                 "'mean_latency' (the objective is the mean latency over all cells' tasks)")
            if cell.target != cells[0].target:
                raise ValueError(f"MultiCellConfig.cells[{i}].target = {cell.target.model.name} on "
                                 f"{cell.target.gpu.name} is invalid; allowed: the one MBS of cells[0], "
                                 f"{cells[0].target!r}")
        if not isinstance(self.name, str):
            raise ValueError(f"MultiCellConfig.name = {self.name!r} is invalid; allowed: a string")

    @property
    def num_cells(self) -> int:
        return len(self.cells)

    @property
    def num_tasks(self) -> int:
        """Tasks over all cells: the divisor of the objective."""
        return sum(cell.num_tasks for cell in self.cells)

    @property
    def online(self) -> bool:
        """The cells' tasks arrive over time (every cell an online scenario; the cell envs are online envs)."""
        return self.cells[0].arrivals.online


# ---------------------------------------------------------------------------------------------- presets

@dataclass(frozen=True)
class CellHardware:
    """What makes a cell differ from the base preset: its SBS GPU, its draft model, its band and its radius."""

    gpu: str
    draft_model: str
    bandwidth: float  # Hz
    distance_max: float  # m

    def __post_init__(self) -> None:
        if self.gpu not in GPUS:
            raise ValueError(f"CellHardware.gpu = {self.gpu!r} is invalid; allowed: {sorted(GPUS)}")
        if self.draft_model not in MODELS:
            raise ValueError(f"CellHardware.draft_model = {self.draft_model!r} is invalid; allowed: {sorted(MODELS)}")

    def apply(self, base: ScenarioConfig, name: str) -> ScenarioConfig:
        return base.replace(
            name=name,
            draft=base.draft.replace(gpu=GPUS[self.gpu], model=MODELS[self.draft_model]),
            uplink=base.uplink.replace(bandwidth=self.bandwidth),
            workload=base.workload.replace(distance_max=self.distance_max),
        )


# The paper's SBS (RTX 3080, LLaMA-68M, 1 MHz, 250 m), then cells that differ in every hardware respect.
CELL_HARDWARE: tuple[CellHardware, ...] = (
    CellHardware("rtx-3080", "llama-68m", 1e6, 250.0),
    CellHardware("jetson-agx-orin", "llama-68m", 0.5e6, 400.0),
    CellHardware("rtx-4090", "tinyllama-1.1b", 2e6, 250.0),
    CellHardware("rtx-a4500", "llama-68m", 1e6, 150.0),
)


def multicell_config(hardware: Sequence[CellHardware], base: str | ScenarioConfig = "small", *,
                     num_tasks: int | Sequence[int] | None = None, name: str = "multicell",
                     **overrides: Any) -> MultiCellConfig:
    """Cells made from the base preset (``make_scenario(base, **overrides)``), cell i with ``hardware[i]``.

    ``num_tasks``: one K for every cell or one per cell (default: the base preset's).
    """
    from sdedge_gym.scenarios import make_scenario

    base_config = make_scenario(base, **overrides)
    counts = [num_tasks] * len(hardware) if num_tasks is None or isinstance(num_tasks, int | np.integer) else list(
        num_tasks)
    if len(counts) != len(hardware):
        raise ValueError(f"num_tasks = {num_tasks!r} is invalid; allowed: an integer or one per cell "
                         f"({len(hardware)})")
    cells = []
    for i, (cell_hardware, k) in enumerate(zip(hardware, counts, strict=True)):
        cell = cell_hardware.apply(base_config, f"{base_config.name}-cell{i}")
        if k is not None:
            cell = cell.replace(workload=cell.workload.replace(num_tasks=int(k)))
        cells.append(cell)
    return MultiCellConfig(tuple(cells), name)


def online_cells(config: MultiCellConfig, load: float = ONLINE_LOAD) -> MultiCellConfig:
    """``config`` with Poisson arrivals in every cell, cell i at rate ``load`` x its max-batch capacity / C.

    The capacity is the single cell's (:func:`sdedge_gym.online_env.max_batch_capacity`: back-to-back full
    batches on its own MBS); dividing by C spreads one MBS's worth of ``load`` over the cells, so that the MBS,
    which every cell's batches share, runs near ``load`` when the cells are alike.
    """
    from sdedge_gym.online_env import max_batch_capacity

    if isinstance(load, bool) or not isinstance(load, int | float) or not 0 < load < np.inf:
        raise ValueError(f"load = {load!r} is invalid; allowed: a finite number > 0")
    cells = tuple(cell.replace(arrivals=cell.arrivals.replace(
        process="poisson", arrival_rate=load * max_batch_capacity(cell) / config.num_cells)) for cell in config.cells)
    return MultiCellConfig(cells, f"{config.name}-online")


def identical_cells(cells: int, **kwargs: Any) -> MultiCellConfig:
    """C copies of the paper's small cell (``CELL_HARDWARE[0]``), named "C-identical" (the references' figure)."""
    return multicell_config(CELL_HARDWARE[:1] * cells, name=f"{cells}-identical", **kwargs)


def _preset(hardware: Sequence[CellHardware], name: str, online: bool = False, load: float = ONLINE_LOAD,
            **kwargs: Any) -> MultiCellConfig:
    config = multicell_config(hardware, name=name, **kwargs)
    return online_cells(config, load) if online else config


# The presets' cells; each preset also has an online version, "<name>-online": Poisson arrivals per cell
# (online_cells, load ONLINE_LOAD unless load= says).
_PRESET_HARDWARE: dict[str, tuple[CellHardware, ...]] = {
    "two-identical": CELL_HARDWARE[:1] * 2,
    "two-heterogeneous": CELL_HARDWARE[:2],
    "four-heterogeneous": CELL_HARDWARE,
}
MULTICELL_PRESETS: dict[str, Callable[..., MultiCellConfig]] = {
    **{name: functools.partial(_preset, hardware, name) for name, hardware in _PRESET_HARDWARE.items()},
    **{f"{name}-online": functools.partial(_preset, hardware, name, online=True)
       for name, hardware in _PRESET_HARDWARE.items()},
}


def make_multicell(preset: str | MultiCellConfig = "two-heterogeneous", **kwargs: Any) -> MultiCellConfig:
    """A multi-cell preset (keyword arguments as :func:`multicell_config`'s: ``base``, ``num_tasks``, overrides)."""
    if isinstance(preset, MultiCellConfig):
        if kwargs:
            raise ValueError("make_multicell: keyword arguments apply to a preset name only, not a MultiCellConfig")
        return preset
    if preset not in MULTICELL_PRESETS:
        raise ValueError(f"unknown multi-cell preset {preset!r}; allowed: {sorted(MULTICELL_PRESETS)} or a "
                         "MultiCellConfig")
    return MULTICELL_PRESETS[preset](**kwargs)


# ---------------------------------------------------------------------------------------------- dynamics

@dataclass(frozen=True)
class PendingBatch:
    """A committed batch whose MBS start is not fixed yet: its action and its uplink slot."""

    cell: int
    clock: EpisodeClock  # the cell's clock when it was committed (next_task = its first task, uplink start)
    batch_size: int
    speculation_length: int
    bandwidth: np.ndarray | None  # Hz per user, None: the closed form
    ready: float  # end of its uplink slot


@dataclass(frozen=True)
class Served:
    """A batch the MBS has accepted: its request time q = max(ready, F_cell) and its outcome."""

    cell: int
    request: float
    outcome: BatchOutcome
    first_task: int  # the batch's first task in its cell's queue


def serve_on_mbs(models: Sequence[ServingModel], episodes: Sequence[Episode], batch: PendingBatch, cell_finish: float,
                 mbs_free: float) -> BatchOutcome:
    """One batch served from start = max(ready, F_cell, mbs_free): the single env's kernel with the MBS barrier."""
    clock = dataclasses.replace(batch.clock, inference_end=max(cell_finish, mbs_free))
    outcome, _ = commit_batch(models[batch.cell], episodes[batch.cell], clock, batch.batch_size,
                              batch.speculation_length, batch.bandwidth)
    return outcome


def fifo_schedule(models: Sequence[ServingModel], episodes: Sequence[Episode],
                  pending: Sequence[Sequence[PendingBatch]], cell_finish: Sequence[float],
                  mbs_free: float) -> list[Served]:
    """Every pending batch served by the MBS in order of request time (ties: lower cell index).

    The request times of the returned sequence never decrease (serving a cell's head batch only makes that
    cell's next request later), so the batches that request by a time t are a prefix of it.
    """
    heads = [0] * len(pending)
    finish = list(cell_finish)
    served: list[Served] = []
    while True:
        best, best_request = -1, np.inf
        for cell, queue in enumerate(pending):
            if heads[cell] < len(queue):
                request = max(queue[heads[cell]].ready, finish[cell])
                if request < best_request:
                    best, best_request = cell, request
        if best < 0:
            return served
        outcome = serve_on_mbs(models, episodes, pending[best][heads[best]], finish[best], mbs_free)
        served.append(Served(best, best_request, outcome, pending[best][heads[best]].clock.next_task))
        heads[best] += 1
        finish[best] = mbs_free = outcome.finish


class MultiCellDynamics:
    """The joint episode state and its transitions (no spaces, no observations: both envs build on it).

    ``clocks[i]`` is cell i's :class:`EpisodeClock` with ``inference_end`` the finish of its last batch the MBS
    has accepted and ``now`` its next decision epoch; ``pending[i]`` its committed batches not yet accepted;
    ``mbs_free`` the finish of the last accepted batch; ``outcomes[i]`` cell i's accepted batches in order;
    ``releases[i]`` its tasks' arrival times (zeros offline).
    """

    def __init__(self, models: Sequence[ServingModel], episodes: Sequence[Episode]) -> None:
        self.models, self.episodes = tuple(models), tuple(episodes)
        self.num_tasks = sum(e.num_tasks for e in self.episodes)
        self.releases = tuple(np.zeros(e.num_tasks) if e.release is None else e.release for e in self.episodes)
        # A cell's first epoch: its first arrival (0 offline), as the online env's.
        self.clocks = [EpisodeClock(now=float(r[0])) for r in self.releases]
        self.pending: list[list[PendingBatch]] = [[] for _ in self.episodes]
        self.mbs_free = 0.0
        self.outcomes: list[list[BatchOutcome]] = [[] for _ in self.episodes]
        self.projection: list[Served] = []  # the FIFO schedule of every pending batch (no later commitment)

    def tasks_left(self, cell: int) -> int:
        return self.episodes[cell].num_tasks - self.clocks[cell].next_task

    @property
    def now(self) -> float:
        """The decision epoch: the earliest epoch of a cell with tasks left (inf once none has any). A cell's
        epoch is when its uplink is free and its next task has arrived (its uplink end offline), or the arrival
        it waits for."""
        return min((c.now for i, c in enumerate(self.clocks) if self.tasks_left(i) > 0), default=np.inf)

    def acting(self) -> list[int]:
        """The cells that choose at this epoch (their epoch is now, tasks left), in cell index order."""
        now = self.now
        return [i for i, c in enumerate(self.clocks) if self.tasks_left(i) > 0 and c.now == now]

    def arrived(self, cell: int) -> int:
        """The cell's tasks that have arrived by its epoch."""
        return int(np.searchsorted(self.releases[cell], self.clocks[cell].now, side="right"))

    def wait(self, cell: int) -> None:
        """The cell waits: its epoch moves to its next arrival (the online env's wait; one must be due)."""
        arrived = self.arrived(cell)
        if arrived >= self.episodes[cell].num_tasks:
            raise ValueError(f"cell {cell} cannot wait: every task has arrived; allowed: a batch")
        self.clocks[cell] = dataclasses.replace(self.clocks[cell], now=float(self.releases[cell][arrived]))

    def done(self, cell: int) -> bool:
        """Every task of the cell committed and accepted by the MBS."""
        return self.tasks_left(cell) == 0 and not self.pending[cell]

    def commit(self, cell: int, batch_size: int, speculation_length: int, bandwidth: np.ndarray | None) -> float:
        """Commit cell ``cell``'s next batch (a valid action) at this epoch: its uplink slot; returns its length."""
        clock = self.clocks[cell]
        # The slot is all this needs now (the service is timed again once the MBS accepts the batch).
        outcome, after = commit_batch(self.models[cell], self.episodes[cell], clock, batch_size, speculation_length,
                                      bandwidth)
        self.pending[cell].append(PendingBatch(cell, clock, batch_size, speculation_length, bandwidth, outcome.ready))
        # The next epoch: the uplink free (commit_batch's now) and the next task arrived (always, offline).
        now = after.now if after.next_task >= len(self.releases[cell]) else max(
            after.now, float(self.releases[cell][after.next_task]))
        self.clocks[cell] = dataclasses.replace(after, inference_end=clock.inference_end, now=now)
        return outcome.uplink_slot

    def advance(self) -> list[Served]:
        """Accept every pending batch whose place in the MBS order is final; returns them in MBS order."""
        self.projection = fifo_schedule(self.models, self.episodes, self.pending,
                                        [c.inference_end for c in self.clocks], self.mbs_free)
        # Served s is final once no later commitment can request the MBS before it: another cell j next commits
        # at its epoch t_j (>= its uplink end u_j), so its requests come after t_j; s's own cell requests after
        # s has finished. Every batch the MBS accepts before a final one is final too (it requests no later).
        final = 0
        for index, s in enumerate(self.projection):
            others = min((c.now for j, c in enumerate(self.clocks) if j != s.cell and self.tasks_left(j) > 0),
                         default=np.inf)
            if s.request <= others:
                final = index + 1
        accepted = self.projection[:final]
        for s in accepted:
            self.pending[s.cell].pop(0)
            self.clocks[s.cell] = dataclasses.replace(self.clocks[s.cell], inference_end=s.outcome.finish)
            self.mbs_free = s.outcome.finish
            self.outcomes[s.cell].append(s.outcome)
        self.projection = self.projection[len(accepted):]
        return accepted

    def projected_finish(self, cell: int) -> float:
        """When the cell's committed batches will have finished if no other batch is committed (the observation's F)."""
        return max([self.clocks[cell].inference_end] + [s.outcome.finish for s in self.projection if s.cell == cell])

    def projected_mbs_free(self) -> float:
        return self.projection[-1].outcome.finish if self.projection else self.mbs_free

    def latencies(self, cell: int) -> np.ndarray:
        """The latencies of the cell's accepted tasks in queue order: completion minus arrival (0 offline)."""
        if not self.outcomes[cell]:
            return np.zeros(0)
        times = np.concatenate([o.completion_times for o in self.outcomes[cell]])
        return times - self.releases[cell][:len(times)]

    def cell_latency(self, cell: int) -> float:
        """Mean latency of the cell's accepted tasks (the cell's mean latency once it is done)."""
        latencies = self.latencies(cell)
        return float(latencies.mean()) if len(latencies) else 0.0

    def mean_latency(self) -> float:
        """Mean latency over the accepted tasks of every cell (the objective once every cell is done)."""
        latencies = np.concatenate([self.latencies(i) for i in range(len(self.episodes))])
        return float(latencies.mean()) if len(latencies) else 0.0

    def copy(self) -> MultiCellDynamics:
        """An independent copy of the state (the models, episodes and the frozen records are shared)."""
        other = object.__new__(MultiCellDynamics)
        other.__dict__.update(self.__dict__)
        other.clocks = list(self.clocks)
        other.pending = [list(queue) for queue in self.pending]
        other.outcomes = [list(outcomes) for outcomes in self.outcomes]
        other.projection = list(self.projection)
        return other

    def play_out(self, choose: Callable[[int], tuple[int, int]]) -> float:
        """Play to the end, each acting cell committing ``choose(cell)`` = (n, l) with the closed-form split (n
        clipped to the tasks left; online, the cell waits until n tasks have arrived); the cost of every batch
        accepted meanwhile, sum_k (C_k - a_k) / sum_i K_i."""
        cost = 0.0
        while not all(self.done(i) for i in range(len(self.episodes))):
            for cell in self.acting():
                n, l = choose(cell)
                n = min(n, self.tasks_left(cell))
                if self.arrived(cell) < self.clocks[cell].next_task + n:
                    self.wait(cell)
                else:
                    self.commit(cell, n, l, None)
            cost += sum(self.served_cost(served) for served in self.advance())
        return cost

    def reference_cost_to_go(self, actions: Sequence[tuple[int, int]]) -> float:
        """What the rest of the episode costs from this state when cell i commits ``actions[i]`` = (n_i, l_i) at
        each of its epochs (its committed batches included): the multi-cell reference reward's potential."""
        return self.copy().play_out(lambda cell: actions[cell])

    def served_cost(self, served: Served) -> float:
        """A batch's share of the objective: sum over its tasks of (C_k - a_k) / sum_i K_i."""
        # The kernel's cost divides by the cell's K; rescaled to the joint divisor (exactly 1 with one cell).
        cost = served.outcome.cost * (self.episodes[served.cell].num_tasks / self.num_tasks)
        if self.episodes[served.cell].release is None:
            return cost  # offline: the cost as it was, bit for bit
        first = served.first_task
        arrivals = float(self.releases[served.cell][first:first + len(served.outcome.completion_times)].sum())
        return cost - arrivals / self.num_tasks


# ---------------------------------------------------------------------------------------------- shared env core

class MultiCellCore:
    """What the PettingZoo env and the Gymnasium twin share: one single env per cell (its spaces, decoding,
    masks and observation), the joint dynamics, the per-cell observation and the step.

    Cell i's episode is the single env's first episode under seed ``seed + i`` (``EdgeSDEnv.reset``); later
    episodes continue each cell env's own generator.
    """

    def __init__(self, config: MultiCellConfig | str = "two-heterogeneous", action_mode: str = "discrete") -> None:
        from sdedge_gym.env import EdgeSDEnv
        from sdedge_gym.online_env import EdgeSDOnlineEnv

        self.config = make_multicell(config) if isinstance(config, str) else config
        if not isinstance(self.config, MultiCellConfig):
            raise ValueError(f"config = {config!r} is invalid; allowed: a MultiCellConfig or a preset name "
                             f"{sorted(MULTICELL_PRESETS)}")
        self.action_mode = action_mode
        cell_env = EdgeSDOnlineEnv if self.config.online else EdgeSDEnv
        self.cell_envs = tuple(cell_env(cell, action_mode=action_mode) for cell in self.config.cells)
        self.dynamics: MultiCellDynamics | None = None
        self.cell_observation_spaces = tuple(
            spaces.Box(0.0, 1.0, (env.observation_space.shape[0] + len(SHARED_FEATURES),), dtype=np.float32)
            for env in self.cell_envs)

    @property
    def num_cells(self) -> int:
        return self.config.num_cells

    def reset_cells(self, seed: int | None) -> None:
        for i, env in enumerate(self.cell_envs):
            env.reset(seed=None if seed is None else seed + i)
        self.dynamics = MultiCellDynamics([env.model for env in self.cell_envs],
                                          [env.episode for env in self.cell_envs])
        for env, clock in zip(self.cell_envs, self.dynamics.clocks, strict=True):
            env.clock = clock  # the same first epoch (an online cell's first arrival); masks read it

    def check_steppable(self, owner: str) -> None:
        if self.dynamics is None:
            raise RuntimeError(f"{owner}.step() called before reset(); call reset() first")
        if all(self.dynamics.done(i) for i in range(self.num_cells)):
            raise RuntimeError(f"{owner}.step() called after the episode terminated; call reset() first")

    def step_cells(self, actions: Mapping[int, Any]) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """Commit the acting cells' actions (others' are ignored), advance to the next epoch.

        Returns each cell's cost this step (its accepted batches' sum_k C_k / sum_i K_i) and its step info.
        Every acting cell's action is decoded before anything is committed, so a bad action leaves the
        episode unchanged.
        """
        dynamics = self.dynamics
        acting = dynamics.acting()
        decoded = {}
        for cell in acting:
            if cell not in actions:
                raise ValueError(f"cell {cell} acts at this epoch but has no action; allowed: an action for every "
                                 "acting cell")
            env = self.cell_envs[cell]
            decoded[cell] = env.actions.decode(actions[cell], wait=env.has_wait)
        infos: list[dict[str, Any]] = [{"acted": np.array(i in decoded)} for i in range(self.num_cells)]
        for cell, (wait, requested, speculation_length, weights) in decoded.items():
            env = self.cell_envs[cell]
            if wait and env.can_wait():  # online: the cell's epoch moves to its next arrival
                dynamics.wait(cell)
                env.clock = dynamics.clocks[cell]
                infos[cell].update(batch_size=np.int64(0), speculation_length=np.int64(speculation_length),
                                   uplink_slot=np.float64(0.0), action_clipped=np.array(False), waited=np.array(True))
                continue
            # A refused wait (every task arrived) dispatches the largest batch, as the online env does.
            size = env.batch_limit() if wait else min(requested, env.batch_limit())
            slot = dynamics.commit(cell, size, speculation_length, env._bandwidth(weights, size))
            env.clock = dynamics.clocks[cell]  # the cell env's masks and batch limit read it
            infos[cell].update(batch_size=np.int64(size), speculation_length=np.int64(speculation_length),
                               uplink_slot=np.float64(slot), action_clipped=np.array(wait or size != requested))
            if env.has_wait:
                infos[cell]["waited"] = np.array(False)
        costs = np.zeros(self.num_cells)
        mbs_wait = np.zeros(self.num_cells)
        for served in dynamics.advance():
            costs[served.cell] += dynamics.served_cost(served)
            mbs_wait[served.cell] += served.outcome.start - served.request
        for cell, env in enumerate(self.cell_envs):
            env.clock = dynamics.clocks[cell]
            infos[cell].update(mbs_wait=np.float64(mbs_wait[cell]), cost=np.float64(costs[cell]))
            if dynamics.done(cell):
                infos[cell]["cell_mean_latency"] = np.float64(dynamics.cell_latency(cell))
        return costs, infos

    def acting_mask(self) -> np.ndarray:
        acting = self.dynamics.acting()
        return np.array([i in acting for i in range(self.num_cells)])

    def cell_observation(self, cell: int, acting: bool) -> np.ndarray:
        """The single env's observation of the cell (its F the projected finish of its committed batches), then
        ``SHARED_FEATURES``: acting flag, the MBS backlog max(mbs_free - t, 0) squashed like the cell's inference
        backlog, and the other cells' tasks left / their K."""
        dynamics, env = self.dynamics, self.cell_envs[cell]
        clock = dynamics.clocks[cell]
        observed = dataclasses.replace(clock, inference_end=dynamics.projected_finish(cell))
        if env.has_wait and np.isfinite(dynamics.now) and clock.now > dynamics.now:
            # An online cell that does not act observes the queue as it is now, not at its own later epoch
            # (which would show arrivals still to come); its earlier tasks have all arrived by now.
            observed = dataclasses.replace(observed, now=dynamics.now)
        env.clock = observed
        single = env._observation()
        env.clock = clock
        now = dynamics.now if np.isfinite(dynamics.now) else dynamics.projected_mbs_free()
        backlog = max(dynamics.projected_mbs_free() - now, 0.0)
        scale = env.model.batch_limit * env.scales.task_time
        others = [i for i in range(self.num_cells) if i != cell]
        total = sum(self.cell_envs[i].episode.num_tasks for i in others)
        left = sum(dynamics.tasks_left(i) for i in others)
        shared = [float(acting), backlog / (backlog + scale), left / total if total else 0.0]
        return np.concatenate([single, np.asarray(shared, dtype=np.float32)])

    def kpis(self) -> dict[str, Any]:
        dynamics = self.dynamics
        return {"mean_latency": np.float64(dynamics.mean_latency()),
                "cell_mean_latency": np.array([dynamics.cell_latency(i) for i in range(self.num_cells)])}


# ---------------------------------------------------------------------------------------------- the twin

class MultiCellTwinEnv(gym.Env):
    """
    ## Description

    The centralised twin of the multi-cell env (:mod:`sdedge_gym.multicell`, docs/MODEL.md): one agent chooses
    the joint action of C cells sharing one MBS. A step is a decision epoch t, the earliest free uplink of a
    cell with tasks left (online cells: with its next task arrived); the cells whose epoch is t
    (``info["acting"]``) commit their part of the action, the other cells' parts are ignored. The MBS serves
    batches first come, first served.

    ## Action Space

    The cells' single-env action spaces joined: ``"discrete"`` ``MultiDiscrete`` of the cells' ``[n_max,
    l_max + 1]`` in cell order; ``"hybrid"`` ``Box(-1, 1)`` of the cells' ``2 + n_max`` entries in cell order;
    ``"dict"`` ``Dict(cell_0=..., cell_1=..., ...)`` of the cells' single-env ``Dict(batch_size_minus_one,
    speculation_length, bandwidth)`` spaces. Every cell's part must be valid, also the ignored ones.
    ``action_masks()`` (and ``info["action_mask"]``) concatenates the cells' masks (MaskablePPO's layout).

    ## Observation Space

    ``Box(0, 1)``: for each cell in order, its single-env observation (``4 + 6 n_max`` features) then
    ``SHARED_FEATURES``: acting (1 if the cell chooses at this epoch), the MBS backlog and the other cells'
    share of tasks left. A cell's inference backlog and the MBS backlog are projected from the committed
    batches as if nothing else were committed.

    ## Rewards

    ``reward="latency"`` (default): minus the cost of the batches the MBS accepted during the step,
    sum_k (C_k - a_k) / sum_i K_i (a_k = 0 offline), so that the undiscounted return is minus the mean latency
    over all tasks of all cells.

    ``reward="reference"``: that reward plus a potential-based shaping term whose potential is minus V(s), the
    cost to go of the reference policy in which every cell commits its own best constant action (n_i, l_i)
    (``reference_actions``, the single-cell baseline of its scenario) at each of its epochs, from the state s
    (its committed batches included), played through the same dynamics
    (``MultiCellDynamics.reference_cost_to_go``): r = -cost + V(s) - V(s'), V(terminal) = 0. The undiscounted
    return is V(s_0) - objective, the episode's improvement over the uncoordinated best-constant cells; the
    optimal policies are unchanged. ``info["reference_cost_to_go"]`` is V(s') (V(s_0) in the reset info).

    ## Episode End

    Terminated when every cell's batches are served (never truncated). ``info`` at the end holds
    ``mean_latency`` and ``cell_mean_latency`` (per cell).

    ## Arguments

    ``config``: a :class:`MultiCellConfig` or a preset name (:data:`MULTICELL_PRESETS`); ``action_mode``:
    ``"discrete"``, ``"hybrid"`` or ``"dict"``; ``reward``: ``"latency"`` or ``"reference"`` (Rewards); with a
    preset name, ``preset_kwargs`` go to :func:`make_multicell` (``num_tasks``, ``base`` and the base preset's
    overrides; ``online`` and ``load``).
    The ``*-online`` presets have online cells: each cell's part of the action is then the online env's (with
    its wait), and its epoch waits for its next arrival (docs/MODEL.md §17). The registered ids
    (``sdedge_gym.MULTICELL_ENV_IDS``) are ``sdedge/EdgeSD-MultiCell-{TwoIdentical,TwoHeterogeneous,
    FourHeterogeneous}[-Hybrid|-Dict]-v0``.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(self, config: MultiCellConfig | str = "two-heterogeneous", action_mode: str = "discrete",
                 reward: str = "latency", **preset_kwargs: Any) -> None:
        if action_mode not in TWIN_ACTION_MODES:
            raise ValueError(f"action_mode = {action_mode!r} is invalid; allowed: "
                             f"{' | '.join(map(repr, TWIN_ACTION_MODES))}")
        if reward not in TWIN_REWARDS:
            raise ValueError(f"reward = {reward!r} is invalid; allowed: {' | '.join(map(repr, TWIN_REWARDS))}")
        self.reward = reward
        if preset_kwargs and not isinstance(config, str):
            raise ValueError(f"keyword arguments {sorted(preset_kwargs)} are invalid with a MultiCellConfig; allowed: "
                             "none (they apply to a preset name)")
        self.action_mode = action_mode
        self.core = MultiCellCore(make_multicell(config, **preset_kwargs) if isinstance(config, str) else config,
                                  action_mode)
        self.agents = tuple(f"cell_{i}" for i in range(self.core.num_cells))  # the dict mode's keys
        cell_spaces = [env.action_space for env in self.core.cell_envs]
        if action_mode == "discrete":
            self.action_space = spaces.MultiDiscrete(np.concatenate([s.nvec for s in cell_spaces]))
        elif action_mode == "hybrid":
            self.action_space = spaces.Box(-1.0, 1.0, (sum(s.shape[0] for s in cell_spaces),), dtype=np.float32)
        else:
            self.action_space = spaces.Dict(dict(zip(self.agents, cell_spaces, strict=True)))
        self._action_split = None if action_mode == "dict" else np.cumsum([s.shape[0] for s in cell_spaces])[:-1]
        size = sum(s.shape[0] for s in self.core.cell_observation_spaces)
        self.observation_space = spaces.Box(0.0, 1.0, (size,), dtype=np.float32)
        # reward="reference": every cell's best constant action on its own (the uncoordinated baseline's).
        self.reference_actions: tuple[tuple[int, int], ...] = ()
        if reward == "reference":
            from sdedge_gym.reference import best_constant_action

            self.reference_actions = tuple(best_constant_action(cell) for cell in self.core.config.cells)
        self._cost_to_go = 0.0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is None and self.core.dynamics is None:  # the cells' first episodes from this env's generator
            seed = int(self.np_random.integers(2**31 - MAX_CELLS))
        self.core.reset_cells(seed)
        info = {"acting": self.core.acting_mask(), "action_mask": self.action_masks()}
        if self.reward == "reference":
            self._cost_to_go = self.core.dynamics.reference_cost_to_go(self.reference_actions)
            info["reference_cost_to_go"] = np.float64(self._cost_to_go)
        return self._observation(), info

    def step(self, action):
        self.core.check_steppable(type(self).__name__)
        costs, cell_infos = self.core.step_cells(self._cell_actions(action))
        terminated = all(self.core.dynamics.done(i) for i in range(self.core.num_cells))
        info = {"acted": np.array([i["acted"] for i in cell_infos]), "cell_cost": costs,
                "acting": self.core.acting_mask(), "action_mask": self.action_masks()}
        reward = -float(costs.sum())
        if self.reward == "reference":  # potential-based shaping: -cost + V(s) - V(s'), V(terminal) = 0
            before = self._cost_to_go
            self._cost_to_go = 0.0 if terminated else self.core.dynamics.reference_cost_to_go(self.reference_actions)
            reward += before - self._cost_to_go
            info["reference_cost_to_go"] = np.float64(self._cost_to_go)
        if terminated:
            info.update(self.core.kpis())
        return self._observation(), reward, terminated, False, info

    def _cell_actions(self, action: Any) -> dict[int, Any]:
        """The joint action checked and split into the cells' actions."""
        if self.action_mode == "dict":
            if not isinstance(action, Mapping) or set(action) != set(self.agents):
                got = sorted(action, key=repr) if isinstance(action, Mapping) else type(action).__name__
                raise ValueError(f"action = {got!r} is invalid for action_mode 'dict'; allowed: a mapping with "
                                 f"exactly the keys {list(self.agents)}, each a cell's single-env dict action")
            for i, agent in enumerate(self.agents):  # the cell's own checks, with its error
                env = self.core.cell_envs[i]
                env.actions.decode(action[agent], wait=env.has_wait)
            return {i: action[agent] for i, agent in enumerate(self.agents)}
        if not self.action_space.contains(np.asarray(action, dtype=self.action_space.dtype)) or np.shape(
                action) != self.action_space.shape:
            raise ValueError(f"action = {action!r} is invalid; allowed: an element of {self.action_space}")
        return dict(enumerate(np.split(np.asarray(action), self._action_split)))

    def _observation(self) -> np.ndarray:
        acting = self.core.acting_mask()
        return np.concatenate([self.core.cell_observation(i, bool(acting[i])) for i in range(self.core.num_cells)])

    def action_masks(self) -> np.ndarray:
        return np.concatenate([env.action_masks() for env in self.core.cell_envs])
