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

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from sdedge_gym.config import ScenarioConfig
from sdedge_gym.feasibility import check_scenario
from sdedge_gym.roofline import PassCost
from sdedge_gym.service import BatchService, serve_expected_one, serve_sampled_one
from sdedge_gym.speculation import acceptance_runs, expected_rounds_one, sampled_rounds_one
from sdedge_gym.uplink import channel_coefficient, closed_form_allocation, shannon_allocation_one, slot_length
from sdedge_gym.workload import Workload, draw_workload


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


@dataclass(frozen=True)
class Episode:
    """One drawn workload and what every step needs of it, computed once at reset."""

    workload: Workload
    channel: np.ndarray  # a_k = p g_k / N0 (shannon) or s_k (fixed_snr)
    runs: np.ndarray | None  # sampled mode: consecutive accepted positions from each position

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
    def task_lists(self) -> _TaskLists:
        """The per-task columns as Python lists, built once per episode for the single-batch fast path."""
        w = self.workload
        return _TaskLists(
            prompt_len=w.prompt_len.astype(float).tolist(), output_len=w.output_len.tolist(),
            payload_bits=w.payload_bits.tolist(), channel=self.channel.tolist(), alpha=w.alpha.tolist(),
            runs=None if self.runs is None else self.runs.tolist())


@dataclass(frozen=True)
class _TaskLists:
    prompt_len: list[float]
    output_len: list[int]
    payload_bits: list[float]
    channel: list[float]
    alpha: list[float]
    runs: list[list[int]] | None


@dataclass(frozen=True)
class EpisodeClock:
    """Where an episode stands between batches."""

    next_task: int = 0  # tasks already committed
    uplink_end: float = 0.0  # end of the last uplink slot, s
    inference_end: float = 0.0  # F_{m-1}: end of the last batch's service, s
    batches: int = 0


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
    service: BatchService

    @property
    def wait(self) -> float:
        """Time the ready batch waited for the previous batch's service (the barrier)."""
        return self.start - self.ready

    @property
    def service_time(self) -> float:
        return self.finish - self.start


def closed_form_shares(model: ServingModel, episode: Episode, first: int, size: int) -> np.ndarray:
    """The optimal band split (Hz) of tasks first..first+size-1."""
    sl = slice(first, first + size)
    _, bandwidth = closed_form_allocation(episode.workload.payload_bits[sl], episode.channel[sl],
                                          model.config.uplink.bandwidth, model.config.uplink.rate_model)
    return bandwidth


def commit_batch(model: ServingModel, episode: Episode, clock: EpisodeClock, batch_size: int,
                 speculation_length: int, bandwidth: np.ndarray | None = None,
                 ) -> tuple[BatchOutcome, EpisodeClock]:
    """Serve the next ``batch_size`` tasks; ``bandwidth`` (Hz per user) defaults to the closed form.

    The caller validates the action (see the env); this function trusts it.
    """
    cfg = model.config
    first = clock.next_task
    end = first + batch_size
    w = episode.workload
    tasks = episode.task_lists  # one batch of a handful of tasks: Python floats beat numpy's call overhead
    if bandwidth is None and cfg.uplink.rate_model == "shannon":
        slot, bandwidth = shannon_allocation_one(tasks.payload_bits[first:end], tasks.channel[first:end],
                                                 float(cfg.uplink.bandwidth))
        slot = float(slot)
    elif bandwidth is None:
        slot, bandwidth = closed_form_allocation(w.payload_bits[first:end], episode.channel[first:end],
                                                 cfg.uplink.bandwidth, cfg.uplink.rate_model)
        slot = float(slot)
    else:
        slot = float(slot_length(w.payload_bits[first:end], bandwidth, episode.channel[first:end],
                                 cfg.uplink.rate_model))
    prompt, output = tasks.prompt_len[first:end], tasks.output_len[first:end]
    if tasks.runs is None or speculation_length == 0:
        rounds, tokens = expected_rounds_one(output, tasks.alpha[first:end], speculation_length)
        service = serve_expected_one(model.draft, model.target, cfg.fronthaul, prompt, output, rounds, tokens,
                                     speculation_length, cfg.pipelining)
    else:
        rounds, produced, accepted = sampled_rounds_one(output, tasks.runs[first:end], speculation_length)
        service = serve_sampled_one(model.draft, model.target, cfg.fronthaul, prompt, output, rounds, produced,
                                    accepted, speculation_length, cfg.pipelining)
    ready = clock.uplink_end + slot
    start = ready if ready > clock.inference_end else clock.inference_end
    finish = start + float(service.duration)
    completion = start + service.completion
    if cfg.objective == "mean_latency":
        cost = float(completion.sum()) / episode.num_tasks
    else:
        cost = finish - clock.inference_end
    outcome = BatchOutcome(
        first_task=first, batch_size=batch_size, speculation_length=speculation_length, bandwidth=bandwidth,
        uplink_start=clock.uplink_end, uplink_slot=slot, ready=ready, start=start, finish=finish,
        completion_times=completion, tokens=float(service.tokens),
        accepted_drafts=float(service.accepted_drafts), cost=cost, service=service,
    )
    return outcome, EpisodeClock(first + batch_size, ready, finish, clock.batches + 1)
