"""The roofline pass time and memory feasibility (docs/MODEL.md, "Forward-pass time")."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sdedge_gym.catalogue import GPUS, MODELS
from sdedge_gym.config import NodeConfig
from sdedge_gym.roofline import PassCost

# LLaMA-7B on an RTX 4500 Ada, as in the paper preset's MBS; the literals are the catalogue's figures,
# pinned here so that a change to the catalogue is a deliberate one.
P, J, H = 6.74e9, 32, 4096
PEAK, BANDWIDTH, ETA, T0 = 79.4e12, 432e9, 0.3, 2e-3


@pytest.fixture
def target() -> PassCost:
    node = NodeConfig(gpu=GPUS["rtx-4500-ada"], model=MODELS["llama-7b"], efficiency=ETA, pass_overhead=T0)
    return PassCost.of(node)


def test_catalogue_figures_used_by_the_hand_computations() -> None:
    model, gpu = MODELS["llama-7b"], GPUS["rtx-4500-ada"]
    assert (model.num_params, model.num_layers, model.hidden_size, model.kv_hidden_size) == (P, J, H, H)
    assert (gpu.peak_flops, gpu.memory_bandwidth, gpu.memory_capacity) == (PEAK, BANDWIDTH, 24 * 2**30)


def test_prefill_of_one_long_prompt_is_compute_bound(target: PassCost) -> None:
    n, q, c = 1, 512, 0
    flops = n * q * (2 * P + 4 * J * H * (c + q))  # 7.039e12 FLOP
    memory_bytes = 2 * P + 4 * J * H * n * (c + q)  # 1.375e10 B
    compute, memory = flops / (ETA * PEAK), memory_bytes / BANDWIDTH  # 0.2955 s vs 0.0318 s: t = 0.297516 s
    assert compute > memory
    assert float(target.uniform_pass_time(n, q, c)) == pytest.approx(T0 + compute, rel=1e-12)
    assert float(target.uniform_pass_time(n, q, c)) == pytest.approx(0.297516, rel=1e-5)


def test_small_decode_batch_is_memory_bound(target: PassCost) -> None:
    n, q, c = 4, 1, 255
    flops = n * q * (2 * P + 4 * J * H * (c + q))  # 5.45e10 FLOP
    memory_bytes = 2 * P + 4 * J * H * n * (c + q)  # 1.40e10 B
    compute, memory = flops / (ETA * PEAK), memory_bytes / BANDWIDTH  # 2.3 ms vs 32.4 ms: t = 34.4465 ms
    assert memory > compute
    assert float(target.uniform_pass_time(n, q, c)) == pytest.approx(T0 + memory, rel=1e-12)
    assert float(target.uniform_pass_time(n, q, c)) == pytest.approx(0.0344465, rel=1e-5)


def test_grouped_query_attention_reads_the_narrow_kv_cache() -> None:
    # TinyLlama: attention FLOPs use the query width h = 2048, the KV bytes the KV width 256.
    cost = PassCost.of(NodeConfig(gpu=GPUS["a100-40gb"], model=MODELS["tinyllama-1.1b"]))
    assert cost.attention_flops == 4 * 22 * 2048
    assert cost.kv_bytes_per_token == 4 * 22 * 256
    assert cost.weight_bytes == 2 * 1.1e9
    assert cost.seconds_per_flop == pytest.approx(1 / (0.5 * 312e12))


def test_int8_weights_halve_the_weight_bytes() -> None:
    fp16 = PassCost.of(NodeConfig(gpu=GPUS["rtx-3080"], model=MODELS["llama-68m"]))
    int8 = PassCost.of(NodeConfig(gpu=GPUS["rtx-3080"], model=MODELS["llama-68m"], bytes_per_param=1))
    assert int8.weight_bytes == fp16.weight_bytes / 2


def test_a_pass_with_no_new_tokens_takes_no_time(target: PassCost) -> None:
    times = target.pass_time(np.array([0.0, 1.0]), np.array([0.0, 10.0]), np.array([0.0, 10.0]))
    assert times[0] == 0.0
    assert times[1] >= T0


@settings(max_examples=40, deadline=None)
@given(
    new_tokens=st.lists(st.integers(1, 64), min_size=1, max_size=6),
    contexts=st.lists(st.integers(0, 2000), min_size=6, max_size=6),
)
def test_aggregates_time_a_ragged_batch_exactly(new_tokens: list[int], contexts: list[int]) -> None:
    # Per-sequence FLOPs and bytes summed by hand equal the aggregate form N, A, T.
    cost = PassCost.of(NodeConfig(gpu=GPUS["rtx-4500-ada"], model=MODELS["llama-7b"], efficiency=ETA))
    q = np.array(new_tokens, dtype=float)
    c = np.array(contexts[: len(new_tokens)], dtype=float)
    flops = np.sum(q * (2 * P + 4 * J * H * (c + q)))
    memory_bytes = 2 * P + np.sum(4 * J * H * (c + q))
    expected = 2e-3 + max(flops / (ETA * PEAK), memory_bytes / BANDWIDTH)
    got = cost.pass_time(q.sum(), np.sum(q * (c + q)), np.sum(c + q))
    assert float(got) == pytest.approx(expected, rel=1e-12)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 32), q=st.integers(1, 16), c=st.integers(0, 1024))
def test_pass_time_grows_with_batch_tokens_and_context(n: int, q: int, c: int) -> None:
    cost = PassCost.of(NodeConfig(gpu=GPUS["rtx-4500-ada"], model=MODELS["llama-7b"], efficiency=ETA))
    base = float(cost.uniform_pass_time(n, q, c))
    assert float(cost.uniform_pass_time(n + 1, q, c)) >= base
    assert float(cost.uniform_pass_time(n, q + 1, c)) >= base
    assert float(cost.uniform_pass_time(n, q, c + 1)) >= base


def test_memory_limit_of_the_paper_target_by_hand(target: PassCost) -> None:
    tokens = 512 + 512  # paper preset: prompt_max + max_new_tokens
    free = 24 * 2**30 - 2 * P  # 12.29e9 B after the FP16 weights
    per_sequence = 4 * J * H * tokens  # 537 MB of K and V per full sequence
    assert target.max_batch_for_memory(tokens) == int(free // per_sequence) == 22


def test_weights_that_do_not_fit_leave_no_batch() -> None:
    cost = PassCost.of(NodeConfig(gpu=GPUS["rtx-3080"], model=MODELS["llama-13b"]))
    assert cost.max_batch_for_memory(1) == 0
