"""Gymnasium's own wrappers on the single env: the ones users reach for first."""

from __future__ import annotations

import importlib.util

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.wrappers import FlattenObservation, RecordEpisodeStatistics, RecordVideo, TimeLimit

import sdedge_gym  # noqa: F401 (registers the ids)
from sdedge_gym.actions import encode_action


def _run_episode(env, action, seed=0):
    env.reset(seed=seed)
    steps, total = 0, 0.0
    while True:
        _, reward, terminated, truncated, info = env.step(action)
        steps, total = steps + 1, total + reward
        if terminated or truncated:
            return steps, total, terminated, truncated, info


def test_flatten_observation_keeps_the_box_and_the_values() -> None:
    env = FlattenObservation(gym.make("sdedge/EdgeSD-Small-v0"))
    reference = gym.make("sdedge/EdgeSD-Small-v0")
    assert env.observation_space == reference.observation_space  # a flat Box already: flattening is identity
    obs, _ = env.reset(seed=3)
    want, _ = reference.reset(seed=3)
    np.testing.assert_array_equal(obs, want)  # the same float32 values, unchanged by the wrapper


def test_flatten_observation_and_flatten_space_of_the_dict_action() -> None:
    # Libraries without Dict action support flatten the action space; the env still decodes unflattened.
    env = gym.make("sdedge/EdgeSD-Small-Dict-v0")
    flat = gym.spaces.flatten_space(env.action_space)
    assert flat.shape == (4 + 4 + 5,)  # bandwidth (4), batch_size_minus_one one-hot (4), spec. length (5)
    action = encode_action("dict", 3, 2, 4, 4)
    back = gym.spaces.unflatten(env.action_space, gym.spaces.flatten(env.action_space, action))
    env.reset(seed=0)
    _, _, _, _, info = env.step(back)
    assert (info["batch_size"], info["speculation_length"]) == (3, 2)


@pytest.mark.parametrize("how", ["make", "wrapper"])
def test_time_limit_truncates_after_the_given_steps(how: str) -> None:
    # K = 8 tasks, one per step with n = 1: the episode would take 8 steps; the limit of 5 truncates it.
    env = (gym.make("sdedge/EdgeSD-Small-v0", max_episode_steps=5) if how == "make"
           else TimeLimit(gym.make("sdedge/EdgeSD-Small-v0"), max_episode_steps=5))
    steps, _, terminated, truncated, info = _run_episode(env, np.array([0, 2]))
    assert (steps, terminated, truncated) == (5, False, True)
    assert "mean_latency" not in info  # KPIs come with termination, not with a truncation
    # A limit the episode never reaches leaves it to terminate by itself.
    steps, _, terminated, truncated, _ = _run_episode(
        gym.make("sdedge/EdgeSD-Small-v0", max_episode_steps=50), np.array([0, 2]))
    assert (steps, terminated, truncated) == (8, True, False)


def test_record_episode_statistics_return_is_minus_the_mean_latency() -> None:
    env = RecordEpisodeStatistics(gym.make("sdedge/EdgeSD-Small-v0"))
    steps, total, _, _, info = _run_episode(env, np.array([1, 2]))
    assert info["episode"]["l"] == steps == 4  # n = 2 over K = 8 tasks
    # The wrapper sums the float rewards in the same order as the loop above: equal to rounding.
    assert info["episode"]["r"] == pytest.approx(total, rel=1e-12)
    assert info["episode"]["r"] == pytest.approx(-info["mean_latency"], rel=1e-9)


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None or importlib.util.find_spec("moviepy") is None,
                    reason="RecordVideo of the rgb_array Gantt frames needs matplotlib and moviepy (the render extra)")
def test_record_video_writes_an_mp4_of_the_gantt_frames(tmp_path) -> None:
    from moviepy import VideoFileClip

    folder = tmp_path / "videos"  # a folder of its own: RecordVideo warns when it overwrites one
    env = RecordVideo(gym.make("sdedge/EdgeSD-Small-v0", render_mode="rgb_array"), video_folder=str(folder),
                      episode_trigger=lambda episode: True, disable_logger=True)
    env.reset(seed=0)
    height, width, channels = env.render().shape
    terminated = False
    while not terminated:
        _, _, terminated, _, _ = env.step(np.array([1, 2]))
    env.close()
    videos = sorted(folder.glob("*.mp4"))
    assert [v.name for v in videos] == ["rl-video-episode-0.mp4"]
    with VideoFileClip(str(videos[0])) as clip:
        frames = np.stack(list(clip.iter_frames()))
    # One frame at reset and one per step (4 steps of n = 2 over K = 8), RGB, of the Gantt frame's size.
    assert frames.shape == (5, height, width, channels) and channels == 3
    assert frames.std() > 0  # a chart, not a blank frame
