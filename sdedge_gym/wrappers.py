"""Wrappers that fit the ids to RL code that expects other spaces (Gymnasium only; no torch).

``FlattenBatchSpeculation`` turns the discrete mode's ``MultiDiscrete([n_choices, l_max + 1])`` into one
``Discrete(n_choices * (l_max + 1))``, the space that DQN and single-file PPO implementations (CleanRL's
``ppo.py`` asserts ``Discrete``) take, and carries the action mask along in the flat layout::

    import gymnasium as gym
    from sdedge_gym.wrappers import FlattenBatchSpeculation

    env = FlattenBatchSpeculation(gym.make("sdedge/EdgeSD-Small-v0"))   # Discrete(4 * 5)
    obs, info = env.reset(seed=0)
    info["action_mask"]      # (20,) bool, = env.action_masks(): flat action a is valid iff its n and l are

On the online ids (``n_choices = n_max + 1``, the last batch-size choice waits) the same formula holds, so
the waits are the last ``l_max + 1`` flat actions.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class FlattenBatchSpeculation(gym.ActionWrapper, gym.utils.RecordConstructorArgs):
    """``Discrete(n_choices * (l_max + 1))`` over ``MultiDiscrete([n_choices, l_max + 1])``.

    Flat action ``a = batch_index * (l_max + 1) + l``, so ``[batch_index, l] = divmod(a, l_max + 1)`` (on the
    offline ids ``batch_index = n - 1``). The env still clips an invalid batch size to the largest valid one,
    as it does unwrapped. The mask (``action_masks()`` and ``info["action_mask"]``) is the flat one: ``a`` is
    valid iff both its batch index and its speculation length are (``np.outer`` of the env's two masks).
    """

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)  # so that env.spec (and gymnasium.make(spec)) recreates it
        gym.ActionWrapper.__init__(self, env)
        space = env.action_space
        if not (isinstance(space, spaces.MultiDiscrete) and space.shape == (2,)):
            raise ValueError(f"FlattenBatchSpeculation needs action_mode 'discrete' (MultiDiscrete([n_max, "
                             f"l_max + 1])); got action space {space} (action_mode "
                             f"{getattr(env.unwrapped, 'action_mode', '?')!r})")
        self.batch_choices, self.speculation_choices = (int(v) for v in space.nvec)
        self.action_space = spaces.Discrete(self.batch_choices * self.speculation_choices)

    def action(self, action: Any) -> np.ndarray:
        """Flat index -> ``[batch_index, l]``."""
        index = int(action)
        if not 0 <= index < self.action_space.n:
            raise ValueError(f"action = {action!r} is invalid; allowed: an integer in [0, {self.action_space.n - 1}]")
        return np.array(divmod(index, self.speculation_choices), dtype=np.int64)

    def reverse_action(self, action: Any) -> int:
        """``[batch_index, l]`` -> flat index."""
        batch_index, speculation_length = (int(v) for v in np.asarray(action).reshape(2))
        return batch_index * self.speculation_choices + speculation_length

    def flatten_mask(self, mask: np.ndarray) -> np.ndarray:
        """The env's mask (``[batch choices] + [l choices]``, MaskablePPO's layout) in the flat layout."""
        mask = np.asarray(mask, dtype=bool)
        return np.outer(mask[: self.batch_choices], mask[self.batch_choices:]).ravel()

    def action_masks(self) -> np.ndarray:
        """Valid flat actions now (what MaskablePPO and masked samplers ask for)."""
        return self.flatten_mask(self.env.get_wrapper_attr("action_masks")())

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        observation, info = self.env.reset(**kwargs)
        return observation, self._flat_info(info)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        observation, reward, terminated, truncated, info = self.env.step(self.action(action))
        return observation, reward, terminated, truncated, self._flat_info(info)

    def _flat_info(self, info: dict[str, Any]) -> dict[str, Any]:
        if "action_mask" in info:
            info = {**info, "action_mask": self.flatten_mask(info["action_mask"])}
        return info
