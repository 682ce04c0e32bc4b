"""The calibration against published measurements, and the scenario options built on it (docs/FIDELITY.md)."""

from __future__ import annotations

import numpy as np
import pytest

from sdedge_gym.calibration import (
    CALIBRATED,
    CLASSES,
    DRAFT_PASS_OVERHEAD,
    MEASUREMENTS,
    ClassParameters,
    calibrate_node,
    class_of,
    draft_pass_overhead,
    fit,
    node,
    predict,
)
from sdedge_gym.catalogue import (
    ACCEPTANCE,
    GPUS,
    MODELS,
    acceptance_figure,
    alpha_for_tokens_per_round,
    tokens_per_round,
)
from sdedge_gym.config import NodeConfig
from sdedge_gym.roofline import PassCost
from sdedge_gym.scenarios import PRESETS, make_scenario


def test_the_stored_calibration_is_what_the_fit_returns() -> None:
    # CALIBRATED holds the fit's output rounded to 6 significant digits.
    fitted = fit()
    for name in CLASSES:
        for field in ("memory_efficiency", "efficiency", "pass_overhead"):
            assert getattr(CALIBRATED[name], field) == pytest.approx(getattr(fitted[name], field), rel=1e-4)
    assert pytest.approx(draft_pass_overhead(fitted["ampere-ga100"]), rel=1e-4) == DRAFT_PASS_OVERHEAD


def test_the_calibration_meets_the_issue_target() -> None:
    # At least 5 rows within +-25 %, and every SD speedup inside the range its source reports per task.
    within = [r for r in MEASUREMENTS if abs(predict(r, CALIBRATED[class_of(r)]) / r.measured - 1) <= 0.25]
    assert len(within) >= 5
    for row in MEASUREMENTS:
        if row.quantity == "sd_speedup":
            low, high = row.literature_range
            assert low <= predict(row, CALIBRATED[class_of(row)]) <= high, row.key


def test_the_draft_overhead_by_hand() -> None:
    # 1.49 ms less 2 bytes x 160e6 parameters read at mu W.
    ga100 = ClassParameters(memory_efficiency=0.5, efficiency=0.3, pass_overhead=2e-3)
    assert draft_pass_overhead(ga100) == pytest.approx(1.49e-3 - 320e6 / (0.5 * 1935e9), rel=1e-12)


def test_a_decode_prediction_by_hand() -> None:
    # llama.cpp ./main: 1023 single-token passes on contexts 494 .. 1516, memory-bound on an A100:
    # t = t0 + (b_w P + 4 J h (c + 1)) / (mu W), averaged over c.
    params = ClassParameters(memory_efficiency=0.7, efficiency=0.3, pass_overhead=2.5e-3)
    row = next(r for r in MEASUREMENTS if r.key == "a100/7b/decode")
    c = 494 + np.arange(1023)
    by_hand = np.mean(2.5e-3 + (2 * 6.74e9 + 4 * 32 * 4096 * (c + 1)) / (0.7 * 1935e9))
    assert predict(row, params) == pytest.approx(by_hand, rel=1e-12)


def test_memory_efficiency_one_changes_nothing_and_a_half_doubles_memory_time() -> None:
    base = NodeConfig(gpu=GPUS["rtx-4500-ada"], model=MODELS["llama-7b"], efficiency=0.3, pass_overhead=2e-3)
    # 1.0 * W is W exactly in floating point, so the default is bit for bit the old 1 / W.
    assert PassCost.of(base).seconds_per_byte == 1.0 / 432e9
    half = PassCost.of(base.replace(memory_efficiency=0.5, pass_overhead=0.0))
    assert float(half.uniform_pass_time(1, 1, 0)) == pytest.approx((2 * 6.74e9 + 4 * 32 * 4096) / 216e9, rel=1e-12)


def test_the_presets_keep_their_parameters() -> None:
    paper = make_scenario("paper")
    assert (paper.target.gpu.peak_flops, paper.target.efficiency, paper.target.memory_efficiency) == (79.4e12, 0.3, 1)
    assert (paper.draft.pass_overhead, paper.target.pass_overhead, paper.target.profile) == (4e-3, 2e-3, None)
    assert all(make_scenario(name).target.memory_efficiency == 1.0 for name in PRESETS)


def test_the_calibrated_option_uses_the_fitted_parameters_and_full_rate_peaks() -> None:
    scenario = make_scenario("paper", calibration="llamacpp-cuda-f16")
    ada, ga102 = CALIBRATED["ada"], CALIBRATED["ampere-ga102"]
    assert scenario.target.gpu.name == "rtx-4500-ada-full-rate" and scenario.target.gpu.peak_flops == 158.4e12
    assert (scenario.target.efficiency, scenario.target.memory_efficiency, scenario.target.pass_overhead) == (
        ada.efficiency, ada.memory_efficiency, ada.pass_overhead)
    assert scenario.draft.gpu.name == "rtx-3080-full-rate"
    assert (scenario.draft.efficiency, scenario.draft.pass_overhead) == (ga102.efficiency, DRAFT_PASS_OVERHEAD)
    assert scenario.workload == make_scenario("paper").workload  # only the nodes change


def test_calibration_errors_name_the_allowed_values() -> None:
    with pytest.raises(ValueError, match=r"calibration = 'vllm' is invalid; allowed: 'llamacpp-cuda-f16'"):
        make_scenario("paper", calibration="vllm")
    orin = node(GPUS["jetson-agx-orin"], "llama-7b")
    with pytest.raises(ValueError, match=r"no parameters for GPU 'jetson-agx-orin'; calibrated GPUs: \["):
        calibrate_node(orin, "target")
    with pytest.raises(ValueError, match=r"role = 'verifier' is invalid"):
        calibrate_node(orin, "verifier")


def test_acceptance_alpha_solves_the_published_tokens_per_round() -> None:
    for figure in ACCEPTANCE:
        assert tokens_per_round(figure.alpha, figure.speculation_length) == pytest.approx(figure.mean_tokens,
                                                                                          rel=1e-9)
    assert tokens_per_round(0.5, 2) == 1.75  # 1 + 0.5 + 0.25, by hand
    assert alpha_for_tokens_per_round(1.75, 2) == pytest.approx(0.5, rel=1e-9)
    with pytest.raises(ValueError, match=r"mean_tokens = 7.0 is invalid; allowed: a number in \(1, 6\)"):
        alpha_for_tokens_per_round(7.0, 5)


def test_the_acceptance_dataset_option_sets_alpha() -> None:
    scenario = make_scenario("paper", acceptance_dataset="spec-bench")
    alpha = acceptance_figure("llama-68m", "llama-7b", "spec-bench").alpha
    assert scenario.workload.alpha_min == scenario.workload.alpha_max == alpha
    assert 0.57 < alpha < 0.58  # L(alpha, 5) = 2.28
    assert make_scenario("paper").workload.alpha_min == 0.3  # the preset is unchanged
    with pytest.raises(ValueError, match=r"no published acceptance figure for draft 'llama-68m', target 'llama-7b', "
                                         r"dataset 'gsm8k'; known \(draft, target, dataset\): \["):
        make_scenario("paper", acceptance_dataset="gsm8k")
