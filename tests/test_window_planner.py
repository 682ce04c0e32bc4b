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
