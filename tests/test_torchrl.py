"""TorchRL: the ids as TorchRL's docs tell a user to load them (``GymEnv(id)``), masks through ``ActionMask``,
and the native vector env through ``GymWrapper`` with ``autoreset_mode="SameStep"``.

Skipped when torchrl is not installed (the ``torchrl`` extra).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="TorchRL needs torch (the torchrl extra)")
pytest.importorskip("torchrl", reason="torchrl is not installed (pip install -e '.[torchrl]')")

from torchrl.data import Binary, Unbounded  # noqa: E402
from torchrl.envs import ActionMask, GymEnv, GymWrapper, TransformedEnv  # noqa: E402
from torchrl.envs.libs.gym import default_info_dict_reader  # noqa: E402
from torchrl.envs.utils import check_env_specs  # noqa: E402

import sdedge_gym  # noqa: E402 (registers the ids; used for ENV_IDS)


@pytest.mark.parametrize("env_id", ["sdedge/EdgeSD-Small-v0", "sdedge/EdgeSD-Small-Hybrid-v0",
                                    "sdedge/EdgeSD-Small-Dict-v0", "sdedge/EdgeSD-Small-Dict-Stochastic-v0"])
def test_gym_env_by_id_passes_check_env_specs_and_rolls_out(env_id: str) -> None:
    # GymEnv calls gym.make(id, frameskip=1) first and retries without it only on Python's TypeError
    # "unexpected keyword argument 'frameskip'": the env's TypeError for unknown keywords makes this work.
    env = GymEnv(env_id)
    check_env_specs(env, seed=0)
    rollout = env.rollout(8)  # random actions from the action spec; K = 8 tasks end within 8 steps
    assert rollout["next", "done"][-1].item()
    # The undiscounted return is minus the mean latency: strictly negative, finite.
    total = rollout["next", "reward"].sum().item()
    assert np.isfinite(total) and total < 0


@pytest.mark.parametrize("env_id", sdedge_gym.ENV_IDS)
def test_every_id_loads_by_name_and_passes_check_env_specs(env_id: str) -> None:
    check_env_specs(GymEnv(env_id), seed=0)


def test_dict_actions_sampled_by_torchrl_are_in_the_env_space() -> None:
    # TorchRL samples Discrete entries from 0: the dict mode's batch_size_minus_one is 0-based for that.
    env = GymEnv("sdedge/EdgeSD-Small-Dict-v0")
    spec = env.action_spec
    assert spec["batch_size_minus_one"].space.n == 4 and spec["speculation_length"].space.n == 5
    for _ in range(50):
        action = spec.rand()
        assert 0 <= action["batch_size_minus_one"].argmax().item() <= 3


@pytest.mark.parametrize("categorical", [False, True])
def test_action_mask_transform_keeps_every_sampled_batch_valid(categorical: bool) -> None:
    # num_tasks = 7 with n_max = 4: the last batch is limited to 3 tasks or fewer, so masks do bind;
    # the terminal mask (n = 1 marked valid) is sampled from too, without an invalid-distribution error.
    env = GymEnv("sdedge/EdgeSD-Small-v0", num_tasks=7, categorical_action_encoding=categorical)
    width = 4 + 5  # MaskablePPO's layout: n = 1..4, then l = 0..4; TorchRL's MultiOneHot layout too
    env.set_info_dict_reader(default_info_dict_reader(
        ["action_mask", "action_clipped"],
        spec=[Binary(n=width, shape=(width,), dtype=torch.bool), Unbounded(shape=(), dtype=torch.bool)]))
    env = TransformedEnv(env, ActionMask())
    check_env_specs(env, seed=0)
    env.set_seed(0)
    for _ in range(10):
        rollout = env.rollout(20, break_when_any_done=False)
        assert rollout["action_mask"][:, :4].any(dim=-1).all()  # every mask keeps a valid batch size
        assert not rollout["next", "action_clipped"].any()  # the masked sampler never asks for too many
        action = rollout["action"]
        batch_index = action[:, 0] if categorical else action[:, :4].argmax(-1)
        allowed = rollout["action_mask"][:, :4].gather(-1, batch_index[:, None]).squeeze(-1)
        assert allowed.all()


def test_native_vector_env_through_gym_wrapper_with_same_step_autoreset() -> None:
    venv = gym.make_vec("sdedge/EdgeSD-Small-v0", num_envs=3, vectorization_mode="vector_entry_point",
                        autoreset_mode="SameStep")
    env = GymWrapper(venv)
    assert tuple(env.batch_size) == (3,)
    check_env_specs(env, seed=0)
    rollout = env.rollout(20, break_when_any_done=False)  # K = 8: every env finishes twice and resets
    assert tuple(rollout.batch_size) == (3, 20)  # (envs, time)
    assert rollout["next", "done"].squeeze(-1).sum(-1).min().item() >= 2
    assert (rollout["next", "reward"] < 0).all()


def test_native_vector_env_with_next_step_autoreset_is_refused_by_torchrl() -> None:
    # The documented limitation: TorchRL accepts only SAME_STEP (or disabled) autoreset.
    venv = gym.make_vec("sdedge/EdgeSD-Small-v0", num_envs=2, vectorization_mode="vector_entry_point")
    with pytest.raises(RuntimeError, match="SAME_STEP"):
        GymWrapper(venv)
