"""sdedge-gym: LLM serving at the network edge with speculative decoding, as a Gymnasium benchmark.

The core (config, catalogue, roofline, speculation, uplink, service, workload, episode, segments,
reference, scenarios, and the compiled kernel layer ``kernels``) is numpy/scipy/numba and knows nothing of
Gymnasium (``actions``, the action-mode objects with their spaces, belongs to the Gymnasium layer): the
numpy modules specify the model, ``kernels`` runs it in the hot path. Importing the package registers the
environment ids (``ENV_IDS``, namespace ``sdedge``) with Gymnasium.
"""

from sdedge_gym.config import (
    ArrivalConfig,
    FronthaulConfig,
    GpuSpec,
    ModelSpec,
    NodeConfig,
    ScenarioConfig,
    UplinkConfig,
    WorkloadConfig,
)
from sdedge_gym.env import EdgeSDEnv
from sdedge_gym.episode import BatchOutcome, Episode, EpisodeClock, EpisodeClocks, ServingModel, commit_batch
from sdedge_gym.online_env import EdgeSDOnlineEnv
from sdedge_gym.registration import (
    ENV_IDS,
    MULTICELL_ENV_IDS,
    OFFLINE_ENV_IDS,
    ONLINE_ENV_IDS,
    SINGLE_CELL_ENV_IDS,
    register_envs,
)
from sdedge_gym.scenarios import PRESETS, make_scenario

register_envs()

__version__ = "0.2.0"

__all__ = [
    "ENV_IDS",
    "MULTICELL_ENV_IDS",
    "OFFLINE_ENV_IDS",
    "ONLINE_ENV_IDS",
    "PRESETS",
    "SINGLE_CELL_ENV_IDS",
    "ArrivalConfig",
    "BatchOutcome",
    "EdgeSDEnv",
    "EdgeSDOnlineEnv",
    "Episode",
    "EpisodeClock",
    "EpisodeClocks",
    "FronthaulConfig",
    "GpuSpec",
    "ModelSpec",
    "NodeConfig",
    "ScenarioConfig",
    "ServingModel",
    "UplinkConfig",
    "WorkloadConfig",
    "__version__",
    "commit_batch",
    "make_scenario",
]
