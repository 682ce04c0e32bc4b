"""Hyperparameters per env id from the rl-zoo3-format YAML files under agents/ (the only copy of the numbers).

* ``agents/hyperparams.yml``: ``ppo`` and ``maskable_ppo`` (rl-zoo3's ``ppo`` / ``ppo_mask``), one entry per
  env id;
* ``agents/hyperparams-a2c.yml``, ``agents/hyperparams-dqn.yml``: one ``default`` entry each.

An entry holds rl-zoo3's keys — ``n_timesteps``, ``n_envs``, ``policy``, ``policy_kwargs`` (a string such as
``"dict(net_arch=[128, 128])"``), ``monitor_kwargs``, ``env_wrapper`` — and the algorithm's keyword
arguments. rl-zoo3 reads the id's entry, else ``default``; so does :func:`load_entry`.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

HYPERPARAMS_DIR = Path(__file__).resolve().parent
HYPERPARAMS_FILES: dict[str, Path] = {
    "ppo": HYPERPARAMS_DIR / "hyperparams.yml",
    "maskable_ppo": HYPERPARAMS_DIR / "hyperparams.yml",
    "a2c": HYPERPARAMS_DIR / "hyperparams-a2c.yml",
    "dqn": HYPERPARAMS_DIR / "hyperparams-dqn.yml",
}
# rl-zoo3 keys that are not keyword arguments of the algorithm.
_ZOO_KEYS = ("n_timesteps", "n_envs", "policy", "monitor_kwargs", "env_wrapper", "policy_kwargs")
# The env wrapper sdedge_agents.train applies itself for each algorithm (checked against the file's).
EXPECTED_ENV_WRAPPER = {"dqn": "sdedge_gym.wrappers.FlattenBatchSpeculation"}


@dataclass(frozen=True)
class Hyperparameters:
    """One entry of a hyperparameter file, split the way sdedge_agents.train uses it."""

    source: str  # "<file>:<key>"
    n_timesteps: int
    n_envs: int
    policy: str
    algorithm_kwargs: dict[str, Any]  # including policy_kwargs as a dict
    info_keywords: tuple[str, ...]


def load_entry(env_id: str, algo: str, path: Path | None = None) -> Hyperparameters:
    """The hyperparameters of ``algo`` on ``env_id`` (its entry, else ``default``); ValueError when absent."""
    if algo not in HYPERPARAMS_FILES:
        raise ValueError(f"algo = {algo!r} has no hyperparameter file; allowed: {' | '.join(HYPERPARAMS_FILES)}")
    path = Path(path) if path is not None else HYPERPARAMS_FILES[algo]
    table = yaml.safe_load(path.read_text())
    key = env_id if env_id in table else "default" if "default" in table else None
    if key is None:
        ids = sorted(k for k in table if k.startswith("sdedge/"))
        raise ValueError(f"--env {env_id!r} has no entry in {path}; allowed: one of {', '.join(ids)} (or add an "
                         "entry, or a 'default' one, to that file)")
    entry = dict(table[key])
    wrapper = entry.get("env_wrapper")
    if wrapper != EXPECTED_ENV_WRAPPER.get(algo):
        raise ValueError(f"{path}:{key}: env_wrapper = {wrapper!r}; allowed for {algo}: "
                         f"{EXPECTED_ENV_WRAPPER.get(algo)!r} (sdedge_agents.train applies that wrapper itself)")
    if entry.get("policy", "MlpPolicy") != "MlpPolicy":
        raise ValueError(f"{path}:{key}: policy = {entry['policy']!r}; allowed: 'MlpPolicy'")
    kwargs = {k: v for k, v in entry.items() if k not in _ZOO_KEYS}
    for name in SCHEDULED:  # checked here; the string stays (run.json records it) until the model is built
        if name in kwargs:
            parse_schedule(kwargs[name], f"{path}:{key}: {name}")
    if "policy_kwargs" in entry:
        kwargs["policy_kwargs"] = parse_call_dict(entry["policy_kwargs"], f"{path}:{key}: policy_kwargs")
    monitor = parse_call_dict(entry.get("monitor_kwargs", "dict()"), f"{path}:{key}: monitor_kwargs")
    return Hyperparameters(source=f"{path.name}:{key}", n_timesteps=int(float(entry["n_timesteps"])),
                           n_envs=int(entry.get("n_envs", 1)), policy="MlpPolicy", algorithm_kwargs=kwargs,
                           info_keywords=tuple(monitor.get("info_keywords", ())))


SCHEDULED = ("learning_rate", "clip_range")  # the keyword arguments SB3 takes as a schedule too


@dataclass(frozen=True)
class LinearSchedule:
    """rl-zoo3's ``"lin_<initial>"``: a value decayed linearly from ``initial`` to 0 over the run (SB3 calls it
    with progress_remaining, 1 at the start and 0 at the end). A class, so that a saved model pickles it."""

    initial: float

    def __call__(self, progress_remaining: float) -> float:
        return progress_remaining * self.initial


def parse_schedule(value: Any, name: str) -> float | LinearSchedule:
    """A number as it is, or rl-zoo3's ``"lin_<number>"`` as a :class:`LinearSchedule`."""
    if isinstance(value, str) and value.startswith("lin_"):
        try:
            initial = float(value[len("lin_"):])
        except ValueError:
            initial = float("nan")
        if initial > 0 and initial != float("inf"):
            return LinearSchedule(initial)
    elif isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < float("inf"):
        return float(value)
    raise ValueError(f"{name} = {value!r} is invalid; allowed: a number > 0 or \"lin_<number > 0>\" (decayed "
                     "linearly to 0 over the run, rl-zoo3's form)")


def parse_call_dict(text: Any, name: str) -> dict[str, Any]:
    """rl-zoo3's ``"dict(a=1, b=[2, 3])"`` strings as a dict of literals (no eval: only literal arguments)."""
    if isinstance(text, dict):
        return dict(text)
    try:
        call = ast.parse(str(text), mode="eval").body
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "dict"
                and not call.args):
            raise ValueError("not a dict(...) call")
        return {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
    except (SyntaxError, ValueError) as error:
        raise ValueError(f"{name} = {text!r} is invalid; allowed: a string dict(key=literal, ...), e.g. "
                         f"\"dict(net_arch=[128, 128])\" ({error})") from error
