"""The policy interface every reference policy implements: SB3's ``predict``.

A reference policy is bound to one env (a single ``EdgeSDEnv``, possibly wrapped) and may read its
``unwrapped`` state: the oracle and planners are privileged by design (they are the yardsticks an agent is
measured against), the baselines only read what a deployed controller would know (the queue left, the
batch limit). ``predict`` has Stable-Baselines3's signature, so :mod:`sdedge_agents.evaluate` runs reference
policies and trained SB3 models through the same loop.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Predictor(Protocol):
    """Anything with SB3's ``predict`` (reference policies, ``stable_baselines3`` models)."""

    def predict(self, observation: Any, state: Any = None, episode_start: Any = None,
                deterministic: bool = True) -> tuple[Any, Any]: ...


class Policy:
    """Base of the reference policies: ``predict`` calls :meth:`act` with the current observation."""

    name = "policy"

    def __init__(self, env) -> None:
        self.env = env
        self.unwrapped = env.unwrapped
        self.action_mode: str = self.unwrapped.action_mode

    def predict(self, observation: Any, state: Any = None, episode_start: Any = None,
                deterministic: bool = True) -> tuple[Any, Any]:
        """The action for the env's current state (``state`` is passed through; no recurrent state)."""
        return self.act(observation), state

    def act(self, observation: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement act(observation)")

    def batch_limit(self) -> int:
        """Largest valid batch size now (the env's mask)."""
        return int(self.unwrapped.batch_limit())

    @property
    def max_batch(self) -> int:
        return int(self.unwrapped.scenario.max_batch)

    @property
    def max_speculation(self) -> int:
        return int(self.unwrapped.scenario.max_speculation)


def as_int_action(action: Any) -> Any:
    """Plain ints for dict actions (numpy scalars print badly in logs); arrays pass through."""
    if isinstance(action, dict):
        return {k: (int(v) if np.ndim(v) == 0 else v) for k, v in action.items()}
    return action
