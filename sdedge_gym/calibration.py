"""The roofline checked against published measurements, and its parameters fitted to them (docs/FIDELITY.md).

``MEASUREMENTS`` lists published timings, each with its source, and how the model predicts the same
quantity (`predict`). The reference framework is llama.cpp's CUDA backend with F16 weights (the
XiongjieDai/GPU-Benchmarks-on-LLM-Inference runs of December 2023): it is the only source found that
times the same models with one build and one method on a range of Ampere and Ada GPUs, decode and
prefill alike, with F16 weights as the model assumes (``bytes_per_param = 2``).

`fit` fits, per GPU class, the achieved fraction of memory bandwidth mu and of peak tensor FLOP/s eta,
and one per-pass overhead t0 shared by all classes (a property of the framework and host, not of the
GPU), by least squares on log(predicted / measured) over the rows marked ``fitted``. A draft model is
far shallower than the 7B/13B models the fit sees, so its overhead comes from the one published
llama.cpp timing of a small LLaMA (``DRAFT_PASS_OVERHEAD``). ``CALIBRATED``
holds the result as data (`tests/test_calibration.py` checks that re-running the fit reproduces it),
and ``calibrate_node`` applies it to a node; ``make_scenario(..., calibration="llamacpp-cuda-f16")`` uses it.
The presets keep their own parameters: the calibration is an option, not a new default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from sdedge_gym.catalogue import GPUS, MODELS
from sdedge_gym.config import GpuSpec, NodeConfig
from sdedge_gym.roofline import PassCost

REFERENCE = "llamacpp-cuda-f16"

XIONGJIE = ("XiongjieDai/GPU-Benchmarks-on-LLM-Inference README.md at commit 00dd2bd (LLaMA 2 tables, "
            "'mean TG' / 'mean PP' of three ./main runs; notebooks 'LLaMA 2/*/*_v2.ipynb' show the runs: "
            "a 494-token prompt, 1023 generated tokens, -ngl 10000, llama.cpp of Dec 2023)")
PR_15131 = ("ggml-org/llama.cpp PR #15131 'CUDA: GEMM for FP32/FP16/BF16 and ne11 <= 16' (2025), table row "
            "'RTX 3090 | llama 8B F16 | FA yes | microbatch 8 | pp512', PR column")
SPEC_BENCH = ("hemingkx/Spec-Bench Leaderboard.md, SpS row (vicuna-68m drafting for Vicuna-v1.3, Hugging Face "
              "assisted generation, greedy, FP16, batch 1), 'Overall' speedup and #Mean Accepted Tokens")

# GPU classes that share fitted efficiencies: one silicon family and memory technology each.
GPU_CLASS = {
    "rtx-3080": "ampere-ga102", "rtx-3080-full-rate": "ampere-ga102", "rtx-3090": "ampere-ga102",
    "rtx-a4500": "ampere-ga102", "rtx-a6000": "ampere-ga102",
    "a100-40gb": "ampere-ga100", "a100-80gb-pcie": "ampere-ga100",
    "rtx-4090": "ada", "rtx-6000-ada": "ada", "rtx-4500-ada": "ada", "rtx-4500-ada-full-rate": "ada",
}
# The fitted eta is relative to the dense FP16-accumulate peak, so a calibrated node uses the entries quoted
# that way (the presets' RTX 3080 and RTX 4500 Ada entries are quoted at half that rate).
CALIBRATED_GPU = {"rtx-3080": "rtx-3080-full-rate", "rtx-4500-ada": "rtx-4500-ada-full-rate"}
CLASSES = ("ampere-ga102", "ampere-ga100", "ada")


@dataclass(frozen=True)
class Measurement:
    """One published timing and the way the model predicts the same quantity."""

    key: str
    model: str  # catalogue model (the target, for an SD row)
    gpu: str  # catalogue GPU
    quantity: str  # "decode" | "prefill" | "pass" | "sd_speedup"
    measured: float  # seconds per token (decode), seconds (prefill, pass), or a speedup ratio
    source: str
    fitted: bool  # used by `fit` (the others are held out)
    framework: str = "llama.cpp CUDA F16"
    prompt: int = 494  # decode and prefill: the prompt of the llama.cpp ./main runs
    generated: int = 1023  # decode: eval runs averaged into the published tokens/s
    new_tokens: int = 8  # pass: tokens per pass (llama-bench -ub)
    total_tokens: int = 512  # pass: tokens of the llama-bench pp test
    draft: str = ""  # sd_speedup: draft model
    mean_tokens: float = 0.0  # sd_speedup: published mean tokens per verification step
    speculation_length: int = 5  # sd_speedup: draft length used to turn mean_tokens into alpha
    sd_context: int = 512  # sd_speedup: representative context of the decoding phase
    literature_range: tuple[float, float] | None = None  # sd_speedup: per-task range in the same source
    context: str = ""  # other frameworks' figures, for context only

    @property
    def label(self) -> str:
        return {"decode": "decode s/token, batch 1", "prefill": f"prefill of {self.prompt} tokens",
                "pass": f"{self.new_tokens}-token pass (ubatch {self.new_tokens}, pp{self.total_tokens})",
                "sd_speedup": f"SD speedup, {self.draft} -> {self.model}, L = {self.mean_tokens}"}[self.quantity]


def _tg(tokens_per_second: float) -> float:
    return 1.0 / tokens_per_second


def _pp(tokens_per_second: float, prompt: int = 494) -> float:
    return prompt / tokens_per_second


MEASUREMENTS: tuple[Measurement, ...] = (
    # LLaMA-2 F16, llama.cpp CUDA, Dec 2023 (XiongjieDai): mean TG and mean PP of three runs.
    Measurement("3090/7b/decode", "llama-2-7b", "rtx-3090", "decode", _tg(51.85), XIONGJIE, True),
    Measurement("3090/7b/prefill", "llama-2-7b", "rtx-3090", "prefill", _pp(3075.37), XIONGJIE, True),
    Measurement("a6000/7b/decode", "llama-2-7b", "rtx-a6000", "decode", _tg(44.01), XIONGJIE, True),
    Measurement("a6000/7b/prefill", "llama-2-7b", "rtx-a6000", "prefill", _pp(3707.88), XIONGJIE, True),
    Measurement("a6000/13b/decode", "llama-2-13b", "rtx-a6000", "decode", _tg(24.67), XIONGJIE, True),
    Measurement("a6000/13b/prefill", "llama-2-13b", "rtx-a6000", "prefill", _pp(2397.01), XIONGJIE, True),
    Measurement("a100/7b/decode", "llama-2-7b", "a100-80gb-pcie", "decode", _tg(73.83), XIONGJIE, True,
                context="vLLM, Mistral-7B, A100: 46 tok/s at batch 1, 400 tok/s at batch 10 (docs.mystic.ai, "
                        "quoted in ggml-org/llama.cpp issue #3479)"),
    Measurement("a100/7b/prefill", "llama-2-7b", "a100-80gb-pcie", "prefill", _pp(5105.77), XIONGJIE, True),
    Measurement("a100/13b/decode", "llama-2-13b", "a100-80gb-pcie", "decode", _tg(45.01), XIONGJIE, True),
    Measurement("a100/13b/prefill", "llama-2-13b", "a100-80gb-pcie", "prefill", _pp(3697.29), XIONGJIE, True),
    Measurement("4090/7b/decode", "llama-2-7b", "rtx-4090", "decode", _tg(60.78), XIONGJIE, True,
                context="same GPU, llama.cpp of Jan 2024 (PR #4766, llama-bench): tg128 61.03 t/s"),
    Measurement("4090/7b/prefill", "llama-2-7b", "rtx-4090", "prefill", _pp(7348.69), XIONGJIE, True,
                context="llama.cpp of Jan 2024 (PR #4766): pp512 11,048 t/s, 1.5x the Dec 2023 build"),
    Measurement("6000ada/7b/decode", "llama-2-7b", "rtx-6000-ada", "decode", _tg(50.56), XIONGJIE, True),
    Measurement("6000ada/7b/prefill", "llama-2-7b", "rtx-6000-ada", "prefill", _pp(5403.6), XIONGJIE, True),
    Measurement("6000ada/13b/decode", "llama-2-13b", "rtx-6000-ada", "decode", _tg(26.91), XIONGJIE, True),
    Measurement("6000ada/13b/prefill", "llama-2-13b", "rtx-6000-ada", "prefill", _pp(3040.33), XIONGJIE, True),
    # A multi-token pass, as a verify pass is: 64 passes of 8 tokens over one growing sequence (2025 build).
    Measurement("3090/l3-8b/pass8", "llama-3-8b", "rtx-3090", "pass", 8 / 423.63, PR_15131, False,
                framework="llama.cpp CUDA F16 (2025 build)",
                context="same table, master column: 390.73 t/s"),
    # Chain speculative decoding, batch 1 (Hugging Face eager PyTorch: another framework than the reference).
    Measurement("a100/sd-7b", "llama-7b", "a100-80gb-pcie", "sd_speedup", 1.49, SPEC_BENCH, False,
                framework="HF transformers eager FP16", draft="llama-68m", mean_tokens=2.28,
                literature_range=(1.13, 1.66),
                context="Spec-Bench A100 (80GB; PCIe or SXM not stated), Vicuna-7B; per-task 1.13x-1.66x"),
    Measurement("a100/sd-13b", "llama-13b", "a100-80gb-pcie", "sd_speedup", 1.49, SPEC_BENCH, False,
                framework="HF transformers eager FP16", draft="llama-68m", mean_tokens=2.18,
                literature_range=(1.13, 1.68),
                context="Spec-Bench A100, Vicuna-13B; per-task 1.13x-1.68x"),
    Measurement("3090/sd-7b", "llama-7b", "rtx-3090", "sd_speedup", 1.83, SPEC_BENCH, False,
                framework="HF transformers eager FP16", draft="llama-68m", mean_tokens=2.29,
                literature_range=(1.37, 2.00),
                context="Spec-Bench RTX 3090 (PyTorch 2.0.1 table), Vicuna-7B; per-task 1.37x-2.00x"),
)

# Published figures of GPUs the catalogue cannot hold (their bandwidth was not retrievable): context only.
CONTEXT_ROWS: tuple[tuple[str, str, str, float, str], ...] = (
    ("RTX 4000 Ada", "llama-2-7b", "decode", _tg(22.96), XIONGJIE),
    ("RTX 4000 Ada", "llama-2-7b", "prefill", _pp(2369.09), XIONGJIE),
    ("RTX 5000 Ada", "llama-2-7b", "decode", _tg(36.31), XIONGJIE),
    ("RTX 5000 Ada", "llama-2-7b", "prefill", _pp(4936.59), XIONGJIE),
    ("RTX 5000 Ada", "llama-2-13b", "decode", _tg(19.22), XIONGJIE),
    ("RTX 5000 Ada", "llama-2-13b", "prefill", _pp(3038.27), XIONGJIE),
    # llama.cpp of Oct 2023, batched-bench without prompt sharing (PP 50, TG 100): a pass over 8 sequences
    # took 2.9x a single-sequence pass; the batched-decoding PRs that followed (#3749, #3776) targeted this.
    ("V100", "open-llama-7b F16", "decode, batch 1 (s/pass)", 1 / 52.18,
     "ggml-org/llama.cpp PR #3545 ('batched : add bench tool'), table 'LLaMA 7B F16, V100, no prompt sharing'"),
    ("V100", "open-llama-7b F16", "decode, batch 8 (s/pass)", 8 / 149.81,
     "ggml-org/llama.cpp PR #3545 ('batched : add bench tool'), table 'LLaMA 7B F16, V100, no prompt sharing'"),
    ("A100 80GB", "llama-160m (draft)", "decode", 1.49e-3,
     "ggml-org/llama.cpp issue #3649 (Oct 2023): JackFram/llama-160m draft, 'eval time 1.49 ms per token'"),
)


@dataclass(frozen=True)
class ClassParameters:
    memory_efficiency: float  # mu
    efficiency: float  # eta
    pass_overhead: float  # t0, s (shared by every class: a property of the framework and host)


# Output of `fit()` on the rows marked fitted (printed by `python scripts/fidelity.py --fit`).
CALIBRATED: dict[str, ClassParameters] = {
    "ampere-ga102": ClassParameters(memory_efficiency=0.915416, efficiency=0.348385, pass_overhead=0.00276687),
    "ampere-ga100": ClassParameters(memory_efficiency=0.693993, efficiency=0.272566, pass_overhead=0.00276687),
    "ada": ClassParameters(memory_efficiency=0.886022, efficiency=0.246412, pass_overhead=0.00276687),
}


# ggml-org/llama.cpp issue #3649 (Oct 2023, A100): the JackFram/llama-160m draft decodes at 1.49 ms per token.
SMALL_MODEL_DECODE = 1.49e-3  # s
SMALL_MODEL_PARAMS = 160e6  # the model's name; its weights take ~0.2 ms of the 1.49 ms, so +-10 % here is +-0.02 ms


def draft_pass_overhead(ga100: ClassParameters) -> float:
    """t0 of a small draft model: the 160M model's measured pass less its weight read at the fitted A100 mu."""
    weights = 2.0 * SMALL_MODEL_PARAMS / (ga100.memory_efficiency * GPUS["a100-80gb-pcie"].memory_bandwidth)
    return SMALL_MODEL_DECODE - weights


# Output of `draft_pass_overhead(CALIBRATED["ampere-ga100"])`, applied to draft nodes.
DRAFT_PASS_OVERHEAD = 0.00125171


def node(gpu: str | GpuSpec, model: str, params: ClassParameters | None = None) -> NodeConfig:
    """A node of the catalogue; with ``params`` its mu, eta, t0, else the paper preset's MBS values."""
    spec = GPUS[gpu] if isinstance(gpu, str) else gpu
    if params is None:
        return NodeConfig(gpu=spec, model=MODELS[model], efficiency=0.3, pass_overhead=2e-3)
    return NodeConfig(gpu=spec, model=MODELS[model], efficiency=params.efficiency,
                      memory_efficiency=params.memory_efficiency, pass_overhead=params.pass_overhead)


def calibrate_node(config: NodeConfig, role: str, calibration: str = REFERENCE) -> NodeConfig:
    """A node with the calibrated mu, eta, t0 of its GPU class (and the FP16-accumulate peak of its GPU).

    ``role`` is 'target' or 'draft'; a draft node takes the small-model overhead ``DRAFT_PASS_OVERHEAD``.
    """
    if role not in ("draft", "target"):
        raise ValueError(f"role = {role!r} is invalid; allowed: 'draft' | 'target'")
    if calibration != REFERENCE:
        raise ValueError(f"calibration = {calibration!r} is invalid; allowed: {REFERENCE!r}")
    name = config.gpu.name
    if name not in GPU_CLASS:
        raise ValueError(f"calibration {calibration!r} has no parameters for GPU {name!r}; calibrated GPUs: "
                         f"{sorted(GPU_CLASS)}")
    params = CALIBRATED[GPU_CLASS[name]]
    gpu = GPUS[CALIBRATED_GPU.get(name, name)]
    overhead = DRAFT_PASS_OVERHEAD if role == "draft" else params.pass_overhead
    return config.replace(gpu=gpu, efficiency=params.efficiency, memory_efficiency=params.memory_efficiency,
                          pass_overhead=overhead)


def _decode(cost: PassCost, prompt: int, generated: int) -> float:
    # ./main's eval time averages single-token passes over contexts prompt .. prompt + generated - 1.
    context = prompt + np.arange(generated, dtype=float)
    return float(np.mean(cost.pass_time(np.ones_like(context), context + 1, context + 1, batch=1)))


def _pass(cost: PassCost, new_tokens: int, total_tokens: int) -> float:
    # llama-bench ppN with -ub q: N / q passes of q tokens over one sequence whose cache grows by q each time.
    context = new_tokens * np.arange(total_tokens // new_tokens, dtype=float)
    return float(np.mean(cost.pass_time(np.full_like(context, new_tokens), new_tokens * (context + new_tokens),
                                        context + new_tokens, batch=1)))


def sd_speedup(draft: PassCost, target: PassCost, mean_tokens: float, speculation_length: int,
               context: float) -> float:
    """Batch-1 chain SD vs autoregressive decoding: L t_T(1, 1, c) / (l t_D(1, 1, c) + t_T(1, l + 1, c))."""
    l = speculation_length
    autoregressive = float(target.uniform_pass_time(1, 1, context))
    round_time = l * float(draft.uniform_pass_time(1, 1, context)) + float(target.uniform_pass_time(1, l + 1, context))
    return mean_tokens * autoregressive / round_time


def predict(row: Measurement, params: ClassParameters | None = None, draft_overhead: float | None = None) -> float:
    """The model's value of a row's quantity, with ``params`` or (None) the paper preset's MBS parameters.

    ``draft_overhead`` (SD rows with params) defaults to ``DRAFT_PASS_OVERHEAD``.
    """
    if draft_overhead is None:
        draft_overhead = DRAFT_PASS_OVERHEAD
    gpu = row.gpu if params is None else CALIBRATED_GPU.get(row.gpu, row.gpu)
    target = PassCost.of(node(gpu, row.model, params))
    if row.quantity == "decode":
        return _decode(target, row.prompt, row.generated)
    if row.quantity == "prefill":
        return float(target.uniform_pass_time(1, row.prompt, 0))
    if row.quantity == "pass":
        return _pass(target, row.new_tokens, row.total_tokens)
    if row.quantity == "sd_speedup":
        # Without parameters the draft takes the paper preset's SBS values (eta 0.5, t0 4 ms); with them,
        # the class's mu and eta and the small-model overhead derived from the same parameters.
        if params is None:
            draft_node = NodeConfig(gpu=GPUS[gpu], model=MODELS[row.draft], efficiency=0.5, pass_overhead=4e-3)
        else:
            draft_node = node(gpu, row.draft, params).replace(pass_overhead=draft_overhead)
        return sd_speedup(PassCost.of(draft_node), target, row.mean_tokens, row.speculation_length, row.sd_context)
    raise ValueError(f"Measurement.quantity = {row.quantity!r} is invalid; allowed: decode | prefill | pass | "
                     f"sd_speedup")


def class_of(row: Measurement) -> str:
    return GPU_CLASS[row.gpu]


def fit(rows: tuple[Measurement, ...] = MEASUREMENTS, exclude_gpu: str | None = None) -> dict[str, ClassParameters]:
    """Least squares on log(predicted / measured) over the fitted rows (without ``exclude_gpu``'s).

    Parameters: mu and eta per GPU class, and one t0 shared by all classes.
    """
    used = [row for row in rows if row.fitted and row.gpu != exclude_gpu]
    classes = [c for c in CLASSES if any(class_of(r) == c for r in used)]

    def unpack(x: np.ndarray) -> dict[str, ClassParameters]:
        return {c: ClassParameters(memory_efficiency=float(x[2 * i]), efficiency=float(x[2 * i + 1]),
                                   pass_overhead=float(x[-1])) for i, c in enumerate(classes)}

    def residuals(x: np.ndarray) -> np.ndarray:
        params = unpack(x)
        return np.array([math.log(predict(r, params[class_of(r)]) / r.measured) for r in used])

    start = np.array([0.7, 0.3] * len(classes) + [1e-3])
    low = np.array([0.05, 0.01] * len(classes) + [0.0])
    high = np.array([1.0, 1.0] * len(classes) + [0.05])
    scale = np.array([0.1, 0.1] * len(classes) + [1e-3])
    result = least_squares(residuals, start, bounds=(low, high), x_scale=scale, xtol=1e-14, ftol=1e-14,
                           gtol=1e-14)
    return unpack(result.x)
