"""Typed, frozen, validated configuration of a serving scenario.

Every dataclass validates itself in ``__post_init__``: a bad value raises ``ValueError`` naming the field
and the allowed range, so a configuration error surfaces at construction, never mid-episode.
``from_dict`` rejects unknown keys (a typo is an error, not a silently ignored setting) and ``to_dict``
round-trips. A number is any real number but a boolean (``True`` is not a 1 Hz band): numpy scalars are
accepted and stored as Python numbers. Units are SI throughout: seconds, hertz, watts, bits, bytes, FLOP/s.
Derived quantities (SNRs, slot and pass times) are checked by :mod:`sdedge_gym.feasibility` when a
``ServingModel`` is built.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

RATE_MODELS = ("shannon", "fixed_snr")
ACCEPTANCE_MODES = ("expected", "sampled")
OBJECTIVES = ("mean_latency", "makespan")
QUEUE_ORDERS = ("arrival", "shortest_payload")
ARRIVAL_PROCESSES = ("offline", "poisson", "mmpp", "trace")
# Where a trace episode's window of K requests starts (ArrivalConfig.trace_window): the first K rows, or a
# seeded offset in the training part (the first TRACE_TRAIN_FRACTION of the requests), the test part (the
# rest; a window never straddles the boundary) or anywhere.
TRACE_WINDOWS = ("first", "train", "test", "any")


def _require(ok: bool, owner: str, name: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ValueError(f"{owner}.{name} = {value!r} is invalid; allowed: {allowed}")


# Integer fields that are multiplied into floats (model sizes, prompt lengths) stay below this, so that no
# product overflows a float before the memory check can reject an oversized model.
MAX_COUNT = 2**31 - 1


def _is_number(value: Any) -> bool:
    """A real number that is not a bool (True is not a 1 Hz band); numpy scalars count (after _normalize)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _normalize(instance: Any) -> None:
    """Numpy scalars to Python numbers (np.float32(1e6) is accepted like 1e6, np.int64(8) like 8).

    By each field's declared type: a ``float`` field takes any real number but a bool (an integer too
    large for a float becomes inf, which validation then rejects), an ``int`` field any integral number
    but a bool, a ``bool`` field also numpy's bool. Anything else is left for validation to reject.
    """
    for f in dataclasses.fields(instance):
        value = getattr(instance, f.name)
        if isinstance(value, bool | str) or value is None:
            continue
        if f.type == "float" and isinstance(value, numbers.Real) and not _is_bool(value):
            try:
                value = float(value)
            except OverflowError:
                value = math.inf if value > 0 else -math.inf
        elif f.type == "int" and isinstance(value, numbers.Integral) and not _is_bool(value):
            value = int(value)
        elif f.type == "bool" and _is_bool(value):
            value = bool(value)
        else:
            continue
        object.__setattr__(instance, f.name, value)


def _is_bool(value: Any) -> bool:
    # numpy's bool (np.bool_, named "bool" from numpy 2), recognised without importing numpy here
    return isinstance(value, bool) or (type(value).__module__ == "numpy" and type(value).__name__ in ("bool", "bool_"))


def _positive(owner: str, name: str, value: float) -> None:
    _require(_is_number(value) and math.isfinite(value) and value > 0, owner, name, value,
             "a finite number > 0")


def _non_negative(owner: str, name: str, value: float) -> None:
    _require(_is_number(value) and math.isfinite(value) and value >= 0, owner, name, value,
             "a finite number >= 0")


def _positive_int(owner: str, name: str, value: int, upper: int | None = MAX_COUNT) -> None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
    ok = ok and (upper is None or value <= upper)
    _require(ok, owner, name, value, f"an integer in [1, {upper}]" if upper else "an integer >= 1")


def _ordered(owner: str, low_name: str, low: float, high_name: str, high: float) -> None:
    _require(low <= high, owner, high_name, high, f"a value >= {low_name} ({low!r})")


# Sampled acceptance keeps K x O_cap uniforms (float64) and run lengths (int32, plus the kernel's copy): at
# this bound well under 1 GB in all. Expected mode keeps O(K) arrays.
MAX_SAMPLED_POSITIONS = 2**24


def _choice(owner: str, name: str, value: str, choices: tuple[str, ...]) -> None:
    _require(value in choices, owner, name, value, " | ".join(repr(c) for c in choices))


class _DictMixin:
    """``from_dict`` / ``to_dict`` for nested frozen dataclasses; unknown keys raise."""

    @classmethod
    def from_dict(cls: type[T], data: Mapping[str, Any]) -> T:
        if isinstance(data, cls):
            return data
        if not isinstance(data, Mapping):
            raise ValueError(f"{cls.__name__} expects a mapping, got {type(data).__name__}")
        known = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown key(s) {unknown}; allowed keys: {sorted(known)}")
        kwargs = {}
        for name, value in data.items():
            kwargs[name] = _coerce_field(cls, name, value)
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            out[f.name] = value.to_dict() if isinstance(value, _DictMixin) else value
        return out

    def replace(self: T, **changes: Any) -> T:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


def _coerce_field(cls: type, name: str, value: Any) -> Any:
    """Turn nested dicts (and catalogue names) into their dataclasses."""
    nested = _NESTED.get((cls.__name__, name))
    if nested is None:
        return value
    if isinstance(value, str) and nested in (ModelSpec, GpuSpec):
        from sdedge_gym.catalogue import lookup  # the catalogue imports this module

        return lookup(nested, value)
    if not isinstance(value, Mapping | nested):
        allowed = f"a mapping of {nested.__name__} fields" + (" or a catalogue name" if nested in (ModelSpec, GpuSpec)
                                                              else "")
        raise ValueError(f"{cls.__name__}.{name} = {value!r} is invalid; allowed: {allowed}")
    return nested.from_dict(value)


@dataclass(frozen=True)
class ModelSpec(_DictMixin):
    """A decoder-only transformer: enough of it for the roofline latency model."""

    name: str
    num_layers: int  # J
    hidden_size: int  # h: width of the attention (query) projection
    kv_hidden_size: int  # width of the K and V caches per layer (< h with grouped-query attention)
    num_params: float  # P
    vocab_size: int
    source: str = ""

    def __post_init__(self) -> None:
        _normalize(self)
        owner = f"ModelSpec({self.name!r})"
        _positive_int(owner, "num_layers", self.num_layers)
        _positive_int(owner, "hidden_size", self.hidden_size)
        _positive_int(owner, "kv_hidden_size", self.kv_hidden_size, upper=self.hidden_size)
        _positive(owner, "num_params", self.num_params)
        _positive_int(owner, "vocab_size", self.vocab_size)


@dataclass(frozen=True)
class GpuSpec(_DictMixin):
    """An accelerator: dense FP16 tensor throughput, memory bandwidth and capacity."""

    name: str
    peak_flops: float  # C, dense FP16 FLOP/s
    memory_bandwidth: float  # W, bytes/s
    memory_capacity: float  # bytes
    source: str = ""

    def __post_init__(self) -> None:
        _normalize(self)
        owner = f"GpuSpec({self.name!r})"
        _positive(owner, "peak_flops", self.peak_flops)
        _positive(owner, "memory_bandwidth", self.memory_bandwidth)
        _positive(owner, "memory_capacity", self.memory_capacity)


@dataclass(frozen=True)
class NodeConfig(_DictMixin):
    """A base station's inference server: one GPU running one model."""

    gpu: GpuSpec
    model: ModelSpec
    efficiency: float = 0.5  # eta: achieved fraction of peak FLOP/s
    pass_overhead: float = 2e-3  # t0: fixed cost of one forward pass (launches, sampling), s
    bytes_per_param: float = 2.0  # 2 for FP16 weights, 1 for INT8
    memory_efficiency: float = 1.0  # mu: achieved fraction of the memory bandwidth (1 = the datasheet figure)
    profile: str | None = None  # CSV of measured pass times; replaces the roofline (sdedge_gym/profiles.py)

    def __post_init__(self) -> None:
        _normalize(self)
        _require(isinstance(self.gpu, GpuSpec), "NodeConfig", "gpu", self.gpu, "a GpuSpec or catalogue name")
        _require(isinstance(self.model, ModelSpec), "NodeConfig", "model", self.model,
                 "a ModelSpec or catalogue name")
        _require(_is_number(self.efficiency) and 0 < self.efficiency <= 1, "NodeConfig",
                 "efficiency", self.efficiency, "a number in (0, 1]")
        _non_negative("NodeConfig", "pass_overhead", self.pass_overhead)
        _require(_is_number(self.bytes_per_param) and self.bytes_per_param in (0.5, 1, 2, 4), "NodeConfig",
                 "bytes_per_param", self.bytes_per_param, "0.5, 1, 2 or 4")
        _require(_is_number(self.memory_efficiency) and 0 < self.memory_efficiency <= 1, "NodeConfig",
                 "memory_efficiency", self.memory_efficiency, "a number in (0, 1]")
        _require(self.profile is None or (isinstance(self.profile, str) and self.profile != ""), "NodeConfig",
                 "profile", self.profile, "None or the path of a pass-time CSV (docs/FIDELITY.md, section 6)")


@dataclass(frozen=True)
class UplinkConfig(_DictMixin):
    """The shared wireless uplink from users to the small base station (FDMA within a slot)."""

    bandwidth: float = 1e6  # B, Hz
    transmit_power: float = 0.2  # p, W (23 dBm)
    noise_density: float = 10 ** ((-174 + 9 - 30) / 10)  # N0, W/Hz: thermal -174 dBm/Hz + 9 dB noise figure
    rate_model: str = "shannon"  # "shannon": r = b log2(1 + p g / (N0 b)); "fixed_snr": r = b s
    bits_per_token: float = 32.0  # beta: prompt bits per token (about 4 bytes of UTF-8 text)

    def __post_init__(self) -> None:
        _normalize(self)
        _positive("UplinkConfig", "bandwidth", self.bandwidth)
        _positive("UplinkConfig", "transmit_power", self.transmit_power)
        _positive("UplinkConfig", "noise_density", self.noise_density)
        _choice("UplinkConfig", "rate_model", self.rate_model, RATE_MODELS)
        _positive("UplinkConfig", "bits_per_token", self.bits_per_token)


@dataclass(frozen=True)
class FronthaulConfig(_DictMixin):
    """The wired link that carries draft tokens from the SBS to the MBS."""

    rate: float = 1e9  # R_f, bit/s
    latency: float = 0.5e-3  # one-way, s
    draft_token_bits: float = 64.0  # a 32-bit token id and its 32-bit draft probability

    def __post_init__(self) -> None:
        _normalize(self)
        _positive("FronthaulConfig", "rate", self.rate)
        _non_negative("FronthaulConfig", "latency", self.latency)
        _non_negative("FronthaulConfig", "draft_token_bits", self.draft_token_bits)


@dataclass(frozen=True)
class WorkloadConfig(_DictMixin):
    """How an episode's tasks are drawn. Lengths are truncated log-normals (median, log-std, range)."""

    num_tasks: int = 100  # K
    prompt_median: float = 256.0
    prompt_sigma: float = 0.6
    prompt_min: int = 16
    prompt_max: int = 1024
    output_median: float = 128.0
    output_sigma: float = 0.6
    output_min: int = 8
    max_new_tokens: int = 256  # O_cap
    extra_bits_min: float = 0.0  # attachment payload (e.g. an image), uniform in [min, max], bits
    extra_bits_max: float = 0.0
    distance_min: float = 20.0  # m from the SBS
    distance_max: float = 250.0
    path_loss_db_at_1km: float = 128.1  # 3GPP TR 36.814 urban: PL = 128.1 + 37.6 log10(d / 1 km)
    path_loss_db_per_decade: float = 37.6
    rayleigh_fading: bool = True  # small-scale power gain ~ Exp(1), drawn per episode
    spectral_efficiency_min: float = 1.0  # s_k for rate_model "fixed_snr", bit/s/Hz
    spectral_efficiency_max: float = 6.0
    alpha_min: float = 0.55  # draft acceptance rate alpha_k ~ U[min, max]
    alpha_max: float = 0.9
    alpha_estimate_noise: float = 0.1  # std of the non-clairvoyant alpha estimate
    output_hint_sigma: float = 0.5  # log-std of the non-clairvoyant output-length hint

    def __post_init__(self) -> None:
        _normalize(self)
        o = "WorkloadConfig"
        _positive_int(o, "num_tasks", self.num_tasks, upper=100_000)
        _positive(o, "prompt_median", self.prompt_median)
        _non_negative(o, "prompt_sigma", self.prompt_sigma)
        _positive_int(o, "prompt_min", self.prompt_min)
        _positive_int(o, "prompt_max", self.prompt_max)
        _ordered(o, "prompt_min", self.prompt_min, "prompt_max", self.prompt_max)
        _positive(o, "output_median", self.output_median)
        _non_negative(o, "output_sigma", self.output_sigma)
        _positive_int(o, "output_min", self.output_min)
        _positive_int(o, "max_new_tokens", self.max_new_tokens, upper=8192)
        _ordered(o, "output_min", self.output_min, "max_new_tokens", self.max_new_tokens)
        _non_negative(o, "extra_bits_min", self.extra_bits_min)
        _non_negative(o, "extra_bits_max", self.extra_bits_max)
        _ordered(o, "extra_bits_min", self.extra_bits_min, "extra_bits_max", self.extra_bits_max)
        _positive(o, "distance_min", self.distance_min)
        _positive(o, "distance_max", self.distance_max)
        _ordered(o, "distance_min", self.distance_min, "distance_max", self.distance_max)
        _non_negative(o, "path_loss_db_at_1km", self.path_loss_db_at_1km)
        _non_negative(o, "path_loss_db_per_decade", self.path_loss_db_per_decade)
        _require(isinstance(self.rayleigh_fading, bool), o, "rayleigh_fading", self.rayleigh_fading, "True | False")
        _positive(o, "spectral_efficiency_min", self.spectral_efficiency_min)
        _positive(o, "spectral_efficiency_max", self.spectral_efficiency_max)
        _ordered(o, "spectral_efficiency_min", self.spectral_efficiency_min, "spectral_efficiency_max",
                 self.spectral_efficiency_max)
        for name in ("alpha_min", "alpha_max"):
            value = getattr(self, name)
            _require(_is_number(value) and 0 <= value < 1, o, name, value, "a number in [0, 1)")
        _ordered(o, "alpha_min", self.alpha_min, "alpha_max", self.alpha_max)
        _non_negative(o, "alpha_estimate_noise", self.alpha_estimate_noise)
        _non_negative(o, "output_hint_sigma", self.output_hint_sigma)


@dataclass(frozen=True)
class ArrivalConfig(_DictMixin):
    """When the tasks arrive (the online scenarios, ``sdedge_gym.online_env``).

    * "offline" (default): every task waits at t = 0, the seed paper's problem (``EdgeSDEnv``);
    * "poisson": exponential inter-arrival gaps of mean 1 / ``arrival_rate``, the first at one gap;
    * "mmpp": a two-state Markov-modulated Poisson process: rate ``arrival_rate`` in the calm state and
      ``burst_rate`` in the burst state, exponential sojourns of mean ``calm_duration`` and
      ``burst_duration``; the first state is drawn from the stationary distribution;
    * "trace": K consecutive rows of a request trace (arrival time, prompt tokens, output tokens; see
      ``sdedge_gym.arrivals.read_trace``), times shifted so that the window's first request arrives at 0.
      ``trace`` is a CSV file (optionally gzip-compressed) or a shipped trace's name ("azure-conv",
      "azure-code": the Azure LLM inference traces 2023, ``sdedge_gym.arrivals.SHIPPED_TRACES``).
      ``trace_window`` says where the window starts: "first" (the first K rows, the default), or an offset
      drawn at reset in the training part ("train": the first 70 %), the test part ("test": the last 30 %)
      or anywhere ("any"). ``load``, when set, rescales the times so that the trace's mean rate is ``load``
      x the scenario's max-batch capacity on the trace's lengths (``online_env.trace_capacity``); unset,
      the times are as recorded.

    ``slo`` is the latency objective (s) whose attainment the episode-end info reports; it is also the
    scale of the observation's waiting-time features.
    """

    process: str = "offline"
    arrival_rate: float = 0.1  # requests/s (poisson; the calm-state rate of mmpp)
    burst_rate: float = 0.5  # requests/s in the burst state (mmpp)
    calm_duration: float = 200.0  # mean sojourn in the calm state, s (mmpp)
    burst_duration: float = 50.0  # mean sojourn in the burst state, s (mmpp)
    trace: str = ""  # a CSV trace's path, or a shipped trace's name (process "trace")
    trace_window: str = "first"  # "first" | "train" | "test" | "any" (process "trace")
    load: float | None = None  # arrival rate / max-batch capacity; None: the trace's times as recorded
    slo: float = 60.0  # s

    def __post_init__(self) -> None:
        _normalize(self)
        o = "ArrivalConfig"
        _choice(o, "process", self.process, ARRIVAL_PROCESSES)
        for name in ("arrival_rate", "burst_rate", "calm_duration", "burst_duration", "slo"):
            value = getattr(self, name)
            _require(not isinstance(value, bool), o, name, value, "a finite number > 0")
            _positive(o, name, value)
        _require(isinstance(self.trace, str), o, "trace", self.trace, "a path (str) to a CSV file")
        _require(self.process != "trace" or self.trace != "", o, "trace", self.trace,
                 "the path of a CSV file or a shipped trace's name when process = 'trace'")
        _choice(o, "trace_window", self.trace_window, TRACE_WINDOWS)
        if self.load is not None:
            _require(not isinstance(self.load, bool), o, "load", self.load, "None or a finite number > 0")
            _positive(o, "load", self.load)
            _require(self.process == "trace", o, "load", self.load,
                     "None unless process = 'trace' (set arrival_rate for poisson / mmpp)")

    @property
    def online(self) -> bool:
        return self.process != "offline"


@dataclass(frozen=True)
class ScenarioConfig(_DictMixin):
    """A complete scenario: nodes, links, workload, action limits and the episode's information model."""

    name: str
    draft: NodeConfig  # on the small base station (SBS)
    target: NodeConfig  # on the macro base station (MBS)
    uplink: UplinkConfig = field(default_factory=UplinkConfig)
    fronthaul: FronthaulConfig = field(default_factory=FronthaulConfig)
    workload: WorkloadConfig = field(default_factory=WorkloadConfig)
    max_batch: int = 16  # n_max
    max_speculation: int = 8  # l_max
    pipelining: bool = True  # split a batch into two micro-batches that overlap draft and verify
    acceptance: str = "expected"  # "expected" (fluid L(alpha, l)) or "sampled" (per-position uniforms)
    clairvoyant: bool = True  # observation shows O_k and alpha_k, else a length hint and a noisy alpha
    objective: str = "mean_latency"  # or "makespan"
    queue_order: str = "arrival"  # or "shortest_payload"
    arrivals: ArrivalConfig = field(default_factory=ArrivalConfig)  # offline: every task at t = 0

    def __post_init__(self) -> None:
        _normalize(self)
        o = "ScenarioConfig"
        _require(isinstance(self.draft, NodeConfig), o, "draft", self.draft, "a NodeConfig")
        _require(isinstance(self.target, NodeConfig), o, "target", self.target, "a NodeConfig")
        _positive_int(o, "max_batch", self.max_batch, upper=256)
        _require(isinstance(self.max_speculation, int) and not isinstance(self.max_speculation, bool)
                 and 0 <= self.max_speculation <= 32, o, "max_speculation", self.max_speculation,
                 "an integer in [0, 32]")
        _require(isinstance(self.pipelining, bool), o, "pipelining", self.pipelining, "True | False")
        _choice(o, "acceptance", self.acceptance, ACCEPTANCE_MODES)
        _require(isinstance(self.clairvoyant, bool), o, "clairvoyant", self.clairvoyant, "True | False")
        _choice(o, "objective", self.objective, OBJECTIVES)
        _choice(o, "queue_order", self.queue_order, QUEUE_ORDERS)
        if self.acceptance == "sampled":  # one uniform (float64) and one run length (int32) per output position
            positions = self.workload.num_tasks * self.workload.max_new_tokens
            _require(positions <= MAX_SAMPLED_POSITIONS, o, "acceptance", self.acceptance,
                     f"'expected', or 'sampled' with workload.num_tasks * workload.max_new_tokens <= "
                     f"{MAX_SAMPLED_POSITIONS} (here {positions}: the per-position draws would take "
                     f"{positions * 12 / 2**30:.1f} GiB)")
        _require(isinstance(self.arrivals, ArrivalConfig), o, "arrivals", self.arrivals, "an ArrivalConfig")
        if self.arrivals.online:  # tasks are served in the order they arrive; latency is the online objective
            _require(self.queue_order == "arrival", o, "queue_order", self.queue_order,
                     "'arrival' when arrivals.process is not 'offline'")
            _require(self.objective == "mean_latency", o, "objective", self.objective,
                     "'mean_latency' when arrivals.process is not 'offline'")

    @property
    def num_tasks(self) -> int:
        return self.workload.num_tasks


_NESTED: dict[tuple[str, str], type] = {
    ("NodeConfig", "gpu"): GpuSpec,
    ("NodeConfig", "model"): ModelSpec,
    ("ScenarioConfig", "draft"): NodeConfig,
    ("ScenarioConfig", "target"): NodeConfig,
    ("ScenarioConfig", "uplink"): UplinkConfig,
    ("ScenarioConfig", "fronthaul"): FronthaulConfig,
    ("ScenarioConfig", "workload"): WorkloadConfig,
    ("ScenarioConfig", "arrivals"): ArrivalConfig,
}
