"""Configuration: every bad value names its field; dicts round-trip; unknown keys raise."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest

from sdedge_gym.catalogue import GPUS, MODELS
from sdedge_gym.config import (
    ArrivalConfig,
    FronthaulConfig,
    GpuSpec,
    ModelSpec,
    NodeConfig,
    ScenarioConfig,
    UplinkConfig,
    WorkloadConfig,
)
from sdedge_gym.scenarios import PRESETS, make_scenario

MODEL = dict(name="m", num_layers=2, hidden_size=64, kv_hidden_size=64, num_params=1e6, vocab_size=100)
GPU = dict(name="g", peak_flops=1e12, memory_bandwidth=1e11, memory_capacity=1e9)
NODE = dict(gpu=GPUS["rtx-3080"], model=MODELS["llama-68m"])
SCENARIO = dict(name="s", draft=NodeConfig(**NODE), target=NodeConfig(**NODE))

# (class, valid keyword arguments, field, bad value)
BAD_VALUES: list[tuple[type, dict[str, Any], str, Any]] = [
    (ModelSpec, MODEL, "num_layers", 0),
    (ModelSpec, MODEL, "num_layers", 2.5),
    (ModelSpec, MODEL, "hidden_size", -1),
    (ModelSpec, MODEL, "kv_hidden_size", 128),  # wider than hidden_size
    (ModelSpec, MODEL, "num_params", 0.0),
    (ModelSpec, MODEL, "num_params", math.inf),
    (ModelSpec, MODEL, "vocab_size", True),
    (GpuSpec, GPU, "peak_flops", -1e12),
    (GpuSpec, GPU, "memory_bandwidth", math.nan),
    (GpuSpec, GPU, "memory_capacity", "24GB"),
    (NodeConfig, NODE, "gpu", "not-a-spec"),
    (NodeConfig, NODE, "model", 7),
    (NodeConfig, NODE, "efficiency", 0.0),
    (NodeConfig, NODE, "efficiency", 1.5),
    (NodeConfig, NODE, "pass_overhead", -1e-3),
    (NodeConfig, NODE, "bytes_per_param", 3),
    (NodeConfig, NODE, "memory_efficiency", 0.0),
    (NodeConfig, NODE, "memory_efficiency", 1.2),
    (NodeConfig, NODE, "profile", ""),
    (UplinkConfig, {}, "bandwidth", 0.0),
    (UplinkConfig, {}, "transmit_power", -0.2),
    (UplinkConfig, {}, "noise_density", math.inf),
    (UplinkConfig, {}, "rate_model", "shanon"),
    (UplinkConfig, {}, "bits_per_token", 0),
    (FronthaulConfig, {}, "rate", 0.0),
    (FronthaulConfig, {}, "latency", -1.0),
    (FronthaulConfig, {}, "draft_token_bits", -64.0),
    (WorkloadConfig, {}, "num_tasks", 0),
    (WorkloadConfig, {}, "num_tasks", 100_001),
    (WorkloadConfig, {}, "prompt_median", 0.0),
    (WorkloadConfig, {}, "prompt_sigma", -0.1),
    (WorkloadConfig, {}, "prompt_min", 0),
    (WorkloadConfig, {}, "prompt_max", 8),  # below prompt_min = 16
    (WorkloadConfig, {}, "output_median", -5.0),
    (WorkloadConfig, {}, "output_sigma", math.nan),
    (WorkloadConfig, {}, "output_min", 1.5),
    (WorkloadConfig, {}, "max_new_tokens", 4),  # below output_min = 8
    (WorkloadConfig, {}, "max_new_tokens", 10_000),
    (WorkloadConfig, {}, "extra_bits_min", -1.0),
    (WorkloadConfig, {"extra_bits_min": 5.0, "extra_bits_max": 5.0}, "extra_bits_max", 1.0),
    (WorkloadConfig, {}, "distance_min", 0.0),
    (WorkloadConfig, {}, "distance_max", 10.0),  # below distance_min = 20
    (WorkloadConfig, {}, "path_loss_db_at_1km", -1.0),
    (WorkloadConfig, {}, "path_loss_db_per_decade", -37.6),
    (WorkloadConfig, {}, "rayleigh_fading", "no"),  # a truthy string must not silently mean True
    (WorkloadConfig, {}, "spectral_efficiency_min", 0.0),
    (WorkloadConfig, {}, "spectral_efficiency_max", 0.5),  # below spectral_efficiency_min = 1
    (WorkloadConfig, {}, "alpha_min", -0.1),
    (WorkloadConfig, {}, "alpha_max", 1.0),
    (WorkloadConfig, {"alpha_min": 0.9, "alpha_max": 0.9}, "alpha_max", 0.5),
    (WorkloadConfig, {}, "alpha_estimate_noise", -0.1),
    (WorkloadConfig, {}, "output_hint_sigma", math.inf),
    (ScenarioConfig, SCENARIO, "draft", "rtx-3080"),
    (ScenarioConfig, SCENARIO, "target", None),
    (ScenarioConfig, SCENARIO, "max_batch", 0),
    (ScenarioConfig, SCENARIO, "max_batch", 257),
    (ScenarioConfig, SCENARIO, "max_speculation", -1),
    (ScenarioConfig, SCENARIO, "max_speculation", 33),
    (ScenarioConfig, SCENARIO, "max_speculation", False),
    (ScenarioConfig, SCENARIO, "pipelining", 1),
    (ScenarioConfig, SCENARIO, "acceptance", "sample"),
    (ScenarioConfig, SCENARIO, "clairvoyant", "yes"),
    (ScenarioConfig, SCENARIO, "objective", "latency"),
    (ScenarioConfig, SCENARIO, "queue_order", "fifo"),
    (ScenarioConfig, SCENARIO, "arrivals", "poisson"),
    (ArrivalConfig, {}, "process", "batch"),
    (ArrivalConfig, {}, "arrival_rate", 0.0),
    (ArrivalConfig, {}, "arrival_rate", True),
    (ArrivalConfig, {}, "burst_rate", -1.0),
    (ArrivalConfig, {}, "calm_duration", math.nan),
    (ArrivalConfig, {}, "burst_duration", math.inf),
    (ArrivalConfig, {}, "trace", 3),
    (ArrivalConfig, {"process": "trace", "trace": "t.csv"}, "trace", ""),  # a trace process needs a path
    (ArrivalConfig, {}, "slo", "1 min"),
    (ArrivalConfig, {"process": "trace", "trace": "t.csv"}, "trace_window", "later"),
    (ArrivalConfig, {"process": "trace", "trace": "t.csv"}, "load", 0.0),
    (ArrivalConfig, {"process": "poisson"}, "load", 0.7),  # load rescales a trace only
]


@pytest.mark.parametrize(("cls", "valid", "field", "value"), BAD_VALUES,
                         ids=[f"{c.__name__}.{f}={v!r}" for c, _, f, v in BAD_VALUES])
def test_a_bad_value_raises_naming_the_field_and_what_is_allowed(cls: type, valid: dict, field: str,
                                                                 value: Any) -> None:
    cls(**valid)  # the base arguments are valid
    with pytest.raises(ValueError, match=rf"\.{field} = .* is invalid; allowed: \S"):
        cls(**{**valid, field: value})


def test_the_table_covers_every_validated_field() -> None:
    # Free-form names and sources, and the nested configs (validated by their own classes), are left out.
    unvalidated = {"name", "source", "uplink", "fronthaul", "workload"}
    covered = {(cls, field) for cls, _, field, _ in BAD_VALUES}
    for cls in (ModelSpec, GpuSpec, NodeConfig, UplinkConfig, FronthaulConfig, WorkloadConfig, ScenarioConfig,
                ArrivalConfig):
        for f in dataclasses.fields(cls):
            if f.name not in unvalidated:
                assert (cls, f.name) in covered, f"{cls.__name__}.{f.name} has no bad-value case"


def test_configs_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        UplinkConfig().bandwidth = 2e6  # type: ignore[misc]


def test_replace_validates_again() -> None:
    with pytest.raises(ValueError, match=r"UplinkConfig\.bandwidth"):
        UplinkConfig().replace(bandwidth=-1.0)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_round_trips_through_a_dict(preset: str) -> None:
    scenario = make_scenario(preset)
    data = scenario.to_dict()
    assert isinstance(data["draft"]["gpu"], dict)  # nested all the way down
    assert ScenarioConfig.from_dict(data) == scenario


def test_from_dict_accepts_catalogue_names() -> None:
    node = NodeConfig.from_dict({"gpu": "rtx-4500-ada", "model": "llama-7b", "efficiency": 0.3})
    assert node.gpu == GPUS["rtx-4500-ada"] and node.model == MODELS["llama-7b"]
    with pytest.raises(ValueError, match="unknown GpuSpec 'rtx-9090'"):
        NodeConfig.from_dict({"gpu": "rtx-9090", "model": "llama-7b"})


@pytest.mark.parametrize(
    ("cls", "data", "key"),
    [
        (UplinkConfig, {"bandwdith": 1e6}, "bandwdith"),
        (WorkloadConfig, {"num_task": 3}, "num_task"),
        (ScenarioConfig, {**make_scenario("small").to_dict(), "max_batches": 4}, "max_batches"),
        (ScenarioConfig, {**make_scenario("small").to_dict(), "uplink": {"rate": 1.0}}, "rate"),
    ],
)
def test_unknown_keys_raise_naming_the_key(cls: type, data: dict, key: str) -> None:
    with pytest.raises(ValueError, match=rf"unknown key\(s\) \['{key}'\]"):
        cls.from_dict(data)


def test_from_dict_rejects_a_non_mapping() -> None:
    with pytest.raises(ValueError, match="UplinkConfig expects a mapping"):
        UplinkConfig.from_dict([("bandwidth", 1e6)])  # type: ignore[arg-type]
