"""Speed of the environments, the training loop and the oracle, as ratios to references measured in the same run.

    python scripts/benchmark.py            # about 7 minutes on 2 cores
    python scripts/benchmark.py --quick    # about 2 minutes: shorter runs, no 4096-wide or K = 10,000 rows
    NUMBA_NUM_THREADS=1 python scripts/benchmark.py   # on a shared machine: no num_threads=2 rows
    python scripts/benchmark.py --sections planner,oracle   # some tables only (a kernel change's before/after)

This machine is shared and noisy, so every speed is reported beside a reference measured in the same
process, minutes apart at most: CartPole-v1 (``gymnasium.make``) for the single env, Gymnasium's
``CartPoleVectorEnv`` at the same width for the native vector env, and SB3 PPO on CartPole for SB3 PPO on
the small id (the online vector env's row, on the online paper id, beside the offline ones at the same
widths, takes random valid actions including waits). Each figure is the median of ``--repeats`` timed
runs of random valid actions, resets included. The oracle rows (segment tables + exact DP on the paper
preset) run each K in a fresh process so that its peak resident memory is its own. The JIT rows time a
fresh process's import, env construction and first reset and step, with an empty numba cache (cold:
everything compiles) and with the cache that run left (cached).

The window planner row times its decisions (segment tables of the queue it sees, then the DP) over a few
episodes of ``sdedge/EdgeSD-v0``; the DAgger row is the label rate of ``sdedge_agents.imitate.collect``
with that teacher (it needs the train extra).

Rows and targets (issue "rounds in closed form"): single env >= 0.3x CartPole-v1; native vector env at
1024 envs on one thread >= 0.25x CartPoleVectorEnv (small) and >= 0.1x (paper); oracle K = 10,000 <= 0.5 s
total and K = 100 <= 10 ms; window planner <= 3 ms a decision. Earlier (issue "one compiled serving
kernel"): oracle K = 10,000 < 4 GiB peak RSS; cold JIT <= 10 s, cached <= 1 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numba
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # time this tree's sdedge_gym, not an installed one

import sdedge_gym  # noqa: F401  (registers the ids)

SMALL, PAPER = "sdedge/EdgeSD-Small-v0", "sdedge/EdgeSD-Paper-v0"
ONLINE = "sdedge/EdgeSD-Online-v0"  # the paper preset with Poisson arrivals: the online vector env's row
TEACHER_ENV = "sdedge/EdgeSD-v0"  # the id the dagger-paper agent imitates its window planner on
ROOT = Path(__file__).resolve().parents[1]


def _median_rate(run: Callable[[], int], repeats: int) -> float:
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        steps = run()
        rates.append(steps / (time.perf_counter() - start))
    return statistics.median(rates)


def single_env_rate(env_id: str, seconds: float, repeats: int) -> float:
    env = gym.make(env_id)
    env.reset(seed=0)
    sdedge = hasattr(env.unwrapped, "batch_limit")
    l_choices = env.unwrapped.scenario.max_speculation + 1 if sdedge else 0
    uniforms = np.random.default_rng(0).random((1 << 16, 2))  # actions drawn ahead: time the env, not a sampler

    def run() -> int:
        steps, deadline = 0, time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            for _ in range(256):
                u = uniforms[steps & 0xFFFF]
                if sdedge:
                    action = np.array([int(u[0] * env.unwrapped.batch_limit()), int(u[1] * l_choices)])
                else:
                    action = int(u[0] * 2)
                _, _, terminated, truncated, _ = env.step(action)
                if terminated or truncated:
                    env.reset()
                steps += 1
        return steps

    run()  # warm-up (and JIT)
    return _median_rate(run, repeats)


def vector_rate(env_id: str, num_envs: int, seconds: float, repeats: int, **kwargs) -> float:
    env = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **kwargs)
    _, info = env.reset(seed=0)
    rng = np.random.default_rng(0)
    sdedge = "action_mask" in info
    masks = [info.get("action_mask")]
    online = hasattr(env.unwrapped, "can_wait")  # the online action's first entry is n - 1, or n_max to wait
    if sdedge:
        choices, l_choices = (int(x) for x in env.single_action_space.nvec)
        n_max = choices - online

    def run() -> int:
        steps, deadline = 0, time.perf_counter() + seconds
        while time.perf_counter() < deadline or steps < 3 * num_envs:
            if sdedge:
                limit = np.maximum(masks[0][:, :n_max].sum(axis=1), 1)
                u = rng.random((num_envs, 2))
                if online:  # uniform over the valid batch sizes and the wait (when valid): index `limit` waits
                    first = (u[:, 0] * (limit + masks[0][:, n_max])).astype(np.int64)
                    first = np.where(first == limit, n_max, first)
                else:
                    first = (u[:, 0] * limit).astype(np.int64)
                actions = np.stack([first, (u[:, 1] * l_choices).astype(np.int64)], 1)
            else:
                actions = rng.integers(0, 2, num_envs)
            _, _, _, _, step_info = env.step(actions)
            if sdedge:
                masks[0] = step_info["action_mask"]
            steps += num_envs
        return steps

    run()
    rate = _median_rate(run, repeats)
    env.close()
    return rate


def planner_seconds(env_id: str, episodes: int) -> tuple[float, int]:
    """The window planner's mean time per decision (segment tables of the queue it sees + the DP) over
    ``episodes`` episodes of ``env_id``, and how many decisions that was."""
    from sdedge_agents.evaluate import make_policy

    env = gym.make(env_id)
    planner = make_policy("window-planner", env)
    observation, _ = env.reset(seed=0)
    planner.predict(observation)  # JIT outside the timing
    decisions, elapsed = 0, 0.0
    for episode in range(episodes):
        observation, _ = env.reset(seed=1 + episode)
        done = False
        while not done:
            start = time.perf_counter()
            action, _ = planner.predict(observation, deterministic=True)
            elapsed += time.perf_counter() - start
            decisions += 1
            observation, _, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
    return elapsed / decisions, decisions


def dagger_label_rate(env_id: str, episodes: int) -> float | None:
    """Labels per second of one DAgger collection (sdedge_agents.imitate.collect: the window planner labels
    every state, the learner acts half the time, beta = 0.5), a fresh slot-policy learner; None without the
    train extra."""
    try:
        from sdedge_agents.evaluate import make_policy
        from sdedge_agents.imitate import ImitationConfig, Labels, collect, new_model
    except ImportError:
        return None
    import torch

    torch.set_num_threads(1)
    env = gym.make(env_id)
    teacher = make_policy("window-planner", env)
    model, _ = new_model(ImitationConfig(env_id=env_id, algo="maskable_ppo"), env)
    env.reset(seed=0)
    collect(env, teacher, model, 1, 0.5, np.random.default_rng(0), Labels.empty())  # JIT and warm-up
    labels = Labels.empty()
    start = time.perf_counter()
    collect(env, teacher, model, episodes, 0.5, np.random.default_rng(1), labels)
    return len(labels) / (time.perf_counter() - start)


def ppo_fps(env_id: str, timesteps: int) -> float | None:
    """SB3 PPO's training steps per second with 8 envs (the native vector env through the SB3 adapter for
    sdedge ids, SB3's DummyVecEnv for CartPole); None without the train extra."""
    try:
        from stable_baselines3 import PPO
        from stable_baselines3.common.env_util import make_vec_env

        from sdedge_agents.sb3_vec_env import make_sb3_vec_env
    except ImportError:
        return None
    import torch

    torch.set_num_threads(1)
    env = make_sb3_vec_env(env_id, num_envs=8, seed=0) if env_id.startswith("sdedge/") else make_vec_env(env_id, 8, 0)
    model = PPO("MlpPolicy", env, n_steps=256, batch_size=256, n_epochs=4, seed=0, device="cpu", verbose=0)
    model.learn(2048)  # warm-up
    start = time.perf_counter()
    model.learn(timesteps, reset_num_timesteps=False)
    return timesteps / (time.perf_counter() - start)


_ORACLE_CHILD = """
import json, resource, sys, time
import numpy as np
from sdedge_agents.oracle import solve
from sdedge_gym import Episode, ServingModel, make_scenario
from sdedge_gym.segments import segment_tables
size = int(sys.argv[1])
warm = ServingModel.of(make_scenario("paper", num_tasks=10))
solve(segment_tables(warm, Episode.draw(warm, np.random.default_rng(0))))  # JIT outside the timing
model = ServingModel.of(make_scenario("paper", num_tasks=size))
episode = Episode.draw(model, np.random.default_rng(0))
start = time.perf_counter()
tables = segment_tables(model, episode)
middle = time.perf_counter()
plan = solve(tables, model.config.objective, size)
end = time.perf_counter()
print(json.dumps({"tables": middle - start, "dp": end - middle, "labels": plan.labels,
                  "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""

_JIT_CHILD = """
import time
start = time.perf_counter()
import gymnasium as gym
import numba
import numpy as np
import sdedge_gym
for env_id in ("sdedge/EdgeSD-Small-v0", "sdedge/EdgeSD-Small-Hybrid-Stochastic-v0"):
    env = gym.make(env_id)
    env.reset(seed=0)
    env.step(env.action_space.sample())
vec = gym.make_vec("sdedge/EdgeSD-Small-v0", num_envs=4)
vec.reset(seed=0)
vec.step(vec.action_space.sample())
print(time.perf_counter() - start)
"""


def _child(code: str, *args: str, env: dict[str, str] | None = None) -> str:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, **(env or {})}, check=True)
    return out.stdout.strip().splitlines()[-1]


# What --sections selects, in the order the tables print.
SECTIONS = ("single", "vector", "planner", "ppo", "oracle", "startup")


def main(argv: list[str] | None = None, prog: str | None = None) -> None:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short runs; no 4096-wide, K = 10,000 or PPO rows")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per figure (default 5, quick 3)")
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help="the tables to measure, comma-separated (default: all of %(default)s)")
    args = parser.parse_args(argv)
    sections = args.sections.split(",")
    unknown = [name for name in sections if name not in SECTIONS]
    if unknown:
        parser.error(f"--sections: {', '.join(map(repr, unknown))} unknown; allowed: {', '.join(SECTIONS)}")
    repeats = args.repeats or (3 if args.quick else 5)
    seconds = 0.4 if args.quick else 1.0
    widths = (256, 1024) if args.quick else (256, 1024, 4096)
    print(f"# load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; medians of {repeats} runs of "
          f"~{seconds} s; python {sys.version.split()[0]}, numpy {np.__version__}, gymnasium {gym.__version__}")

    if "single" in sections or "vector" in sections:
        print("\n| what | envs | steps/s | reference (same run) | ratio |")
        print("|---|---:|---:|---|---:|")
    if "single" in sections:
        _single_env_rows(seconds, repeats)
    if "vector" in sections:
        _vector_env_rows(widths, seconds, repeats)
    if "planner" in sections:
        _planner_rows(2 if args.quick else 5)
    if "ppo" in sections and not args.quick:
        _ppo_rows()
    if "oracle" in sections:
        _oracle_rows((100, 1000) if args.quick else (100, 1000, 10_000))
    if "startup" in sections:
        _startup_rows()


def _single_env_rows(seconds: float, repeats: int) -> None:
    cartpole = single_env_rate("CartPole-v1", seconds, repeats)
    print(f"| CartPole-v1, gym.make | 1 | {cartpole:,.0f} | itself | 1.000 |", flush=True)
    for name, env_id in (("small", SMALL), ("paper", PAPER)):
        rate = single_env_rate(env_id, seconds, repeats)
        print(f"| single env, {name} preset, gym.make | 1 | {rate:,.0f} | CartPole-v1 | {rate / cartpole:.3f} |",
              flush=True)


def _vector_env_rows(widths: tuple[int, ...], seconds: float, repeats: int) -> None:
    for width in widths:
        reference = vector_rate("CartPole-v1", width, seconds, repeats)
        print(f"| CartPoleVectorEnv (Gymnasium) | {width} | {reference:,.0f} | itself | 1.000 |", flush=True)
        for name, env_id in (("small", SMALL), ("paper", PAPER), ("online (paper, Poisson)", ONLINE)):
            rate = vector_rate(env_id, width, seconds if name == "small" else 2 * seconds, repeats)
            print(f"| native vector env, {name} | {width} | {rate:,.0f} | CartPoleVectorEnv | "
                  f"{rate / reference:.3f} |", flush=True)
    if numba.config.NUMBA_NUM_THREADS >= 2:
        for name, env_id in (("small", SMALL), ("paper", PAPER)):
            rate = vector_rate(env_id, 1024, 2 * seconds, repeats, num_threads=2)
            print(f"| native vector env, {name}, num_threads=2 | 1024 | {rate:,.0f} | CartPoleVectorEnv | "
                  f"{rate / vector_rate('CartPole-v1', 1024, seconds, repeats):.3f} |", flush=True)
    else:
        print("| (num_threads=2 rows skipped: NUMBA_NUM_THREADS=1) | | | | |")


def _planner_rows(planner_episodes: int) -> None:
    decision, decisions = planner_seconds(TEACHER_ENV, planner_episodes)
    print(f"\n| window planner on {TEACHER_ENV} | decisions | ms per decision |")
    print("|---|---:|---:|")
    print(f"| segment tables of the queue it sees + exact DP | {decisions} | {1000 * decision:.2f} |", flush=True)
    labels = dagger_label_rate(TEACHER_ENV, planner_episodes)
    if labels is None:
        print("\nDAgger: the train extra is not installed; no label-rate row")
    else:
        print(f"\n| DAgger collection on {TEACHER_ENV} (window-planner teacher, beta 0.5, slot policy) | labels/s |")
        print("|---|---:|")
        print(f"| sdedge_agents.imitate.collect, {planner_episodes} episodes | {labels:,.0f} |", flush=True)


def _ppo_rows() -> None:
    cart_fps, small_fps = ppo_fps("CartPole-v1", 16384), ppo_fps(SMALL, 16384)
    if cart_fps is None:
        print("\nSB3 PPO: the train extra is not installed; no training rows")
    else:
        print("\n| SB3 PPO, 8 envs, MlpPolicy, n_steps 256, 4 epochs | training steps/s | ratio |")
        print("|---|---:|---:|")
        print(f"| CartPole-v1 (DummyVecEnv) | {cart_fps:,.0f} | 1.000 |")
        print(f"| {SMALL} (native vector env) | {small_fps:,.0f} | {small_fps / cart_fps:.3f} |")


def _oracle_rows(sizes: tuple[int, ...]) -> None:
    print("\n| oracle, paper preset | K | tables (s) | DP (s) | total (s) | labels | peak RSS (GiB) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for size in sizes:
        result = json.loads(_child(_ORACLE_CHILD, str(size)))
        total = result["tables"] + result["dp"]
        print(f"| segment tables + exact DP | {size} | {result['tables']:.3f} | {result['dp']:.3f} | {total:.3f} | "
              f"{result['labels']:,} | {result['rss'] / 2**30:.2f} |", flush=True)


def _startup_rows() -> None:
    with tempfile.TemporaryDirectory() as cache:
        cold = float(_child(_JIT_CHILD, env={"NUMBA_CACHE_DIR": cache}))
        cached = float(_child(_JIT_CHILD, env={"NUMBA_CACHE_DIR": cache}))
    baseline = float(_child("import time; s = time.perf_counter(); import gymnasium as gym; "
                            "env = gym.make('CartPole-v1'); env.reset(seed=0); env.step(0); "
                            "print(time.perf_counter() - s)"))
    print("\n| start-up: import, make, first reset and step (fresh process) | s |")
    print("|---|---:|")
    print(f"| CartPole-v1 (reference) | {baseline:.2f} |")
    print(f"| sdedge_gym, empty numba cache (cold: the kernels compile) | {cold:.2f} |")
    print(f"| sdedge_gym, numba cache filled by the cold run (cached) | {cached:.2f} |")


if __name__ == "__main__":
    main()
