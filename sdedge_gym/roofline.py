"""Roofline time of one forward pass, and memory feasibility of a batch (MODEL.md section 2).

A pass over sequences i = 1..n, each adding q_i new tokens to a cached context of c_i tokens, costs

    FLOPs = sum_i q_i (2P + 4 J h (c_i + q_i))           = 2P * N + 4 J h * A
    bytes = b_w P + 4 J h_kv sum_i (c_i + q_i)           = b_w P + 4 J h_kv * T
    t     = t0 + max(FLOPs / (eta C), bytes / (mu W))

with the three batch aggregates N = sum q_i (new tokens), A = sum q_i (c_i + q_i) (attention work) and
T = sum (c_i + q_i) (KV tokens read). Writing the pass in aggregates lets a ragged batch (different
prompt lengths) be timed exactly, and lets callers vectorise over any leading axes.

A node configured with a measured profile (``NodeConfig.profile``, sdedge_gym/pass_profile.py) is timed
from that table instead; the table is indexed by the batch size too, so ``pass_time`` then needs ``batch``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sdedge_gym.config import NodeConfig
from sdedge_gym.pass_profile import PassProfile, load_profile


@dataclass(frozen=True)
class PassCost:
    """The roofline coefficients of one node (GPU + model), precomputed once per scenario."""

    overhead: float  # t0, s
    seconds_per_flop: float  # 1 / (eta C)
    seconds_per_byte: float  # 1 / (mu W)
    flops_per_token: float  # 2P
    attention_flops: float  # 4 J h, per (new token x context token)
    weight_bytes: float  # b_w P
    kv_bytes_per_token: float  # 4 J h_kv: K and V, FP16, every layer
    memory_capacity: float  # bytes
    profile: PassProfile | None = None  # measured pass times; when set they replace the roofline

    @classmethod
    def of(cls, node: NodeConfig) -> PassCost:
        """The node's coefficients. A profiled node gets NaN for t0, 1/(eta C) and 1/(mu W): code that
        inlines the roofline from those coefficients (instead of calling pass_time) yields NaN, never a
        roofline time silently standing in for the measured one."""
        m, g = node.model, node.gpu
        profile = load_profile(node.profile) if node.profile is not None else None
        roofline = profile is None
        return cls(
            overhead=node.pass_overhead if roofline else math.nan,
            seconds_per_flop=1.0 / (node.efficiency * g.peak_flops) if roofline else math.nan,
            seconds_per_byte=1.0 / (node.memory_efficiency * g.memory_bandwidth) if roofline else math.nan,
            flops_per_token=2.0 * m.num_params,
            attention_flops=4.0 * m.num_layers * m.hidden_size,
            weight_bytes=node.bytes_per_param * m.num_params,
            kv_bytes_per_token=4.0 * m.num_layers * m.kv_hidden_size,
            memory_capacity=g.memory_capacity,
            profile=profile,
        )

    def pass_time(self, new_tokens, attention_work, kv_tokens, batch=None):
        """Seconds for one pass from the aggregates N, A, T (arrays broadcast); 0 where N == 0.

        ``batch`` (the number of active sequences) is ignored by the roofline and required by a profile.
        """
        if self.profile is not None:
            if batch is None:
                raise ValueError(f"PassCost.pass_time: this node is timed by the measured profile "
                                 f"{self.profile.path}, which is indexed by batch size; pass batch= (the number "
                                 f"of active sequences in the pass)")
            return self.profile.pass_time(new_tokens, kv_tokens, batch)
        new_tokens = np.asarray(new_tokens, dtype=float)
        compute = (self.flops_per_token * new_tokens + self.attention_flops * attention_work) \
            * self.seconds_per_flop
        memory = (self.weight_bytes + self.kv_bytes_per_token * kv_tokens) * self.seconds_per_byte
        return np.where(new_tokens > 0, self.overhead + np.maximum(compute, memory), 0.0)

    def uniform_pass_time(self, batch: float, new_tokens: float, context: float):
        """The spec's t(n, q, c) for n sequences of q new tokens on a context of c (hand-checkable form)."""
        n, q, c = batch, new_tokens, context
        return self.pass_time(n * q, n * q * (c + q), n * (c + q), batch=n)

    def max_batch_for_memory(self, tokens_per_sequence: int) -> int:
        """Largest n with weights + n full KV caches within memory; 0 if the weights alone do not fit."""
        free = self.memory_capacity - self.weight_bytes
        if free <= 0:
            return 0
        return int(free // (self.kv_bytes_per_token * tokens_per_sequence))
