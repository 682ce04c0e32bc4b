"""An episode of batch-by-batch serving: the dynamics the env, the vector env and the oracle share.

The queue of K tasks is served in contiguous batches. Committing batch m (its size n, speculation length
l and band split) advances two clocks:

    uplink slot m:  [uplink_end_{m-1}, uplink_end_m],  uplink_end_m = uplink_end_{m-1} + U_m
    service:        S_m = max(uplink_end_m, F_{m-1}),  F_m = S_m + duration_m
    completions:    C_k = S_m + offset_k for the batch's tasks

and costs sum_k C_k / K (objective "mean_latency") or F_m - F_{m-1} (objective "makespan"), so that the
costs of an episode add up to the objective exactly.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from sdedge_gym import kernels
from sdedge_gym.config import ScenarioConfig
from sdedge_gym.feasibility import check_scenario
from sdedge_gym.roofline import PassCost
from sdedge_gym.service import BatchService, serve_batch
from sdedge_gym.speculation import acceptance_runs, task_progress
from sdedge_gym.uplink import channel_coefficient, closed_form_allocation
from sdedge_gym.workload import Workload, draw_workload

# Expected-mode episodes pass this in place of the acceptance runs (the kernel's argument types stay fixed:
# writable like every other array it is given, so that numba compiles each kernel once, not once per layout).
NO_RUNS = np.zeros((1, 1), dtype=np.int32)


@dataclass(frozen=True)
class ServingModel:
    """A scenario with its per-scenario constants precomputed (pass costs, memory limit)."""

    config: ScenarioConfig
    draft: PassCost
    target: PassCost
    memory_batch_limit: int  # largest batch whose KV caches fit on both nodes

    @classmethod
    def of(cls, config: ScenarioConfig) -> ServingModel:
        draft, target = PassCost.of(config.draft), PassCost.of(config.target)
        tokens = config.workload.prompt_max + config.workload.max_new_tokens
        limits = {}
        for role, cost, node in (("draft", draft, config.draft), ("target", target, config.target)):
            limits[role] = cost.max_batch_for_memory(tokens)
            if limits[role] < 1:
                raise ValueError(
                    f"ScenarioConfig.{role}: {node.model.name} does not fit on {node.gpu.name} with one "
                    f"sequence of {tokens} tokens; allowed: a model whose weights and KV cache fit in "
                    f"{node.gpu.memory_capacity / 2**30:.0f} GiB (try bytes_per_param=1 or a larger GPU)")
        check_scenario(config, draft, target, min(config.max_batch, *limits.values()))  # degenerate rates, times
        return cls(config, draft, target, min(limits.values()))

    @cached_property  # read in every step's mask and observation: computed once
    def batch_limit(self) -> int:
        """Largest batch allowed by both the action space and memory."""
        return min(self.config.max_batch, self.memory_batch_limit)

    @cached_property
    def workspace(self) -> np.ndarray:
        """The kernel's scratch memory for one batch (never carries state between batches; not thread-safe)."""
        return kernels.workspace(self.config)

    @cached_property
    def kernel_parameters(self) -> np.ndarray:
        """The scenario's constants as the compiled kernel reads them (:func:`kernels.scenario_parameters`)."""
        return kernels.scenario_parameters(self.config, self.draft, self.target)


@dataclass(frozen=True)
class Episode:
    """One drawn workload and what every step needs of it, computed once at reset."""

    workload: Workload
    channel: np.ndarray  # a_k = p g_k / N0 (shannon) or s_k (fixed_snr)
    runs: np.ndarray | None  # sampled mode: consecutive accepted positions from each position
    release: np.ndarray | None = None  # a_k, s, non-decreasing: arrival times (online); None: all at t = 0

    @classmethod
    def draw(cls, model: ServingModel, rng: np.random.Generator) -> Episode:
        return cls.of(model, draw_workload(model.config, rng))

    @classmethod
    def of(cls, model: ServingModel, workload: Workload) -> Episode:
        channel = channel_coefficient(model.config.uplink, workload.channel_gain, workload.spectral_efficiency)
        runs = None if workload.uniforms is None else acceptance_runs(workload.uniforms, workload.alpha)
        return cls(workload, channel, runs)

    @cached_property  # read several times per step: computed once
    def num_tasks(self) -> int:
        return self.workload.num_tasks

    @cached_property
    def kernel_arrays(self) -> tuple[np.ndarray, ...]:
        """(prompt, output, alpha, payload, channel, runs) as the kernel reads them, built once per episode.

        Writable copies (astype copies): the vector env's arrays are writable, and numba compiles a kernel
        once per argument type, read-only and writable arrays being different types.
        """
        w = self.workload
        runs = NO_RUNS if self.runs is None else self.runs.astype(np.int32)
        return (w.prompt_len.astype(float), w.output_len.astype(np.int64), w.alpha.astype(float),
                w.payload_bits.astype(float), self.channel.astype(float), runs)


def predicted_episode(episode: Episode, exact: bool = False) -> Episode:
    """The episode as the observation shows it: the output-length hints and acceptance estimates (or, with
    ``exact``, the truth), in expected acceptance. What the planners and the service-chain rule time batches on."""
    w = episode.workload
    if exact:
        view = dataclasses.replace(w, uniforms=None)
    else:
        view = dataclasses.replace(w, output_len=np.asarray(w.output_hint, dtype=np.int64),
                                   alpha=np.asarray(w.alpha_estimate, dtype=float), uniforms=None)
    return Episode(view, episode.channel, None)


@dataclass(frozen=True)
class EpisodeClock:
    """Where an episode stands between batches: the one episode state of every env.

    The single and online envs hold one; the vector env holds :class:`EpisodeClocks`, the same fields as
    arrays over its envs. ``now`` is the decision epoch t, the earliest start of the next batch's uplink
    slot: offline it is ``uplink_end``; online it is also at or after the next request's arrival, and a wait
    moves it on (what has arrived by t is ``episode.release`` read at ``now``).
    """

    next_task: int = 0  # tasks already committed
    uplink_end: float = 0.0  # end of the last uplink slot, s
    inference_end: float = 0.0  # F_{m-1}: end of the last batch's service, s
    batches: int = 0
    now: float = 0.0  # t: the next slot starts at max(uplink_end, now), s


@dataclass(frozen=True)
class EpisodeClocks:
    """:class:`EpisodeClock` batched over ``num_envs`` environments, one array per field (the vector env's state).

    The compiled :func:`sdedge_gym.kernels.commit_many` advances a row as :func:`commit_batch` advances one
    clock; ``row(e)`` is env e's clock as the single env would hold it.
    """

    next_task: np.ndarray  # int64
    uplink_end: np.ndarray
    inference_end: np.ndarray
    batches: np.ndarray  # int64
    now: np.ndarray

    @classmethod
    def zeros(cls, num_envs: int) -> EpisodeClocks:
        ints, floats = (lambda: np.zeros(num_envs, dtype=np.int64)), (lambda: np.zeros(num_envs))
        return cls(ints(), floats(), floats(), ints(), floats())

    def restart(self, envs: np.ndarray | slice) -> None:
        """Envs ``envs`` back at the start of an episode (``EpisodeClock()``)."""
        for field in dataclasses.fields(self):
            getattr(self, field.name)[envs] = 0

    def row(self, env: int) -> EpisodeClock:
        return EpisodeClock(int(self.next_task[env]), float(self.uplink_end[env]), float(self.inference_end[env]),
                            int(self.batches[env]), float(self.now[env]))


@dataclass(frozen=True)
class BatchOutcome:
    """Everything that happened to one committed batch (times in s from the episode start)."""

    first_task: int
    batch_size: int
    speculation_length: int
    bandwidth: np.ndarray  # Hz per user of the batch
    uplink_start: float
    uplink_slot: float  # U_m
    ready: float  # R_m = end of the slot
    start: float  # S_m
    finish: float  # F_m
    completion_times: np.ndarray  # C_k of the batch's tasks
    tokens: float
    accepted_drafts: float
    cost: float  # this batch's share of the objective

    @property
    def wait(self) -> float:
        """Time the ready batch waited for the previous batch's service (the barrier)."""
        return self.start - self.ready

    @property
    def service_time(self) -> float:
        return self.finish - self.start


def closed_form_bandwidth(model: ServingModel, episode: Episode, first: int, size: int) -> np.ndarray:
    """The optimal band split of tasks first..first+size-1, in Hz per user (sdedge_agents.oracle.closed_form_shares
    gives the same split as fractions of the band)."""
    sl = slice(first, first + size)
    _, bandwidth = closed_form_allocation(episode.workload.payload_bits[sl], episode.channel[sl],
                                          model.config.uplink.bandwidth, model.config.uplink.rate_model)
    return bandwidth


def commit_batch(model: ServingModel, episode: Episode, clock: EpisodeClock, batch_size: int,
                 speculation_length: int, bandwidth: np.ndarray | None = None,
                 ) -> tuple[BatchOutcome, EpisodeClock]:
    """Serve the next ``batch_size`` tasks, the uplink slot from max(uplink end, now); ``bandwidth`` (Hz per
    user) defaults to the closed form.

    The caller validates the action (see the env); this function trusts it. The batch is timed by the
    compiled kernel (:func:`sdedge_gym.kernels.commit`).
    """
    first = clock.next_task
    slot_start = max(clock.uplink_end, clock.now)
    prompt, output, alpha, payload, channel, runs = episode.kernel_arrays
    explicit = bandwidth is not None
    band = np.array(bandwidth, dtype=float) if explicit else np.empty(batch_size)
    completion = np.empty(batch_size)
    slot, ready, start, finish, cost, accepted, tokens = kernels.commit(
        model.kernel_parameters, prompt, output, alpha, payload, channel, runs, first, int(batch_size),
        int(speculation_length), episode.runs is not None, explicit, band, completion, slot_start,
        clock.inference_end, model.config.objective == "mean_latency", model.workspace)
    outcome = frozen_record(
        BatchOutcome, first_task=first, batch_size=batch_size, speculation_length=speculation_length,
        bandwidth=band, uplink_start=slot_start, uplink_slot=slot, ready=ready, start=start, finish=finish,
        completion_times=completion, tokens=tokens, accepted_drafts=accepted, cost=cost,
    )
    return outcome, frozen_record(EpisodeClock, next_task=first + batch_size, uplink_end=ready, inference_end=finish,
                                  batches=clock.batches + 1, now=ready)


def frozen_record(cls: type, **fields: object):
    """An instance of the frozen dataclass ``cls`` from every one of its ``fields``, without its generated
    ``__init__``: that one sets each field through ``object.__setattr__`` (to get past the frozen guard),
    ~3x slower, and the env builds a BatchOutcome and an EpisodeClock every step. The instance is the same
    (equality, repr, ``dataclasses.replace`` and the frozen guard all work): only for classes without
    slots, called with all their fields, and without ``__post_init__`` or with its work done by the caller."""
    record = object.__new__(cls)
    record.__dict__.update(fields)
    return record


def batch_service(model: ServingModel, episode: Episode, outcome: BatchOutcome) -> BatchService:
    """The committed batch's full schedule (every round's draft and verify times), from the numpy specification.

    The env's hot path keeps only what it reports; the Gantt chart and the tests ask for the rest here.
    """
    sl = slice(outcome.first_task, outcome.first_task + outcome.batch_size)
    w = episode.workload
    runs = None if episode.runs is None else episode.runs[sl]
    progress = task_progress(w.output_len[sl], w.alpha[sl], outcome.speculation_length, runs)
    return serve_batch(model.draft, model.target, model.config.fronthaul, w.prompt_len[sl], w.output_len[sl],
                       progress, outcome.speculation_length, model.config.pipelining)
