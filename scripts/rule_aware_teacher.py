"""Is there a better imitation teacher under the env's speculation="service_chain" option? A window planner that
picks its n knowing the env plays l*(n), against the window planner's own n with the rule's l.

    python scripts/rule_aware_teacher.py --episodes 30      # validation episodes 900000..900029

The rule-aware teacher plays n = argmin_n Q(n, l*(n)), Q the window planner's action values (its DP's cost of
committing (n, l) and then following its plan) and l*(n) the service-chain length (:mod:`sdedge_gym.service_chain`),
in an env with the option on. Prints each policy's mean latency and gap to the oracle on the same episodes
(docs/BENCHMARK.md, "The speculation length in the env").
"""

from __future__ import annotations

import argparse
from typing import Any

import gymnasium as gym
import numpy as np

import sdedge_gym  # noqa: F401  (registers the ids)
from sdedge_agents.evaluate import make_policy, run_episodes
from sdedge_agents.planner import WindowPlanner
from sdedge_agents.protocol import VALIDATION_SEED_BASE


class RuleAwareWindowPlanner(WindowPlanner):
    """The window planner's n for the l the env will play: argmin_n Q(n, l*(n)); l is the placeholder 0."""

    name = "rule-aware-window-planner"

    def predict(self, observation: Any, state: Any = None, episode_start: Any = None,
                deterministic: bool = True) -> tuple[Any, Any]:
        env = self.unwrapped
        values = self.action_values()
        lengths = [env.service_chain_length(n) for n in range(1, env.batch_limit() + 1)]
        batch_size = 1 + int(np.argmin([values[n - 1, length] for n, length in enumerate(lengths, start=1)]))
        return env.actions.encode(batch_size, 0), state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="sdedge/EdgeSD-v0", help="an offline discrete id (default: %(default)s)")
    parser.add_argument("--episodes", type=int, default=30, help="validation episodes from 900000 (default 30)")
    args = parser.parse_args()
    seeds = range(VALIDATION_SEED_BASE, VALIDATION_SEED_BASE + args.episodes)
    ruled, plain = gym.make(args.env, speculation="service_chain"), gym.make(args.env)
    latencies = {"rule-aware window planner (the option on)": -np.array(
        run_episodes(RuleAwareWindowPlanner(ruled), ruled, seeds))}
    for name in ("window-planner", "chain-l:window-planner", "oracle"):
        latencies[name] = -np.array(run_episodes(make_policy(name, plain), plain, seeds))
    oracle = latencies["oracle"].mean()
    for name, values in latencies.items():
        print(f"{name}: {values.mean():.6f} s, {100 * (values.mean() / oracle - 1):+.3f} % to the oracle")


if __name__ == "__main__":
    main()
