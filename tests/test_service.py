"""One batch's service: round times, the pipelined schedule and completions (docs/MODEL.md)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sdedge_gym.config import FronthaulConfig
from sdedge_gym.episode import Episode, ServingModel
from sdedge_gym.roofline import PassCost
from sdedge_gym.scenarios import make_scenario
from sdedge_gym.service import (
    RoundLoad,
    RoundTimes,
    micro_batch_index,
    pipeline_schedule,
    round_times,
    serve_batch,
)
from sdedge_gym.speculation import TaskProgress, task_progress

# Made-up nodes with round numbers, so that every pass time below is a line of arithmetic:
# draft  t(N, A, T) = 1 ms + max(100 N + A, 500 + T) us
# target t(N, A, T) = 2 ms + max(200 N + 2 A, 1000 + 2 T) us
DRAFT = PassCost(overhead=1e-3, seconds_per_flop=1e-6, seconds_per_byte=1e-6, flops_per_token=100,
                 attention_flops=1, weight_bytes=500, kv_bytes_per_token=1, memory_capacity=1e9)
TARGET = PassCost(overhead=2e-3, seconds_per_flop=1e-6, seconds_per_byte=1e-6, flops_per_token=200,
                  attention_flops=2, weight_bytes=1000, kv_bytes_per_token=2, memory_capacity=1e9)
FRONTHAUL = FronthaulConfig(rate=1e6, latency=1e-3, draft_token_bits=100)  # F = 1 ms + 100 us per draft

# Two tasks with prompts 10 and 20 (sum 30, sum of squares 500); the first leaves after round 1.
LOAD = RoundLoad(active=np.array([2.0, 2.0, 1.0]), context=np.array([30.0, 36.0, 22.0]),
                 prompt=np.array(30.0), prompt_square=np.array(500.0))


def test_round_times_by_hand_with_speculation() -> None:
    times = round_times(DRAFT, TARGET, FRONTHAUL, LOAD, 2)
    # D: round 0 prefills (N=30, A=500, T=30: compute-bound 1 + 3.5 ms) then drafts twice on contexts
    # 30 + 2j (memory-bound, 1.532 and 1.534 ms); later rounds draft on 36 + 2j and 22 + j.
    np.testing.assert_allclose(times.draft, [4.5e-3 + 1.532e-3 + 1.534e-3, 1.538e-3 + 1.540e-3,
                                             1.523e-3 + 1.524e-3], rtol=1e-12)
    # F: latency + n l 100 bits at 1 Mbit/s.
    np.testing.assert_allclose(times.fronthaul, [1.4e-3, 1.4e-3, 1.2e-3], rtol=1e-12)
    # V: round 0 verifies prompt + drafts on an empty cache: N = 30 + 4, A = 500 + 2*2*30 + 2*4 = 628,
    # T = 34 -> 2 + 8.056 ms; later rounds q = l + 1 = 3 per task: N = 6, A = 3 (36 + 4), T = 40 ->
    # 2 + 1.44 ms; and N = 3, A = 3 (22 + 2), T = 24 -> memory-bound 2 + 1.048 ms.
    np.testing.assert_allclose(times.verify, [10.056e-3, 3.44e-3, 3.048e-3], rtol=1e-12)


def test_round_times_by_hand_for_autoregressive_decoding() -> None:
    times = round_times(DRAFT, TARGET, FRONTHAUL, LOAD, 0)
    np.testing.assert_array_equal(times.draft, 0.0)
    np.testing.assert_array_equal(times.fronthaul, 0.0)
    # round 0 is the prefill (N=30, A=500, T=30); later rounds one token on contexts 36 and 22
    np.testing.assert_allclose(times.verify, [9.0e-3, 3.072e-3, 3.044e-3], rtol=1e-12)


def test_two_micro_batch_schedule_by_hand() -> None:
    a = RoundTimes(draft=np.array([2.0, 1.0]), fronthaul=np.array([0.5, 0.5]), verify=np.array([3.0, 3.0]))
    b = RoundTimes(draft=np.array([1.0, 1.0]), fronthaul=np.array([0.5, 0.5]), verify=np.array([2.0, 2.0]))
    sched_a, sched_b = pipeline_schedule(a, np.array([True, True]), b, np.array([True, False]))
    # A0: draft [0, 2], verify [2.5, 5.5]
    # B0: draft [max(sbs 2, 0) = 2, 3], verify [max(mbs 5.5, 3 + 0.5) = 5.5, 7.5]
    # A1: draft [max(sbs 3, A0 end 5.5) = 5.5, 6.5], verify [max(mbs 7.5, 7) = 7.5, 10.5]
    # B1: finished: its times repeat B's last verify end, 7.5
    np.testing.assert_array_equal(sched_a.draft_start, [0.0, 5.5])
    np.testing.assert_array_equal(sched_a.draft_end, [2.0, 6.5])
    np.testing.assert_array_equal(sched_a.verify_start, [2.5, 7.5])
    np.testing.assert_array_equal(sched_a.verify_end, [5.5, 10.5])
    np.testing.assert_array_equal(sched_b.draft_start, [2.0, 7.5])
    np.testing.assert_array_equal(sched_b.draft_end, [3.0, 7.5])
    np.testing.assert_array_equal(sched_b.verify_start, [5.5, 7.5])
    np.testing.assert_array_equal(sched_b.verify_end, [7.5, 7.5])
    # the same numbers through the vectorised path
    many_a, many_b = pipeline_schedule(a, np.array([[True, True]]), b, np.array([[True, False]]))
    np.testing.assert_array_equal(many_a.verify_end[0], [5.5, 10.5])
    np.testing.assert_array_equal(many_b.draft_start[0], [2.0, 7.5])


def test_micro_batch_split() -> None:
    assert micro_batch_index(5, 5, True).tolist() == [0, 0, 0, 1, 1]  # A = first ceil(n / 2)
    assert micro_batch_index(4, 4, True).tolist() == [0, 0, 1, 1]
    assert micro_batch_index(1, 1, True).tolist() == [0]
    assert micro_batch_index(5, 5, False).tolist() == [0] * 5
    assert micro_batch_index(np.array([3, 1]), 4, True).tolist() == [[0, 0, 1, 1], [0, 1, 1, 1]]


@st.composite
def _micro_batch_times(draw: st.DrawFn, rounds: int) -> tuple[RoundTimes, np.ndarray]:
    values = st.floats(0.0, 1.0, allow_nan=False)
    times = RoundTimes(*(np.array(draw(st.lists(values, min_size=rounds, max_size=rounds))) for _ in range(3)))
    active_rounds = draw(st.integers(0, rounds))
    return times, np.arange(rounds) < active_rounds


@st.composite
def _schedules(draw: st.DrawFn) -> list[tuple[RoundTimes, np.ndarray, RoundTimes, np.ndarray]]:
    rounds = draw(st.integers(1, 6))
    rows = []
    for _ in range(draw(st.integers(1, 4))):
        times_a, active_a = draw(_micro_batch_times(rounds))
        times_b, active_b = draw(_micro_batch_times(rounds))
        rows.append((times_a, active_a, times_b, active_b))
    return rows


@settings(max_examples=80, deadline=None)
@given(rows=_schedules())
def test_vectorised_schedule_equals_the_scalar_path(rows: list) -> None:
    stacked = [
        RoundTimes(*(np.stack([getattr(row[i], f) for row in rows]) for f in ("draft", "fronthaul", "verify")))
        if i in (0, 2) else np.stack([row[i] for row in rows])
        for i in range(4)
    ]
    many = pipeline_schedule(*stacked)
    for r, row in enumerate(rows):
        one = pipeline_schedule(*row)
        # Honest: the same function, elementwise max and + in the same order for a row alone or in a stack.
        for x in (0, 1):
            for name in ("draft_start", "draft_end", "verify_start", "verify_end"):
                np.testing.assert_array_equal(getattr(many[x], name)[r], getattr(one[x], name))


@settings(max_examples=80, deadline=None)
@given(rows=_schedules())
def test_schedule_respects_both_nodes_and_every_dependency(rows: list) -> None:
    times_a, active_a, times_b, active_b = rows[0]
    sched = pipeline_schedule(times_a, active_a, times_b, active_b)
    times = (times_a, times_b)
    active = (active_a, active_b)
    passes = []  # (draft start, draft end, verify start, verify end) in the cyclic order A0, B0, A1, ...
    for r in range(active_a.size):
        for x in (0, 1):
            s = sched[x]
            if not active[x][r]:
                continue
            assert s.draft_end[r] == pytest.approx(s.draft_start[r] + times[x].draft[r])
            assert s.verify_end[r] == pytest.approx(s.verify_start[r] + times[x].verify[r])
            assert s.verify_start[r] >= s.draft_end[r] + times[x].fronthaul[r] - 1e-12
            if r > 0:
                assert s.draft_start[r] >= s.verify_end[r - 1] - 1e-12  # needs its own previous verify
            passes.append((s.draft_start[r], s.draft_end[r], s.verify_start[r], s.verify_end[r]))
    for before, after in itertools.pairwise(passes):
        assert after[0] >= before[1] - 1e-12  # one draft at a time on the SBS
        assert after[2] >= before[3] - 1e-12  # one verify at a time on the MBS


@pytest.fixture(scope="module")
def paper() -> tuple[ServingModel, Episode]:
    model = ServingModel.of(make_scenario("paper"))
    return model, Episode.draw(model, np.random.default_rng(11))


def _batch(episode: Episode, first: int, size: int, l: int) -> tuple[np.ndarray, np.ndarray, TaskProgress]:
    w = episode.workload
    sl = slice(first, first + size)
    return w.prompt_len[sl], w.output_len[sl], task_progress(w.output_len[sl], w.alpha[sl], l)


@settings(max_examples=25, deadline=None)
@given(first=st.integers(0, 80), size=st.integers(1, 12), l=st.integers(0, 8))
def test_without_pipelining_the_batch_time_is_the_sum_of_its_rounds(paper, first: int, size: int, l: int) -> None:
    model, episode = paper
    prompt, output, progress = _batch(episode, first, size, l)
    service = serve_batch(model.draft, model.target, model.config.fronthaul, prompt, output, progress, l,
                          pipelined=False)
    # The load of the whole batch, round by round, assembled here from the task progress.
    r = np.arange(progress.max_rounds)
    active = r < progress.rounds[:, None]
    load = RoundLoad(active=active.sum(axis=0).astype(float),
                     context=np.where(active, prompt[:, None] + progress.produced_before, 0.0).sum(axis=0),
                     prompt=np.array(float(prompt.sum())), prompt_square=np.array(float((prompt**2).sum())))
    times = round_times(model.draft, model.target, model.config.fronthaul, load, l)
    per_round = times.draft + times.fronthaul + times.verify
    assert float(service.duration) == pytest.approx(per_round.sum(), rel=1e-12)
    np.testing.assert_allclose(service.completion, np.cumsum(per_round)[progress.rounds - 1], rtol=1e-12)


@settings(max_examples=25, deadline=None)
@given(first=st.integers(0, 80), size=st.integers(1, 12), l=st.integers(0, 8), pipelined=st.booleans())
def test_batch_service_invariants(paper, first: int, size: int, l: int, pipelined: bool) -> None:
    model, episode = paper
    prompt, output, progress = _batch(episode, first, size, l)
    service = serve_batch(model.draft, model.target, model.config.fronthaul, prompt, output, progress, l,
                          pipelined=pipelined)
    # Exact: both pick the same verify end (a selection, no arithmetic).
    assert float(service.completion.max()) == float(service.duration)
    assert np.all(service.completion > 0)
    assert float(service.tokens) == output.sum()
    assert float(service.accepted_drafts) == pytest.approx(progress.accepted_drafts.sum())
    if l == 0:
        assert float(service.accepted_drafts) == 0.0
    if size == 1:  # a single task is micro-batch A alone: pipelining changes nothing
        alone = serve_batch(model.draft, model.target, model.config.fronthaul, prompt, output, progress, l,
                            pipelined=not pipelined)
        # Exact: micro-batch B is empty either way, its steps change no clock, so A's operations are the same.
        assert float(alone.duration) == float(service.duration)


@settings(max_examples=25, deadline=None)
@given(first=st.integers(0, 80), size=st.integers(1, 10), pad=st.integers(1, 4), l=st.integers(0, 6),
       pipelined=st.booleans())
def test_padding_tasks_do_not_change_the_real_tasks(paper, first: int, size: int, pad: int, l: int,
                                                    pipelined: bool) -> None:
    model, episode = paper
    prompt, output, progress = _batch(episode, first, size, l)
    args = (model.draft, model.target, model.config.fronthaul)
    plain = serve_batch(*args, prompt, output, progress, l, pipelined=pipelined)
    padded_prompt = np.concatenate([prompt, np.full(pad, 300)])  # a padding task's prompt must not count
    padded_output = np.concatenate([output, np.zeros(pad, dtype=output.dtype)])
    padded_alpha = np.concatenate([episode.workload.alpha[first:first + size], np.full(pad, 0.5)])
    padded = serve_batch(*args, padded_prompt, padded_output, task_progress(padded_output, padded_alpha, l), l,
                         pipelined=pipelined, batch_size=size)
    np.testing.assert_allclose(padded.completion[:size], plain.completion, rtol=1e-12)
    np.testing.assert_array_equal(padded.completion[size:], 0.0)
    assert float(padded.duration) == pytest.approx(float(plain.duration), rel=1e-12)


@pytest.mark.parametrize("l", [0, 3])
def test_a_stack_of_padded_batches_equals_one_batch_at_a_time(paper, l: int) -> None:
    model, episode = paper
    w = episode.workload
    width, sizes, firsts = 8, np.array([8, 3, 5, 1]), [0, 10, 20, 40]
    prompt = np.zeros((4, width))
    output = np.zeros((4, width), dtype=np.int64)
    alpha = np.full((4, width), 0.5)
    for row, (first, size) in enumerate(zip(firsts, sizes, strict=True)):
        prompt[row, :size] = w.prompt_len[first:first + size]
        output[row, :size] = w.output_len[first:first + size]
        alpha[row, :size] = w.alpha[first:first + size]
    args = (model.draft, model.target, model.config.fronthaul)
    stacked = serve_batch(*args, prompt, output, task_progress(output, alpha, l), l, batch_size=sizes)
    for row, (first, size) in enumerate(zip(firsts, sizes, strict=True)):
        one = serve_batch(*args, *_batch(episode, first, int(size), l), l)
        np.testing.assert_allclose(stacked.completion[row, :size], one.completion, rtol=1e-12)
        assert float(stacked.duration[row]) == pytest.approx(float(one.duration), rel=1e-12)
