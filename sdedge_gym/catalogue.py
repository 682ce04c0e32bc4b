"""A small catalogue of models and GPUs, every figure with its source.

Model shapes come from the published architecture tables or the released ``config.json``; GPU figures
from the vendors' datasheets or, where the datasheet itself could not be retrieved, from a specification
page that quotes it (named in ``source``). Where only the FP32 shader rate is quoted we derive the dense
FP16 tensor rate as 4 x FP32, the ratio of the datasheets that quote both for these generations (RTX 4090:
82.6 -> 330.3 TFLOPS with FP16 accumulate; A40: 37.4 -> 149.7; A6000: 38.7 -> 154.8), and say so.

``ACCEPTANCE`` holds published acceptance figures for draft/target pairs (docs/FIDELITY.md, section 5).
"""

from __future__ import annotations

from dataclasses import dataclass

from scipy.optimize import brentq

from sdedge_gym.config import GpuSpec, ModelSpec

GIB = 1024**3
GB = 1e9

MODELS: dict[str, ModelSpec] = {
    m.name: m
    for m in (
        ModelSpec(
            name="llama-68m", num_layers=2, hidden_size=768, kv_hidden_size=768, num_params=68e6,
            vocab_size=32000,
            source="JackFram/llama-68m config.json (2 layers, hidden 768, 12 heads); SpecInfer, "
                   "Miao et al., ASPLOS 2024, arXiv:2305.09781",
        ),
        ModelSpec(
            name="tinyllama-1.1b", num_layers=22, hidden_size=2048, kv_hidden_size=256, num_params=1.1e9,
            vocab_size=32000,
            source="TinyLlama, Zhang et al., arXiv:2401.02385, Table 1 (22 layers, hidden 2048, 32 heads, "
                   "4 KV heads of 64 -> KV width 256)",
        ),
        ModelSpec(
            name="llama-7b", num_layers=32, hidden_size=4096, kv_hidden_size=4096, num_params=6.74e9,
            vocab_size=32000,
            source="LLaMA, Touvron et al., arXiv:2302.13971, Table 2 (6.7B, dim 4096, 32 layers)",
        ),
        ModelSpec(
            name="llama-13b", num_layers=40, hidden_size=5120, kv_hidden_size=5120, num_params=13.0e9,
            vocab_size=32000,
            source="LLaMA, Touvron et al., arXiv:2302.13971, Table 2 (13.0B, dim 5120, 40 layers)",
        ),
        ModelSpec(
            name="llama-2-7b", num_layers=32, hidden_size=4096, kv_hidden_size=4096, num_params=6.74e9,
            vocab_size=32000,
            source="Llama 2, Touvron et al., arXiv:2307.09288: the 7B and 13B models keep LLaMA's architecture "
                   "(no grouped-query attention below 34B); llama.cpp's llama-bench reports 6.74 B parameters "
                   "(ggml-org/llama.cpp PR #4766)",
        ),
        ModelSpec(
            name="llama-2-13b", num_layers=40, hidden_size=5120, kv_hidden_size=5120, num_params=13.0e9,
            vocab_size=32000,
            source="Llama 2, Touvron et al., arXiv:2307.09288 (13B: LLaMA-13B's shape, 40 layers, dim 5120)",
        ),
        ModelSpec(
            name="llama-3-8b", num_layers=32, hidden_size=4096, kv_hidden_size=1024, num_params=8.03e9,
            vocab_size=128256,
            source="meta-llama/Meta-Llama-3-8B config.json: 32 layers, hidden 4096, 32 heads, 8 KV heads of 128 "
                   "(KV width 1024), FFN 14,336, vocabulary 128,256 untied; 8.03 B parameters is the sum of "
                   "those weight shapes",
        ),
    )
}

GPUS: dict[str, GpuSpec] = {
    g.name: g
    for g in (
        GpuSpec(
            name="rtx-3080", peak_flops=59.5e12, memory_bandwidth=760e9, memory_capacity=10 * GIB,
            source="NVIDIA Ampere GA102 GPU Architecture whitepaper v2.1, RTX 3080 column: peak FP16 "
                   "tensor TFLOPS with FP32 accumulate 59.5 (dense), 760 GB/s GDDR6X, 10 GB",
        ),
        GpuSpec(
            # The calibration's convention (docs/FIDELITY.md): every peak is the dense FP16 rate with FP16
            # accumulate, which GeForce cards run at twice their FP32-accumulate rate (RTX 3090: 142 vs 71).
            name="rtx-3080-full-rate", peak_flops=119e12, memory_bandwidth=760e9, memory_capacity=10 * GIB,
            source="rtx-3080 with the dense FP16 tensor rate at FP16 accumulate: 2 x 59.5 = 119 TFLOPS (the "
                   "GeForce 2:1 ratio of FP16- to FP32-accumulate, as for the RTX 3090's 142 vs 71)",
        ),
        GpuSpec(
            # Kept at 79.4 TFLOPS because every preset's MBS uses this entry and the presets must not move
            # (golden trajectories, agents, figures); "rtx-4500-ada-full-rate" below has the corrected figure.
            name="rtx-4500-ada", peak_flops=79.4e12, memory_bandwidth=432e9, memory_capacity=24 * GIB,
            source="24 GB GDDR6 at 432 GB/s (askgeek.io RTX 4500 Ada page). 79.4 TFLOPS is 2 x the 39.6 TFLOPS "
                   "FP32 rate, i.e. half the dense FP16 tensor rate (4 x FP32 = 158.4, see "
                   "rtx-4500-ada-full-rate); the original derivation (317.4 FP8-sparse / 4) started from a "
                   "figure that is 8 x FP32, not the FP8-sparse one (16 x FP32). Kept for the presets.",
        ),
        GpuSpec(
            name="rtx-4500-ada-full-rate", peak_flops=158.4e12, memory_bandwidth=432e9, memory_capacity=24 * GIB,
            source="RTX 4500 Ada: 39.6 TFLOPS FP32 (huggingface.co/hardware/rtx-4500-ada; 7,680 CUDA cores at "
                   "2,580 MHz boost, cputronic.com) x 4 = 158.4 TFLOPS dense FP16 tensor; 24 GB GDDR6, 432 GB/s "
                   "(askgeek.io). The NVIDIA datasheet PDF itself was not retrievable here",
        ),
        GpuSpec(
            name="a100-40gb", peak_flops=312e12, memory_bandwidth=1555e9, memory_capacity=40 * GIB,
            source="NVIDIA A100 Tensor Core GPU datasheet (SXM4 40 GB): FP16 tensor 312 TFLOPS dense, "
                   "1,555 GB/s HBM2",
        ),
        GpuSpec(
            name="rtx-3090", peak_flops=142e12, memory_bandwidth=936e9, memory_capacity=24 * GIB,
            source="GeForce RTX 3090 (GA102, 82 SMs, 1,695 MHz): FP16 tensor 142 TFLOPS dense (285 sparse), "
                   "FP32 35.6 TFLOPS, 24 GB GDDR6X, 936 GB/s (specification table at "
                   "holynerdvana.blogspot.com/2022/10/nvidia-geforce-rtx-3090-specifications.html)",
        ),
        GpuSpec(
            name="rtx-4090", peak_flops=330.3e12, memory_bandwidth=1008e9, memory_capacity=24 * GIB,
            source="GeForce RTX 4090 (AD102, 128 SMs): tensor FP16 with FP16 accumulate 330.3 TFLOPS dense, FP32 "
                   "82.6 TFLOPS (hmc-tech.com RTX 4090 specs); 24 GB GDDR6X, 1,008 GB/s (grafikkarten.com RTX "
                   "6000 Ada vs 4090 table)",
        ),
        GpuSpec(
            name="rtx-6000-ada", peak_flops=364.4e12, memory_bandwidth=960e9, memory_capacity=48 * GIB,
            source="RTX 6000 Ada (AD102, 142 SMs, 2,505 MHz): FP32 91.1 TFLOPS x 4 = 364.4 TFLOPS dense FP16 "
                   "tensor (derived, see module docstring); 48 GB GDDR6, 960 GB/s (heise.de, grafikkarten.com)",
        ),
        GpuSpec(
            name="rtx-a4500", peak_flops=94.6e12, memory_bandwidth=640e9, memory_capacity=20 * GIB,
            source="RTX A4500 (Ampere GA102, 7,168 CUDA cores, 1,650 MHz): FP32 23.65 TFLOPS (huggingface.co "
                   "dataset ohdoking/gpu_spec) x 4 = 94.6 TFLOPS dense FP16 tensor (derived); 20 GB GDDR6, "
                   "640 GB/s (cputronic.com RTX A4500 vs A800 page)",
        ),
        GpuSpec(
            name="rtx-a6000", peak_flops=154.8e12, memory_bandwidth=768e9, memory_capacity=48 * GIB,
            source="RTX A6000 (GA102, 84 SMs): FP16/BF16 tensor 154.8 TFLOPS dense, 309.7 sparse (llmperf.net "
                   "citing Microway's Ampere comparison); 48 GB GDDR6, 768 GB/s (servethehome.com)",
        ),
        GpuSpec(
            name="a100-80gb-pcie", peak_flops=312e12, memory_bandwidth=1935e9, memory_capacity=80 * GIB,
            source="NVIDIA A100 80GB PCIe: FP16 tensor 312 TFLOPS dense (NVIDIA A100 datasheet, as tabulated at "
                   "glennklockwood.com/garden/processors/A100); 80 GB HBM2e, 1,935 GB/s "
                   "(thundercompute.com A100 specification table)",
        ),
        GpuSpec(
            name="jetson-agx-orin", peak_flops=42.5e12, memory_bandwidth=204.8e9, memory_capacity=64 * GIB,
            source="NVIDIA Jetson AGX Orin Series Technical Brief v1.2: GPU 170 sparse INT8 TOPS -> dense "
                   "FP16 = 170 / 4 = 42.5 TFLOPS; 64 GB LPDDR5 at 204.8 GB/s (shared with the CPU)",
        ),
    )
}


def lookup(kind: type, name: str) -> ModelSpec | GpuSpec:
    """A catalogue entry by name; an unknown name raises with the known ones listed."""
    table: dict = MODELS if kind is ModelSpec else GPUS
    if name not in table:
        raise ValueError(f"unknown {kind.__name__} {name!r}; known: {sorted(table)}")
    return table[name]


def tokens_per_round(alpha: float, speculation_length: int) -> float:
    """L(alpha, l) = 1 + alpha + ... + alpha^l (docs/MODEL.md section 6)."""
    return sum(alpha**j for j in range(speculation_length + 1))


def alpha_for_tokens_per_round(mean_tokens: float, speculation_length: int) -> float:
    """The per-position acceptance rate alpha whose L(alpha, l) equals a published mean tokens per round."""
    if not 1.0 < mean_tokens < speculation_length + 1:
        raise ValueError(f"mean_tokens = {mean_tokens!r} is invalid; allowed: a number in "
                         f"(1, {speculation_length + 1})")
    return float(brentq(lambda a: tokens_per_round(a, speculation_length) - mean_tokens, 0.0, 1.0 - 1e-12,
                        xtol=1e-12))


@dataclass(frozen=True)
class AcceptanceFigure:
    """A published acceptance measurement of a draft/target pair on one dataset, as an alpha for the model.

    ``mean_tokens`` is the source's mean number of tokens a verification step yields (accepted drafts plus
    the target's own token); ``alpha`` solves L(alpha, speculation_length) = mean_tokens.
    """

    draft: str  # catalogue model name this figure stands for
    target: str
    dataset: str
    mean_tokens: float
    speculation_length: int
    measured_pair: str  # the pair actually measured, when it is only the closest one to draft/target
    source: str

    @property
    def alpha(self) -> float:
        return alpha_for_tokens_per_round(self.mean_tokens, self.speculation_length)


_SPEC_BENCH = ("Spec-Bench leaderboard (hemingkx/Spec-Bench, Leaderboard.md, 'Leaderboard on A100', SpS row): "
               "greedy, FP16, batch 1, Hugging Face assisted generation (chain drafting) with the vicuna-68m "
               "drafter (eval.sh). #Mean Accepted Tokens per decoding step, averaged over the six Spec-Bench "
               "tasks (multi-turn conversation, translation, summarisation, QA, maths, RAG); the source does not "
               "split it per task. Assisted generation adapts the draft length (starts at 5); alpha is solved "
               "for l = 5, a lower bound (l = 3 would give a higher alpha, 0.63 for 2.28).")

ACCEPTANCE: tuple[AcceptanceFigure, ...] = (
    AcceptanceFigure(draft="llama-68m", target="llama-7b", dataset="spec-bench", mean_tokens=2.28,
                     speculation_length=5, measured_pair="vicuna-68m -> Vicuna-7B-v1.3", source=_SPEC_BENCH),
    AcceptanceFigure(draft="llama-68m", target="llama-13b", dataset="spec-bench", mean_tokens=2.18,
                     speculation_length=5, measured_pair="vicuna-68m -> Vicuna-13B-v1.3", source=_SPEC_BENCH),
)


def acceptance_figure(draft: str, target: str, dataset: str) -> AcceptanceFigure:
    """The published figure for a (draft, target, dataset); an unknown combination raises with the known ones."""
    for figure in ACCEPTANCE:
        if (figure.draft, figure.target, figure.dataset) == (draft, target, dataset):
            return figure
    known = sorted((f.draft, f.target, f.dataset) for f in ACCEPTANCE)
    raise ValueError(f"no published acceptance figure for draft {draft!r}, target {target!r}, dataset {dataset!r}; "
                     f"known (draft, target, dataset): {known}")
