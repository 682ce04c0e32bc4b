"""The return distribution of random actions on the hybrid ids, and the reference policies' returns there.

    python scripts/random_returns.py [--episodes 200] [--ids sdedge/EdgeSD-Small-Hybrid-v0,...]
        [--reference-episodes 20]

Random actions are what an off-policy learner's warm-up (SAC/TD3: uniform over the Box) and an on-policy
learner's initial Gaussian policy (PPO: N(0, 1) per entry, clipped to the Box by SB3) send first; a
parameterisation where they give absurd band splits wrecks value learning. For each id the script prints
the median, 5th percentile and worst episode return of both samplers over ``--episodes`` episodes (reset
seeds 0, 1, ...; the sampler's own stream seeded 0), beside the uniformly random valid discrete actions of
the id's discrete twin. With ``--reference-episodes`` > 0 it also prints the mean return of the oracle (the
closed-form shares encoded as hybrid logits) and of the uniform-shares plan on the hybrid id, on seeds
0 .. reference-episodes - 1: these must not change when the band parameterisation changes.
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np

import sdedge_gym  # noqa: F401  (registers the ids)
from sdedge_agents.baselines import RandomPolicy
from sdedge_agents.evaluate import run_episodes
from sdedge_agents.oracle import DPOracle, UniformShares

DEFAULT_IDS = ("sdedge/EdgeSD-Small-Hybrid-v0", "sdedge/EdgeSD-Paper-Hybrid-v0")


def sampled_returns(env_id: str, episodes: int, sampler: str) -> np.ndarray:
    """Episode returns of i.i.d. actions: ``box`` (uniform over the Box) or ``gaussian`` (clipped N(0, 1))."""
    env = gym.make(env_id)
    rng = np.random.default_rng(0)
    low, high = env.action_space.low, env.action_space.high
    returns = np.empty(episodes)
    for episode in range(episodes):
        env.reset(seed=episode)
        total, done = 0.0, False
        while not done:
            if sampler == "box":
                action = rng.uniform(low, high).astype(np.float32)
            else:
                action = np.clip(rng.standard_normal(low.shape), low, high).astype(np.float32)
            _, reward, terminated, truncated, _ = env.step(action)
            total += reward
            done = terminated or truncated
        returns[episode] = total
    env.close()
    return returns


def discrete_random_returns(env_id: str, episodes: int) -> np.ndarray:
    """Uniformly random valid actions on the discrete twin of ``env_id`` (the -Hybrid suffix dropped)."""
    env = gym.make(env_id.replace("-Hybrid", ""))
    return np.asarray(run_episodes(RandomPolicy(env), env, range(episodes)))


def reference_returns(env_id: str, episodes: int) -> dict[str, float]:
    out = {}
    for name, cls in (("oracle", DPOracle), ("uniform-shares", UniformShares)):
        env = gym.make(env_id)
        out[name] = float(np.mean(run_episodes(cls(env), env, range(episodes))))
        env.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--ids", default=",".join(DEFAULT_IDS))
    parser.add_argument("--reference-episodes", type=int, default=20)
    args = parser.parse_args()
    print("| id | actions | median return | 5th percentile | worst |")
    print("|---|---|---:|---:|---:|")
    ids = [i.strip() for i in args.ids.split(",") if i.strip()]
    for env_id in ids:
        rows = [("uniform over the Box", sampled_returns(env_id, args.episodes, "box")),
                ("clipped N(0, 1)", sampled_returns(env_id, args.episodes, "gaussian")),
                ("random valid, discrete twin", discrete_random_returns(env_id, args.episodes))]
        for label, returns in rows:
            print(f"| {env_id} | {label} | {np.median(returns):.2f} | {np.percentile(returns, 5):.2f} | "
                  f"{returns.min():.2f} |", flush=True)
    if args.reference_episodes > 0:
        print(f"\nmean return on seeds 0..{args.reference_episodes - 1}")
        print("| id | oracle | uniform-shares |")
        print("|---|---:|---:|")
        for env_id in ids:
            ref = reference_returns(env_id, args.reference_episodes)
            print(f"| {env_id} | {ref['oracle']:.6f} | {ref['uniform-shares']:.6f} |", flush=True)


if __name__ == "__main__":
    main()
