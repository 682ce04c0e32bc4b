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

Then it measures the difference itself: the same rule replayed on the same episodes outside the env with
``commit_batch`` (the env's kernel; a clock's ``now`` is when the slot may start), once acting at epochs
only (which reproduces the env's episode, checked) and once dispatching at the deadline when it falls
before the next arrival, with its timeout tuned the same way for that rule (the grid of
``sdedge_agents.online.TIMEOUT_GRID`` on the tuning episodes); the last columns are the two mean latencies
and their difference.
"""

from __future__ import annotations

import argparse
import dataclasses

import gymnasium as gym
import numpy as np

import sdedge_gym  # noqa: F401 (registers the ids)
from sdedge_agents.online import TIMEOUT_GRID, MaxBatchTimeout, TunedMaxBatchTimeout, tuning_env
from sdedge_agents.protocol import TEST_SEEDS, held_out_env_kwargs
from sdedge_gym.episode import EpisodeClock, commit_batch
from sdedge_gym.reference import TUNING_SEEDS

IDS = ("sdedge/EdgeSD-Online-v0", "sdedge/EdgeSD-Online-AzureConv-v0", "sdedge/EdgeSD-Online-AzureCode-v0")


def lateness(env_id: str, seeds: list[int]) -> dict[str, float]:
    env = gym.make(env_id, disable_env_checker=True, **held_out_env_kwargs(env_id))
    policy = TunedMaxBatchTimeout(env)
    base = env.unwrapped
    at_deadline = MaxBatchTimeout(env, timeout=deadline_timeout(env))
    late, dispatches, accrued, latency, fired = [], 0, 0.0, [], []
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
        # The replay at epochs is the env's own episode (the same kernel calls in the same order).
        assert abs(replay(base, policy, at_deadline=False) - info["mean_latency"]) <= 1e-9 * info["mean_latency"]
        fired.append(replay(base, at_deadline, at_deadline=True))
    return {"at_epochs": float(np.mean(latency)), "at_deadline": float(np.mean(fired)),
            "timeout": policy.timeout, "deadline_timeout": at_deadline.timeout,
            "late_share": len(late) / max(dispatches, 1),
            "mean_late": float(np.mean(late)) if late else 0.0, "max_late": max(late, default=0.0),
            "accrued_share": accrued / len(seeds) / float(np.mean(latency))}


def deadline_timeout(env) -> float:
    """The timeout of the deadline-firing rule, tuned as ``tune_timeout`` tunes the env's rule."""
    tuning = tuning_env(env)
    gap = 1.0 / tuning.mean_arrival_rate
    best = (np.inf, 0.0)
    for multiple in TIMEOUT_GRID:
        policy = MaxBatchTimeout(tuning, timeout=multiple * gap)
        latency = []
        for seed in TUNING_SEEDS:
            tuning.reset(seed=seed)
            latency.append(replay(tuning, policy, at_deadline=True))
        best = min(best, (float(np.mean(latency)), multiple * gap))
    return best[1]


def replay(base, policy: MaxBatchTimeout, at_deadline: bool) -> float:
    """The mean latency of the timeout rule on ``base``'s current episode, acting at epochs only or also at
    the oldest waiting request's deadline."""
    episode, release = base.episode, base.episode.release
    k, limit = episode.num_tasks, policy.max_batch_size
    clock, total = EpisodeClock(), 0.0
    while clock.next_task < k:
        first = clock.next_task
        t = max(clock.uplink_end, float(release[first]))  # the epoch after the last dispatch
        while True:
            arrived = int(np.searchsorted(release, t, side="right"))
            deadline = float(release[first]) + policy.timeout
            if arrived - first >= limit or t >= deadline or arrived == k:
                break
            t = deadline if at_deadline and deadline < release[arrived] else float(release[arrived])
        n = min(arrived - first, limit, base.model.batch_limit)
        outcome, clock = commit_batch(base.model, episode, dataclasses.replace(clock, now=t), n, policy.length_for(n))
        total += float((outcome.completion_times - release[first:first + n]).sum())
    return total / k


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=20)
    args = parser.parse_args(argv)
    seeds = list(range(TEST_SEEDS[0], TEST_SEEDS[0] + args.episodes))
    print("| id | tuned timeout (s) | late dispatches | mean / max lateness (s) | accrued past deadlines / mean "
          "latency | at epochs (s) | at the deadline, its tuned timeout (s) | difference |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for env_id in IDS:
        r = lateness(env_id, seeds)
        print(f"| `{env_id}` | {r['timeout']:.2f} | {100 * r['late_share']:.1f} % | {r['mean_late']:.2f} / "
              f"{r['max_late']:.2f} | {100 * r['accrued_share']:.2f} % | {r['at_epochs']:.3f} | "
              f"{r['at_deadline']:.3f} ({r['deadline_timeout']:.2f} s) | "
              f"{100 * (r['at_deadline'] / r['at_epochs'] - 1):+.2f} % |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
