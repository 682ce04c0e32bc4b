"""Scenario presets, make_scenario, and the workloads drawn from them (docs/MODEL.md, "Presets")."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from sdedge_gym.episode import Episode, EpisodeClock, ServingModel, commit_batch
from sdedge_gym.scenarios import PRESETS, make_scenario
from sdedge_gym.uplink import uniform_allocation
from sdedge_gym.workload import MAX_ALPHA_ESTIMATE, draw_workload

# ----------------------------------------------------------------------------------------- presets


def test_the_paper_preset_is_the_seed_papers_setting() -> None:
    paper = make_scenario("paper")
    assert (paper.draft.gpu.name, paper.draft.model.name) == ("rtx-3080", "llama-68m")
    assert (paper.target.gpu.name, paper.target.model.name) == ("rtx-4500-ada", "llama-7b")
    assert paper.num_tasks == 100
    assert (paper.max_batch, paper.max_speculation) == (24, 8)
    assert (paper.draft.pass_overhead, paper.target.efficiency) == (4e-3, 0.3)
    assert (paper.workload.extra_bits_min, paper.workload.extra_bits_max) == (2e6, 10e6)
    assert (paper.workload.alpha_min, paper.workload.alpha_max) == (0.3, 0.95)
    assert (paper.acceptance, paper.clairvoyant, paper.objective, paper.pipelining) == (
        "expected", True, "mean_latency", True)


def test_the_other_presets() -> None:
    small, large, uplink = make_scenario("small"), make_scenario("large"), make_scenario("uplink")
    assert (small.num_tasks, small.max_batch, small.max_speculation) == (8, 4, 4)
    assert large.num_tasks == 1000 and large.replace(name="paper", workload=make_scenario("paper").workload) == \
        make_scenario("paper")
    assert (uplink.num_tasks, uplink.uplink.bandwidth, uplink.workload.distance_max) == (50, 0.5e6, 400.0)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_fits_in_memory(preset: str) -> None:
    model = ServingModel.of(make_scenario(preset))
    assert 1 <= model.batch_limit <= model.config.max_batch


def test_make_scenario_overrides() -> None:
    scenario = make_scenario("paper", config={"uplink": {"bandwidth": 2e6}, "workload": {"alpha_max": 0.8}},
                             num_tasks=12, max_batch=8, acceptance="sampled")
    assert scenario.uplink.bandwidth == 2e6
    assert scenario.uplink.transmit_power == make_scenario("paper").uplink.transmit_power  # merged, not replaced
    assert scenario.workload.alpha_max == 0.8
    assert scenario.num_tasks == 12
    assert (scenario.max_batch, scenario.acceptance) == (8, "sampled")
    assert make_scenario(scenario) is scenario
    assert make_scenario("small", config=scenario) == scenario


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"preset": "medium"}, r"unknown scenario preset 'medium'; allowed: \['large', 'paper', 'paper-2k', 'small', "
                                r"'uplink'\]"),
        ({"preset": "small", "config": {"uplink": {"band": 1.0}}}, r"unknown key\(s\) \['band'\]"),
        ({"preset": "small", "max_batch": 0}, r"ScenarioConfig\.max_batch = 0 is invalid"),
        ({"preset": "small", "num_tasks": 0}, r"WorkloadConfig\.num_tasks = 0 is invalid"),
    ],
)
def test_make_scenario_rejects_bad_input(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_scenario(**kwargs)


def test_unknown_keyword_override_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"make_scenario\(\) got an unexpected keyword argument 'max_batchsize'"):
        make_scenario("small", max_batchsize=3)
    with pytest.raises(TypeError, match="unexpected keyword argument 'name'"):  # nested/identity fields: config=
        make_scenario("small", name="mine")


# --------------------------------------------------------------------------------------- workloads


def _draw(scenario, seed: int):
    return draw_workload(scenario, np.random.default_rng(seed))


def _fields(workload) -> dict[str, np.ndarray | None]:
    return {f.name: getattr(workload, f.name) for f in dataclasses.fields(workload)}


def test_the_same_seed_gives_the_same_workload() -> None:
    scenario = make_scenario("paper", acceptance="sampled")
    a, b, c = _draw(scenario, 1), _draw(scenario, 1), _draw(scenario, 2)
    for name, value in _fields(a).items():
        np.testing.assert_array_equal(value, getattr(b, name))
    assert not np.array_equal(a.payload_bits, c.payload_bits)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_values_lie_in_their_configured_ranges(preset: str) -> None:
    scenario = make_scenario(preset)
    w, cfg = _draw(scenario, 0), scenario.workload
    k = cfg.num_tasks
    assert w.num_tasks == k and all(v is None or v.shape[0] == k for v in _fields(w).values())
    assert w.prompt_len.dtype.kind == "i" and w.output_len.dtype.kind == "i"
    assert np.all((w.prompt_len >= cfg.prompt_min) & (w.prompt_len <= cfg.prompt_max))
    assert np.all((w.output_len >= cfg.output_min) & (w.output_len <= cfg.max_new_tokens))
    extra = w.payload_bits - scenario.uplink.bits_per_token * w.prompt_len
    assert np.all((extra >= cfg.extra_bits_min - 1e-6) & (extra <= cfg.extra_bits_max + 1e-6))
    assert np.all((w.distance >= cfg.distance_min) & (w.distance <= cfg.distance_max))
    assert np.all((w.alpha >= cfg.alpha_min) & (w.alpha <= cfg.alpha_max))
    assert np.all((w.alpha_estimate >= 0) & (w.alpha_estimate <= MAX_ALPHA_ESTIMATE))
    assert np.all((w.output_hint >= 1) & (w.output_hint <= cfg.max_new_tokens))
    assert np.all((w.spectral_efficiency >= cfg.spectral_efficiency_min)
                  & (w.spectral_efficiency <= cfg.spectral_efficiency_max))
    assert w.uniforms is None
    with pytest.raises(ValueError):
        w.alpha[0] = 0.5  # read-only


def test_channel_gain_is_3gpp_path_loss_times_fading() -> None:
    scenario = make_scenario("paper")
    no_fading = scenario.replace(workload=scenario.workload.replace(rayleigh_fading=False))
    w = _draw(no_fading, 0)
    # 128.1 + 37.6 log10(d / 1 km) dB; e.g. 90.5 dB at 100 m
    np.testing.assert_allclose(w.channel_gain, 10 ** (-(128.1 + 37.6 * np.log10(w.distance / 1000)) / 10))
    faded = _draw(scenario, 0)
    np.testing.assert_array_equal(faded.distance, w.distance)  # fading is drawn after the distances
    fading = faded.channel_gain / w.channel_gain
    assert np.all(fading > 0) and 0.6 < fading.mean() < 1.4  # Exp(1), 100 draws


def test_distributions_have_their_documented_centres() -> None:
    scenario = make_scenario("paper", num_tasks=20_000)
    w, cfg = _draw(scenario, 0), scenario.workload
    # Truncation at both ends does not move the median of a log-normal whose median lies inside.
    assert np.median(w.prompt_len) == pytest.approx(cfg.prompt_median, rel=0.03)
    assert np.median(w.output_len) == pytest.approx(cfg.output_median, rel=0.03)
    # Users are uniform over the annulus' area: half of them within sqrt((d_min^2 + d_max^2) / 2).
    inner = np.mean(w.distance <= np.sqrt(0.5 * (cfg.distance_min**2 + cfg.distance_max**2)))
    assert abs(inner - 0.5) < 4.5 * 0.5 / np.sqrt(20_000)
    assert w.alpha.mean() == pytest.approx(0.5 * (cfg.alpha_min + cfg.alpha_max), abs=0.01)
    assert np.median(w.output_hint / w.output_len) == pytest.approx(1.0, abs=0.05)


def test_sampled_mode_draws_the_uniforms_last() -> None:
    expected = _draw(make_scenario("paper"), 9)
    sampled = _draw(make_scenario("paper", acceptance="sampled"), 9)
    for name, value in _fields(expected).items():
        if name != "uniforms":
            np.testing.assert_array_equal(value, getattr(sampled, name))
    assert sampled.uniforms.shape == (100, 512)
    assert np.all((sampled.uniforms >= 0) & (sampled.uniforms < 1))


def test_shortest_payload_order_sorts_the_same_tasks() -> None:
    arrival = _draw(make_scenario("paper", acceptance="sampled"), 4)
    shortest = _draw(make_scenario("paper", acceptance="sampled", queue_order="shortest_payload"), 4)
    assert np.all(np.diff(shortest.payload_bits) >= 0)
    order = np.argsort(arrival.payload_bits, kind="stable")
    for name, value in _fields(arrival).items():
        np.testing.assert_array_equal(value[order], getattr(shortest, name))


# ------------------------------------------------------------------------------------- calibration


def _mean_latency(model: ServingModel, episode: Episode, n: int, l: int, uniform: bool = False) -> float:
    clock, total = EpisodeClock(), 0.0
    while clock.next_task < episode.num_tasks:
        size = min(n, episode.num_tasks - clock.next_task)
        payload = episode.workload.payload_bits[clock.next_task:clock.next_task + size]
        band = uniform_allocation(payload, model.config.uplink.bandwidth) if uniform else None
        outcome, clock = commit_batch(model, episode, clock, size, l, band)
        total += outcome.cost
    return total


@pytest.mark.parametrize("seed", [0, 1])
def test_calibration_speculation_beats_autoregressive_decoding_on_the_paper_preset(seed: int) -> None:
    model = ServingModel.of(make_scenario("paper"))
    episode = Episode.draw(model, np.random.default_rng(seed))
    n = model.batch_limit
    by_l = [_mean_latency(model, episode, n, l) for l in range(model.config.max_speculation + 1)]
    best = int(np.argmin(by_l))
    assert 1 <= best < model.config.max_speculation  # an interior optimum: l trades off
    assert by_l[best] < 0.8 * by_l[0]


@pytest.mark.parametrize("seed", [0, 1])
def test_calibration_closed_form_beats_uniform_shares_on_the_uplink_preset(seed: int) -> None:
    model = ServingModel.of(make_scenario("uplink"))
    episode = Episode.draw(model, np.random.default_rng(seed))
    n = model.batch_limit
    assert _mean_latency(model, episode, n, 3) < 0.8 * _mean_latency(model, episode, n, 3, uniform=True)
