"""The compiled serving kernel (sdedge_gym/kernels.py) against the numpy specification, on random instances.

The kernel implements the same equations as service.py / uplink.py / speculation.py, but as compiled
scalar loops: a fronthaul term computed as n l (bits / rate) instead of (n l bits) / rate, libm's
log/exp instead of numpy's SIMD ones (which can differ by an ulp depending on the CPU), and a different
accumulation order in places. So values are compared to a relative tolerance: 1e-12 where the formulas
are the same closed forms (a few ulps of the largest term, over tens of additions), and 1e-11 where a
root solve's stopping rule decides the last digits (the Shannon split's Newton stops at 1e-14 relative
steps, so two implementations may stop one iteration apart). Integers (rounds, batch membership) are
compared exactly. The segment tables run the very same kernel functions on the same inputs in the same
order as the env's commit; they are still compared to 1e-12 (the check does not depend on the compiler
making identical code at two call sites).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import lambertw

from sdedge_gym import kernels
from sdedge_gym.config import FronthaulConfig
from sdedge_gym.episode import Episode, EpisodeClock, ServingModel, commit_batch
from sdedge_gym.roofline import PassCost
from sdedge_gym.scenarios import make_scenario
from sdedge_gym.segments import segment_tables
from sdedge_gym.service import RoundLoad, round_times, serve_batch
from sdedge_gym.speculation import acceptance_runs, task_progress
from sdedge_gym.uplink import (
    _log_snr_root,
    closed_form_allocation,
    shannon_bandwidth_needed,
    slot_length,
    uniform_allocation,
    user_rate,
)

RTOL = 1e-12
ROOT_RTOL = 1e-11


def _close(got, want, rtol: float = RTOL, what: str = "") -> None:
    np.testing.assert_allclose(np.asarray(got, dtype=float), np.asarray(want, dtype=float), rtol=rtol, atol=0.0,
                               err_msg=what)


def _parameters(draft: PassCost, target: PassCost, fronthaul: FronthaulConfig, pipelining: bool = True,
                rate_model: str = "shannon", bandwidth: float = 1e6) -> np.ndarray:
    config = make_scenario("paper", pipelining=pipelining, config={
        "fronthaul": {"rate": fronthaul.rate, "latency": fronthaul.latency,
                      "draft_token_bits": fronthaul.draft_token_bits},
        "uplink": {"rate_model": rate_model, "bandwidth": bandwidth}})
    return kernels.scenario_parameters(config, draft, target)


# Made-up nodes whose compute and memory times cross inside a round's drafts, so that the closed-form sums
# over the l draft passes meet every regime: memory-bound, compute-bound and mixed.
CROSSING_DRAFT = PassCost(overhead=1e-3, seconds_per_flop=1e-6, seconds_per_byte=1e-6, flops_per_token=3,
                          attention_flops=2, weight_bytes=900, kv_bytes_per_token=1, memory_capacity=1e9)
CROSSING_TARGET = PassCost(overhead=2e-3, seconds_per_flop=1e-6, seconds_per_byte=1e-6, flops_per_token=200,
                           attention_flops=2, weight_bytes=1000, kv_bytes_per_token=2, memory_capacity=1e9)
PAPER = ServingModel.of(make_scenario("paper"))
NODES = {"paper-nodes": (PAPER.draft, PAPER.target, PAPER.config.fronthaul),
         "crossing-nodes": (CROSSING_DRAFT, CROSSING_TARGET, FronthaulConfig(rate=1e6, latency=1e-3,
                                                                             draft_token_bits=100))}


# ---------------------------------------------------------------------------------------------- uplink


def _uplink_instance(rng: np.random.Generator, n: int):
    """Payloads 0.1-10 Mbit, channels a = p g / N0 over seven decades, any band."""
    return 10 ** rng.uniform(5, 7, n), 10 ** rng.uniform(5, 12, n), float(10 ** rng.uniform(5, 7.5))


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
    # the kernel's scalar root agrees with the array one
    got = np.array([kernels._log_snr(ci, 0.0) for ci in c])
    np.testing.assert_allclose(got, u, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("rate_model", ["shannon", "fixed_snr"])
def test_closed_form_split_equals_the_array_path(rate_model: str) -> None:
    rng = np.random.default_rng(7)
    for _ in range(400):
        n = int(rng.integers(1, 25))
        payload, channel, band = _uplink_instance(rng, n)
        if rate_model == "fixed_snr":
            channel = rng.uniform(1.0, 6.0, n)
        p = _parameters(*NODES["paper-nodes"], rate_model=rate_model, bandwidth=band)
        bandwidth = np.empty(n)
        slot = kernels.uplink_slot(p, payload, channel, bandwidth, False, kernels.workspace(PAPER.config))
        want_slot, want_bandwidth = closed_form_allocation(payload[None], channel[None], band, rate_model)
        _close(slot, want_slot[0], ROOT_RTOL, "slot")
        np.testing.assert_allclose(bandwidth, want_bandwidth[0], rtol=0, atol=1e-11 * band)
        assert bandwidth.sum() == pytest.approx(band, rel=1e-12)
        # an explicit split is timed like slot_length
        shares = uniform_allocation(payload, band)
        got = kernels.uplink_slot(p, payload, channel, shares.copy(), True, kernels.workspace(PAPER.config))
        _close(got, slot_length(payload, shares, channel, rate_model), RTOL, "explicit slot")


def test_shannon_split_is_optimal_in_deep_fades() -> None:
    # Users whose slot is close to their infinite-band time: scipy's lambertw loses its digits there, and
    # a plain Newton on sum_k b_k(T) crawls. Every user must still finish together using exactly B.
    rng = np.random.default_rng(11)
    work = kernels.workspace(PAPER.config)
    for _ in range(200):
        n = int(rng.integers(2, 9))
        payload = 10 ** rng.uniform(5, 7, n)
        channel = 10 ** rng.uniform(5, 12, n)
        channel[rng.integers(n)] = 10 ** rng.uniform(4.5, 5.5)  # one user at SNR well below 0 dB
        band = float(10 ** rng.uniform(6.5, 7.5))
        bandwidth = np.empty(n)
        slot = kernels.shannon_split(payload, channel, band, bandwidth, work[0], work[1], work[2])
        np.testing.assert_allclose(payload / user_rate(bandwidth, channel, "shannon"), slot, rtol=1e-9)
        assert bandwidth.sum() == pytest.approx(band, rel=1e-12)


def test_shannon_bandwidth_needed_is_the_inverse_of_the_rate() -> None:
    rng = np.random.default_rng(3)
    payload, channel, _ = _uplink_instance(rng, 50)
    finish = payload * math.log(2) / channel * rng.uniform(1.001, 100.0, 50)  # T above each T_min
    bandwidth, derivative = shannon_bandwidth_needed(finish, payload, channel)
    _close(payload / user_rate(bandwidth, channel, "shannon"), finish, 1e-10)
    step = 1e-6 * finish
    ahead, _ = shannon_bandwidth_needed(finish + step, payload, channel)
    behind, _ = shannon_bandwidth_needed(finish - step, payload, channel)
    _close(derivative, (ahead - behind) / (2 * step), 1e-5)


# ---------------------------------------------------------------------------------------------- service


@pytest.mark.parametrize("nodes", sorted(NODES))
def test_round_times_equal_the_specification(nodes: str) -> None:
    draft, target, fronthaul = NODES[nodes]
    p = _parameters(draft, target, fronthaul)
    rng = np.random.default_rng(8)
    for _ in range(300):
        rounds, l = int(rng.integers(1, 40)), int(rng.integers(0, 9))
        active = np.sort(rng.integers(1, 13, rounds))[::-1].astype(float)
        context = rng.uniform(0, 2000, rounds) * active
        prompt = float(rng.uniform(10, 400) * active[0])
        prompt_square = prompt**2 / active[0]
        want = round_times(draft, target, fronthaul, RoundLoad(active, context, np.array(prompt),
                                                              np.array(prompt_square)), l)
        got = np.zeros((3, rounds))
        kernels.round_times(p, active, context, rounds, prompt, prompt_square, l, got[0], got[1], got[2])
        for row, reference, name in zip(got, (want.draft, want.fronthaul, want.verify), ("D", "F", "V"), strict=True):
            _close(row, reference, RTOL, name)


def _serve_both(nodes: str, prompt, output, alpha, runs, l: int, pipelined: bool):
    draft, target, fronthaul = NODES[nodes]
    p = _parameters(draft, target, fronthaul, pipelining=pipelined)
    n = len(prompt)
    completion = np.empty(n)
    work = np.empty((kernels.WORKSPACE_ROWS, max(int(output.max()), n)))
    sampled = runs is not None
    kernel_runs = runs.astype(np.int32) if sampled else np.zeros((1, 1), np.int32)
    duration, accepted = kernels.serve(p, prompt.astype(float), output.astype(np.int64), alpha, kernel_runs, 0, n,
                                       l, sampled, completion, work)
    progress = task_progress(output, alpha, l, runs)
    want = serve_batch(draft, target, fronthaul, prompt, output, progress, l, pipelined)
    return (completion, duration, accepted), want


@pytest.mark.parametrize("nodes", sorted(NODES))
def test_serve_equals_serve_batch(nodes: str) -> None:
    rng = np.random.default_rng(9)
    for trial in range(150):
        n, l, pipelined = int(rng.integers(1, 13)), int(rng.integers(0, 9)), bool(trial % 4)
        prompt = rng.integers(16, 512, n).astype(float)
        output = rng.integers(1, 257, n)
        alpha = rng.uniform(0.0, 0.95, n)
        runs = acceptance_runs(rng.random((n, 256)), alpha) if l > 0 and trial % 2 else None
        (completion, duration, accepted), want = _serve_both(nodes, prompt, output, alpha, runs, l, pipelined)
        _close(completion, want.completion, RTOL, "completion")
        _close(duration, want.duration, RTOL, "duration")
        assert accepted == float(want.accepted_drafts)  # an integer count (sampled) or O - rounds (expected)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), n=st.integers(1, 10), l=st.integers(0, 6), pipelined=st.booleans(), sampled=st.booleans())
def test_serve_equals_serve_batch_property(data, n: int, l: int, pipelined: bool, sampled: bool) -> None:
    prompt = np.array(data.draw(st.lists(st.integers(1, 600), min_size=n, max_size=n)), dtype=float)
    output = np.array(data.draw(st.lists(st.integers(1, 200), min_size=n, max_size=n)))
    alpha = np.array(data.draw(st.lists(st.floats(0.0, 0.98), min_size=n, max_size=n)))
    seed = data.draw(st.integers(0, 2**31))
    runs = acceptance_runs(np.random.default_rng(seed).random((n, 200)), alpha) if sampled else None
    (completion, duration, _), want = _serve_both("paper-nodes", prompt, output, alpha, runs, l, pipelined)
    _close(completion, want.completion, RTOL, "completion")
    _close(duration, want.duration, RTOL, "duration")
    # every task finishes within the batch, and the last to finish ends it
    assert np.all(completion > 0) and completion.max() == pytest.approx(duration, rel=1e-15)


# --------------------------------------------------------------------------------------------- episode


def _reference_commit(model: ServingModel, episode: Episode, clock: EpisodeClock, n: int, l: int, bandwidth):
    """commit_batch rebuilt from the numpy specification: (uplink slot, band, completions, finish)."""
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
def test_commit_batch_equals_the_specification(preset: str, acceptance: str, objective: str) -> None:
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
            _close(outcome.uplink_slot, slot, ROOT_RTOL)
            np.testing.assert_allclose(outcome.bandwidth, band, rtol=0, atol=1e-11 * model.config.uplink.bandwidth)
            _close(outcome.completion_times, completion, ROOT_RTOL)
            _close(outcome.finish, finish, ROOT_RTOL)
            total += outcome.cost
            completions.extend(outcome.completion_times)
        expected = np.mean(completions) if objective == "mean_latency" else clock.inference_end
        assert total == pytest.approx(expected, rel=1e-12)


# ----------------------------------------------------------------------------------------- segment tables


@pytest.mark.parametrize(("preset", "overrides"), [
    ("small", {}), ("small", {"acceptance": "sampled"}), ("paper", {"num_tasks": 30}),
    ("paper", {"num_tasks": 30, "acceptance": "sampled", "pipelining": False}),
    ("uplink", {"num_tasks": 20, "objective": "makespan"}),
])
def test_every_segment_equals_commit_batch(preset: str, overrides: dict) -> None:
    model = ServingModel.of(make_scenario(preset, **overrides))
    episode = Episode.draw(model, np.random.default_rng(7))
    tables = segment_tables(model, episode)
    clock = EpisodeClock(uplink_end=0.0, inference_end=0.0)
    for j in range(episode.num_tasks):
        for n in range(1, tables.batch_limit + 1):
            if j + n > episode.num_tasks:
                assert np.isinf(tables.uplink_slot[j, n - 1]) and np.isinf(tables.duration[j, n - 1]).all()
                continue
            for l in range(model.config.max_speculation + 1):
                outcome, _ = commit_batch(model, episode, EpisodeClock(next_task=j, uplink_end=clock.uplink_end,
                                                                       inference_end=clock.inference_end), n, l)
                # the batch starts at its slot's end (both clocks at 0): offsets are times minus the slot
                _close(tables.uplink_slot[j, n - 1], outcome.uplink_slot, RTOL)
                _close(tables.duration[j, n - 1, l], outcome.finish - outcome.start, RTOL)
                _close(tables.completion_sum[j, n - 1, l], (outcome.completion_times - outcome.start).sum(), RTOL)


def test_uniform_tables_use_equal_shares() -> None:
    model = ServingModel.of(make_scenario("uplink", num_tasks=12))
    episode = Episode.draw(model, np.random.default_rng(3))
    tables = segment_tables(model, episode, "uniform")
    band = model.config.uplink.bandwidth
    for j in range(12):
        for n in range(1, min(tables.batch_limit, 12 - j) + 1):
            outcome, _ = commit_batch(model, episode, EpisodeClock(next_task=j), n, 0, np.full(n, band / n))
            _close(tables.uplink_slot[j, n - 1], outcome.uplink_slot, RTOL)


# ------------------------------------------------------------------------------------- measured profiles


def _tabulated_roofline(path, node, ranges) -> str:
    """A profile CSV of the node's own roofline on a grid covering ``ranges`` (pass_profile.required_ranges)."""
    from sdedge_gym.pass_profile import write_profile

    cost = PassCost.of(node)
    batch = np.unique(np.linspace(*ranges["batch"], 6).round())
    new = np.unique(np.geomspace(1, ranges["new_tokens"][1], 9).round())
    context = np.unique(np.concatenate([[0.0], np.geomspace(8, ranges["context"][1], 8).round()]))
    seconds = np.array([[[float(cost.uniform_pass_time(n, q, c)) for c in context] for q in new] for n in batch])
    write_profile(path, batch, new, context, seconds, comment="the roofline, tabulated for a test")
    return str(path)


def test_profiled_nodes_equal_the_specification_and_track_the_roofline(tmp_path) -> None:
    from sdedge_gym.pass_profile import required_ranges

    plain = make_scenario("small")
    paths = {role: _tabulated_roofline(tmp_path / f"{role}.csv", getattr(plain, role), required_ranges(plain, role))
             for role in ("draft", "target")}
    profiled = ServingModel.of(make_scenario("small", config={role: {"profile": path} for role, path in paths.items()}))
    roofline = ServingModel.of(plain)
    rng = np.random.default_rng(4)
    for seed in range(3):
        episode = Episode.draw(profiled, np.random.default_rng(seed))
        clock, plain_clock = EpisodeClock(), EpisodeClock()
        while clock.next_task < episode.num_tasks:
            n = int(rng.integers(1, min(profiled.batch_limit, episode.num_tasks - clock.next_task) + 1))
            l = int(rng.integers(0, profiled.config.max_speculation + 1))
            # the kernel's interpolation against the numpy specification's (pass_profile.profile_pass_time)
            _, _, completion, finish = _reference_commit(profiled, episode, clock, n, l, None)
            outcome, clock = commit_batch(profiled, episode, clock, n, l)
            _close(outcome.completion_times, completion, RTOL)
            _close(outcome.finish, finish, RTOL)
            # a profile of the roofline times batches like the roofline, up to the interpolation error of a
            # piecewise-linear function on a coarse grid (a few per cent)
            plain_outcome, plain_clock = commit_batch(roofline, episode, plain_clock, n, l)
            np.testing.assert_allclose(outcome.finish - outcome.start, plain_outcome.finish - plain_outcome.start,
                                       rtol=0.05)
