"""Scenario presets and the one way to build a scenario with overrides.

* ``paper``  — the seed paper's setting: K = 100 requests, LLaMA-68M on an RTX 3080 (SBS) drafting for
  LLaMA-7B on an RTX 4500 Ada (MBS); each request carries a 0.25-1.25 MB context attachment; n_max = 24
  (memory allows 22), l_max = 8.
* ``small``  — K = 8 short requests with smaller attachments, n_max = 4, l_max = 4: fast training and
  exhaustive checks.
* ``large``  — the paper's setting at K = 1000: scale.
* ``uplink`` — a bandwidth-bound cell: K = 50 requests over half the band (0.5 MHz) with users out to
  400 m, so the uplink is the bottleneck and the band split decides much of the latency.

Everything the seed paper did not fix (distributions, radio figures, overheads) is this project's
calibration, chosen so that every action dimension matters on the default scenario; docs/MODEL.md says
why each number is what it is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from sdedge_gym.catalogue import GPUS, MODELS
from sdedge_gym.config import NodeConfig, ScenarioConfig, UplinkConfig, WorkloadConfig


def _paper() -> ScenarioConfig:
    return ScenarioConfig(
        name="paper",
        draft=NodeConfig(gpu=GPUS["rtx-3080"], model=MODELS["llama-68m"], efficiency=0.5, pass_overhead=4e-3),
        target=NodeConfig(gpu=GPUS["rtx-4500-ada"], model=MODELS["llama-7b"], efficiency=0.3,
                          pass_overhead=2e-3),
        uplink=UplinkConfig(bandwidth=1e6),
        workload=WorkloadConfig(
            num_tasks=100,
            prompt_median=256.0, prompt_sigma=0.6, prompt_min=16, prompt_max=512,
            output_median=128.0, output_sigma=0.9, output_min=8, max_new_tokens=512,
            extra_bits_min=2e6, extra_bits_max=10e6,
            alpha_min=0.3, alpha_max=0.95,
        ),
        max_batch=24,
        max_speculation=8,
    )


def _small() -> ScenarioConfig:
    paper = _paper()
    return paper.replace(
        name="small",
        workload=paper.workload.replace(num_tasks=8, prompt_median=128.0, prompt_max=256, output_median=48.0,
                                        max_new_tokens=128, extra_bits_min=0.5e6, extra_bits_max=2.5e6),
        max_batch=4,
        max_speculation=4,
    )


def _large() -> ScenarioConfig:
    paper = _paper()
    return paper.replace(name="large", workload=paper.workload.replace(num_tasks=1000))


def _uplink() -> ScenarioConfig:
    paper = _paper()
    return paper.replace(
        name="uplink",
        uplink=UplinkConfig(bandwidth=0.5e6),
        workload=paper.workload.replace(num_tasks=50, distance_max=400.0),
    )


PRESETS = {"small": _small, "paper": _paper, "large": _large, "uplink": _uplink}
# The flat keyword overrides: every top-level ScenarioConfig field but the name and the nested configs
# (those go in ``config=``), plus the ``num_tasks`` shortcut for ``workload.num_tasks``.
OVERRIDE_KEYS: tuple[str, ...] = (*(f.name for f in dataclasses.fields(ScenarioConfig)
                                    if f.name not in ("name", "draft", "target", "uplink", "fronthaul", "workload")),
                                  "num_tasks")


def check_override_keys(owner: str, overrides: Mapping[str, Any]) -> None:
    """A ``TypeError`` for an unknown keyword argument, worded as Python words its own.

    Python's convention (and what wrappers such as TorchRL's ``GymEnv`` test for before retrying without
    an optional keyword like ``frameskip``): ``<owner>() got an unexpected keyword argument 'x'``. Bad
    *values* of known keywords, and unknown keys inside ``config=``, stay ``ValueError``.
    """
    unknown = sorted(set(overrides) - set(OVERRIDE_KEYS))
    if unknown:
        others = f" (and {', '.join(repr(k) for k in unknown[1:])})" if len(unknown) > 1 else ""
        raise TypeError(f"{owner}() got an unexpected keyword argument {unknown[0]!r}{others}; allowed "
                        f"keyword overrides: {', '.join(OVERRIDE_KEYS)} (nested fields go in config=...)")


def make_scenario(preset: str | ScenarioConfig = "paper", config: Mapping[str, Any] | ScenarioConfig | None = None,
                  **overrides: Any) -> ScenarioConfig:
    """A preset, then a nested ``config`` dict merged over it, then flat keyword overrides.

    ``num_tasks`` is a shortcut for ``workload.num_tasks``. An unknown keyword override raises
    ``TypeError`` (Python's convention for an unexpected keyword argument); an unknown key inside
    ``config`` and every bad value raise ``ValueError``.
    """
    check_override_keys("make_scenario", overrides)
    if isinstance(preset, ScenarioConfig):
        scenario = preset
    elif preset in PRESETS:
        scenario = PRESETS[preset]()
    else:
        raise ValueError(f"unknown scenario preset {preset!r}; allowed: {sorted(PRESETS)}")
    if isinstance(config, ScenarioConfig):
        scenario = config
    elif config:
        merged = _deep_merge(scenario.to_dict(), config)
        scenario = ScenarioConfig.from_dict(merged)
    if "num_tasks" in overrides:
        scenario = scenario.replace(workload=scenario.workload.replace(num_tasks=overrides.pop("num_tasks")))
    if overrides:
        scenario = ScenarioConfig.from_dict({**scenario.to_dict(), **overrides})
    return scenario


def _deep_merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value  # unknown keys are kept so that from_dict can reject them by name
    return out
