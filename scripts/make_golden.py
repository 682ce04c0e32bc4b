"""Record golden trajectories and oracle optima as a test fixture (tests/data/golden.npz).

    python scripts/make_golden.py                 # everything
    python scripts/make_golden.py --only Hybrid   # only the ids containing "Hybrid"; the rest is kept

For every registered id, a few seeded episodes driven by seeded random actions: the actions, every
observation, reward and numeric info value. And the oracle's optimum on fixed seeds of a few presets.
tests/test_golden.py replays the actions and compares (relative tolerance 1e-9), so a rewrite of the
dynamics that changes any number beyond rounding is caught. Regenerate only when the model itself is
meant to change, and say so in the commit.

History: every entry was recorded from the code before the compiled kernel (commit 57661f3), except the
hybrid ids, re-recorded (``--only Hybrid``) after the hybrid band split got its floor share (an
intended change of the action mapping, not of the dynamics).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np

import sdedge_gym
from sdedge_agents.oracle import optimal_plan
from sdedge_gym.episode import Episode, ServingModel
from sdedge_gym.scenarios import make_scenario

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "golden.npz"
SEEDS = (0, 1)
INFO_KEYS = ("batch_size", "speculation_length", "bandwidth", "uplink_slot", "wait", "service_time",
             "completion_times", "tokens", "accepted_drafts", "action_clipped", "action_mask")
KPI_KEYS = ("mean_latency", "makespan", "throughput")
ORACLE_CASES = (("small", "expected", 0), ("small", "expected", 1), ("small", "sampled", 2),
                ("paper", "expected", 0), ("paper", "sampled", 1), ("uplink", "expected", 0))


def flatten_action(action) -> np.ndarray:
    if isinstance(action, dict):
        return np.concatenate([np.atleast_1d(np.asarray(action[k], dtype=float)) for k in sorted(action)])
    return np.asarray(action, dtype=float).ravel()


def record_episode(env_id: str, seed: int) -> dict[str, np.ndarray]:
    env = gym.make(env_id)
    env.action_space.seed(1000 + seed)
    obs, _ = env.reset(seed=seed)
    out: dict[str, list] = {"obs": [obs], "actions": [], "rewards": [], **{k: [] for k in INFO_KEYS}}
    done = False
    kpis = None
    while not done:
        action = env.action_space.sample()
        obs, reward, done, _, info = env.step(action)
        out["actions"].append(flatten_action(action))
        out["obs"].append(obs)
        out["rewards"].append(reward)
        for key in INFO_KEYS:
            out[key].append(np.asarray(info[key], dtype=float))
        if done:
            kpis = np.array([info[k] for k in KPI_KEYS])
    arrays = {k: np.asarray(v) for k, v in out.items()}
    arrays["kpis"] = kpis
    return arrays


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=None, help="re-record only the ids containing this text; keep the rest")
    args = parser.parse_args()
    data: dict[str, np.ndarray] = {}
    if args.only is not None:
        data = {k: v for k, v in np.load(OUT).items() if not (k.startswith("sdedge/") and args.only in k.split("|")[0])}
    for env_id in sdedge_gym.registration.OFFLINE_ENV_IDS:
        if args.only is not None and args.only not in env_id:
            continue
        seeds = SEEDS[:1] if "Large" in env_id else SEEDS
        for seed in seeds:
            for key, value in record_episode(env_id, seed).items():
                data[f"{env_id}|{seed}|{key}"] = value
    for preset, acceptance, seed in ORACLE_CASES if args.only is None else ():
        model = ServingModel.of(make_scenario(preset, acceptance=acceptance))
        episode = Episode.draw(model, np.random.default_rng(seed))
        plan = optimal_plan(model, episode)
        data[f"oracle|{preset}|{acceptance}|{seed}"] = np.array([plan.cost])
        data[f"oracle_plan|{preset}|{acceptance}|{seed}"] = np.array(plan.batches)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT, **data)
    print(f"wrote {OUT} ({OUT.stat().st_size / 1024:.0f} KiB, {len(data)} arrays)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
