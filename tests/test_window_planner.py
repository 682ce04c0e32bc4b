"""The window planner's tables: one period of its repeating queue, tiled, is the whole queue's tables."""

from __future__ import annotations

import numpy as np
import pytest

from sdedge_agents.planner import window_episode, window_tables
from sdedge_gym import Episode, ServingModel, make_scenario
from sdedge_gym.segments import segment_tables


@pytest.mark.parametrize("preset", ["small", "paper"])
@pytest.mark.parametrize("exact", [False, True])
def test_window_tables_equal_the_whole_queues_tables(preset: str, exact: bool) -> None:
    model = ServingModel.of(make_scenario(preset, num_tasks=60 if preset == "paper" else 12))
    episode = Episode.draw(model, np.random.default_rng(3))
    window = model.config.max_batch
    for next_task in sorted({0, 1, 7, episode.num_tasks - window - 1, episode.num_tasks - window,
                             episode.num_tasks - 3, episode.num_tasks - 1}):
        got = window_tables(model, episode, next_task, window, exact)
        want = segment_tables(model, window_episode(episode, next_task, window, exact))
        for name in ("uplink_slot", "duration", "completion_sum"):  # the same batches: the same numbers
            np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=f"{name} at {next_task}")
        assert got.allocation == want.allocation


def test_a_promised_period_builds_the_same_tables_and_is_checked() -> None:
    """``segment_tables(period=p)`` reuses the windows of a queue that repeats every p tasks: the same numbers
    to the bit (the same pieces, pipelined by the same operations); a queue that does not repeat is refused."""
    model = ServingModel.of(make_scenario("paper", num_tasks=60))
    episode = Episode.draw(model, np.random.default_rng(5))
    repeating = window_episode(episode, 3, 7, exact=True)  # tasks 3..9, then again
    for rows in (7, None):
        got = segment_tables(model, repeating, first_tasks=rows, period=7)
        want = segment_tables(model, repeating, first_tasks=rows)
        for name in ("uplink_slot", "duration", "completion_sum"):
            np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
    with pytest.raises(ValueError, match="do not repeat"):
        segment_tables(model, repeating, period=6)
    with pytest.raises(ValueError, match="do not repeat"):
        segment_tables(model, episode, first_tasks=7, period=7)
    for bad in (0, 61, 2.0):
        with pytest.raises(ValueError, match=r"period = .* is invalid; allowed: an integer in \[1, 57\]"):
            segment_tables(model, repeating, period=bad)
