"""Which half of the action does a learned agent get wrong: the batch size n or the speculation length l?

On ``--env`` (default sdedge/EdgeSD-v0) and its validation episodes, these policies play every step: the agent,
the window planner (the DP on what the observation shows, the imitation agents' teacher), and two mixes that
take one half from each: (n of the agent, l of the window planner) and (n of the window planner, l of the
agent). Both act on the same observation, so the mixes isolate each half. A fifth policy keeps the agent's n
and takes the best l *for that batch* by the window planner's values (``agent-n-best-l``: the least of
``WindowPlanner.action_values()`` over l at the agent's n; the planner's own l is the best for its own n).
Prints, per policy, the mean objective and its gap to the oracle, and, along that policy's trajectories, how
often the agent's n and l agree with the window planner's (the "agent" row: along the agent's own).

    python scripts/diagnose_action_halves.py --model runs/group/default-lin_1e-3/seed1000/model.zip
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
from sb3_contrib import MaskablePPO

import sdedge_gym  # noqa: F401 (registers the ids)
from sdedge_agents.evaluate import make_policy, run_episodes
from sdedge_agents.protocol import VALIDATION_SEEDS


def play(env, model, teacher, seeds, mix: str) -> tuple[list[float], np.ndarray]:
    """Objectives of the policy ``mix`` (agent | window-planner | agent-n | agent-l | agent-n-best-l) on ``seeds``,
    and per step
    of it (agent's n == teacher's n, agent's l == teacher's l)."""
    values, agreement = [], []
    for seed in seeds:
        observation, _ = env.reset(seed=int(seed))
        done, total = False, 0.0
        while not done:
            mask = env.unwrapped.action_masks()
            agent = np.asarray(model.predict(observation, action_masks=mask, deterministic=True)[0])
            planner = np.asarray(teacher.predict(observation)[0])
            agreement.append((agent[0] == planner[0], agent[1] == planner[1]))
            if mix == "agent-n-best-l":
                action = np.array([agent[0], int(np.argmin(teacher.action_values()[agent[0]]))])
            else:
                action = {"agent": agent, "window-planner": planner, "agent-n": np.array([agent[0], planner[1]]),
                          "agent-l": np.array([planner[0], agent[1]])}[mix]
            observation, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
        values.append(-total)
    return values, np.asarray(agreement, dtype=float)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", required=True, help="a MaskablePPO model.zip (repeatable)")
    parser.add_argument("--env", default="sdedge/EdgeSD-v0")
    parser.add_argument("--episodes", type=int, default=50, help="validation episodes (default 50)")
    args = parser.parse_args()
    env = gym.make(args.env)
    seeds = list(VALIDATION_SEEDS[: args.episodes])
    oracle = -float(np.mean(run_episodes(make_policy("oracle", env), env, seeds)))
    teacher = make_policy("window-planner", env)
    print(f"{args.env}, validation episodes {seeds[0]}..{seeds[-1]}; oracle {oracle:.3f} s\n")
    print("| model | policy | mean objective (s) | gap to oracle | n agrees | l agrees |")
    print("|---|---|---:|---:|---:|---:|")
    for path in args.model:
        model = MaskablePPO.load(path, device="cpu")
        for mix in ("agent", "agent-n", "agent-n-best-l", "agent-l", "window-planner"):
            values, agreement = play(env, model, teacher, seeds, mix)
            mean = float(np.mean(values))
            print(f"| {path} | {mix} | {mean:.3f} | {100 * (mean / oracle - 1):+.2f} % | "
                  f"{100 * agreement[:, 0].mean():.0f} % | {100 * agreement[:, 1].mean():.0f} % |", flush=True)


if __name__ == "__main__":
    main()
