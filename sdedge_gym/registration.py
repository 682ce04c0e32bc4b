"""The registered ids (namespace ``sdedge``): one table, one function.

* ``sdedge/EdgeSD-v0`` — the paper preset, discrete actions, expected acceptance, clairvoyant: the
  deterministic default, where the oracle's optimum is exact;
* ``sdedge/EdgeSD-{Small,Paper,Large,Uplink}[-Hybrid|-Dict]-v0`` — every preset in every action mode;
* ``sdedge/EdgeSD-{Small,Paper}[-Hybrid|-Dict]-Stochastic-v0`` — sampled acceptance and a
  non-clairvoyant observation (length hints, noisy acceptance estimates);
* ``sdedge/EdgeSD-Online[-Hybrid|-Dict][-Stochastic]-v0`` — online serving (``EdgeSDOnlineEnv``): the paper
  preset with Poisson arrivals at ONLINE_ARRIVAL_RATE, 70 % of the max-batch capacity;
* ``sdedge/EdgeSD-Online-Azure{Conv,Code}[-Hybrid|-Dict]-v0`` — online serving driven by the shipped Azure
  LLM inference traces: each episode replays K consecutive requests from a seeded offset in the trace's
  training part (the first 70 %), times rescaled to TRACE_LOAD x the capacity on the trace's lengths, on the
  "paper-2k" preset (the models' 2048-token context). Score held out with
  ``config={"arrivals": {"trace_window": "test"}}``;
* ``sdedge/EdgeSD-MultiCell-{TwoIdentical,TwoHeterogeneous,FourHeterogeneous}[-Hybrid|-Dict]-v0`` — the
  centralised twin of the multi-cell env (``MultiCellTwinEnv``, sdedge_gym/multicell.py): several small cells,
  each on the "small" preset with its own SBS hardware and band, sharing one MBS; one agent, the joint action.
  Its PettingZoo form (one agent per cell) is ``sdedge_gym.multicell_pz.MultiCellParallelEnv`` (no id:
  PettingZoo has no registry).

``ENV_IDS`` lists every id; ``OFFLINE_ENV_IDS``, ``ONLINE_ENV_IDS`` and ``MULTICELL_ENV_IDS`` the three families.
``SINGLE_CELL_ENV_IDS`` (offline and online) are the ids that the single-cell tools (evaluate, train, imitate,
the oracle and the vector envs) take; ``ENV_TABLE`` holds their keyword arguments, ``MULTICELL_ENV_TABLE`` the
twin's.

Keyword arguments of ``gymnasium.make`` override the table's (``num_tasks``, ``max_batch``,
``max_speculation``, ``action_mode``, ``acceptance``, ``clairvoyant``, ``objective``, ``config=...``; for the
multi-cell ids ``action_mode``, ``num_tasks`` per cell or one per cell, ``base`` and the base preset's overrides).
No TimeLimit: an episode ends by itself within K steps.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym

from sdedge_gym.actions import ACTION_MODE_CLASSES
from sdedge_gym.scenarios import PRESETS

ENTRY_POINT = "sdedge_gym.registration:make_env"
ONLINE_ENTRY_POINT = "sdedge_gym.registration:make_online_env"
MULTICELL_ENTRY_POINT = "sdedge_gym.multicell:MultiCellTwinEnv"
# The multi-cell presets with ids: preset name (sdedge_gym.multicell.MULTICELL_PRESETS) -> id infix.
MULTICELL_IDS = {"two-identical": "TwoIdentical", "two-heterogeneous": "TwoHeterogeneous",
                 "four-heterogeneous": "FourHeterogeneous"}
# 0.7 x sdedge_gym.online_env.max_batch_capacity(paper preset) = 0.7 x 1.0813 requests/s, rounded; printed by
# `python -c "from sdedge_gym.online_env import max_batch_capacity as c; from sdedge_gym import make_scenario as m;
# print(c(m('paper')))"` and pinned by tests/test_online_env.py.
ONLINE_LOAD = 0.7
ONLINE_ARRIVAL_RATE = 0.757
# The trace ids: shipped trace name -> id infix; their load (arrival rate / capacity) and window.
TRACE_IDS = {"azure-conv": "AzureConv", "azure-code": "AzureCode"}
TRACE_LOAD = 0.7
TRACE_PRESET = "paper-2k"
# The native vector envs of the offline and the online ids (gymnasium.make_vec(..., vectorization_mode=
# "vector_entry_point"), the default of make_vec for an id that has one).
VECTOR_ENTRY_POINT = "sdedge_gym.vector_env:EdgeSDVectorEnv"
ONLINE_VECTOR_ENTRY_POINT = "sdedge_gym.online_vector_env:EdgeSDOnlineVectorEnv"
# The presets that also get stochastic ids (sampled acceptance, hints): the two sizes agents train on.
STOCHASTIC_PRESETS = ("small", "paper")
_STOCHASTIC = {"acceptance": "sampled", "clairvoyant": False}


def _env_table() -> dict[str, dict[str, Any]]:
    table: dict[str, dict[str, Any]] = {"sdedge/EdgeSD-v0": {"scenario": "paper", "action_mode": "discrete"}}
    for preset in PRESETS:
        for mode, actions in ACTION_MODE_CLASSES.items():
            table[f"sdedge/EdgeSD-{preset.title()}{actions.id_suffix}-v0"] = {"scenario": preset, "action_mode": mode}
    for preset in STOCHASTIC_PRESETS:
        for mode, actions in ACTION_MODE_CLASSES.items():
            table[f"sdedge/EdgeSD-{preset.title()}{actions.id_suffix}-Stochastic-v0"] = {
                "scenario": preset, "action_mode": mode, **_STOCHASTIC}
    return table


def _online_env_table() -> dict[str, dict[str, Any]]:
    arrivals = {"process": "poisson", "arrival_rate": ONLINE_ARRIVAL_RATE}
    table: dict[str, dict[str, Any]] = {}
    for stochastic in (False, True):
        for mode, actions in ACTION_MODE_CLASSES.items():
            suffix = actions.id_suffix + ("-Stochastic" if stochastic else "")
            table[f"sdedge/EdgeSD-Online{suffix}-v0"] = {"scenario": "paper", "action_mode": mode,
                                                          "arrivals": dict(arrivals),
                                                          **(_STOCHASTIC if stochastic else {})}
    for trace, infix in TRACE_IDS.items():
        for mode, actions in ACTION_MODE_CLASSES.items():
            table[f"sdedge/EdgeSD-Online-{infix}{actions.id_suffix}-v0"] = {
                "scenario": TRACE_PRESET, "action_mode": mode,
                "arrivals": {"process": "trace", "trace": trace, "trace_window": "train", "load": TRACE_LOAD}}
    return table


def _multicell_env_table() -> dict[str, dict[str, Any]]:
    return {f"sdedge/EdgeSD-MultiCell-{infix}{actions.id_suffix}-v0": {"config": preset, "action_mode": mode}
            for preset, infix in MULTICELL_IDS.items() for mode, actions in ACTION_MODE_CLASSES.items()}


OFFLINE_ENV_TABLE: dict[str, dict[str, Any]] = _env_table()
ONLINE_ENV_TABLE: dict[str, dict[str, Any]] = _online_env_table()
ENV_TABLE: dict[str, dict[str, Any]] = {**OFFLINE_ENV_TABLE, **ONLINE_ENV_TABLE}  # the single-cell ids
MULTICELL_ENV_TABLE: dict[str, dict[str, Any]] = _multicell_env_table()
OFFLINE_ENV_IDS: tuple[str, ...] = tuple(OFFLINE_ENV_TABLE)
ONLINE_ENV_IDS: tuple[str, ...] = tuple(ONLINE_ENV_TABLE)
SINGLE_CELL_ENV_IDS: tuple[str, ...] = tuple(ENV_TABLE)
MULTICELL_ENV_IDS: tuple[str, ...] = tuple(MULTICELL_ENV_TABLE)
ENV_IDS: tuple[str, ...] = SINGLE_CELL_ENV_IDS + MULTICELL_ENV_IDS


def make_env(render_mode: str | None = None, **kwargs: Any) -> gym.Env:
    """The offline ids' entry point: :class:`~sdedge_gym.env.EdgeSDEnv`, which checks ``render_mode`` itself.

    Registered instead of the class because ``gymnasium.make`` reads an entry-point class's metadata and, for
    ``render_mode="human"`` (which this env has not), swaps in "rgb_array" under its HumanRendering wrapper:
    the user would then get pygame's DependencyNotInstalled instead of the env's list of allowed modes. A
    function has no metadata, so the mode reaches the env. ``"rgb_array_list"`` keeps Gymnasium's meaning
    (RenderCollection over "rgb_array").
    """
    from sdedge_gym.env import EdgeSDEnv  # the env module imports the package, which imports this

    return _make(EdgeSDEnv, render_mode, kwargs)


def make_online_env(render_mode: str | None = None, **kwargs: Any) -> gym.Env:
    """The online ids' entry point: :class:`~sdedge_gym.online_env.EdgeSDOnlineEnv` (as :func:`make_env`)."""
    from sdedge_gym.online_env import EdgeSDOnlineEnv

    return _make(EdgeSDOnlineEnv, render_mode, kwargs)


def _make(env_class: type, render_mode: str | None, kwargs: dict[str, Any]) -> gym.Env:
    from sdedge_gym.env import RENDER_MODES

    if isinstance(render_mode, str) and render_mode.endswith("_list") and render_mode[: -len("_list")] in RENDER_MODES:
        from gymnasium.wrappers import RenderCollection

        return RenderCollection(env_class(render_mode=render_mode[: -len("_list")], **kwargs))
    return env_class(render_mode=render_mode, **kwargs)


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
    """Register every id of ENV_IDS; ids already registered are left alone (idempotent)."""
    for env_id, kwargs in OFFLINE_ENV_TABLE.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=ENTRY_POINT, vector_entry_point=VECTOR_ENTRY_POINT,
                         kwargs=dict(kwargs), max_episode_steps=None)
    for env_id, kwargs in ONLINE_ENV_TABLE.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=ONLINE_ENTRY_POINT, vector_entry_point=ONLINE_VECTOR_ENTRY_POINT,
                         kwargs=dict(kwargs), max_episode_steps=None)
    for env_id, kwargs in MULTICELL_ENV_TABLE.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=MULTICELL_ENTRY_POINT, kwargs=dict(kwargs), max_episode_steps=None)
