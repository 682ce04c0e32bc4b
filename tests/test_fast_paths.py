"""Every single-batch fast path against the array path it shortcuts, on random inputs.

The single env runs on Python floats (one batch of a handful of tasks, where numpy's per-call overhead
dominates); the oracle's segment tables and the vector env run on arrays. Both must give the same
numbers: these tests draw random batches and compare them to ~1e-12 relative.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import lambertw

from sdedge_gym.config import FronthaulConfig
from sdedge_gym.episode import Episode, EpisodeClock, ServingModel, commit_batch
from sdedge_gym.roofline import PassCost
from sdedge_gym.scenarios import make_scenario
from sdedge_gym.service import (
    RoundLoad,
    _round_times_one,
    round_times,
    serve_batch,
    serve_expected_one,
    serve_sampled_one,
)
from sdedge_gym.speculation import acceptance_runs, expected_rounds_one, sampled_rounds_one, task_progress
from sdedge_gym.uplink import (
    _log_snr_root,
    closed_form_allocation,
    shannon_allocation_one,
    shannon_bandwidth_needed,
    slot_length,
    user_rate,
)

RTOL = 1e-12


def _close(fast, reference, rtol: float = RTOL, what: str = "") -> None:
    np.testing.assert_allclose(np.asarray(fast, dtype=float), np.asarray(reference, dtype=float), rtol=rtol,
                               atol=0.0, err_msg=what)


# ---------------------------------------------------------------------------------------------- uplink


def _uplink_instance(rng: np.random.Generator, n: int, padding: bool = True):
    """Payloads 0.1-10 Mbit (some zero: padding), channels a = p g / N0 over seven decades, any band."""
    payload = 10 ** rng.uniform(5, 7, n)
    if padding:
        payload = payload * (rng.random(n) > 0.15)
    channel = 10 ** rng.uniform(5, 12, n)
    return payload, channel, float(10 ** rng.uniform(5, 7.5))


def test_log_snr_root_solves_its_equation_and_matches_lambert_w() -> None:
    c = np.concatenate([10 ** -np.linspace(0.01, 12, 400), 1 - 10 ** -np.linspace(1, 7, 50)])
    u = _log_snr_root(c)
    # u = ln(1 + u / c), to rounding: the defining equation of the root
    np.testing.assert_allclose(np.log1p(u / c), u, rtol=1e-13, atol=4e-15)
    # where scipy's W_{-1} is well conditioned (away from the branch point c -> 1), they agree
    ok = c < 0.99
    y = -lambertw(-c[ok] * np.exp(-c[ok]), k=-1).real / c[ok]
    np.testing.assert_allclose(np.expm1(u[ok]), y - 1.0, rtol=1e-10)
    # warm starts on either side of the root, and left of f's maximum, all converge to the same root (as
    # c -> 1 the root is ill-conditioned: f'(u) -> 0, so only ~1e-15 absolute is meaningful there)
    for start in (0.5 * u, 2.0 * u + 1.0, np.zeros_like(u)):
        np.testing.assert_allclose(_log_snr_root(c, start), u, rtol=1e-13, atol=1e-14)


def test_scalar_shannon_split_equals_the_array_path() -> None:
    rng = np.random.default_rng(7)
    for _ in range(400):
        payload, channel, band = _uplink_instance(rng, int(rng.integers(1, 25)))
        slot, bandwidth = shannon_allocation_one(payload.tolist(), channel.tolist(), band)
        rows_slot, rows_bandwidth = closed_form_allocation(payload[None], channel[None], band, "shannon")
        _close(slot, rows_slot[0], 1e-11, "slot")
        np.testing.assert_allclose(bandwidth, rows_bandwidth[0], rtol=0, atol=1e-11 * band)
        assert isinstance(slot, np.floating) and bandwidth.shape == payload.shape
        # the 1-D call takes the scalar path (it calls shannon_allocation_one itself): the same operations in
        # the same order, so bit equality is honest
        one_slot, one_bandwidth = closed_form_allocation(payload, channel, band, "shannon")
        assert float(one_slot) == float(slot)
        np.testing.assert_array_equal(one_bandwidth, bandwidth)


def test_scalar_shannon_split_is_optimal_in_deep_fades() -> None:
    # Users whose slot is close to their infinite-band time: scipy's lambertw loses its digits there, and
    # a plain Newton on sum_k b_k(T) crawls. Every user must still finish together using exactly B.
    rng = np.random.default_rng(11)
    for _ in range(200):
        n = int(rng.integers(2, 9))
        payload = 10 ** rng.uniform(5, 7, n)
        channel = 10 ** rng.uniform(5, 12, n)
        channel[rng.integers(n)] = 10 ** rng.uniform(4.5, 5.5)  # one user at SNR well below 0 dB
        band = float(10 ** rng.uniform(6.5, 7.5))
        for slot, bandwidth in (shannon_allocation_one(payload.tolist(), channel.tolist(), band),
                                tuple(x[0] for x in closed_form_allocation(payload[None], channel[None], band,
                                                                           "shannon"))):
            times = payload / user_rate(bandwidth, channel, "shannon")
            np.testing.assert_allclose(times, float(slot), rtol=1e-9)
            assert bandwidth.sum() == pytest.approx(band, rel=1e-12)


def test_shannon_bandwidth_needed_is_the_inverse_of_the_rate() -> None:
    rng = np.random.default_rng(3)
    payload, channel, _ = _uplink_instance(rng, 50, padding=False)
    finish = payload * math.log(2) / channel * rng.uniform(1.001, 100.0, 50)  # T above each T_min
    bandwidth, derivative = shannon_bandwidth_needed(finish, payload, channel)
    _close(payload / user_rate(bandwidth, channel, "shannon"), finish, 1e-10)
    step = 1e-6 * finish
    ahead, _ = shannon_bandwidth_needed(finish + step, payload, channel)
    behind, _ = shannon_bandwidth_needed(finish - step, payload, channel)
    _close(derivative, (ahead - behind) / (2 * step), 1e-5)


# ----------------------------------------------------------------------------------------- speculation


def test_expected_rounds_one_equals_task_progress() -> None:
    rng = np.random.default_rng(5)
    for _ in range(300):
        n, l = int(rng.integers(1, 25)), int(rng.integers(0, 9))
        output = rng.integers(1, 513, n)
        alpha = rng.uniform(0.0, 0.99, n)
        rounds, tokens = expected_rounds_one(output.tolist(), alpha.tolist(), l)
        progress = task_progress(output, alpha, l)
        # Integers: L differs between the paths by a few ulps at most (below), and ceil's 1e-9 slack
        # (_CEIL_SLACK) absorbs that, so the round counts are an exact contract.
        np.testing.assert_array_equal(rounds, progress.rounds)
        r = np.arange(progress.max_rounds)
        produced = np.minimum(output[:, None], r * np.asarray(tokens)[:, None])
        # Not bit for bit: the fast path's a**(l+1) is libm's pow on a Python float, the array path's is
        # numpy's power (a SIMD loop on some CPUs); they differ by an ulp or so, and the cancellation in
        # 1 - a^(l+1) amplifies that by up to a^(l+1) / (1 - a^(l+1)) < 100 for a < 0.99: rtol 1e-13.
        np.testing.assert_allclose(produced, progress.produced_before, rtol=1e-13, atol=0)


def test_sampled_rounds_one_equals_task_progress() -> None:
    rng = np.random.default_rng(6)
    for _ in range(200):
        n, l, cap = int(rng.integers(1, 9)), int(rng.integers(1, 9)), 128
        output = rng.integers(1, cap + 1, n)
        runs = acceptance_runs(rng.random((n, cap)), rng.uniform(0.0, 0.95, n))
        rounds, produced, accepted = sampled_rounds_one(output.tolist(), runs.tolist(), l)
        progress = task_progress(output, np.zeros(n), l, runs)
        np.testing.assert_array_equal(rounds, progress.rounds)
        np.testing.assert_array_equal(accepted, progress.accepted_drafts)
        for k in range(n):
            np.testing.assert_array_equal(produced[k], progress.produced_before[k, : rounds[k]])


# --------------------------------------------------------------------------------------------- service

# Made-up nodes whose compute and memory times cross inside a round's drafts, so that the closed-form
# sums over the l draft passes meet every regime: memory-bound, compute-bound and mixed.
CROSSING_DRAFT = PassCost(overhead=1e-3, seconds_per_flop=1e-6, seconds_per_byte=1e-6, flops_per_token=3,
                          attention_flops=2, weight_bytes=900, kv_bytes_per_token=1, memory_capacity=1e9)
CROSSING_TARGET = PassCost(overhead=2e-3, seconds_per_flop=1e-6, seconds_per_byte=1e-6, flops_per_token=200,
                           attention_flops=2, weight_bytes=1000, kv_bytes_per_token=2, memory_capacity=1e9)


def _models() -> list[tuple[PassCost, PassCost, FronthaulConfig]]:
    paper = ServingModel.of(make_scenario("paper"))
    return [(paper.draft, paper.target, paper.config.fronthaul),
            (CROSSING_DRAFT, CROSSING_TARGET, FronthaulConfig(rate=1e6, latency=1e-3, draft_token_bits=100))]


@pytest.mark.parametrize("which", [0, 1], ids=["paper-nodes", "crossing-nodes"])
def test_round_times_one_equals_round_times(which: int) -> None:
    draft, target, fronthaul = _models()[which]
    rng = np.random.default_rng(8)
    for _ in range(300):
        rounds, l = int(rng.integers(1, 40)), int(rng.integers(0, 9))
        active = np.sort(rng.integers(0, 13, rounds))[::-1].astype(float)
        active[0] = max(active[0], 1.0) if rng.random() < 0.9 else 0.0  # sometimes an empty micro-batch
        context = np.where(active > 0, rng.uniform(0, 2000, rounds) * active, 0.0)
        prompt = float(rng.uniform(10, 400) * active[0])
        prompt_square = prompt**2 / max(active[0], 1.0)
        reference = round_times(draft, target, fronthaul, RoundLoad(active, context, np.array(prompt),
                                                                    np.array(prompt_square)), l)
        fast = _round_times_one(draft, target, fronthaul, active.tolist(), context.tolist(), prompt,
                                prompt_square, l)
        for got, want, name in zip(fast, (reference.draft, reference.fronthaul, reference.verify),
                                   ("draft", "fronthaul", "verify"), strict=True):
            _close(got, want, what=name)


def _padded_reference(draft, target, fronthaul, prompt, output, alpha, runs, l, pipelined):
    """The array path: the batch as row 0 of a stack padded with a second, empty row."""
    n = len(prompt)
    prompt_rows, output_rows = np.zeros((2, n)), np.zeros((2, n), dtype=np.int64)
    prompt_rows[0], output_rows[0] = prompt, output
    progress = task_progress(output_rows, np.stack([alpha, alpha]), l, None if runs is None else np.stack([runs, runs]))
    return serve_batch(draft, target, fronthaul, prompt_rows, output_rows, progress, l, pipelined,
                       batch_size=np.array([n, 0]))


def _compare_service(fast, reference) -> None:
    _close(fast.completion, reference.completion[0], what="completion")
    _close(fast.duration, reference.duration[0], what="duration")
    _close(fast.tokens, reference.tokens[0])
    _close(fast.accepted_drafts, reference.accepted_drafts[0])
    np.testing.assert_array_equal(fast.micro_batch, reference.micro_batch[0])
    for x in (0, 1):
        rounds = fast.schedules[x].verify_end.shape[-1]
        for name in ("draft_start", "draft_end", "verify_start", "verify_end"):
            _close(getattr(fast.schedules[x], name), getattr(reference.schedules[x], name)[0, :rounds],
                   what=name)


@pytest.mark.parametrize("which", [0, 1], ids=["paper-nodes", "crossing-nodes"])
def test_single_batch_service_equals_the_array_path(which: int) -> None:
    draft, target, fronthaul = _models()[which]
    rng = np.random.default_rng(9)
    for trial in range(150):
        n, l, pipelined = int(rng.integers(1, 13)), int(rng.integers(0, 9)), bool(trial % 4)
        prompt = rng.integers(16, 512, n).astype(float)
        output = rng.integers(1, 257, n)
        alpha = rng.uniform(0.0, 0.95, n)
        runs = acceptance_runs(rng.random((n, 256)), alpha)

        rounds, tokens = expected_rounds_one(output.tolist(), alpha.tolist(), l)
        fast = serve_expected_one(draft, target, fronthaul, prompt.tolist(), output.tolist(), rounds, tokens, l,
                                  pipelined)
        reference = _padded_reference(draft, target, fronthaul, prompt, output, alpha, None, l, pipelined)
        _compare_service(fast, reference)
        # serve_batch's own 1-D path agrees too
        one = serve_batch(draft, target, fronthaul, prompt, output, task_progress(output, alpha, l), l, pipelined)
        _close(one.completion, fast.completion)

        if l > 0:
            rounds, produced, accepted = sampled_rounds_one(output.tolist(), runs.tolist(), l)
            fast = serve_sampled_one(draft, target, fronthaul, prompt.tolist(), output.tolist(), rounds, produced,
                                     accepted, l, pipelined)
            reference = _padded_reference(draft, target, fronthaul, prompt, output, alpha, runs, l, pipelined)
            _compare_service(fast, reference)


# --------------------------------------------------------------------------------------------- episode


def _reference_commit(model: ServingModel, episode: Episode, clock: EpisodeClock, n: int, l: int, bandwidth):
    """commit_batch rebuilt from the array paths: (uplink slot, service, completions)."""
    cfg, w = model.config, episode.workload
    sl = slice(clock.next_task, clock.next_task + n)
    if bandwidth is None:
        slot, bandwidth = closed_form_allocation(w.payload_bits[sl][None], episode.channel[sl][None],
                                                 cfg.uplink.bandwidth, cfg.uplink.rate_model)
        slot, bandwidth = slot[0], bandwidth[0]
    else:
        slot = slot_length(w.payload_bits[sl], bandwidth, episode.channel[sl], cfg.uplink.rate_model)
    runs = None if episode.runs is None else episode.runs[sl][None]
    progress = task_progress(w.output_len[sl][None], w.alpha[sl][None], l, runs)
    service = serve_batch(model.draft, model.target, cfg.fronthaul, w.prompt_len[sl][None],
                          w.output_len[sl][None], progress, l, cfg.pipelining)
    start = max(clock.uplink_end + float(slot), clock.inference_end)
    return float(slot), bandwidth, start + service.completion[0], start + float(service.duration[0])


@pytest.mark.parametrize("preset", ["small", "paper"])
@pytest.mark.parametrize("acceptance", ["expected", "sampled"])
@pytest.mark.parametrize("objective", ["mean_latency", "makespan"])
def test_commit_batch_equals_the_array_path(preset: str, acceptance: str, objective: str) -> None:
    model = ServingModel.of(make_scenario(preset, acceptance=acceptance, objective=objective,
                                          pipelining=objective == "mean_latency"))
    rng = np.random.default_rng(12)
    for seed in range(4 if preset == "small" else 1):
        episode = Episode.draw(model, np.random.default_rng(seed))
        clock = EpisodeClock()
        total, completions = 0.0, []
        while clock.next_task < episode.num_tasks:
            n = int(rng.integers(1, min(model.batch_limit, episode.num_tasks - clock.next_task) + 1))
            l = int(rng.integers(0, model.config.max_speculation + 1))
            bandwidth = None if rng.random() < 0.7 else rng.dirichlet(np.ones(n)) * model.config.uplink.bandwidth
            slot, band, completion, finish = _reference_commit(model, episode, clock, n, l, bandwidth)
            outcome, clock = commit_batch(model, episode, clock, n, l, bandwidth)
            _close(outcome.uplink_slot, slot, 1e-11)
            np.testing.assert_allclose(outcome.bandwidth, band, rtol=0, atol=1e-11 * model.config.uplink.bandwidth)
            _close(outcome.completion_times, completion, 1e-11)
            _close(outcome.finish, finish, 1e-11)
            total += outcome.cost
            completions.extend(outcome.completion_times)
        expected = np.mean(completions) if objective == "mean_latency" else clock.inference_end
        assert total == pytest.approx(expected, rel=1e-12)
