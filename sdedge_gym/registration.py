"""The registered ids (namespace ``sdedge``): one table, one function.

* ``sdedge/EdgeSD-v0`` — the paper preset, discrete actions, expected acceptance, clairvoyant: the
  deterministic default, where the oracle's optimum is exact;
* ``sdedge/EdgeSD-{Small,Paper,Large,Uplink}[-Hybrid|-Dict]-v0`` — every preset in every action mode;
* ``sdedge/EdgeSD-{Small,Paper}[-Hybrid|-Dict]-Stochastic-v0`` — sampled acceptance and a
  non-clairvoyant observation (length hints, noisy acceptance estimates).

Keyword arguments of ``gymnasium.make`` override the table's (``num_tasks``, ``max_batch``,
``max_speculation``, ``action_mode``, ``acceptance``, ``clairvoyant``, ``objective``, ``config=...``).
No TimeLimit: an episode ends by itself within K steps.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym

from sdedge_gym.actions import ACTION_MODES

ENTRY_POINT = "sdedge_gym.env:EdgeSDEnv"
# The native vector env (gymnasium.make_vec(..., vectorization_mode="vector_entry_point")) plugs in here.
VECTOR_ENTRY_POINT: str | None = "sdedge_gym.vector_env:EdgeSDVectorEnv"

_MODE_SUFFIX = {"discrete": "", "hybrid": "-Hybrid", "dict": "-Dict"}
_STOCHASTIC = {"acceptance": "sampled", "clairvoyant": False}


def _env_table() -> dict[str, dict[str, Any]]:
    table: dict[str, dict[str, Any]] = {"sdedge/EdgeSD-v0": {"scenario": "paper", "action_mode": "discrete"}}
    for preset in ("small", "paper", "large", "uplink"):
        for mode in ACTION_MODES:
            table[f"sdedge/EdgeSD-{preset.title()}{_MODE_SUFFIX[mode]}-v0"] = {"scenario": preset,
                                                                                 "action_mode": mode}
    for preset in ("small", "paper"):
        for mode in ACTION_MODES:
            table[f"sdedge/EdgeSD-{preset.title()}{_MODE_SUFFIX[mode]}-Stochastic-v0"] = {
                "scenario": preset, "action_mode": mode, **_STOCHASTIC}
    return table


ENV_TABLE: dict[str, dict[str, Any]] = _env_table()
ENV_IDS: tuple[str, ...] = tuple(ENV_TABLE)


def env_creator(env_config: Mapping[str, Any]) -> gym.Env:
    """``gymnasium.make(env_config["env_id"], **env_config.get("env_kwargs", {}))``, for libraries that take an
    env creator (RLlib's ``register_env``).

    A function of the package, so that remote workers unpickle it by importing sdedge_gym, which registers
    the ids in their process (a bare id string fails there: ``Namespace sdedge not found``).
    """
    unknown = sorted(set(env_config) - {"env_id", "env_kwargs"})
    if "env_id" not in env_config or unknown:
        raise ValueError(f"env_config keys {sorted(env_config)} are invalid; allowed: 'env_id' (required), "
                         "'env_kwargs' (a dict for gymnasium.make)")
    return gym.make(env_config["env_id"], **dict(env_config.get("env_kwargs", {})))


def register_envs() -> None:
    """Register every id of ENV_TABLE; ids already registered are left alone (idempotent)."""
    for env_id, kwargs in ENV_TABLE.items():
        if env_id in gym.registry:
            continue
        gym.register(id=env_id, entry_point=ENTRY_POINT, vector_entry_point=VECTOR_ENTRY_POINT,
                     kwargs=dict(kwargs), max_episode_steps=None)
