"""Speculative rounds: how many tokens a round yields and how many rounds a task needs (section 3).

With speculation length l >= 1 the draft model proposes l tokens and the target accepts a prefix of them
and adds one token of its own (the correction, or the bonus token when all l are accepted). l = 0 is plain
autoregressive decoding: one token per round, no draft.

* expected mode — the fluid expectation L(alpha, l) = (1 - alpha^(l+1)) / (1 - alpha) tokens per round;
  a task with O output tokens finishes after ceil(O / L) rounds, and has produced min(O, r L) tokens
  before round r;
* sampled mode — every task carries uniforms u_p, one per output position p, drawn at reset. A round
  starting at position p accepts A = min(l, run_p) drafts, where run_p counts the consecutive positions
  p, p+1, ... with u < alpha, and produces A + 1 tokens (truncated at O). Rounds-to-finish is then a
  deterministic function of (u, l): exact in hindsight.

All functions broadcast over leading axes (episodes, segments) and a trailing task axis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# ceil(O / L) must not round 3.0000000001 up to 4 when O / L is an integer in exact arithmetic.
_CEIL_SLACK = 1e-9


def expected_tokens_per_round(alpha, speculation_length: int):
    """L(alpha, l) = (1 - alpha^(l+1)) / (1 - alpha) = 1 + alpha + ... + alpha^l, for alpha in [0, 1)."""
    alpha = np.asarray(alpha, dtype=float)
    return (1.0 - alpha ** (speculation_length + 1)) / (1.0 - alpha)


def acceptance_runs(uniforms, alpha):
    """run[..., k, p]: how many consecutive positions p, p+1, ... of task k have u < alpha_k."""
    uniforms = np.asarray(uniforms)
    accept = uniforms < np.asarray(alpha)[..., None]
    num_positions = accept.shape[-1]
    position = np.arange(num_positions)
    # The first rejection at or after p, found by a reversed running minimum over rejection positions.
    rejection_at = np.where(accept, num_positions, position)
    next_rejection = np.minimum.accumulate(rejection_at[..., ::-1], axis=-1)[..., ::-1]
    return (next_rejection - position).astype(np.int32)


@dataclass(frozen=True)
class TaskProgress:
    """Per-task round structure for one speculation length.

    ``produced_before[..., k, r]`` is the number of output tokens task k has before round r; it is only
    meaningful while ``r < rounds[..., k]`` (the task is active).
    """

    rounds: np.ndarray  # (..., n) int
    produced_before: np.ndarray  # (..., n, R) float, R = max rounds
    accepted_drafts: np.ndarray  # (..., n) float: expected (fluid) or exact (sampled) accepted drafts

    @property
    def max_rounds(self) -> int:
        return self.produced_before.shape[-1]


def task_progress(output_len, alpha, speculation_length: int, runs=None) -> TaskProgress:
    """Rounds and per-round progress of tasks with outputs O and acceptance alpha at speculation length l.

    ``runs`` (from :func:`acceptance_runs`) selects sampled mode; ``None`` is expected mode.
    """
    output_len = np.asarray(output_len)
    alpha = np.asarray(alpha, dtype=float)
    if speculation_length < 0:
        raise ValueError(f"speculation_length = {speculation_length} is invalid; allowed: an integer >= 0")
    if runs is None or speculation_length == 0:
        tokens_per_round = expected_tokens_per_round(alpha, speculation_length)
        # A padded task (O = 0) needs no round at all.
        rounds = np.ceil(output_len / tokens_per_round - _CEIL_SLACK).astype(np.int64)
        max_rounds = int(rounds.max(initial=1))
        r = np.arange(max_rounds, dtype=float)
        produced = np.minimum(output_len[..., None], r * tokens_per_round[..., None])
        accepted = np.maximum(output_len - rounds, 0).astype(float)
        return TaskProgress(rounds, produced, accepted)
    return _sampled_progress(output_len, np.asarray(runs), speculation_length)


def _sampled_progress(output_len, runs, speculation_length: int) -> TaskProgress:
    # Walk all tasks' positions in lock-step; the loop runs once per round of the slowest task.
    last = runs.shape[-1] - 1
    position = np.zeros(output_len.shape, dtype=np.int64)
    accepted = np.zeros(output_len.shape, dtype=float)
    history = []
    while True:
        active = position < output_len
        if not active.any():
            break
        history.append(position.astype(float))
        run = np.take_along_axis(runs, np.minimum(position, last)[..., None], axis=-1)[..., 0]
        accept = np.minimum(run, speculation_length)
        accepted += np.where(active, np.minimum(accept, output_len - position), 0)
        position = np.where(active, np.minimum(position + accept + 1, output_len), position)
    if not history:
        history.append(np.zeros(output_len.shape))
    produced = np.stack(history, axis=-1)
    rounds = (produced < output_len[..., None]).sum(axis=-1)
    return TaskProgress(rounds.astype(np.int64), produced, accepted)
