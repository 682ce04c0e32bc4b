"""Reference policies (the exact DP oracle, an MPC planner, baselines) and the evaluation harness.

Only numpy, scipy and gymnasium are needed; torch is imported only to load a Stable-Baselines3 model.
"""

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
