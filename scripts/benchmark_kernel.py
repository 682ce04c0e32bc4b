"""How the cost of serving batches grows with K, n_max and max_new_tokens: round walk against closed form.

    NUMBA_NUM_THREADS=1 python scripts/benchmark_kernel.py    # about 2 minutes

Both algorithms live in the kernel (``kernels.serve_rounds``, the round-by-round reference, and
``kernels.serve_closed_form``), so they are timed side by side in one process on the same batches: one
batch's service (no uplink) as the batch size n and the output lengths grow, and the segment tables'
service part (``_segments_at_length`` per l against ``segment_service``) and uplink part
(``segment_slots``, which neither changes) as K grows, on the paper preset in expected acceptance. The
batch rows also time the batch's closed-form band split (``uplink_slot``), the other half of a commit.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
from numba import njit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # time this tree's sdedge_gym, not an installed one

from sdedge_gym import Episode, ServingModel, kernels, make_scenario


@njit(cache=True)
def _serve_all(p, prompt, output, alpha, runs, n, closed_form, work):
    """Serve every batch (first task j, size n) at every l of an episode, one way or the other; a checksum."""
    completion = np.empty(n)
    total = 0.0
    for j in range(output.shape[0] - n + 1):
        for l in range(9):
            if closed_form:
                duration, _ = kernels.serve_closed_form(p, prompt, output, alpha, j, n, l, completion, work)
            else:
                duration, _ = kernels.serve_rounds(p, prompt, output, alpha, runs, j, n, l, False, completion, work)
            total += duration
    return total


@njit(cache=True)
def _split_all(p, payload, channel, n, work):
    """The closed-form band split of every batch (first task j, size n) of an episode, 9 times (as many
    batches as :func:`_serve_all` serves); a checksum."""
    bandwidth = np.empty(n)
    total = 0.0
    for j in range(payload.shape[0] - n + 1):
        for _ in range(9):
            total += kernels.uplink_slot(p, payload[j:j + n], channel[j:j + n], bandwidth, False, work)
    return total


def _best_of(repeats: int, run, *args) -> float:
    """The least wall time of ``repeats`` calls of run(*args), after one untimed call (compile, warm)."""
    run(*args)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(*args)
        times.append(time.perf_counter() - start)
    return min(times)


def _round_walk_tables(p, prompt, output, alpha, runs, lengths, width, duration, completion) -> None:
    for l in range(lengths):
        kernels._segments_at_length(p, prompt, output, alpha, runs, False, l, width, duration, completion)


def batch_rows() -> None:
    print("\n| one batch's service (paper preset, every l, 9 x 200 batches) | n | max_new_tokens | round walk (us) "
          "| closed form (us) | speed-up | its uplink split (us) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    # the paper preset's workload (output median 128, cap 512), then longer outputs at n = 8 (median cap / 4)
    cases = [(n, 512) for n in (2, 4, 8, 16, 22)] + [(8, tokens) for tokens in (128, 2048, 8192)]
    for n, tokens in cases:
        scenario = make_scenario("paper", num_tasks=200 + n - 1)
        scenario = scenario.replace(workload=scenario.workload.replace(max_new_tokens=tokens,
                                                                       output_median=tokens / 4))
        model = ServingModel.of(scenario)
        prompt, output, alpha, payload, channel, runs = Episode.draw(model, np.random.default_rng(0)).kernel_arrays
        p, work = model.kernel_parameters, model.workspace
        results = [_best_of(3, _serve_all, p, prompt, output, alpha, runs, n, closed_form, work) / (9 * 200) * 1e6
                   for closed_form in (False, True)]
        split = _best_of(3, _split_all, p, payload, channel, n, work) / (9 * 200) * 1e6
        print(f"| serve | {n} | {tokens} | {results[0]:.2f} | {results[1]:.2f} | {results[0] / results[1]:.1f}x | "
              f"{split:.2f} |", flush=True)


def table_rows() -> None:
    print("\n| segment tables (paper preset: n up to 22, l 0-8) | K | service, round walk (s) | service, closed form "
          "(s) | speed-up | uplink slots (s) |")
    print("|---|---:|---:|---:|---:|---:|")
    for size in (100, 1000, 10_000):
        model = ServingModel.of(make_scenario("paper", num_tasks=size))
        prompt, output, alpha, payload, channel, runs = Episode.draw(model, np.random.default_rng(0)).kernel_arrays
        p, width, lengths = model.kernel_parameters, model.batch_limit, model.config.max_speculation + 1
        duration, completion = np.empty((size, width, lengths)), np.empty((size, width, lengths))
        slot = np.empty((size, width))
        repeats = 3 if size < 10_000 else 1
        walk = _best_of(repeats, _round_walk_tables, p, prompt, output, alpha, runs, lengths, width, duration,
                        completion)
        closed_form = _best_of(repeats, kernels.segment_service, p, prompt, output, alpha, runs, False, lengths - 1,
                               width, 0, duration, completion)
        uplink = _best_of(repeats, kernels.segment_slots, p, payload, channel, width, False, slot)
        print(f"| tables | {size} | {walk:.4f} | {closed_form:.4f} | {walk / closed_form:.1f}x | {uplink:.4f} |",
              flush=True)


def main() -> None:
    print(f"# load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; best of 3 "
          f"(1 at K = 10,000); NUMBA_NUM_THREADS={os.environ.get('NUMBA_NUM_THREADS', 'default')}")
    batch_rows()
    table_rows()


if __name__ == "__main__":
    main()
