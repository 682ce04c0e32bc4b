"""How late max-batch-with-timeout acts because it decides only at decision epochs.

    python scripts/timeout_lateness.py                   # every online id family, test seeds 500..519

The env has decision epochs (an arrival while the uplink is free, or the uplink freeing up), so a timeout
that expires between two epochs is acted on at the next one. For each dispatch this script finds the
deadline d = (arrival of the oldest waiting request) + timeout; the dispatch is *late* when the policy waited
at an epoch before d and dispatched at an epoch t > d because of the timeout (not because n_lim requests
waited). It prints, per id: the timeout, the share of dispatches that were late, the mean and largest
lateness t - d, and the latency the late batches' requests accrued past their deadlines, sum over late
batches of (t - d) x (requests in the batch) / K, as a share of the mean latency. That last figure bounds
what firing at the deadline could save when the earlier batch would hold the same requests (an earlier
batch holds at most the same ones: requests arriving in (d, t] could not join it).
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np

import sdedge_gym  # noqa: F401 (registers the ids)
from sdedge_agents.online import TunedMaxBatchTimeout
from sdedge_agents.protocol import TEST_SEEDS, held_out_env_kwargs

IDS = ("sdedge/EdgeSD-Online-v0", "sdedge/EdgeSD-Online-AzureConv-v0", "sdedge/EdgeSD-Online-AzureCode-v0")


def lateness(env_id: str, seeds: list[int]) -> dict[str, float]:
    env = gym.make(env_id, disable_env_checker=True, **held_out_env_kwargs(env_id))
    policy = TunedMaxBatchTimeout(env)
    base = env.unwrapped
    late, dispatches, accrued, latency = [], 0, 0.0, []
    for seed in seeds:
        observation, _ = env.reset(seed=seed)
        terminated, waited_before = False, False
        while not terminated:
            deadline = float(base.arrival[base.clock.next_task]) + policy.timeout
            full = policy.waiting() >= policy.max_batch_size
            now = base.now
            observation, _, terminated, _, info = env.step(policy.predict(observation)[0])
            if info["waited"]:
                waited_before = waited_before or now < deadline
                continue
            dispatches += 1
            if waited_before and not full and now > deadline:
                late.append(now - deadline)
                accrued += (now - deadline) * int(info["batch_size"]) / base.episode.num_tasks
            waited_before = False
        latency.append(info["mean_latency"])
    return {"timeout": policy.timeout, "late_share": len(late) / max(dispatches, 1),
            "mean_late": float(np.mean(late)) if late else 0.0, "max_late": max(late, default=0.0),
            "accrued_share": accrued / len(seeds) / float(np.mean(latency))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=20)
    args = parser.parse_args(argv)
    seeds = list(range(TEST_SEEDS[0], TEST_SEEDS[0] + args.episodes))
    print("| id | tuned timeout (s) | late dispatches | mean / max lateness (s) | accrued past deadlines / mean "
          "latency |")
    print("|---|---:|---:|---:|---:|")
    for env_id in IDS:
        r = lateness(env_id, seeds)
        print(f"| `{env_id}` | {r['timeout']:.2f} | {100 * r['late_share']:.1f} % | {r['mean_late']:.2f} / "
              f"{r['max_late']:.2f} | {100 * r['accrued_share']:.2f} % |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
