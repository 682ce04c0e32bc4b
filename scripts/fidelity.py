"""How close is the latency model to published measurements? One table, and the fit behind the calibration.

    python scripts/fidelity.py                 # the table of docs/FIDELITY.md
    python scripts/fidelity.py --fit           # re-fit mu, eta, t0 per GPU class; leave-one-GPU-out check
    python scripts/fidelity.py --presets       # paper preset vs its calibrated variant: mean latency by l
    python scripts/fidelity.py --write-profile sdedge_gym/profiles/llama-2-7b-f16-rtx-3090-llamacpp.csv

Every row: a (model, GPU, precision, quantity), the published measurement and its source, the model's
prediction with the paper preset's MBS parameters (eta 0.3, mu 1, t0 2 ms; for SD rows the SBS's eta 0.5,
t0 4 ms) and with the calibrated parameters of sdedge_gym/calibration.py, and the ratio predicted /
measured. Decode rows are seconds per token, prefill and pass rows seconds per pass, SD rows speedups.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sdedge_gym.calibration import (
    CALIBRATED,
    CLASSES,
    CONTEXT_ROWS,
    DRAFT_PASS_OVERHEAD,
    GPU_CLASS,
    MEASUREMENTS,
    REFERENCE,
    class_of,
    draft_pass_overhead,
    fit,
    node,
    predict,
)
from sdedge_gym.catalogue import GPUS
from sdedge_gym.episode import Episode, EpisodeClock, ServingModel, commit_batch
from sdedge_gym.pass_profile import write_profile
from sdedge_gym.roofline import PassCost
from sdedge_gym.scenarios import make_scenario

TOLERANCE = 0.25


def _value(row, value: float) -> str:
    if row.quantity == "sd_speedup":
        return f"{value:.2f}x"
    return f"{value * 1e3:.2f} ms"


def table(params=None, draft_overhead=None) -> list[dict]:
    params = CALIBRATED if params is None else params
    rows = []
    for row in MEASUREMENTS:
        preset = predict(row)
        calibrated = predict(row, params[class_of(row)], draft_overhead)
        rows.append({"row": row, "preset": preset, "calibrated": calibrated,
                     "preset_ratio": preset / row.measured, "calibrated_ratio": calibrated / row.measured})
    return rows


def print_table() -> None:
    rows = table()
    print("| # | model | GPU | prec. | quantity | measured | preset model | ratio | calibrated | ratio | ±25 % | "
          "used by fit | framework | context |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for number, r in enumerate(rows, start=1):
        row = r["row"]
        within = "yes" if abs(r["calibrated_ratio"] - 1) <= TOLERANCE else "**no**"
        extra = row.context
        if row.literature_range is not None:
            low, high = row.literature_range
            inside = low <= r["calibrated"] <= high
            extra += f"; calibrated {'inside' if inside else 'outside'} [{low:.2f}, {high:.2f}]"
        print(f"| {number} | {row.model} | {row.gpu} | F16 | {row.label} | {_value(row, row.measured)} | "
              f"{_value(row, r['preset'])} | {r['preset_ratio']:.2f} | {_value(row, r['calibrated'])} | "
              f"{r['calibrated_ratio']:.2f} | {within} | {'fit' if row.fitted else 'held out'} | "
              f"{row.framework} | {extra} |")
    n = len(rows)
    calibrated_ok = sum(abs(r["calibrated_ratio"] - 1) <= TOLERANCE for r in rows)
    preset_ok = sum(abs(r["preset_ratio"] - 1) <= TOLERANCE for r in rows)
    held = [r for r in rows if not r["row"].fitted]
    held_ok = sum(abs(r["calibrated_ratio"] - 1) <= TOLERANCE for r in held)
    print()
    print(f"rows within ±25 %: calibrated {calibrated_ok}/{n} (held-out rows {held_ok}/{len(held)}), "
          f"preset parameters {preset_ok}/{n}")
    print()
    print("Context (published, not predicted here: no sourced bandwidth for the RTX 4000/5000 Ada, no catalogue V100;"
          " the 160M row sets the draft t0):")
    for gpu, model, quantity, seconds, _ in CONTEXT_ROWS:
        print(f"  {gpu:12s} {model:20s} {quantity:26s} {seconds * 1e3:8.2f} ms")
    print()
    print("The paper preset's MBS, RTX 4500 Ada + LLaMA-7B F16 (no published measurement of this GPU was found):")
    for label, gpu, params in (("preset (79.4 TFLOPS, eta 0.3, mu 1, t0 2 ms)", "rtx-4500-ada", None),
                               ("calibrated (158.4 TFLOPS, ada class)", "rtx-4500-ada-full-rate", CALIBRATED["ada"])):
        cost = PassCost.of(node(GPUS[gpu], "llama-2-7b", params) if params else
                           node(GPUS[gpu], "llama-2-7b"))
        context = 494 + np.arange(1023, dtype=float)
        decode = float(np.mean(cost.pass_time(np.ones_like(context), context + 1, context + 1, batch=1)))
        prefill = float(cost.uniform_pass_time(1, 494, 0))
        print(f"  {label:46s} decode {decode * 1e3:6.2f} ms/token, prefill of 494 tokens {prefill * 1e3:7.2f} ms")
    print("  bracketing measurements (same source): RTX 4000 Ada 43.55 / 208.52 ms, "
          "RTX 5000 Ada 27.54 / 100.07 ms")
    print()
    print("Sources:")
    for source in dict.fromkeys([row.source for row in MEASUREMENTS] + [c[4] for c in CONTEXT_ROWS]):
        print(f"  - {source}")


def print_fit() -> None:
    params = fit()
    draft = draft_pass_overhead(params["ampere-ga100"])
    print("Fit (least squares on log(predicted / measured) over the rows marked 'fit'):")
    print("| class | GPUs | mu (memory) | eta (compute) | t0 (ms) |")
    print("|---|---|---|---|---|")
    for name in CLASSES:
        gpus = ", ".join(g for g, c in GPU_CLASS.items() if c == name)
        p = params[name]
        print(f"| {name} | {gpus} | {p.memory_efficiency:.3f} | {p.efficiency:.3f} | {p.pass_overhead * 1e3:.3f} |")
    print(f"draft-model t0 (llama-160m, A100, 1.49 ms less its weight read): {draft * 1e3:.3f} ms")
    stored = all(abs(params[c].memory_efficiency - CALIBRATED[c].memory_efficiency) < 1e-5 and
                 abs(params[c].efficiency - CALIBRATED[c].efficiency) < 1e-5 and
                 abs(params[c].pass_overhead - CALIBRATED[c].pass_overhead) < 1e-8 for c in CLASSES)
    print(f"sdedge_gym/calibration.py CALIBRATED matches this fit: {stored}; DRAFT_PASS_OVERHEAD matches: "
          f"{abs(draft - DRAFT_PASS_OVERHEAD) < 1e-8}")
    print()
    rows = table(params, draft)
    ok = sum(abs(r["calibrated_ratio"] - 1) <= TOLERANCE for r in rows)
    print(f"rows within ±25 % with the fit: {ok}/{len(rows)}")
    for r in rows:
        flag = "" if abs(r["calibrated_ratio"] - 1) <= TOLERANCE else "   <- outside ±25 %"
        print(f"  {r['row'].key:22s} ratio {r['calibrated_ratio']:.2f}{flag}")
    print()
    print("Leave one GPU out (fit without the GPU's rows, predict them):")
    for gpu in sorted({row.gpu for row in MEASUREMENTS if row.fitted}):
        others = {row.gpu for row in MEASUREMENTS if row.fitted and row.gpu != gpu and
                  GPU_CLASS[row.gpu] == GPU_CLASS[gpu]}
        if not others:
            print(f"  {gpu:16s} alone in class {GPU_CLASS[gpu]}: no out-of-sample prediction")
            continue
        held = fit(exclude_gpu=gpu)
        ratios = [f"{row.key} {predict(row, held[class_of(row)]) / row.measured:.2f}"
                  for row in MEASUREMENTS if row.fitted and row.gpu == gpu]
        print(f"  {gpu:16s} " + ", ".join(ratios))
    print()
    print("What the fit says about the presets' parameters (paper preset MBS: eta 0.3, mu 1, t0 2 ms; SBS: "
          "eta 0.5, t0 4 ms):")
    for name in CLASSES:
        p = params[name]
        print(f"  {name:13s} eta {p.efficiency:.3f} (preset 0.3), mu {p.memory_efficiency:.3f} (preset 1), "
              f"t0 {p.pass_overhead * 1e3:.2f} ms (preset MBS 2 ms)")
    print(f"  draft t0 {draft * 1e3:.2f} ms (preset SBS 4 ms)")


def _mean_latency(model, episode, n: int, l: int) -> float:
    clock, total = EpisodeClock(), 0.0
    while clock.next_task < episode.num_tasks:
        outcome, clock = commit_batch(model, episode, clock, min(n, episode.num_tasks - clock.next_task), l)
        total += outcome.cost
    return total


def print_presets(seeds=(0, 1)) -> None:
    """Mean latency of the paper preset at n = n_lim for every l, with the preset's and the calibrated nodes."""
    calibrated = {"calibration": REFERENCE}
    variants = (("paper", {}), ("paper, calibration", calibrated),
                ("paper, calibration + spec-bench alpha", {**calibrated, "acceptance_dataset": "spec-bench"}))
    for label, options in variants:
        model = ServingModel.of(make_scenario("paper", **options))
        for seed in seeds:
            episode = Episode.draw(model, np.random.default_rng(seed))
            n = model.batch_limit
            by_l = [_mean_latency(model, episode, n, l) for l in range(model.config.max_speculation + 1)]
            best = int(np.argmin(by_l))
            print(f"{label:38s} seed {seed}, n = {n}: l = 0 {by_l[0]:.1f} s, best l = {best} {by_l[best]:.1f} s "
                  f"({1 - by_l[best] / by_l[0]:.0%} lower); by l: " + " ".join(f"{v:.1f}" for v in by_l))


def write_example_profile(path: str) -> None:
    """Tabulate the calibrated roofline of LLaMA-2-7B F16 on an RTX 3090 (llama.cpp) on a grid."""
    cost = PassCost.of(node(GPUS["rtx-3090"], "llama-2-7b", CALIBRATED["ampere-ga102"]))
    batch = np.array([1, 2, 4, 8, 16, 24, 32], dtype=float)
    new_tokens = np.array([1, 2, 4, 6, 8, 9, 16, 32, 64, 128, 256, 512, 768, 1024, 1040], dtype=float)
    context = np.array([0, 128, 256, 512, 1024, 1536, 2048, 2560], dtype=float)
    seconds = np.array([[[float(cost.uniform_pass_time(n, q, c)) for c in context] for q in new_tokens]
                        for n in batch])
    p = CALIBRATED["ampere-ga102"]
    comment = "\n".join([
        "LLaMA-2-7B, F16 weights, RTX 3090, llama.cpp CUDA: seconds per forward pass.",
        "Built from published numbers: the roofline with the parameters fitted (sdedge_gym/calibration.py)",
        "to the llama.cpp measurements of XiongjieDai/GPU-Benchmarks-on-LLM-Inference (README at commit",
        f"00dd2bd), ampere-ga102 class: mu = {p.memory_efficiency:.6g}, eta = {p.efficiency:.6g}, "
        f"t0 = {p.pass_overhead:.6g} s.",
        "No grid point is itself a measurement: replace this file by llama-bench / vLLM timings of your GPU",
        "(docs/FIDELITY.md, section 6). Written by: python scripts/fidelity.py --write-profile PATH",
    ])
    write_profile(path, batch, new_tokens, context, seconds, comment)
    print(f"wrote {path}: {seconds.size} points")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fit", action="store_true", help="re-fit the calibration and print it")
    parser.add_argument("--presets", action="store_true", help="paper preset vs calibrated: mean latency by l")
    parser.add_argument("--write-profile", metavar="PATH", help="write the example profile CSV")
    args = parser.parse_args()
    if args.write_profile:
        write_example_profile(args.write_profile)
    elif args.fit:
        print_fit()
    elif args.presets:
        print_presets()
    else:
        print_table()


if __name__ == "__main__":
    main()
