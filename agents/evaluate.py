"""Evaluate policies on the same seeded episodes and print the benchmark table.

    python -m sdedge_agents.evaluate --env sdedge/EdgeSD-v0 --episodes 20 --seed 0
    python -m sdedge_agents.evaluate --env sdedge/EdgeSD-Small-Stochastic-v0 --policies oracle,planner,random \\
        --json results.json

Episode i of every policy uses ``reset(seed=S + i)``, so every policy faces the same episodes. The table
reports the objective (mean latency or makespan, s; lower is better) with a 95 % t-interval over episodes,
the gap to the oracle in %, the normalised score (R - R_random) / (R_oracle - R_random) on mean returns
(1 = oracle, 0 = random) and the wall time. The oracle and random are always evaluated (the score needs
them). Policies that set the band split themselves (``uniform-shares``) run on the same scenario in
"dict" mode when the env is discrete: the episode draw does not depend on the action mode.

Policy names: oracle, planner, planner-exact, window-planner, posterior-planner, posterior-window-planner, rollout,
best-constant, max-batch, autoregressive, uniform-shares, random, fixed:N:L (batch size N, speculation length L); on
the online ids (sdedge/EdgeSD-Online-*) the policies of sdedge_agents.online instead: oracle, planner,
planner-exact, posterior-planner, max-batch-timeout, timeout:N:T, dispatch-immediately, autoregressive,
uniform-shares, random. Everywhere: pretrained:NAME (a shipped agent of agents/pretrained, e.g.
pretrained:maskable-ppo-small), sb3:ALGO:PATH (a saved Stable-Baselines3 or sb3-contrib model, e.g.
sb3:MaskablePPO:agent.zip), composed:DIR (on the hybrid ids: a composed agent of :mod:`sdedge_agents.band_split`,
(n, l) from a discrete model and a learned band split), ensemble:MEMBER+MEMBER[+...] (MaskablePPO agents of one
discrete id acting as one, each member a model.zip or pretrained:NAME; :mod:`sdedge_agents.ensemble`),
chain-l:SPEC (in the discrete action mode, offline or online: policy SPEC's batch size with the service-chain
speculation length, the l best for that batch alone; :mod:`sdedge_agents.service_chain`),
module:Class (any class importable from a dotted module path, constructed as Class(env), with SB3's
``predict(observation, state, episode_start, deterministic)``; :class:`sdedge_agents.policy.Policy` is a base for
one). Only pretrained, sb3, composed and ensemble import torch; MaskablePPO agents are given the env's action mask.
From Python, ``evaluate(..., factories={"name": factory})`` adds policies trained elsewhere (RLlib, TorchRL, a
CleanRL script): ``factory(env)`` returns an object with SB3's ``predict`` bound to that env.

``--benchmark`` prints one row per policy in docs/BENCHMARK.md's results-table format instead, on the
protocol's held-out test episodes (``sdedge_agents.protocol.TEST_SEEDS``, 500..599) unless --seed/--episodes say
otherwise; the references it needs (oracle, random, planner, the fixed baselines) are evaluated on the same
episodes:

    python -m sdedge_agents.evaluate --benchmark --env sdedge/EdgeSD-Small-v0 --policies pretrained:maskable-ppo-small

``--deep-fades`` plays the protocol's deep-fade test episodes instead (``sdedge_agents.protocol.deep_fade_seeds``:
episodes that each hold a user whose upload alone takes longer than 30 s, a rare event that the test episodes
500..599 happen not to sample; docs/BENCHMARK.md, "Rare events: deep fades").
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import sdedge_gym  # registers the ids
from sdedge_agents.baselines import Autoregressive, BestConstant, FixedAction, MaxBatch, RandomPolicy
from sdedge_agents.online import ONLINE_DEFAULT_POLICIES, ONLINE_POLICIES, make_online_policy
from sdedge_agents.oracle import DPOracle, UniformShares
from sdedge_agents.planner import MPCPlanner, PosteriorPlanner, RolloutPlanner, WindowPlanner
from sdedge_agents.protocol import TEST_SEEDS, deep_fade_seeds, held_out_env_kwargs
from sdedge_agents.service_chain import PREFIX as CHAIN_PREFIX
from sdedge_agents.service_chain import ServiceChainSpeculation
from sdedge_agents.service_chain import check_env as check_chain_env
from sdedge_agents.statistics import episode_gaps, mean_interval
from sdedge_gym.config import TRACE_WINDOWS
from sdedge_gym.online_env import EdgeSDOnlineEnv

DEFAULT_POLICIES = ("oracle", "planner", "best-constant", "max-batch", "autoregressive", "uniform-shares",
                    "random")
REFERENCE = ("oracle", "random")
# The deployable baselines (no oracle knowledge of the episode) whose best is the "best baseline" gap.
FIXED_BASELINES = ("best-constant", "max-batch", "autoregressive")
# The online ids' fixed baselines (the timeout tuned on training episodes).
ONLINE_FIXED_BASELINES = ("max-batch-timeout-tuned", "dispatch-immediately", "autoregressive")
_NEEDS_BAND_CONTROL = ("uniform-shares",)


@dataclass
class PolicyResult:
    """One policy's results over the evaluation episodes."""

    policy: str
    objective: str
    values: list[float]  # per-episode objective (mean latency or makespan), s
    returns: list[float]  # per-episode return (= -value)
    mean: float
    half_width: float  # 95 % t-interval half width of the mean value
    gap_percent: float  # 100 (mean / oracle mean - 1)
    score: float  # (R - R_random) / (R_oracle - R_random)
    wall_time: float  # s, including planning
    action_mode: str


def progress_counter(total: int, enabled: bool):
    """Progress on stderr, None when disabled: a tqdm bar on a terminal (when tqdm is installed), else
    :class:`ProgressLines` (a bar's carriage returns would run together in a log file)."""
    if not enabled:
        return None
    if sys.stderr.isatty():
        try:
            from tqdm import tqdm
        except ImportError:
            pass
        else:
            return tqdm(total=total, unit="episode", file=sys.stderr, leave=False)
    return ProgressLines(total, inline=sys.stderr.isatty())


class ProgressLines:
    """A plain progress counter on stderr: rewritten in place on a terminal (``inline``), else one line per
    tenth of the total, so that a log reads ``oracle 7/70 episodes`` line by line."""

    def __init__(self, total: int, inline: bool = False) -> None:
        self.total, self.done, self.inline, self.text = total, 0, inline, ""
        self._printed_tenths = 0

    def set_description(self, text: str) -> None:
        self.text = text

    def update(self, count: int = 1) -> None:
        self.done += count
        line = f"{self.text} {self.done}/{self.total} episodes".strip()
        if self.inline:
            print(f"\r{line}", end="", file=sys.stderr, flush=True)
            return
        tenths = 10 * self.done // max(self.total, 1)
        if tenths > self._printed_tenths or self.done == self.total:
            self._printed_tenths = tenths
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.inline:
            print(file=sys.stderr)


def _sb3_path(spec: str) -> str:
    """The model file of ``sb3:ALGO:PATH`` (SB3's ``load`` also tries PATH + ".zip"); ValueError if neither exists."""
    path = spec.split(":", 2)[2]
    if not path or not (os.path.isfile(path) or os.path.isfile(path + ".zip")):
        raise ValueError(f"policy {spec!r}: no model file {path!r}" + ("" if path.endswith(".zip") else
                         f" (nor {path + '.zip'!r})") + "; allowed: sb3:ALGO:PATH with PATH a saved model (.zip)")
    model_file = path if os.path.isfile(path) else path + ".zip"
    if not zipfile.is_zipfile(model_file):  # SB3 would end in a traceback deep inside its loader
        raise ValueError(f"policy {spec!r}: {model_file!r} is not a zip archive; allowed: sb3:ALGO:PATH with PATH a "
                         "model saved by Stable-Baselines3 (model.save writes a .zip)")
    return path


def _sb3_policy(spec: str, env) -> Any:
    _, algo, _ = spec.split(":", 2)
    path = _sb3_path(spec)
    if algo in ("MaskablePPO", "RecurrentPPO", "QRDQN", "TQC", "TRPO", "ARS", "CrossQ"):
        import sb3_contrib as library
    else:
        import stable_baselines3 as library
    if not hasattr(library, algo):
        raise ValueError(f"policy {spec!r}: unknown algorithm {algo!r}; allowed: a class of stable_baselines3 "
                         "or sb3_contrib, e.g. PPO, A2C, DQN, MaskablePPO")
    from sdedge_agents.pretrained import PretrainedPolicy  # applies the env's mask to MaskablePPO

    return PretrainedPolicy(spec, getattr(library, algo).load(path, device="cpu"), env,
                            uses_mask=algo == "MaskablePPO")


# Trained agents, which play any family's env (the other names mean a different policy on the online ids).
TRAINED_PREFIXES = ("sb3:", "pretrained:", "ensemble:")

POLICY_FACTORIES: dict[str, Callable[[Any], Any]] = {
    "oracle": DPOracle,
    "planner": MPCPlanner,
    "planner-exact": lambda e: MPCPlanner(e, exact=True),
    "window-planner": WindowPlanner,
    "posterior-planner": PosteriorPlanner,
    "posterior-window-planner": lambda e: PosteriorPlanner(e, window=True),
    "rollout": RolloutPlanner,
    "best-constant": BestConstant,
    "max-batch": MaxBatch,
    "autoregressive": Autoregressive,
    "uniform-shares": UniformShares,
    "random": RandomPolicy,
}


def check_policy_spec(spec: str, env) -> None:
    """ValueError if ``spec`` cannot name a policy for ``env``, without building it (nothing slow, no torch).

    Run on every name before any policy runs, so that a typo fails at once rather than after the oracle.
    """
    if spec.startswith(CHAIN_PREFIX):
        check_chain_env(env, spec)
        check_policy_spec(spec.removeprefix(CHAIN_PREFIX), env)
        return
    if isinstance(env.unwrapped, EdgeSDOnlineEnv) and not spec.startswith(TRAINED_PREFIXES):
        if spec not in ONLINE_POLICIES:
            make_online_policy(spec, env)  # timeout:N:T is checked by building it; anything else raises the names
        return
    if spec in POLICY_FACTORIES:
        return
    if spec.startswith("fixed:"):
        try:
            make_policy(spec, env)  # cheap: validates N and L against the env's limits
        except ValueError as error:
            raise ValueError(f"policy {spec!r}: {error}") from None
    elif spec.startswith("sb3:") and spec.count(":") >= 2:
        _sb3_path(spec)
    elif spec.startswith("composed:"):
        directory = Path(spec.split(":", 1)[1])
        if not (directory / "split.pt").exists():
            raise ValueError(f"policy {spec!r}: {directory / 'split.pt'} does not exist; allowed: composed:DIR with "
                             "the directory python -m sdedge_agents.band_split fit wrote")
    elif spec.startswith("ensemble:"):
        check_ensemble_members(ensemble_members(spec), spec)
    elif spec.startswith("pretrained:"):
        from sdedge_agents.pretrained import PRETRAINED  # the cards only: no torch

        name = spec.split(":", 1)[1]
        if name not in PRETRAINED:
            raise ValueError(f"policy {spec!r}: pretrained agent {name!r} is unknown; allowed: "
                             f"{' | '.join(PRETRAINED)}")
    else:
        make_policy(spec, env)  # raises the list of allowed names


def make_policy(spec: str, env, extra: Mapping[str, Callable[[Any], Any]] | None = None) -> Any:
    """The policy named ``spec`` bound to ``env`` (see the module docstring for the names).

    ``extra`` maps further names to factories ``factory(env) -> policy with predict`` (checked first).
    """
    if extra and spec in extra:
        return extra[spec](env)
    if spec.startswith(CHAIN_PREFIX):  # the wrapper checks the env's action mode
        return ServiceChainSpeculation(env, make_policy(spec.removeprefix(CHAIN_PREFIX), env, extra), name=spec)
    if isinstance(env.unwrapped, EdgeSDOnlineEnv) and not spec.startswith(TRAINED_PREFIXES):
        return make_online_policy(spec, env)
    factories = POLICY_FACTORIES
    if spec in factories:
        return factories[spec](env)
    if spec.startswith("fixed:"):
        parts = spec.split(":")
        if len(parts) != 3 or not (parts[1].isdigit() and parts[2].isdigit()):
            raise ValueError(f"policy {spec!r} is invalid; allowed: fixed:N:L with integers N >= 1, L >= 0")
        return FixedAction(env, int(parts[1]), int(parts[2]))
    if spec.startswith("sb3:") and spec.count(":") >= 2:
        return _sb3_policy(spec, env)
    if spec.startswith("composed:"):
        from sdedge_agents.band_split import ComposedHybridPolicy  # torch only when a trained agent is asked for

        return ComposedHybridPolicy.load(spec.split(":", 1)[1], env)
    if spec.startswith("pretrained:"):
        from sdedge_agents.pretrained import load_pretrained  # torch only when a trained agent is asked for

        return load_pretrained(spec.split(":", 1)[1], env)
    if spec.startswith("ensemble:"):
        from sdedge_agents.ensemble import EnsemblePolicy

        return EnsemblePolicy.load(ensemble_members(spec), env, name=spec)
    if spec.count(":") == 1:
        return _class_policy(spec, env)
    raise ValueError(f"policy {spec!r} is unknown; allowed: {', '.join(factories)}, fixed:N:L, pretrained:NAME, "
                     "sb3:ALGO:PATH, composed:DIR, ensemble:MEMBER+MEMBER[+...], chain-l:SPEC, module:Class")


def ensemble_members(spec: str) -> list[str]:
    """The members named by ``ensemble:MEMBER+MEMBER+...``, as given (:func:`check_ensemble_members` checks them)."""
    return [member for member in spec.split(":", 1)[1].split("+") if member]


def check_ensemble_members(members: Sequence[str], name: str) -> None:
    """ValueError unless ``members`` are at least two, each an existing MaskablePPO model.zip or a shipped
    MaskablePPO agent's pretrained:NAME; no torch (``name``: the ensemble's, for the message)."""
    if len(members) < 2:
        raise ValueError(f"policy {name!r} has {len(members)} member(s); allowed: ensemble:MEMBER+MEMBER[+...] with "
                         "at least two members, each a MaskablePPO model.zip or pretrained:NAME")
    for member in members:
        if member.startswith("pretrained:"):
            from sdedge_agents.pretrained import PRETRAINED  # the cards only: no torch

            agent = member.split(":", 1)[1]
            if agent not in PRETRAINED or PRETRAINED[agent].algo != "maskable_ppo":
                allowed = " | ".join(n for n, a in PRETRAINED.items() if a.algo == "maskable_ppo")
                raise ValueError(f"policy {name!r}: member {member!r} is not a shipped MaskablePPO agent; allowed: "
                                 f"pretrained:NAME with NAME one of {allowed}")
        elif not (member.endswith(".zip") and Path(member).exists()):
            raise ValueError(f"policy {name!r}: member {member!r} is not an existing model.zip; allowed: a "
                             "MaskablePPO model.zip or pretrained:NAME")


def _class_policy(spec: str, env) -> Any:
    """``module:Class`` constructed as ``Class(env)``; it must have SB3's ``predict``."""
    import importlib

    module_name, class_name = spec.split(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"policy {spec!r}: cannot import {class_name} from {module_name} ({error}); allowed: "
                         "module:Class with an importable dotted module path") from error
    policy = cls(env)
    if not callable(getattr(policy, "predict", None)):
        raise TypeError(f"policy {spec!r}: {class_name}(env) has no predict(observation, state, episode_start, "
                        "deterministic) method; allowed: a class with SB3's predict, e.g. a subclass of "
                        "sdedge_agents.policy.Policy")
    return policy


def _env_for(spec: str, env_id: str, base_env, env_kwargs: Mapping[str, Any]):
    """The env a policy runs on: the requested one, or its dict-mode twin for band-splitting policies."""
    if spec in _NEEDS_BAND_CONTROL and base_env.unwrapped.action_mode == "discrete":
        # The same class (offline or online env) on the same scenario: the episode draw ignores the mode.
        return type(base_env.unwrapped)(scenario=base_env.unwrapped.scenario, action_mode="dict")
    return gym.make(env_id, disable_env_checker=True, **env_kwargs)


def run_episodes(policy: Any, env, seeds: Sequence[int], progress=None) -> list[float]:
    """The return of ``policy`` on each seeded episode of ``env``."""
    returns = []
    for seed in seeds:
        observation, _ = env.reset(seed=int(seed))
        state, episode_start, total, done = None, True, 0.0, False
        while not done:
            action, state = policy.predict(observation, state=state, episode_start=np.array([episode_start]),
                                           deterministic=True)
            observation, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            episode_start = False
            done = terminated or truncated
        returns.append(total)
        if progress is not None:
            progress.update(1)
    return returns


def evaluate(env_id: str, episodes: int = 20, seed: int = 0, policies: Sequence[str] | None = None,
             progress: bool = True, factories: Mapping[str, Callable[[Any], Any]] | None = None,
             env_kwargs: Mapping[str, Any] | None = None, seeds: Sequence[int] | None = None) -> list[PolicyResult]:
    """Evaluate ``policies`` (plus the oracle and random) on episodes seeded seed, seed + 1, ... (or on the
    episodes of the given ``seeds``, which then replace ``episodes`` and ``seed``).

    ``policies`` defaults to DEFAULT_POLICIES, or ONLINE_DEFAULT_POLICIES on an online id. ``factories``
    adds named policies trained elsewhere (see :func:`make_policy`); ``env_kwargs`` are passed to every
    ``gym.make(env_id, ...)`` (e.g. the ``num_tasks`` an agent was trained with).
    """
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes = {episodes!r} is invalid; allowed: an integer >= 1")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed = {seed!r} is invalid; allowed: an integer >= 0 (numpy seeds are non-negative)")
    if seeds is None:
        seeds = [seed + i for i in range(episodes)]
    else:
        seeds = [int(s) for s in seeds]
        episodes = len(seeds)
    env_kwargs = dict(env_kwargs or {})
    base = gym.make(env_id, disable_env_checker=True, **env_kwargs)
    if policies is None:
        policies = ONLINE_DEFAULT_POLICIES if isinstance(base.unwrapped, EdgeSDOnlineEnv) else DEFAULT_POLICIES
    names = list(dict.fromkeys([*REFERENCE, *policies]))
    try:
        for name in names:
            if not (factories and name in factories):
                check_policy_spec(name, base.unwrapped)
    except ValueError:
        base.close()
        raise
    objective = base.unwrapped.scenario.objective
    bar = progress_counter(episodes * len(names), progress and episodes * len(names) > 5)
    raw: dict[str, tuple[list[float], float, str]] = {}
    try:
        for name in names:
            env = _env_for(name, env_id, base, env_kwargs)
            if bar is not None:
                bar.set_description(name)
            start = time.perf_counter()
            policy = make_policy(name, env, factories)
            returns = run_episodes(policy, env, seeds, bar)
            raw[name] = (returns, time.perf_counter() - start, env.unwrapped.action_mode)
            env.close()
    finally:
        if bar is not None:
            bar.close()
        base.close()
    oracle_return = float(np.mean(raw["oracle"][0]))
    random_return = float(np.mean(raw["random"][0]))
    results = []
    for name in names:
        returns, wall, mode = raw[name]
        values = [-r for r in returns]
        mean, half = mean_interval(values)
        spread = oracle_return - random_return
        score = float((np.mean(returns) - random_return) / spread) if spread != 0 else float("nan")
        results.append(PolicyResult(name, objective, values, returns, mean, half,
                                    100.0 * (mean / -oracle_return - 1.0), score, wall, mode))
    return results


def format_table(results: Sequence[PolicyResult]) -> str:
    """A Markdown table, best policy first."""
    label = "mean latency (s)" if results[0].objective == "mean_latency" else "makespan (s)"
    lines = [f"| policy | {label} | gap to oracle | score | wall time (s) |", "|---|---:|---:|---:|---:|"]
    for r in sorted(results, key=lambda r: r.mean):
        name = r.policy if r.action_mode in ("discrete",) else f"{r.policy} ({r.action_mode})"
        lines.append(f"| {name} | {r.mean:.3f} ± {r.half_width:.3f} | {r.gap_percent:+.1f} % | {r.score:.3f} | "
                     f"{r.wall_time:.1f} |")
    return "\n".join(lines)


def format_episode_gaps(results: Sequence[PolicyResult]) -> str:
    """A Markdown table of each policy's gaps to the oracle episode by episode (100 (v_e / o_e - 1), every episode
    weighing the same), best first: for episodes whose objectives differ by orders of magnitude (deep fades),
    where the table of means is the worst episode's."""
    oracle = next(r for r in results if r.policy == "oracle").values
    lines = ["| policy | mean per-episode gap | median | episodes over 5 % | worst |", "|---|---:|---:|---:|---:|"]
    rows = []
    for r in results:
        gaps = episode_gaps(r.values, oracle)
        name = r.policy if r.action_mode == "discrete" else f"{r.policy} ({r.action_mode})"
        rows.append((gaps.mean(), f"| {name} | {gaps.mean():+.2f} % | {np.median(gaps):+.2f} % | "
                                  f"{int((gaps > 5.0).sum())} of {gaps.size} | {gaps.max():+.1f} % |"))
    return "\n".join(lines + [row for _, row in sorted(rows, key=lambda row: row[0])])


def _at_least(low: int) -> Callable[[str], int]:
    """An argparse type: an integer >= low (argparse turns the ValueError into a usage error)."""
    def parse(text: str) -> int:
        value = int(text)
        if value < low:
            raise ValueError(text)
        return value

    parse.__name__ = f"integer >= {low}"  # argparse names the type in its message
    return parse


BENCHMARK_HEADER = ("| id | policy | mean latency (s) ± 95 % | gap to oracle | gap to best baseline | score | "
                    "planner gap / score | episodes |\n|---|---|---:|---:|---:|---:|---:|---|")


def benchmark_rows(env_id: str, policies: Sequence[str], episodes: int = len(TEST_SEEDS),
                   seed: int = TEST_SEEDS[0], progress: bool = True) -> list[str]:
    """One docs/BENCHMARK.md results-table row per policy, with the references evaluated on the same episodes.

    Gap to best baseline: 100 (mean / min over FIXED_BASELINES of their means - 1; ONLINE_FIXED_BASELINES on an
    online id), negative when better. On a trace id the episodes are windows of the trace's test part
    (``protocol.held_out_env_kwargs``).
    """
    online = env_id in sdedge_gym.ONLINE_ENV_IDS
    baselines = ONLINE_FIXED_BASELINES if online else FIXED_BASELINES
    references = ("oracle", "random", "planner", *baselines)
    results = {r.policy: r for r in evaluate(env_id, episodes, seed, [*references, *policies], progress,
                                             env_kwargs=held_out_env_kwargs(env_id))}
    best = min(results[b].mean for b in baselines)
    planner = results["planner"]
    label = f"{seed}..{seed + episodes - 1}"
    rows = []
    for name in policies:
        r = results[name]
        shown = name if r.action_mode == "discrete" else f"{name} ({r.action_mode})"
        unit = "" if r.objective == "mean_latency" else " (makespan)"
        rows.append(f"| `{env_id}` | {shown} | {r.mean:.3f} ± {r.half_width:.3f}{unit} | {r.gap_percent:+.1f} % | "
                    f"{100.0 * (r.mean / best - 1.0):+.1f} % | {r.score:.3f} | "
                    f"{planner.gap_percent:+.1f} % / {planner.score:.3f} | {label} |")
    return rows


def main(argv: Sequence[str] | None = None, prog: str = "python -m sdedge_agents.evaluate") -> int:
    """The command line (``prog`` is what usage lines call it: ``sdedge-gym evaluate`` passes its own)."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="sdedge/EdgeSD-v0",
                        help="a registered single-cell id (sdedge_gym.SINGLE_CELL_ENV_IDS)")
    parser.add_argument("--episodes", type=_at_least(1), default=None,
                        help=f"episodes (default 20; with --benchmark {len(TEST_SEEDS)}, the test seeds)")
    parser.add_argument("--seed", type=_at_least(0), default=None,
                        help=f"episode i uses seed S + i, S >= 0 (default 0; with --benchmark {TEST_SEEDS[0]})")
    parser.add_argument("--benchmark", action="store_true",
                        help="print docs/BENCHMARK.md results-table rows for --policies (held-out test seeds)")
    parser.add_argument("--policies", default=None,
                        help="comma-separated policy names (oracle and random are always added); default: "
                             f"{','.join(DEFAULT_POLICIES)} (online ids: {','.join(ONLINE_DEFAULT_POLICIES)})")
    parser.add_argument("--deep-fades", action="store_true",
                        help="play the protocol's deep-fade test episodes (sdedge_agents.protocol.deep_fade_seeds: "
                             "each holds a user whose upload alone takes > 30 s; --episodes of them, default 100) "
                             "instead of seeds from --seed; offline ids")
    parser.add_argument("--trace-window", choices=TRACE_WINDOWS, default=None,
                        help="trace ids: where the episodes' windows start (default: the id's 'train'; with "
                             "--benchmark 'test', the held-out last 30 %% of the trace)")
    parser.add_argument("--json", default=None, help="also write the per-episode results to this file")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress output on stderr (default: a bar on a terminal, else a line per 10 %% "
                             "of the episodes)")
    args = parser.parse_args(argv)
    if args.env not in sdedge_gym.SINGLE_CELL_ENV_IDS:
        parser.error(f"--env {args.env!r} is not a registered single-cell id; allowed: "
                     f"{', '.join(sdedge_gym.SINGLE_CELL_ENV_IDS)} (the multi-cell ids' references: "
                     "scripts/multicell_bounds.py)")
    policies = None if args.policies is None else [p.strip() for p in args.policies.split(",") if p.strip()]
    arrivals = gym.spec(args.env).kwargs.get("arrivals") or {}
    env_kwargs = {}
    if args.trace_window is not None:
        if arrivals.get("process") != "trace":
            parser.error(f"--trace-window applies to the trace ids only; {args.env!r} has no trace")
        env_kwargs = {"arrivals": {**arrivals, "trace_window": args.trace_window}}
    env = gym.make(args.env, disable_env_checker=True, **env_kwargs)
    try:
        for name in policies or ():
            check_policy_spec(name, env.unwrapped)
    except ValueError as error:
        parser.error(f"--policies: {error}")
    finally:
        env.close()
    if args.benchmark and args.deep_fades:
        parser.error("--deep-fades is invalid with --benchmark (the results table's rows are the test episodes)")
    if args.benchmark:
        episodes = len(TEST_SEEDS) if args.episodes is None else args.episodes
        seed = TEST_SEEDS[0] if args.seed is None else args.seed
        print(BENCHMARK_HEADER)
        defaults = ONLINE_DEFAULT_POLICIES if args.env in sdedge_gym.ONLINE_ENV_IDS else DEFAULT_POLICIES
        print("\n".join(benchmark_rows(args.env, policies or defaults, episodes, seed,
                                        progress=not args.no_progress)))
        return 0
    if args.deep_fades:
        if args.seed is not None or args.env in sdedge_gym.ONLINE_ENV_IDS:
            parser.error("--deep-fades is invalid with --seed or an online id; allowed: an offline id, --episodes")
        try:
            seeds = deep_fade_seeds(args.env, 100 if args.episodes is None else args.episodes)
        except ValueError as error:
            parser.error(f"--deep-fades: {error}")
        described = f"{len(seeds)} deep-fade episodes (protocol.deep_fade_seeds), seeds {seeds[0]}..{seeds[-1]}"
    else:
        first = 0 if args.seed is None else args.seed
        seeds = list(range(first, first + (20 if args.episodes is None else args.episodes)))
        described = f"{len(seeds)} episodes, seeds {first}..{seeds[-1]}"
    results = evaluate(args.env, policies=policies, progress=not args.no_progress, env_kwargs=env_kwargs,
                       seeds=seeds)
    print(f"{args.env}: {described}")
    print(format_table(results))
    if args.deep_fades:  # a fade's upload can last hours: the means above are the worst episode's
        print("\nPer episode (every episode weighing the same):")
        print(format_episode_gaps(results))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"env": args.env, "episodes": len(seeds), "seed": seeds[0], "seeds": seeds,
                       "results": [asdict(r) for r in results]}, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
