"""Episodes: memory limits, the two clocks, the barrier between batches and the reward (docs/MODEL.md)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sdedge_gym.catalogue import GPUS, MODELS
from sdedge_gym.episode import Episode, EpisodeClock, ServingModel, batch_service, closed_form_bandwidth, commit_batch
from sdedge_gym.scenarios import make_scenario
from sdedge_gym.uplink import closed_form_allocation, slot_length, uniform_allocation


@pytest.fixture(scope="module")
def small() -> ServingModel:
    return ServingModel.of(make_scenario("small"))


@pytest.fixture(scope="module")
def paper() -> ServingModel:
    return ServingModel.of(make_scenario("paper"))


@pytest.mark.parametrize("role", ["draft", "target"])
def test_a_model_that_does_not_fit_raises_naming_the_node(role: str) -> None:
    scenario = make_scenario("small")
    node = getattr(scenario, role).replace(gpu=GPUS["rtx-3080"], model=MODELS["llama-13b"])
    with pytest.raises(ValueError, match=rf"ScenarioConfig\.{role}: llama-13b does not fit on rtx-3080"):
        ServingModel.of(scenario.replace(**{role: node}))


def test_memory_and_action_limits(paper: ServingModel, small: ServingModel) -> None:
    assert paper.memory_batch_limit == 22  # the RTX 4500 Ada holds 22 LLaMA-7B caches of 1024 tokens
    assert paper.batch_limit == 22  # < max_batch = 24
    assert small.batch_limit == 4  # max_batch binds


def test_clocks_of_two_batches(small: ServingModel) -> None:
    episode = Episode.draw(small, np.random.default_rng(3))
    w = episode.workload
    first, clock = commit_batch(small, episode, EpisodeClock(), 3, 2)
    slot, band = closed_form_allocation(w.payload_bits[:3], episode.channel[:3], 1e6, "shannon")
    assert first.uplink_start == 0.0
    assert first.uplink_slot == pytest.approx(float(slot), rel=1e-12)
    np.testing.assert_allclose(first.bandwidth, band)
    assert first.ready == first.uplink_slot
    assert first.start == first.ready  # both nodes idle at t = 0: the batch starts when it is uploaded
    assert first.finish == pytest.approx(first.start + float(batch_service(small, episode, first).duration))
    np.testing.assert_allclose(first.completion_times, first.start + batch_service(small, episode, first).completion)
    assert first.cost == pytest.approx(first.completion_times.sum() / 8)
    assert clock == EpisodeClock(next_task=3, uplink_end=first.ready, inference_end=first.finish, batches=1,
                                 now=first.ready)

    second, clock = commit_batch(small, episode, clock, 2, 0)
    assert second.first_task == 3
    assert second.uplink_start == first.ready  # slot 2 follows slot 1 on the band
    assert second.ready == pytest.approx(first.ready + second.uplink_slot)
    assert second.start == max(second.ready, first.finish)  # the barrier
    assert second.wait == pytest.approx(max(0.0, first.finish - second.ready))
    assert clock.next_task == 5 and clock.batches == 2


def test_explicit_bandwidth_is_used_as_given(small: ServingModel) -> None:
    episode = Episode.draw(small, np.random.default_rng(4))
    w = episode.workload
    uniform = uniform_allocation(w.payload_bits[:4], 1e6)
    outcome, _ = commit_batch(small, episode, EpisodeClock(), 4, 1, bandwidth=uniform)
    expected = slot_length(w.payload_bits[:4], uniform, episode.channel[:4], "shannon")
    assert outcome.uplink_slot == pytest.approx(float(expected), rel=1e-12)
    closed, _ = commit_batch(small, episode, EpisodeClock(), 4, 1)
    assert closed.uplink_slot < outcome.uplink_slot
    np.testing.assert_allclose(closed.bandwidth, closed_form_bandwidth(small, episode, 0, 4))


def _run(model: ServingModel, episode: Episode, actions: list[tuple[int, int]]) -> list:
    clock, outcomes = EpisodeClock(), []
    for n, l in actions:
        n = min(n, episode.num_tasks - clock.next_task)
        if n == 0:
            break
        outcome, clock = commit_batch(model, episode, clock, n, l)
        outcomes.append(outcome)
    while clock.next_task < episode.num_tasks:
        outcome, clock = commit_batch(model, episode, clock, 1, 1)
        outcomes.append(outcome)
    return outcomes


_actions = st.lists(st.tuples(st.integers(1, 4), st.integers(0, 4)), min_size=1, max_size=8)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), actions=_actions, sampled=st.booleans())
def test_costs_add_up_to_the_objective(small: ServingModel, seed: int, actions: list, sampled: bool) -> None:
    acceptance = "sampled" if sampled else "expected"
    for objective in ("mean_latency", "makespan"):
        model = ServingModel.of(small.config.replace(objective=objective, acceptance=acceptance))
        episode = Episode.draw(model, np.random.default_rng(seed))
        outcomes = _run(model, episode, actions)
        completions = np.concatenate([o.completion_times for o in outcomes])
        assert completions.size == 8
        total = sum(o.cost for o in outcomes)
        if objective == "mean_latency":
            assert total == pytest.approx(completions.mean(), rel=1e-12)
        else:
            assert total == pytest.approx(completions.max(), rel=1e-12)
            assert total == pytest.approx(outcomes[-1].finish, rel=1e-12)
        for before, after in itertools.pairwise(outcomes):
            assert after.start >= before.finish  # batches never overlap on the nodes
            assert after.uplink_start == before.ready


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 4), l=st.integers(0, 4),
       shift=st.floats(0.0, 500.0), sampled=st.booleans())
def test_a_later_start_shifts_every_completion_equally(small: ServingModel, seed: int, n: int, l: int,
                                                       shift: float, sampled: bool) -> None:
    model = ServingModel.of(small.config.replace(acceptance="sampled" if sampled else "expected"))
    episode = Episode.draw(model, np.random.default_rng(seed))
    # The previous batch's service ends well after this batch's upload: the barrier sets the start.
    busy = EpisodeClock(next_task=2, uplink_end=0.0, inference_end=1e4, batches=1)
    later = EpisodeClock(next_task=2, uplink_end=0.0, inference_end=1e4 + shift, batches=1)
    a, _ = commit_batch(model, episode, busy, n, l)
    b, _ = commit_batch(model, episode, later, n, l)
    assert a.ready < 1e4  # (a deep fade could make a slot long, but not hours)
    assert a.start == 1e4 and b.start == 1e4 + shift  # exact: start = max(ready, F_{m-1}) selects F_{m-1}
    np.testing.assert_allclose(b.completion_times - a.completion_times, shift, rtol=0, atol=1e-9)
    assert b.finish - a.finish == pytest.approx(shift, abs=1e-9)
    assert b.cost - a.cost == pytest.approx(shift * n / 8, abs=1e-9)


def test_sampled_episodes_carry_acceptance_runs(small: ServingModel) -> None:
    expected = Episode.draw(small, np.random.default_rng(5))
    sampled_model = ServingModel.of(small.config.replace(acceptance="sampled"))
    sampled = Episode.draw(sampled_model, np.random.default_rng(5))
    assert expected.runs is None
    assert sampled.runs is not None and sampled.runs.shape == (8, small.config.workload.max_new_tokens)
    # alpha and the channels are the same draws in both modes (one code path: exact); only the acceptance differs
    np.testing.assert_array_equal(sampled.channel, expected.channel)
