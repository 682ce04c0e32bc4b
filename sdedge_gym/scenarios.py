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

Two options of ``make_scenario`` replace those choices by published figures without changing any preset:
``calibration="llamacpp-cuda-f16"`` gives both nodes the roofline parameters fitted to llama.cpp
measurements (sdedge_gym/calibration.py), and ``acceptance_dataset="spec-bench"`` sets alpha to the
published acceptance of the draft/target pair (catalogue ``ACCEPTANCE``); docs/FIDELITY.md has both.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from sdedge_gym.calibration import calibrate_node
from sdedge_gym.catalogue import GPUS, MODELS, acceptance_figure
from sdedge_gym.config import NodeConfig, ScenarioConfig, UplinkConfig, WorkloadConfig
from sdedge_gym.pass_profile import check_scenario_profiles


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


def _paper_2k() -> ScenarioConfig:
    """The paper preset at its models' full context (LLaMA-68M and LLaMA-7B: 2048 tokens): prompts up to
    1536 tokens, outputs up to 512, so that the trace ids keep most of the recorded prompt lengths (the KV
    cache of 2048 tokens a request lowers the memory batch limit to 11)."""
    paper = _paper()
    return paper.replace(name="paper-2k", workload=paper.workload.replace(prompt_max=1536))


PRESETS = {"small": _small, "paper": _paper, "large": _large, "uplink": _uplink}
# Presets of the trace ids only (no offline ids of their own); make_scenario accepts them by name.
TRACE_PRESETS = {"paper-2k": _paper_2k}
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
                  *, calibration: str | None = None, acceptance_dataset: str | None = None,
                  **overrides: Any) -> ScenarioConfig:
    """A preset, then a nested ``config`` dict merged over it, then flat keyword overrides.

    ``num_tasks`` is a shortcut for ``workload.num_tasks``. An unknown keyword override raises
    ``TypeError`` (Python's convention for an unexpected keyword argument); an unknown key inside
    ``config`` and every bad value raise ``ValueError``.
    ``calibration="llamacpp-cuda-f16"`` then replaces each node's mu, eta and t0 by the values fitted to
    llama.cpp measurements for its GPU class (an RTX 4500 Ada becomes the corrected full-rate spec);
    ``acceptance_dataset`` then sets alpha_min = alpha_max to the published acceptance of the scenario's
    draft/target pair on that dataset. A node ``profile`` is checked to cover the scenario's ranges.
    """
    check_override_keys("make_scenario", overrides)
    if isinstance(preset, ScenarioConfig):
        scenario = preset
    elif isinstance(preset, str) and preset in {**PRESETS, **TRACE_PRESETS}:
        scenario = {**PRESETS, **TRACE_PRESETS}[preset]()
    else:
        raise ValueError(f"unknown scenario preset {preset!r}; allowed: {sorted({**PRESETS, **TRACE_PRESETS})} or a "
                         "ScenarioConfig")
    if isinstance(config, ScenarioConfig):
        scenario = config
    elif isinstance(config, Mapping):
        if config:
            scenario = ScenarioConfig.from_dict(_deep_merge(scenario.to_dict(), config))
    elif config is not None:
        raise TypeError(f"config = {config!r} is invalid; allowed: None, a (nested) mapping of ScenarioConfig "
                        "fields, or a ScenarioConfig")
    if "num_tasks" in overrides:
        scenario = scenario.replace(workload=scenario.workload.replace(num_tasks=overrides.pop("num_tasks")))
    if overrides:
        scenario = ScenarioConfig.from_dict({**scenario.to_dict(), **overrides})
    if calibration is not None:
        scenario = scenario.replace(draft=calibrate_node(scenario.draft, "draft", calibration),
                                    target=calibrate_node(scenario.target, "target", calibration))
    if acceptance_dataset is not None:
        alpha = acceptance_figure(scenario.draft.model.name, scenario.target.model.name, acceptance_dataset).alpha
        scenario = scenario.replace(workload=scenario.workload.replace(alpha_min=alpha, alpha_max=alpha))
    check_scenario_profiles(scenario)
    return scenario


def _deep_merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value  # unknown keys are kept so that from_dict can reject them by name
    return out
