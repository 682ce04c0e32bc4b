"""Measured pass-time profiles (sdedge_gym/pass_profile.py; docs/FIDELITY.md, section 6)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sdedge_gym.catalogue import GPUS, MODELS
from sdedge_gym.config import NodeConfig
from sdedge_gym.pass_profile import (
    check_profile_coverage,
    example_profile_path,
    load_profile,
    profile_pass_time,
    required_ranges,
    write_profile,
)
from sdedge_gym.roofline import PassCost
from sdedge_gym.scenarios import make_scenario

TARGET = NodeConfig(gpu=GPUS["rtx-4500-ada"], model=MODELS["llama-7b"], efficiency=0.3, pass_overhead=2e-3)
BATCH = np.array([1, 2, 3, 4, 6, 8, 12, 16, 24], dtype=float)
NEW = np.array([1, 2, 3, 4, 5, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 520], dtype=float)
CONTEXT = np.array([0, 32, 64, 128, 256, 384, 512, 768, 1032], dtype=float)


def _roofline_profile(path: Path, node: NodeConfig = TARGET, batch=BATCH, new=NEW, context=CONTEXT) -> Path:
    cost = PassCost.of(node)
    seconds = np.array([[[float(cost.uniform_pass_time(n, q, c)) for c in context] for q in new] for n in batch])
    write_profile(path, batch, new, context, seconds, comment="tabulated roofline\nsecond comment line")
    return path


@pytest.fixture
def roofline_csv(tmp_path: Path) -> Path:
    return _roofline_profile(tmp_path / "roofline.csv")


def test_a_profile_of_the_roofline_reproduces_it_on_the_grid(roofline_csv: Path) -> None:
    # At grid points interpolation returns the tabulated value; the table went through a CSV round trip
    # (repr of floats is exact), and the weights are exactly 1 and 0 there, so the match is to 1e-12.
    roofline = PassCost.of(TARGET)
    profiled = PassCost.of(TARGET.replace(profile=str(roofline_csv)))
    assert profiled.profile is not None and profiled.profile.source == "tabulated roofline\nsecond comment line"
    for n, q, c in itertools.product(BATCH, NEW[::3], CONTEXT[::2]):
        assert float(profiled.uniform_pass_time(n, q, c)) == pytest.approx(float(roofline.uniform_pass_time(n, q, c)),
                                                                         rel=1e-12)


@settings(max_examples=80, deadline=None)
@given(n=st.floats(1, 24), q=st.floats(1, 520), c=st.floats(0, 1032))
def test_a_profile_of_the_roofline_stays_within_its_grid_cell_between_grid_points(tmp_path_factory, n: float,
                                                                                  q: float, c: float) -> None:
    # Off the grid a multilinear interpolant of a function that grows along every axis lies between the
    # function's values at the cell's lowest and highest corners, and so does the function itself: the
    # relative error is at most t(highest corner) / t(lowest corner) - 1 (1e-12 slack for rounding).
    path = tmp_path_factory.mktemp("p") / "roofline.csv"
    _roofline_profile(path)
    roofline = PassCost.of(TARGET)
    profiled = PassCost.of(TARGET.replace(profile=str(path)))

    def corners(axis: np.ndarray, value: float) -> tuple[float, float]:
        i = min(int(np.searchsorted(axis, value, side="right")) - 1, len(axis) - 2)
        return axis[i], axis[i + 1]

    (n0, n1), (q0, q1), (c0, c1) = corners(BATCH, n), corners(NEW, q), corners(CONTEXT, c)
    low, high = float(roofline.uniform_pass_time(n0, q0, c0)), float(roofline.uniform_pass_time(n1, q1, c1))
    exact, interpolated = float(roofline.uniform_pass_time(n, q, c)), float(profiled.uniform_pass_time(n, q, c))
    assert low * (1 - 1e-12) <= interpolated <= high * (1 + 1e-12)
    assert abs(interpolated / exact - 1) <= high / low - 1 + 1e-12


@settings(max_examples=60, deadline=None)
@given(weights=st.lists(st.floats(0.1, 10), min_size=8, max_size=8), n=st.floats(1, 24), q=st.floats(1, 520),
       c=st.floats(0, 1032))
def test_interpolation_is_exact_for_a_multilinear_table(weights: list[float], n: float, q: float, c: float) -> None:
    # A function that is linear in each axis separately is reproduced everywhere (up to rounding).
    a, b, d, e, f, g, h, k = weights

    def func(x: float, y: float, z: float) -> float:
        return a + b * x + d * y + e * z + f * x * y + g * x * z + h * y * z + k * x * y * z

    table = np.array([[[func(x, y, z) for z in CONTEXT] for y in NEW] for x in BATCH])
    got = profile_pass_time(BATCH, NEW, CONTEXT, table, n, q, c)
    assert got == pytest.approx(func(n, q, c), rel=1e-9)


def test_aggregates_map_to_per_sequence_new_tokens_and_context(roofline_csv: Path) -> None:
    # 4 sequences, 6 new tokens each on 250 cached: N = 24, T = 4 * 256; q = N / n = 6, c = T / n - q = 250.
    profile = load_profile(roofline_csv)
    expected = profile_pass_time(profile.batch, profile.new_tokens, profile.context, profile.seconds, 4, 6, 250)
    got = profile.pass_time(np.array([24.0, 0.0]), np.array([4 * 256.0, 0.0]), np.array([4.0, 4.0]))
    assert got[0] == expected  # the same function on the same scalars
    assert got[1] == 0.0  # no new tokens, no pass


def test_a_profiled_node_needs_the_batch_size(roofline_csv: Path) -> None:
    profiled = PassCost.of(TARGET.replace(profile=str(roofline_csv)))
    with pytest.raises(ValueError, match=r"measured profile .*roofline\.csv.*pass batch="):
        profiled.pass_time(8.0, 8.0 * 300, 300.0)


def test_a_profiled_node_has_no_roofline_coefficients(roofline_csv: Path) -> None:
    # Code that inlines the roofline from the coefficients gets NaN, not a roofline time in disguise;
    # the memory check keeps its model figures.
    profiled, roofline = PassCost.of(TARGET.replace(profile=str(roofline_csv))), PassCost.of(TARGET)
    assert np.isnan([profiled.overhead, profiled.seconds_per_flop, profiled.seconds_per_byte]).all()
    assert profiled.max_batch_for_memory(1024) == roofline.max_batch_for_memory(1024)


def test_out_of_range_queries_raise(roofline_csv: Path) -> None:
    profile = load_profile(roofline_csv)
    with pytest.raises(ValueError, match=r"new_tokens = 600 is outside the profile's range \[1.0, 520.0\]"):
        profile_pass_time(profile.batch, profile.new_tokens, profile.context, profile.seconds, 1, 600, 0)


def test_coverage_names_the_file_and_every_missing_range(tmp_path: Path) -> None:
    small = _roofline_profile(tmp_path / "small.csv", batch=BATCH[:4], new=NEW[:10], context=CONTEXT[:5])
    with pytest.raises(ValueError) as error:
        make_scenario("paper", config={"target": {"profile": str(small)}})
    message = str(error.value)
    assert "small.csv" in message and "ScenarioConfig.target.profile" in message
    assert "batch needs [1, 24] but the profile covers [1, 4]" in message
    assert "new_tokens needs [1, 520] but the profile covers [1, 24]" in message
    assert "context needs [0, 1032] but the profile covers [0, 256]" in message


def test_required_ranges_of_the_paper_preset_by_hand() -> None:
    paper = make_scenario("paper")  # I_max 512, O_cap 512, l_max 8, n_max 24
    assert required_ranges(paper, "target") == {"batch": (1.0, 24.0), "new_tokens": (1.0, 520.0),
                                                "context": (0.0, 1032.0)}
    assert required_ranges(paper, "draft")["new_tokens"] == (1.0, 512.0)  # the SBS prefills, never verifies


def test_a_covering_profile_is_accepted_by_make_scenario(roofline_csv: Path) -> None:
    scenario = make_scenario("paper", config={"target": {"profile": str(roofline_csv)}})
    assert scenario.target.profile == str(roofline_csv)
    check_profile_coverage(load_profile(roofline_csv), scenario, "target")


def test_the_packaged_example_profile_loads_and_covers_the_paper_preset() -> None:
    path = example_profile_path()
    profile = load_profile(path)
    assert "XiongjieDai/GPU-Benchmarks-on-LLM-Inference" in profile.source
    for role in ("draft", "target"):
        check_profile_coverage(profile, make_scenario("paper"), role)
    with pytest.raises(ValueError, match=r"no packaged profile 'missing\.csv'"):
        example_profile_path("missing.csv")


GOOD_HEADER = "batch,new_tokens,context,seconds\n"
GOOD_ROWS = "1,1,0,0.010\n1,1,8,0.011\n2,1,0,0.012\n2,1,8,0.013\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r"no header"),
        ("# only a comment\n", r"no header"),
        ("batch,q,context,seconds\n" + GOOD_ROWS, r"line 1: header .* must name exactly the columns"),
        (GOOD_HEADER, r"no data rows"),
        (GOOD_HEADER + "1,1,0\n", r"line 2: 3 fields, expected 4"),
        (GOOD_HEADER + "1,one,0,0.01\n", r"line 2: not a number"),
        (GOOD_HEADER + "1,1,0,nan\n", r"line 2: every value must be finite"),
        (GOOD_HEADER + "1,1,0,inf\n", r"line 2: every value must be finite"),
        (GOOD_HEADER + "1,1,0,0\n", r"line 2: seconds = 0.0 must be > 0"),
        (GOOD_HEADER + "1,1,0,-0.01\n", r"line 2: seconds = -0.01 must be > 0"),
        (GOOD_HEADER + GOOD_ROWS + "1,1,8,0.02\n", r"line 6: duplicate grid point .* first on line 3"),
        (GOOD_HEADER + GOOD_ROWS[:-len("2,1,8,0.013\n")], r"the grid is incomplete: 1 of 4 points"),
        (GOOD_HEADER + "0,1,0,0.01\n", r"axis batch starts at 0.0"),
        (GOOD_HEADER + "1,1,-8,0.01\n1,1,0,0.02\n", r"axis context starts at -8.0"),
        (GOOD_HEADER + "1,1,0,0.010\n1,1,8,0.009\n2,1,0,0.012\n2,1,8,0.013\n", r"seconds decrease along context"),
        (GOOD_HEADER + "1,1,0,0.010\n1,1,8,0.011\n2,1,0,0.009\n2,1,8,0.013\n", r"seconds decrease along batch"),
    ],
)
def test_malformed_files_raise_naming_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=rf"profile .*bad\.csv: .*{message}"):
        load_profile(path)


def test_a_missing_file_raises_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"profile .*nowhere\.csv: cannot be read"):
        PassCost.of(TARGET.replace(profile=str(tmp_path / "nowhere.csv")))


def test_columns_may_come_in_any_order_and_comments_anywhere(tmp_path: Path) -> None:
    path = tmp_path / "reordered.csv"
    path.write_text("# source line\nseconds,context,new_tokens,batch\n0.010,0,1,1\n# mid-file note\n0.011,8,1,1\n")
    profile = load_profile(path)
    assert list(profile.context) == [0.0, 8.0] and profile.seconds.shape == (1, 1, 2)
    assert profile.source == "source line\nmid-file note"
    assert profile_pass_time(profile.batch, profile.new_tokens, profile.context, profile.seconds, 1, 1, 4) == \
        pytest.approx(0.0105, rel=1e-12)
