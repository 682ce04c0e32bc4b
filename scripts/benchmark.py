"""Steps per second of the environments and the oracle's solve time, against CartPole as the reference.

    python scripts/benchmark.py            # about 4 minutes on 2 cores
    python scripts/benchmark.py --quick    # about 1 minute: 3 repeats of shorter runs, no 4096 or paper-wide run

Every figure is the median of repeated timed runs (``--repeats``); each run plays random valid actions
(batch sizes within the mask, any speculation length) and includes the resets of finished episodes.
"steps/s" counts env steps (for a vector env: env steps summed over its envs) per second of wall-clock
time; "CPU steps/s" divides by this process's CPU time instead, which is steadier on a shared machine
(it is not defined for the async vector env, whose work runs in other processes). The load average is
printed first: on a busy machine the wall-clock figures drop, the ratios to CartPole much less.

Rows: CartPole-v1 (``gymnasium.make``, the reference); the single env on the small and paper presets
(``gymnasium.make``, with Gymnasium's default wrappers); the native vector env (``gymnasium.make_vec``,
``vector_entry_point``) at 1, 64, 1024 and 4096 envs; ``make_vec`` sync and async over the single env for
comparison; and the DP oracle's solve time (segment tables + Pareto DP) when ``agents.oracle`` exists.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

import sdedge_gym  # importing registers the ids

SMALL, PAPER = "sdedge/EdgeSD-Small-v0", "sdedge/EdgeSD-Paper-v0"
TARGET_SINGLE = 0.5  # x CartPole, single env on the small preset
TARGET_VECTOR = 1e6  # env-steps/s, vector env at its best width
TARGET_ORACLE = 1.0  # s, oracle at K = 100


@dataclass
class Row:
    what: str
    width: int
    wall: float  # steps/s
    cpu: float | None  # steps per CPU-second
    note: str = ""


def _median_rate(run: Callable[[], int], repeats: int) -> tuple[float, float]:
    """Median over repeats of (steps / wall s, steps / CPU s) of ``run`` (which returns its step count)."""
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        steps = run()
        walls.append(steps / (time.perf_counter() - wall))
        cpus.append(steps / max(time.process_time() - cpu, 1e-9))
    return statistics.median(walls), statistics.median(cpus)


def single_env_rate(env_id: str, seconds: float, repeats: int, **kwargs) -> tuple[float, float]:
    env = gym.make(env_id, **kwargs)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    sdedge = hasattr(env.unwrapped, "batch_limit")
    l_choices = env.unwrapped.scenario.max_speculation + 1 if sdedge else 0
    # Actions drawn ahead in bulk so that the timed loop measures the env, not the sampler.
    uniforms = rng.random((1 << 16, 2))

    def run() -> int:
        steps, deadline = 0, time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            for _ in range(256):
                u = uniforms[steps & 0xFFFF]
                if sdedge:
                    limit = env.unwrapped.batch_limit()
                    action = np.array([int(u[0] * limit), int(u[1] * l_choices)])
                else:
                    action = int(u[0] * 2)
                _, _, terminated, truncated, _ = env.step(action)
                if terminated or truncated:
                    env.reset()
                steps += 1
        return steps

    run()  # warm-up
    return _median_rate(run, repeats)


def vector_env_rate(env_id: str, num_envs: int, mode: str, seconds: float, repeats: int) -> tuple[float, float]:
    if mode == "vector_entry_point":
        env = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode=mode)
    else:
        env = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode=mode)
    _, info = env.reset(seed=0)
    single = env.single_action_space
    n_max, l_choices = int(single.nvec[0]), int(single.nvec[1])
    rng = np.random.default_rng(0)
    masks = [info["action_mask"]]

    def run() -> int:
        steps, deadline = 0, time.perf_counter() + seconds
        while time.perf_counter() < deadline or steps < 3 * num_envs:  # at least 3 vector steps
            limit = np.maximum(masks[0][:, :n_max].sum(axis=1), 1)  # an env awaiting its reset has none
            u = rng.random((num_envs, 2))
            actions = np.stack([(u[:, 0] * limit).astype(np.int64), (u[:, 1] * l_choices).astype(np.int64)], 1)
            _, _, _, _, step_info = env.step(actions)
            masks[0] = step_info["action_mask"]
            steps += num_envs
        return steps

    run()
    rates = _median_rate(run, repeats)
    env.close()
    return rates


def oracle_times(preset: str, num_tasks: int, seeds: int) -> float:
    from agents.oracle import optimal_plan

    model = sdedge_gym.ServingModel.of(sdedge_gym.make_scenario(preset, num_tasks=num_tasks))
    times = []
    for seed in range(seeds):
        episode = sdedge_gym.Episode.draw(model, np.random.default_rng(seed))
        start = time.perf_counter()
        optimal_plan(model, episode)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short runs, 3 repeats, no 4096-wide or paper vector run")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per figure (default 5, quick 3)")
    args = parser.parse_args()
    repeats = args.repeats or (3 if args.quick else 5)
    seconds = 0.4 if args.quick else 1.0
    widths = (1, 64, 1024) if args.quick else (1, 64, 1024, 4096)

    load = os.getloadavg()[0]
    print(f"# load average {load:.1f} on {os.cpu_count()} cores; medians of {repeats} runs of ~{seconds} s"
          + ("  (busy machine: wall-clock figures are low, ratios steadier)" if load > 1.5 else ""))
    rows: list[Row] = []
    cartpole = single_env_rate("CartPole-v1", seconds, repeats)
    rows.append(Row("CartPole-v1, gym.make (reference)", 1, *cartpole))
    rows.append(Row("single env, small preset, gym.make", 1, *single_env_rate(SMALL, seconds, repeats)))
    rows.append(Row("single env, paper preset, gym.make", 1, *single_env_rate(PAPER, seconds, repeats)))
    for width in widths:
        rows.append(Row("vector env, small, make_vec (native)", width,
                        *vector_env_rate(SMALL, width, "vector_entry_point", seconds, repeats)))
    if not args.quick:
        rows.append(Row("vector env, paper, make_vec (native)", 1024,
                        *vector_env_rate(PAPER, 1024, "vector_entry_point", seconds, 3)))
    sync = vector_env_rate(SMALL, 64, "sync", seconds, repeats)
    rows.append(Row("make_vec sync over the single env, small", 64, *sync))
    async_wall, _ = vector_env_rate(SMALL, 2, "async", seconds, repeats)
    rows.append(Row("make_vec async over the single env, small", 2, async_wall, None, "2 worker processes"))

    reference = cartpole[0]
    print()
    print("| what | envs | steps/s | x CartPole | CPU steps/s | note |", flush=True)
    print("|---|---:|---:|---:|---:|---|")
    for row in rows:
        cpu = f"{row.cpu:,.0f}" if row.cpu is not None else "n/a"
        print(f"| {row.what} | {row.width} | {row.wall:,.0f} | {row.wall / reference:.3f} | {cpu} | {row.note} |")

    oracle = None
    print()
    if importlib.util.find_spec("agents.oracle") is None:
        print("oracle: agents.oracle is not installed here; no oracle rows")
    else:
        seeds = 3 if args.quick else 5
        oracle = oracle_times("paper", 100, seeds)
        small_oracle = oracle_times("small", 8, seeds)
        print("| oracle (segment tables + Pareto DP) | K | median solve time (s) |")
        print("|---|---:|---:|")
        print(f"| small preset | 8 | {small_oracle:.3f} |")
        print(f"| paper preset | 100 | {oracle:.3f} |")

    single = rows[1].wall / reference
    best = max((r for r in rows if r.what.startswith("vector env")), key=lambda r: r.wall)
    print()
    print("targets:")
    print(f"* single env, small: {single:.3f} x CartPole (target >= {TARGET_SINGLE}): "
          + ("met" if single >= TARGET_SINGLE else f"missed by {TARGET_SINGLE / single:.1f}x"))
    print(f"* vector env, best width ({best.what.split(',')[1].strip()}, {best.width} envs): {best.wall:,.0f} "
          f"env-steps/s (target >= {TARGET_VECTOR:,.0f}): "
          + ("met" if best.wall >= TARGET_VECTOR else f"missed by {TARGET_VECTOR / best.wall:.1f}x"))
    if oracle is not None:
        print(f"* oracle, K = 100: {oracle:.2f} s (target about {TARGET_ORACLE:.0f} s): "
              + ("met" if oracle <= 1.5 * TARGET_ORACLE else f"missed by {oracle / TARGET_ORACLE:.1f}x"))


if __name__ == "__main__":
    main()
