"""How much of an episode's return is the episode and how much the policy, under each reward form.

    python scripts/reward_variance.py --policies best-constant,planner,window-planner,random \\
        --episodes 100 --seed 900000

Each policy plays the same episodes of ``sdedge/EdgeSD-v0`` with ``reward="reference"``; per episode it records
the default return (minus the mean latency) and the shaped return (V(s_0) minus the mean latency, the
episode's improvement over the best constant action). Printed per policy: the standard deviation of both
over the episodes, and the spread of the difference between this policy and the best constant action per
episode (what a learner has to detect), and what the policy does: its mean batch size and speculation
length and the share of its steps that take the best constant action (an episode's last batch is clipped to
the tasks left, so the constant policy itself is below 100 %). The default return's spread is mostly the
episode's difficulty, which every policy shares; the shaped return removes it.
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np

import sdedge_gym  # noqa: F401  (registers the ids)
from sdedge_agents.evaluate import make_policy

ENV_ID = "sdedge/EdgeSD-v0"


def returns(spec: str, seeds: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(default returns, shaped returns, (n, l) of every step) of ``spec`` on the episodes ``seeds``."""
    env = gym.make(ENV_ID, reward="reference")
    policy = make_policy(spec, env)
    default, shaped, actions = [], [], []
    for seed in seeds:
        observation, _ = env.reset(seed=seed)
        total = unshaped = 0.0
        done = False
        while not done:
            action, _ = policy.predict(observation, deterministic=True)
            observation, reward, done, _, info = env.step(action)
            total += reward
            unshaped += info["latency_reward"]
            actions.append((int(info["batch_size"]), int(info["speculation_length"])))
        default.append(unshaped)
        shaped.append(total)
    env.close()
    return np.array(default), np.array(shaped), np.array(actions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policies", default="best-constant,planner,window-planner,random")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=900_000)
    args = parser.parse_args()
    seeds = list(range(args.seed, args.seed + args.episodes))
    constant, _, _ = returns("best-constant", seeds)
    reference = gym.make(ENV_ID, reward="reference").unwrapped.reference_action
    print(f"{args.episodes} episodes from seed {args.seed} of {ENV_ID}; returns in s\n")
    print("| policy | mean default return | std default return | std shaped return | "
          f"mean / std of (return - best constant's) | mean n | mean l | steps at {reference} |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for spec in args.policies.split(","):
        default, shaped, actions = returns(spec, seeds)
        gain = default - constant
        at_reference = np.mean((actions[:, 0] == reference[0]) & (actions[:, 1] == reference[1]))
        print(f"| {spec} | {default.mean():.2f} | {default.std(ddof=1):.2f} | {shaped.std(ddof=1):.2f} | "
              f"{gain.mean():+.2f} / {gain.std(ddof=1):.2f} | {actions[:, 0].mean():.1f} | "
              f"{actions[:, 1].mean():.2f} | {100 * at_reference:.0f} % |")


if __name__ == "__main__":
    main()
