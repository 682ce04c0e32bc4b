"""The policy interface every reference policy implements: SB3's ``predict``.

A reference policy is bound to one env (a single ``EdgeSDEnv``, possibly wrapped) and may read its
``unwrapped`` state: the oracle and planners are privileged by design (they are the yardsticks an agent is
measured against), the baselines only read what a deployed controller would know (the queue left, the
batch limit). ``predict`` has Stable-Baselines3's signature, so :mod:`sdedge_agents.evaluate` runs reference
policies and trained SB3 models through the same loop.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from sdedge_gym.env import EdgeSDEnv
from sdedge_gym.online_env import EdgeSDOnlineEnv


@runtime_checkable
class Predictor(Protocol):
    """Anything with SB3's ``predict`` (reference policies, ``stable_baselines3`` models)."""

    def predict(self, observation: Any, state: Any = None, episode_start: Any = None,
                deterministic: bool = True) -> tuple[Any, Any]: ...


class Policy:
    """Base of the reference policies: ``predict`` calls :meth:`act` with the current observation.

    A policy reads the model of one env family: ``env_class`` (the offline :class:`EdgeSDEnv` here, the online
    :class:`EdgeSDOnlineEnv` for :mod:`sdedge_agents.online`). Bound to the other family it would play
    actions computed for a different model (the offline DP knows no arrival times), so the constructor
    refuses it with a TypeError naming ``counterpart``, the class to use there.
    """

    name = "policy"
    env_class: ClassVar[type] = EdgeSDEnv
    counterpart: ClassVar[str] = "sdedge_agents.online.OnlineOracle"  # the same role on the other family

    def __init__(self, env) -> None:
        self.env = env
        self.unwrapped = env.unwrapped
        # EdgeSDOnlineEnv derives from EdgeSDEnv: the family is "online or not", not isinstance alone.
        online = isinstance(self.unwrapped, EdgeSDOnlineEnv)
        if not isinstance(self.unwrapped, EdgeSDEnv) or online != (self.env_class is EdgeSDOnlineEnv):
            family = "online (sdedge/EdgeSD-Online-*)" if self.env_class is EdgeSDOnlineEnv else "offline"
            raise TypeError(f"{type(self).__name__} is a policy of the {family} ids ({self.env_class.__name__}); "
                            f"the env given is {type(self.unwrapped).__name__}: use {self.counterpart} on it")
        self.action_mode: str = self.unwrapped.action_mode
        self.actions = self.unwrapped.actions  # the env's ActionMode: its space's encoding

    def encode(self, batch_size: int, speculation_length: int, shares: np.ndarray | None = None) -> Any:
        """The env's action that commits (n, l) with ``shares`` (None: the closed form in the discrete mode,
        uniform in hybrid/dict); on an online env, a dispatch."""
        wait = False if self.unwrapped.has_wait else None
        return self.actions.encode(batch_size, speculation_length, shares, wait=wait)

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
