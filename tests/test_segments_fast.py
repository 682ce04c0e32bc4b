"""The fast paths of the segment tables against the core they stand for (same floats)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from sdedge_gym import Episode, ServingModel, make_scenario
from sdedge_gym.segments import (
    _draft_decode,
    _excess,
    _window_times,
    autoregressive_service,
    compacted_service,
)
from sdedge_gym.service import RoundTimes, micro_batch_load, pipeline_schedule, round_times
from sdedge_gym.speculation import task_progress

CASES = [(preset, acceptance, pipelining, seed)
         for preset in ("small", "paper", "uplink") for acceptance in ("expected", "sampled")
         for pipelining in (True, False) for seed in (0, 1)]


def _model_episode(preset: str, acceptance: str, pipelining: bool, seed: int):
    num_tasks = {"small": 9, "paper": 30, "uplink": 20}[preset]
    model = ServingModel.of(make_scenario(preset, num_tasks=num_tasks, acceptance=acceptance, pipelining=pipelining))
    return model, Episode.draw(model, np.random.default_rng(seed))


def _windows(model: ServingModel, episode: Episode, l: int):
    """Every window of the episode and the lanes (flat window indices) of every segment's micro-batches."""
    w = episode.workload
    progress = task_progress(w.output_len, w.alpha, l, episode.runs)
    count, width = episode.num_tasks, min(model.batch_limit, episode.num_tasks)
    sizes = np.arange(1, width + 1)
    size_a = (sizes + 1) // 2 if model.config.pipelining else sizes
    size_b = sizes - size_a
    rounds = max(int(progress.rounds.max()), 1)
    windows = _window_times(model, np.asarray(w.prompt_len, float), progress, slice(0, count), rounds, l,
                            int(size_a.max()), count + width)
    starts = np.arange(count)[:, None]
    return windows, size_a, size_b, starts, progress


def _reference_service(windows, size_a, size_b, starts):
    """Duration and completion sum of every segment from the core's own pipeline_schedule.

    The completion sum adds (tasks leaving in round r) x verify_end(r), A then B, round by round: the order
    the fast paths accumulate in, so the floats must agree exactly.
    """
    times, active = windows

    def micro(size, start):  # (RoundTimes, active) of windows (size, start), rounds moved last
        size, start = np.broadcast_arrays(size, start)
        return (RoundTimes(*(np.moveaxis(x[:, size, start], 0, -1)
                             for x in (times.draft, times.fronthaul, times.verify))),
                np.moveaxis(active[:, size, start], 0, -1))

    (times_a, active_a), (times_b, active_b) = micro(size_a[None, :], starts), micro(size_b[None, :],
                                                                                     starts + size_a[None, :])
    schedule_a, schedule_b = pipeline_schedule(times_a, active_a > 0, times_b, active_b > 0)
    duration = np.maximum(schedule_a.verify_end[..., -1], schedule_b.verify_end[..., -1])
    completion = np.zeros(duration.shape)
    for r in range(active_a.shape[-1]):
        for active_x, schedule in ((active_a, schedule_a), (active_b, schedule_b)):
            after = active_x[..., r + 1] if r + 1 < active_x.shape[-1] else 0.0
            completion += (active_x[..., r] - after) * schedule.verify_end[..., r]
    return duration, completion


@pytest.mark.parametrize("preset,acceptance,pipelining,seed", CASES)
def test_fast_services_equal_pipeline_schedule(preset, acceptance, pipelining, seed):
    model, episode = _model_episode(preset, acceptance, pipelining, seed)
    for l in range(model.config.max_speculation + 1):
        windows, size_a, size_b, starts, _ = _windows(model, episode, l)
        want_duration, want_completion = _reference_service(windows, size_a, size_b, starts)
        num_starts = windows[1].shape[2]
        lanes_a = (size_a[None, :] * num_starts + starts).ravel()
        lanes_b = (size_b[None, :] * num_starts + starts + size_a[None, :]).ravel()
        services = [compacted_service] + ([autoregressive_service] if l == 0 else [])
        for service in services:
            duration, completion = service(windows, lanes_a, lanes_b)
            # Bit equality is honest: the fast services do pipeline_schedule's max and + per lane in its order
            # and accumulate the completion sum in _reference_service's order (see their docstrings).
            np.testing.assert_array_equal(duration.reshape(want_duration.shape), want_duration)
            np.testing.assert_array_equal(completion.reshape(want_completion.shape), want_completion)


@pytest.mark.parametrize("preset,acceptance,pipelining,seed", CASES[::3])
def test_window_times_equal_round_times(preset, acceptance, pipelining, seed):
    """_window_times (rounds first, loads as running sums) against round_times on micro_batch_load."""
    model, episode = _model_episode(preset, acceptance, pipelining, seed)
    w = episode.workload
    rng = np.random.default_rng(seed)
    for l in range(model.config.max_speculation + 1):
        windows, size_a, _, _, progress = _windows(model, episode, l)
        times, active = windows
        for _ in range(6):
            m = int(rng.integers(1, int(size_a.max()) + 1))
            i = int(rng.integers(0, episode.num_tasks - m + 1))
            member = np.zeros(episode.num_tasks, dtype=bool)
            member[i:i + m] = True
            load = micro_batch_load(np.asarray(w.prompt_len, float), progress, member)
            want = round_times(model.draft, model.target, model.config.fronthaul, load, l)
            rounds = load.active.shape[-1]
            np.testing.assert_array_equal(active[:rounds, m, i], load.active)
            for got, ref in zip((times.draft, times.fronthaul, times.verify), (want.draft, want.fronthaul, want.verify),
                                strict=True):
                np.testing.assert_allclose(got[:rounds, m, i], ref, rtol=1e-12, atol=0)
                assert not got[rounds:, m, i].any()


@pytest.mark.parametrize("flop_scale", [1.0, 30.0, 1e3, 1e5])
def test_draft_decode_equals_general_excess(flop_scale):
    """The memory-bound shortcut against the general count of compute-bound passes, and the pass-by-pass sum.

    Slowing the draft's compute moves it from memory-bound (shortcut) through mixed rounds to compute-bound.
    """
    model = ServingModel.of(make_scenario("paper"))
    draft = dataclasses.replace(model.draft, seconds_per_flop=model.draft.seconds_per_flop * flop_scale)
    rng = np.random.default_rng(int(flop_scale))
    n = rng.integers(0, 12, (40, 30)).astype(float)
    ctx = n * rng.uniform(16, 1200, n.shape)
    for l in range(1, 9):
        got = _draft_decode(draft, n, ctx, l)
        m0 = (draft.weight_bytes + draft.kv_bytes_per_token * ctx) * draft.seconds_per_byte
        m1 = draft.kv_bytes_per_token * n * draft.seconds_per_byte
        e0 = (draft.flops_per_token * n + draft.attention_flops * ctx) * draft.seconds_per_flop - m0
        e1 = draft.attention_flops * n * draft.seconds_per_flop - m1
        with np.errstate(divide="ignore", invalid="ignore"):
            general = np.where(n > 0, l * (draft.overhead + m0) + m1 * l * (l + 1) / 2 + _excess(e0, e1, l), 0.0)
        # Honest: _draft_decode does the general formula's operations in its order; where it skips _excess,
        # the general formula adds an exact +-0.0.
        np.testing.assert_array_equal(got, general)
        grown = ctx[..., None] + n[..., None] * np.arange(1, l + 1)
        passes = draft.pass_time(np.broadcast_to(n[..., None], grown.shape), grown, grown).sum(axis=-1)
        np.testing.assert_allclose(got, passes, rtol=1e-12, atol=0)


def test_autoregressive_service_on_random_windows():
    """The l = 0 cumsum against the round loop on random verify times, including idle and ragged rounds."""
    rng = np.random.default_rng(5)
    rounds, sizes, starts = 40, 4, 7
    counts = np.zeros((rounds, sizes, starts))
    for m in range(1, sizes):
        last = rng.integers(0, rounds + 1, starts)
        counts[:, m] = (np.arange(rounds)[:, None] < last[None, :]) * rng.integers(1, 4, starts)
    verify = np.where(counts > 0, rng.uniform(0.001, 0.05, counts.shape), 0.0)
    zeros = np.zeros_like(verify)
    windows = (RoundTimes(zeros, zeros, verify), counts)
    lanes_a = rng.integers(0, sizes * starts, 50)
    lanes_b = rng.integers(0, sizes * starts, 50)
    want = compacted_service(windows, lanes_a, lanes_b)
    got = autoregressive_service(windows, lanes_a, lanes_b)
    # Honest: at l = 0 the recursion is a running sum in the order A_0, B_0, A_1, ... and np.cumsum is a
    # sequential accumulate in that order (see autoregressive_service).
    for x, y in zip(got, want, strict=True):
        np.testing.assert_array_equal(x, y)

