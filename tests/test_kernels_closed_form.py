"""The closed-form service of a batch (kernels.serve_closed_form, the segment tables' pieces) against the
round-by-round kernel (kernels.serve_rounds, itself held to the numpy specification in test_kernels.py).

Tolerance: 1e-12 relative. Both paths evaluate the same per-round formulas; the closed form evaluates them
only at the ends of each piece (a run of rounds over which D and V are affine in r) and forms the sum of a
run as count x (first + last) / 2, where the round walk adds the rounds one by one, and it writes a
micro-batch's context as prompt_sum + r x tokens_sum, where the walk adds prompt_k + r L_k task by task.
Each is exact in real arithmetic; in floats the two differ by a few ulps per addition, over at most
max_new_tokens = 256 rounds: about 256 x 2.2e-16 = 6e-14 relative in the worst case, well inside 1e-12
(the largest difference seen on random instances is ~1e-14). Integers (accepted drafts) compare exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sdedge_gym import kernels
from sdedge_gym.config import FronthaulConfig
from sdedge_gym.episode import Episode, ServingModel
from sdedge_gym.roofline import PassCost
from sdedge_gym.scenarios import make_scenario

RTOL = 1e-12
NO_RUNS = np.zeros((1, 1), dtype=np.int32)
PAPER = ServingModel.of(make_scenario("paper"))


def _parameters(draft: PassCost, target: PassCost, fronthaul: FronthaulConfig, pipelining: bool) -> np.ndarray:
    config = make_scenario("paper", pipelining=pipelining, config={
        "fronthaul": {"rate": fronthaul.rate, "latency": fronthaul.latency,
                      "draft_token_bits": fronthaul.draft_token_bits}})
    return kernels.scenario_parameters(config, draft, target)


def _node(overhead: float, flop_time: float, byte_time: float, flops: float, attention: float, weights: float,
          kv: float) -> PassCost:
    return PassCost(overhead=overhead, seconds_per_flop=flop_time, seconds_per_byte=byte_time,
                    flops_per_token=flops, attention_flops=attention, weight_bytes=weights, kv_bytes_per_token=kv,
                    memory_capacity=1e12)


# Made-up nodes: with contexts of 10^2-10^4 tokens and n (l + 1) new tokens, compute and memory time cross
# inside a batch, so that stretches are cut at roofline switches.
CROSSING = (_node(1e-3, 1e-6, 1e-6, 3, 2, 900, 1), _node(2e-3, 1e-6, 1e-6, 200, 2, 1000, 2),
            FronthaulConfig(rate=1e6, latency=1e-3, draft_token_bits=100))
# A draft node slower than the target: the pipeline is SBS-bound (A's next draft waits for nothing).
SLOW_DRAFT = (_node(5e-3, 1e-6, 2e-5, 3, 2, 900, 1), _node(1e-3, 1e-7, 1e-7, 200, 2, 1000, 2),
              FronthaulConfig(rate=1e6, latency=1e-4, draft_token_bits=100))
NODES = {"paper-nodes": (PAPER.draft, PAPER.target, PAPER.config.fronthaul), "crossing-nodes": CROSSING,
         "slow-draft": SLOW_DRAFT}


def _close(got, want, what: str) -> None:
    np.testing.assert_allclose(np.asarray(got, dtype=float), np.asarray(want, dtype=float), rtol=RTOL, atol=0.0,
                               err_msg=what)


def _both(p, prompt, output, alpha, l: int):
    """(completion, duration, accepted) of the batch of all the given tasks, closed form and round walk."""
    n = len(prompt)
    work = np.empty((kernels.WORKSPACE_ROWS, max(int(output.max()), n, 1)))
    got, want = np.empty(n), np.empty(n)
    duration, accepted = kernels.serve_closed_form(p, prompt, output, alpha, 0, n, l, got, work)
    reference, reference_accepted = kernels.serve_rounds(p, prompt, output, alpha, NO_RUNS, 0, n, l, False, want,
                                                         work)
    return (got, duration, accepted), (want, reference, reference_accepted)


def _check(p, prompt, output, alpha, l: int) -> None:
    (got, duration, accepted), (want, reference, reference_accepted) = _both(p, prompt, output, alpha, l)
    _close(got, want, "completion offsets")
    _close(duration, reference, "duration")
    assert accepted == reference_accepted


def _round_times(p, prompt, output, alpha, l: int, pipelined: bool):
    """The round walk's per-round D, F, V of micro-batches A and B (rows 0-2 and 3-5)."""
    n = len(prompt)
    work = np.empty((kernels.WORKSPACE_ROWS, max(int(output.max()), n, 1)))
    kernels.serve_rounds(p, prompt, output, alpha, NO_RUNS, 0, n, l, False, np.empty(n), work)
    size_a = (n + 1) // 2 if pipelined else n
    counts = work[kernels._ROUNDS, :n].astype(int)
    rounds_a, rounds_b = counts[:size_a].max(), (counts[size_a:].max() if n > size_a else 0)
    rows = (kernels._DRAFT_A, kernels._FRONTHAUL_A, kernels._VERIFY_A, kernels._DRAFT_B, kernels._FRONTHAUL_B,
            kernels._VERIFY_B)
    return [work[row].copy() for row in rows], rounds_a, rounds_b


def _instance(rng: np.random.Generator, n: int, ties: bool):
    prompt = rng.integers(16, 1500, n).astype(float)
    if ties:  # few distinct lengths and rates: several tasks leave after the same round
        output = rng.choice([17, 64, 200], n)
        alpha = rng.choice([0.3, 0.8], n)
    else:
        output = rng.integers(1, 257, n)
        alpha = rng.uniform(0.0, 0.95, n)
    return prompt, output.astype(np.int64), alpha


# ---------------------------------------------------------------------------------------------- properties


@st.composite
def _nodes(draw):
    """A random pair of roofline nodes and fronthaul, scaled so that either node can be the bottleneck."""
    def node():
        return _node(draw(st.floats(1e-4, 5e-3)), 10 ** draw(st.floats(-7.5, -5.5)), 10 ** draw(st.floats(-7.5, -5.5)),
                     draw(st.floats(1.0, 300.0)), 10 ** draw(st.floats(-1.0, 1.0)), draw(st.floats(100.0, 3000.0)),
                     draw(st.floats(0.1, 5.0)))
    fronthaul = FronthaulConfig(rate=10 ** draw(st.floats(5.0, 8.0)), latency=draw(st.floats(0.0, 5e-3)),
                                draft_token_bits=100)
    return node(), node(), fronthaul


@settings(max_examples=150, deadline=None)
@given(data=st.data(), nodes=_nodes(), n=st.integers(1, 12), l=st.integers(0, 8), pipelined=st.booleans(),
       ties=st.booleans())
def test_closed_form_equals_the_round_walk(data, nodes, n: int, l: int, pipelined: bool, ties: bool) -> None:
    p = _parameters(*nodes, pipelining=pipelined)
    prompt = np.array(data.draw(st.lists(st.integers(1, 3000), min_size=n, max_size=n)), dtype=float)
    if ties:
        output = np.array(data.draw(st.lists(st.sampled_from([0, 1, 9, 64, 256]), min_size=n, max_size=n)))
        alpha = np.array(data.draw(st.lists(st.sampled_from([0.0, 0.5, 0.9]), min_size=n, max_size=n)))
    else:
        output = np.array(data.draw(st.lists(st.integers(1, 256), min_size=n, max_size=n)))
        alpha = np.array(data.draw(st.lists(st.floats(0.0, 0.98), min_size=n, max_size=n)))
    _check(p, prompt, output.astype(np.int64), alpha, l)


@pytest.mark.parametrize("nodes", sorted(NODES))
@pytest.mark.parametrize("pipelined", [True, False])
def test_closed_form_equals_the_round_walk_at_every_length(nodes: str, pipelined: bool) -> None:
    p = _parameters(*NODES[nodes], pipelining=pipelined)
    rng = np.random.default_rng(21)
    for trial in range(60):
        n = int(rng.integers(1, 17))
        prompt, output, alpha = _instance(rng, n, ties=trial % 3 == 0)
        for l in range(9):
            _check(p, prompt, output, alpha, l)


def test_the_instances_meet_every_regime_ties_and_roofline_switches() -> None:
    """The deterministic instances above are not all alike: across them, rounds are MBS-bound, SBS-bound and
    neither (stepped), tasks leave together, and pieces are cut at roofline switches inside a stretch."""
    seen = {"mbs-bound": 0, "sbs-bound": 0, "neither": 0, "ties": 0, "switch-in-stretch": 0}
    for nodes in NODES.values():
        p = _parameters(*nodes, pipelining=True)
        rng = np.random.default_rng(21)
        for trial in range(60):
            n = int(rng.integers(1, 17))
            prompt, output, alpha = _instance(rng, n, ties=trial % 3 == 0)
            for l in range(9):
                (d_a, f_a, _, _, f_b, v_b), rounds_a, rounds_b = _round_times(p, prompt, output, alpha, l, True)
                for r in range(1, min(rounds_a, rounds_b)):
                    if d_a[r] + f_a[r] <= v_b[r - 1]:
                        seen["mbs-bound"] += 1
                    elif d_a[r] >= f_b[r] + v_b[r - 1]:
                        seen["sbs-bound"] += 1
                    else:
                        seen["neither"] += 1
                work = np.empty((kernels.WORKSPACE_ROWS, 256))
                pieces = kernels.workspace_pieces(work, kernels._PIECES_A)
                kernels.expected_rounds(output, alpha, l, 0, n, work[0], work[1])
                count = kernels.micro_batch_pieces(p, prompt, 0, n, l, work[0], work[1], work[2], work[3], pieces, 0)
                leaving = pieces[:count, kernels._LEAVING]
                departures = len(np.unique(work[0, :n]))
                seen["ties"] += departures < n
                seen["switch-in-stretch"] += count > departures + 1 or np.any(leaving[1:-1] == 0)
    assert all(value > 0 for value in seen.values()), seen


@settings(max_examples=100, deadline=None)
@given(nodes=_nodes(), n=st.integers(1, 12), l=st.integers(0, 8), seed=st.integers(0, 2**31))
def test_pieces_reproduce_every_round_time(nodes, n: int, l: int, seed: int) -> None:
    """Within each piece the interpolated D and V equal the round walk's D and V at every round: a roofline
    switch missed inside a piece would show here as a round off the straight line."""
    p = _parameters(*nodes, pipelining=False)
    prompt, output, alpha = _instance(np.random.default_rng(seed), n, ties=seed % 2 == 0)
    (draft, fronthaul, verify, _, _, _), rounds, _ = _round_times(p, prompt, output, alpha, l, False)
    work = np.empty((kernels.WORKSPACE_ROWS, 256))
    pieces = kernels.workspace_pieces(work, kernels._PIECES_A)
    kernels.expected_rounds(output, alpha, l, 0, n, work[0], work[1])
    count = kernels.micro_batch_pieces(p, prompt, 0, n, l, work[0], work[1], work[2], work[3], pieces, 0)
    first, last = pieces[:count, kernels._FIRST].astype(int), pieces[:count, kernels._LAST].astype(int)
    np.testing.assert_array_equal(first[1:], last[:-1] + 1)  # the pieces tile rounds 0..R-1
    assert first[0] == 0 and last[-1] == rounds - 1
    for piece in range(count):
        r = np.arange(first[piece], last[piece] + 1)
        _close(kernels._draft_in(pieces, piece, r), draft[r], "draft")
        _close(np.full(len(r), pieces[piece, kernels._FRONTHAUL0]), fronthaul[r], "fronthaul")
        _close(kernels._verify_in(pieces, piece, r), verify[r], "verify")
    assert pieces[:count, kernels._LEAVING].sum() == np.count_nonzero(output > 0)


@settings(max_examples=200, deadline=None)
@given(a=st.integers(0, 50), length=st.integers(0, 60), values=st.lists(st.floats(-10.0, 10.0), min_size=6,
                                                                        max_size=6))
def test_sum_max_plus_is_the_sum_of_its_rounds(a: int, length: int, values) -> None:
    b = a + length
    p_a, q_a, r_a, p_b, q_b, r_b = values
    r = np.arange(a, b + 1)
    t = (r - a) / length if length else np.zeros(1)
    rounds = np.maximum(p_a + (p_b - p_a) * t, q_a + (q_b - q_a) * t) + r_a + (r_b - r_a) * t
    got = kernels._sum_max_plus(a, b, p_a, q_a, r_a, p_b, q_b, r_b)
    assert got == pytest.approx(rounds.sum(), rel=1e-12, abs=1e-12 * (length + 1) * 30)


# ---------------------------------------------------------------------------------------------- callers


@pytest.mark.parametrize("objective", ["mean_latency", "makespan"])
def test_commit_uses_the_closed_form_and_keeps_its_costs(objective: str) -> None:
    """commit (env, vector env, online env) serves expected-mode batches in closed form: its clocks and cost
    are the round walk's, for both objectives."""
    model = ServingModel.of(make_scenario("paper", objective=objective))
    episode = Episode.draw(model, np.random.default_rng(5))
    prompt, output, alpha, payload, channel, runs = episode.kernel_arrays
    p, work = model.kernel_parameters, model.workspace
    rng = np.random.default_rng(6)
    for _ in range(40):
        first, n, l = int(rng.integers(0, 80)), int(rng.integers(1, 17)), int(rng.integers(0, 9))
        uplink_end, inference_end = float(rng.uniform(0, 5)), float(rng.uniform(0, 5))
        completion, bandwidth = np.empty(n), np.empty(n)
        slot, _, _, finish, cost, accepted, _ = kernels.commit(
            p, prompt, output, alpha, payload, channel, runs, first, n, l, False, False, bandwidth, completion,
            uplink_end, inference_end, objective == "mean_latency", work)
        offsets = np.empty(n)
        duration, want_accepted = kernels.serve_rounds(p, prompt, output, alpha, runs, first, n, l, False, offsets,
                                                       np.empty_like(work))
        want_start = max(uplink_end + slot, inference_end)
        _close(completion, want_start + offsets, "completion times")
        _close(finish, want_start + duration, "finish")
        want_cost = ((want_start + offsets).sum() / output.shape[0] if objective == "mean_latency"
                     else want_start + duration - inference_end)
        _close(cost, want_cost, "cost")
        assert accepted == want_accepted


@pytest.mark.parametrize("nodes", sorted(NODES))
@pytest.mark.parametrize("pipelined", [True, False])
def test_segment_tables_equal_the_round_walk(nodes: str, pipelined: bool) -> None:
    """Every segment's (D, C) from the shared pieces equals the round walk's windows, at every l."""
    p = _parameters(*NODES[nodes], pipelining=pipelined)
    model = ServingModel.of(make_scenario("paper", num_tasks=70))  # more tasks than a chunk of first tasks
    prompt, output, alpha, _, _, runs = Episode.draw(model, np.random.default_rng(4)).kernel_arrays
    width, lengths = 16, 9
    got, want = np.empty((2, 70, width, lengths)), np.empty((2, 70, width, lengths))
    kernels.segment_service(p, prompt, output, alpha, runs, False, lengths - 1, width, 0, got[0], got[1])
    for l in range(lengths):
        assert kernels.closed_form_applies(p, l, False)
        kernels._segments_at_length(p, prompt, output, alpha, runs, False, l, width, want[0], want[1])
    finite = np.isfinite(want)
    np.testing.assert_array_equal(np.isfinite(got), finite)
    _close(got[finite], want[finite], "segment tables")


def test_the_round_walk_stays_where_the_closed_form_does_not_apply() -> None:
    p = PAPER.kernel_parameters
    assert kernels.closed_form_applies(p, 3, False) and kernels.closed_form_applies(p, 0, True)
    assert not kernels.closed_form_applies(p, 3, True)  # sampled acceptance: rounds depend on the draws
    profiled = p.copy()  # a node timed by a measured profile (stored from NUM_PARAMETERS on): not affine
    profiled[kernels.PROFILE_AT_TARGET] = kernels.NUM_PARAMETERS
    assert not kernels.closed_form_applies(profiled, 3, False)
