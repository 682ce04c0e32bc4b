"""A small catalogue of models and GPUs, every figure with its source.

Model shapes come from the published architecture tables or the released ``config.json``; GPU figures
from the vendors' datasheets. Where a datasheet quotes only a sparse or FP8 tensor figure we derive the
dense FP16 one and say how in ``source``.
"""

from __future__ import annotations

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
            name="rtx-4500-ada", peak_flops=79.4e12, memory_bandwidth=432e9, memory_capacity=24 * GIB,
            source="NVIDIA RTX 4500 Ada Generation datasheet (2023): 24 GB GDDR6, 432 GB/s, tensor "
                   "317.4 TFLOPS (FP8 with sparsity) -> dense FP16 = 317.4 / 4 = 79.4 TFLOPS",
        ),
        GpuSpec(
            name="a100-40gb", peak_flops=312e12, memory_bandwidth=1555e9, memory_capacity=40 * GIB,
            source="NVIDIA A100 Tensor Core GPU datasheet (SXM4 40 GB): FP16 tensor 312 TFLOPS dense, "
                   "1,555 GB/s HBM2",
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
