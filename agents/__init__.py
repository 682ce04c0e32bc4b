"""Reference policies (the exact DP oracle, an MPC planner, baselines) and the evaluation harness.

Only numpy, scipy and gymnasium are needed; torch is imported only to load a Stable-Baselines3 model.
The repository's ``agents/`` folder installs under this name, ``sdedge_agents``.
"""

import sdedge_gym

if getattr(sdedge_gym, "__file__", None) is None:  # a folder without __init__.py shadows the real package
    raise ImportError(f"sdedge_gym resolves to {list(sdedge_gym.__path__)}, a folder without __init__.py (left "
                      "behind by an earlier install, e.g. compiled-cache files of an older sdedge-gym), which "
                      "Python imports as an empty namespace package that registers no ids; allowed: delete that "
                      "folder, then reinstall sdedge-gym")

from sdedge_agents.baselines import Autoregressive, BestConstant, FixedAction, MaxBatch, RandomPolicy
from sdedge_agents.oracle import DPOracle, Plan, UniformShares, optimal_plan, solve
from sdedge_agents.planner import MPCPlanner
from sdedge_agents.policy import Policy, Predictor

__all__ = [
    "Autoregressive",
    "BestConstant",
    "DPOracle",
    "FixedAction",
    "MPCPlanner",
    "MaxBatch",
    "Plan",
    "Policy",
    "Predictor",
    "RandomPolicy",
    "UniformShares",
    "optimal_plan",
    "solve",
]
