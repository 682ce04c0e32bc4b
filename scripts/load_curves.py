"""Load curves of the online env: mean and p99 latency against the arrival rate, from light load to overload.

    nice -n 5 python scripts/load_curves.py                         # -> docs/figures/load_curves.{png,csv}
    python scripts/load_curves.py --episodes 1 --loads 0.3,0.9 --out /tmp/lc  # smoke test, seconds
    python scripts/load_curves.py --policies oracle,planner,pretrained:NAME   # a trained agent as well
    nice -n 5 python scripts/load_curves.py --trace azure-conv      # -> docs/figures/load_curves_azure-conv.*

The scenario is ``sdedge/EdgeSD-Online-v0`` (the paper preset, K = 100 requests, Poisson arrivals) with the
arrival rate set to load x C, where C = ``sdedge_gym.online_env.max_batch_capacity`` of the paper preset
(requests/s served by back-to-back full batches; the registered id runs at load 0.7). At every load the
policies serve the same episodes: episode i uses ``reset(seed=S + i)``, whose workload does not depend on the
rate and whose Poisson gaps are the same exponential draws scaled by 1 / rate. Mean latency is the mean of
the episodes' mean latencies; p99 is the 99th percentile of every request's latency pooled over the
episodes. Any name of ``sdedge_agents.evaluate.make_policy`` is accepted, including ``pretrained:NAME`` and
``sb3:ALGO:PATH`` (a trained agent on the online id's spaces).

``--trace NAME`` draws the curves on a shipped trace's id instead (``sdedge/EdgeSD-Online-AzureConv-v0`` or
``-AzureCode-v0``): the episodes are windows of the trace's held-out test part (episode i: ``reset(seed=S +
i)``, the same windows at every load), the recorded bursts rescaled to ``load`` x the capacity on the
trace's lengths (``ArrivalConfig.load``, ``sdedge_gym.online_env.trace_capacity``).
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

from sdedge_agents.evaluate import make_policy
from sdedge_gym.online_env import max_batch_capacity, trace_capacity
from sdedge_gym.registration import TRACE_IDS
from sdedge_gym.scenarios import make_scenario

ENV_ID = "sdedge/EdgeSD-Online-v0"
DEFAULT_POLICIES = ("oracle", "planner", "max-batch-timeout", "dispatch-immediately", "autoregressive")
DEFAULT_LOADS = (0.2, 0.4, 0.6, 0.7, 0.8, 0.9, 1.0, 1.2, 1.5)
FIGURES = Path(__file__).resolve().parents[1] / "docs" / "figures"
STYLE = {"oracle": ("k", "o"), "planner": ("tab:blue", "s"), "max-batch-timeout": ("tab:green", "^"),
         "dispatch-immediately": ("tab:orange", "v"), "autoregressive": ("tab:red", "D")}


def latencies_of(policy_name: str, env_id: str, arrivals: dict, seeds: list[int]) -> tuple[list[np.ndarray], float]:
    """Every request's latency (one array per episode) and the wall time of ``policy_name`` on ``env_id``
    with the ``arrivals`` config fields."""
    env = gym.make(env_id, disable_env_checker=True, config={"arrivals": arrivals})
    policy = make_policy(policy_name, env)
    start = time.perf_counter()
    episodes = []
    for seed in seeds:
        observation, _ = env.reset(seed=seed)
        terminated = False
        state, episode_start = None, True
        while not terminated:
            action, state = policy.predict(observation, state=state, episode_start=np.array([episode_start]),
                                           deterministic=True)
            observation, _, terminated, _, _ = env.step(action)
            episode_start = False
        episodes.append(env.unwrapped.latencies())
    env.close()
    return episodes, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policies", default=",".join(DEFAULT_POLICIES))
    parser.add_argument("--loads", default=",".join(map(str, DEFAULT_LOADS)),
                        help="arrival rates as fractions of the max-batch capacity")
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=FIGURES)
    parser.add_argument("--trace", choices=tuple(TRACE_IDS), default=None,
                        help="a shipped trace: its id, test windows, load by rescaling the recorded times")
    args = parser.parse_args(argv)
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    try:
        loads = [float(x) for x in args.loads.split(",")]
    except ValueError:
        parser.error(f"--loads {args.loads!r} is invalid; allowed: comma-separated numbers > 0")
    if not loads or min(loads) <= 0:
        parser.error(f"--loads {args.loads!r} is invalid; allowed: comma-separated numbers > 0")
    if args.episodes < 1:
        parser.error(f"--episodes {args.episodes} is invalid; allowed: an integer >= 1")
    env_id, suffix = ENV_ID, ""
    if args.trace is None:
        capacity = max_batch_capacity(make_scenario("paper"))
    else:
        env_id, suffix = f"sdedge/EdgeSD-Online-{TRACE_IDS[args.trace]}-v0", f"_{args.trace}"
        capacity = trace_capacity(gym.make(env_id, disable_env_checker=True).unwrapped.scenario)
    seeds = list(range(args.seed, args.seed + args.episodes))
    print(f"{env_id}: max-batch capacity {capacity:.4f} requests/s; {args.episodes} episodes per point, seeds "
          f"{seeds[0]}..{seeds[-1]}", file=sys.stderr)
    rows = []
    for load in loads:
        rate = load * capacity
        arrivals = {"arrival_rate": rate} if args.trace is None else {"load": load, "trace_window": "test"}
        for name in policies:
            episodes, wall = latencies_of(name, env_id, arrivals, seeds)
            pooled = np.concatenate(episodes)
            rows.append({"policy": name, "load": load, "arrival_rate": rate,
                         "mean_latency": float(np.mean([e.mean() for e in episodes])),
                         "p99_latency": float(np.percentile(pooled, 99)), "wall_time_s": wall})
            print(f"load {load:.2f} ({rate:.3f}/s) {name:>22}: mean {rows[-1]['mean_latency']:8.2f} s, "
                  f"p99 {rows[-1]['p99_latency']:8.2f} s ({wall:.1f} s)", file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / f"load_curves{suffix}.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()} for row in rows)
    title = "paper preset, Poisson" if args.trace is None else f"{args.trace} trace (test windows), paper-2k"
    plot(rows, policies, capacity, args.out / f"load_curves{suffix}.png", args.episodes, title)
    print(f"wrote {args.out / f'load_curves{suffix}.csv'} and {args.out / f'load_curves{suffix}.png'}",
          file=sys.stderr)
    return 0


def plot(rows: list[dict], policies: list[str], capacity: float, path: Path, episodes: int,
         title: str = "paper preset, Poisson") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True)
    for name in policies:
        mine = [r for r in rows if r["policy"] == name]
        colour, marker = STYLE.get(name, ("tab:purple", "x"))  # a trained agent: a colour of its own
        for ax, key in zip(axes, ("mean_latency", "p99_latency"), strict=True):
            ax.plot([r["load"] for r in mine], [r[key] for r in mine], marker=marker, color=colour, label=name)
    for ax, metric in zip(axes, ("mean latency", "p99 latency"), strict=True):
        ax.set_yscale("log")
        ax.axvline(0.7, color="grey", linestyle=":", linewidth=1)
        ax.set_xlabel(f"load = arrival rate / max-batch capacity ({capacity:.3f} requests/s)")
        ax.set_ylabel(f"{metric} (s)")
        ax.set_title(metric)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{title}, K = 100, {episodes} episodes per point", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
