"""What a training run and an imitation run share: the run directory, run.json, and argument checks.

Both ``sdedge_agents.train`` and ``sdedge_agents.imitate`` write a run directory ``out/`` holding
``run.json`` (config, hyperparameters, status, evaluation), ``checkpoints/`` and ``model.zip``; this module
owns that layout, so neither imports the other's private helpers. No torch here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from sdedge_gym.registration import ENV_TABLE


class RunDirectory:
    """What a run's config derives from its ``env_id`` and ``out`` (mixed into both runs' configs)."""

    env_id: str
    out: str

    @property
    def action_mode(self) -> str:
        return ENV_TABLE[self.env_id]["action_mode"]

    @property
    def out_dir(self) -> Path:
        return Path(self.out)

    @property
    def checkpoint_dir(self) -> Path:
        return Path(self.out) / "checkpoints"


def check_int(name: str, value: Any, low: int, high: int | None = None) -> None:
    """ValueError naming the flag ``name`` unless ``value`` is an integer in [low, high] (no bools)."""
    ok = isinstance(value, int | np.integer) and not isinstance(value, bool) and value >= low
    ok = ok and (high is None or value <= high)
    if not ok:
        allowed = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"
        raise ValueError(f"{name} = {value!r} is invalid; allowed: {allowed}")


def read_run(out_dir: Path) -> dict[str, Any] | None:
    """The run's ``run.json``, or None when the directory holds no run yet."""
    path = out_dir / "run.json"
    return json.loads(path.read_text()) if path.exists() else None


def write_run(out_dir: Path, record: dict[str, Any]) -> None:
    """Write ``run.json`` then rename it into place, so that an interrupt never leaves a half-written one."""
    tmp = out_dir / "run.json.tmp"
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(out_dir / "run.json")


def jsonable(value: Any) -> Any:
    """Tuples as lists, recursively (what json writes), so that a record compares equal after a round trip."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value
