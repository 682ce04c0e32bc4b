"""``observe_queue=True``: the queue past the window, summarised as six observation features (the env card's
"Observation Space")."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sdedge_gym  # noqa: F401  (registers the ids)
from sdedge_gym.env import GLOBAL_FEATURES, QUEUE_FEATURES, TASK_FEATURES, EdgeSDEnv
from sdedge_gym.online_env import EdgeSDOnlineEnv

STOCHASTIC = {"acceptance": "sampled", "clairvoyant": False}  # the Paper-Stochastic id's overrides


def expected_summary(env: EdgeSDEnv) -> np.ndarray:
    """The six features straight from their definition: m / K and the means over the tasks past the window."""
    k, n_max = env.episode.num_tasks, env.scenario.max_batch
    rows = env._task_features[env.clock.next_task + n_max:k]  # the tasks past the window (uncommitted)
    means = rows[:, 1:].astype(np.float64).mean(axis=0) if len(rows) else np.zeros(len(TASK_FEATURES) - 1)
    return np.concatenate([[len(rows) / k], means])


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), sizes=st.lists(st.integers(1, 24), min_size=1, max_size=30),
       speculation=st.integers(0, 8))
def test_the_summary_is_the_mean_of_the_task_features_past_the_window(seed, sizes, speculation):
    env, plain = EdgeSDEnv("paper", observe_queue=True, **STOCHASTIC), EdgeSDEnv("paper", **STOCHASTIC)
    observation, _ = env.reset(seed=seed)
    expected, _ = plain.reset(seed=seed)
    window = plain.observation_space.shape[0]
    for size in sizes:
        assert observation.shape == (window + len(QUEUE_FEATURES),) and env.observation_space.contains(observation)
        assert np.array_equal(observation[:window], expected)  # the window block is the plain env's, bit for bit
        # The prefix sums and the direct mean add the same float32 values in a different order (float64 sums
        # of <= 100 values in [0, 1]): equal to well below float32's resolution, hence 1e-6.
        np.testing.assert_allclose(observation[window:], expected_summary(env), rtol=0, atol=1e-6)
        action = np.array([min(size, env.batch_limit()) - 1, speculation])
        observation, reward, done, _, _ = env.step(action)
        expected, expected_reward, *_ = plain.step(action)
        assert reward == expected_reward  # an observation option changes no reward
        if done:
            assert not observation[window:].any()  # nothing past the window, and the window is empty
            break


def test_hand_computed_summary_at_the_start_and_zero_once_the_window_holds_the_rest():
    env = EdgeSDEnv("small", observe_queue=True, num_tasks=10, max_batch=4)
    observation, _ = env.reset(seed=3)
    q = len(GLOBAL_FEATURES) + len(TASK_FEATURES) * 4
    table = env._task_features
    assert observation[q] == np.float32(6 / 10)  # tasks 4..9 are past the window of 4
    for j, column in enumerate(range(1, len(TASK_FEATURES))):
        assert observation[q + 1 + j] == pytest.approx(float(np.mean(table[4:10, column], dtype=np.float64)), abs=1e-7)
    observation, *_ = env.step(np.array([3, 2]))  # 4 tasks committed: tasks 8, 9 are past the window
    assert observation[q] == np.float32(2 / 10)
    assert observation[q + 5] == pytest.approx((float(table[8, 5]) + float(table[9, 5])) / 2, abs=1e-7)
    observation, *_ = env.step(np.array([1, 2]))  # 6 committed: the window (tasks 6..9) holds the rest
    assert not observation[q:].any()


def test_both_options_append_in_order_reference_then_queue():
    both = EdgeSDEnv("paper", observe_reference=True, observe_queue=True)
    reference = EdgeSDEnv("paper", observe_reference=True)
    queue = EdgeSDEnv("paper", observe_queue=True)
    a, _ = both.reset(seed=8)
    b, _ = reference.reset(seed=8)
    c, _ = queue.reset(seed=8)
    window = EdgeSDEnv.observation_size(both.scenario.max_batch)
    assert np.array_equal(a[:window + 1], b) and np.array_equal(a[window + 1:], c[window:])


def test_bad_values_and_the_online_env_are_refused():
    with pytest.raises(ValueError, match=r"observe_queue = 'yes' is invalid; allowed: True \| False"):
        EdgeSDEnv("small", observe_queue="yes")
    with pytest.raises(TypeError, match="unexpected keyword argument 'observe_queue'"):
        EdgeSDOnlineEnv("small", observe_queue=True)


def test_the_sequence_policy_reads_the_summary_as_global_features():
    pytest.importorskip("sb3_contrib", reason="needs the train extra (sb3-contrib, torch)")
    import torch
    from sb3_contrib import MaskablePPO

    from sdedge_agents.slot_policy import MaskableSlotPolicy

    env = gym.make("sdedge/EdgeSD-Small-v0", observe_queue=True)
    model = MaskablePPO(MaskableSlotPolicy, env, n_steps=16, batch_size=16, seed=0, device="cpu")
    extractor = model.policy.mlp_extractor
    width = len(TASK_FEATURES) + len(GLOBAL_FEATURES) + len(QUEUE_FEATURES)
    assert extractor.encoder[0].in_features == width
    observation, _ = env.reset(seed=0)
    features = torch.as_tensor(observation[None])
    moved = features.clone()
    moved[0, extractor.window_end] += 0.5  # queue_beyond: the actor's batch-size logits must move with it
    with torch.no_grad():
        assert not torch.equal(extractor.forward_actor(features), extractor.forward_actor(moved))
    with pytest.raises(ValueError, match="the slot policies need the offline layout"):
        MaskablePPO(MaskableSlotPolicy, EdgeSDOnlineEnv("paper"), device="cpu")
