"""Measured pass-time profiles: a table of forward-pass times that replaces the roofline of one node.

A profile is a regular (rectilinear) grid of measured seconds per forward pass over three axes:

* ``batch``       — active sequences in the pass, n;
* ``new_tokens``  — new tokens per sequence, q (1 for a decode pass, l + 1 for a verify pass, the prompt
  length for a prefill);
* ``context``     — cached tokens per sequence before the pass, c.

Between grid points the time is multilinear in (n, q, c). The CSV format (docs/FIDELITY.md, section 6)::

    # free-text lines starting with '#' say where the numbers come from
    batch,new_tokens,context,seconds
    1,1,0,0.0141
    ...

with one row for every point of the Cartesian product of the three axes, in any order. ``load_profile``
checks the file (header, numbers, complete grid, no duplicates, every time finite, positive and
non-decreasing along each axis) and raises ``ValueError`` naming the file and the line or axis at fault;
``check_profile_coverage`` checks that the grid covers what a scenario will ask of it.

The evaluation (`profile_pass_time`) is a pure function of 1-D float axes, a 3-D float table and three
scalars, written with plain loops so that it ports to numba unchanged.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

COLUMNS = ("batch", "new_tokens", "context", "seconds")
AXES = ("batch", "new_tokens", "context")


@dataclass(frozen=True, eq=False)  # eq=False: arrays do not compare to a single bool; profiles compare by identity
class PassProfile:
    """A loaded, validated pass-time table (seconds[i, j, k] at batch[i], new_tokens[j], context[k])."""

    path: str
    batch: np.ndarray  # 1-D, strictly increasing
    new_tokens: np.ndarray
    context: np.ndarray
    seconds: np.ndarray  # 3-D, shape (len(batch), len(new_tokens), len(context))
    source: str = ""  # the file's comment lines

    def axis(self, name: str) -> np.ndarray:
        return {"batch": self.batch, "new_tokens": self.new_tokens, "context": self.context}[name]

    def pass_time(self, new_tokens, kv_tokens, batch):
        """Seconds for passes given the aggregates N (new tokens) and T (KV tokens) and the batch size n.

        A batch of n sequences is timed as n equal sequences with q = N / n new tokens on a context of
        c = T / n - q: exact for the uniform batches a profile is measured on, the mean sequence for ragged
        ones. Arrays broadcast; 0 where N == 0 (no pass).
        """
        new_tokens, kv_tokens, batch = np.broadcast_arrays(np.asarray(new_tokens, dtype=float),
                                                           np.asarray(kv_tokens, dtype=float),
                                                           np.asarray(batch, dtype=float))
        out = np.zeros(new_tokens.shape)
        flat_out = out.reshape(-1)
        for index, (total_new, total_kv, n) in enumerate(zip(new_tokens.reshape(-1), kv_tokens.reshape(-1),
                                                             batch.reshape(-1), strict=True)):
            if total_new <= 0:
                continue
            if n < 1:
                raise ValueError(f"profile {self.path}: a pass with {total_new} new tokens needs batch >= 1, got {n}")
            q = total_new / n
            c = max(total_kv / n - q, 0.0)  # rounding can leave -1e-13 for a prefill on an empty cache
            flat_out[index] = profile_pass_time(self.batch, self.new_tokens, self.context, self.seconds, n, q, c)
        return out


def _bracket(axis: np.ndarray, value: float, name: str) -> tuple[int, float]:
    """Index i and weight w with value = (1 - w) axis[i] + w axis[i + 1] (i = 0, w = 0 on a one-point axis)."""
    last = axis.shape[0] - 1
    if value < axis[0] or value > axis[last]:
        raise ValueError(f"profile query {name} = {value} is outside the profile's range [{axis[0]}, {axis[last]}]")
    if last == 0:
        return 0, 0.0
    i = 0
    while i < last - 1 and axis[i + 1] < value:
        i += 1
    return i, (value - axis[i]) / (axis[i + 1] - axis[i])


def profile_pass_time(batch_axis: np.ndarray, new_tokens_axis: np.ndarray, context_axis: np.ndarray,
                      table: np.ndarray, batch: float, new_tokens: float, context: float) -> float:
    """Multilinear interpolation of ``table`` at (batch, new_tokens, context); out-of-range raises ValueError."""
    i, wi = _bracket(batch_axis, batch, "batch")
    j, wj = _bracket(new_tokens_axis, new_tokens, "new_tokens")
    k, wk = _bracket(context_axis, context, "context")
    i1 = min(i + 1, batch_axis.shape[0] - 1)
    j1 = min(j + 1, new_tokens_axis.shape[0] - 1)
    k1 = min(k + 1, context_axis.shape[0] - 1)
    total = 0.0
    for a, weight_a in ((i, 1.0 - wi), (i1, wi)):
        for b, weight_b in ((j, 1.0 - wj), (j1, wj)):
            for c, weight_c in ((k, 1.0 - wk), (k1, wk)):
                weight = weight_a * weight_b * weight_c
                if weight != 0.0:
                    total += weight * table[a, b, c]
    return total


def load_profile(path: str | Path) -> PassProfile:
    """Read and validate a pass-time CSV; every problem raises ValueError naming the file."""
    path = str(path)
    try:
        with open(path, newline="") as handle:
            lines = handle.read().splitlines()
    except OSError as error:
        raise ValueError(f"profile {path}: cannot be read ({error.strerror})") from error
    comments = [line[1:].strip() for line in lines if line.lstrip().startswith("#")]
    numbered = [(number, line) for number, line in enumerate(lines, start=1)
                if line.strip() and not line.lstrip().startswith("#")]
    if not numbered:
        raise ValueError(f"profile {path}: no header; expected the columns {','.join(COLUMNS)}")
    header_number, header_line = numbered[0]
    header = [name.strip() for name in next(csv.reader([header_line]))]
    if sorted(header) != sorted(COLUMNS):
        raise ValueError(f"profile {path}: line {header_number}: header {header} must name exactly the columns "
                         f"{list(COLUMNS)}")
    position = {name: header.index(name) for name in COLUMNS}
    points: dict[tuple[float, float, float], tuple[float, int]] = {}
    for number, line in numbered[1:]:
        cells = [cell.strip() for cell in next(csv.reader([line]))]
        if len(cells) != len(COLUMNS):
            raise ValueError(f"profile {path}: line {number}: {len(cells)} fields, expected {len(COLUMNS)}")
        try:
            values = {name: float(cells[position[name]]) for name in COLUMNS}
        except ValueError as error:
            raise ValueError(f"profile {path}: line {number}: not a number ({error})") from error
        if not all(math.isfinite(v) for v in values.values()):
            raise ValueError(f"profile {path}: line {number}: every value must be finite, got {cells}")
        if values["seconds"] <= 0:
            raise ValueError(f"profile {path}: line {number}: seconds = {values['seconds']} must be > 0")
        key = (values["batch"], values["new_tokens"], values["context"])
        if key in points:
            raise ValueError(f"profile {path}: line {number}: duplicate grid point (batch, new_tokens, context) = "
                             f"{key}, first on line {points[key][1]}")
        points[key] = (values["seconds"], number)
    if not points:
        raise ValueError(f"profile {path}: no data rows after the header")
    axes = [np.array(sorted({key[d] for key in points}), dtype=float) for d in range(3)]
    for name, axis in zip(AXES, axes, strict=True):
        if axis[0] < 0 or (name == "batch" and axis[0] <= 0):
            raise ValueError(f"profile {path}: axis {name} starts at {axis[0]}; batch must be > 0, the others >= 0")
    seconds = np.full(tuple(len(a) for a in axes), np.nan)
    index = [{value: i for i, value in enumerate(axis)} for axis in axes]
    for key, (value, _) in points.items():
        seconds[index[0][key[0]], index[1][key[1]], index[2][key[2]]] = value
    missing = np.argwhere(np.isnan(seconds))
    if missing.size:
        first = tuple(float(axes[d][missing[0][d]]) for d in range(3))
        raise ValueError(f"profile {path}: the grid is incomplete: {len(missing)} of {seconds.size} points of "
                         f"batch x new_tokens x context are missing, e.g. {first}")
    for d, name in enumerate(AXES):
        drops = np.argwhere(np.diff(seconds, axis=d) < 0)
        if drops.size:
            at = list(drops[0])
            before = tuple(float(axes[e][at[e]]) for e in range(3))
            raise ValueError(f"profile {path}: seconds decrease along {name} after (batch, new_tokens, context) = "
                             f"{before}; a pass must not get faster with more {name}")
    return PassProfile(path=path, batch=axes[0], new_tokens=axes[1], context=axes[2], seconds=seconds,
                       source="\n".join(comments))


def write_profile(path: str | Path, batch, new_tokens, context, seconds, comment: str = "") -> None:
    """Write a profile CSV (the inverse of `load_profile`); ``comment`` lines become '#' lines."""
    seconds = np.asarray(seconds, dtype=float)
    with open(path, "w", newline="") as handle:
        for line in comment.splitlines():
            handle.write(f"# {line}\n")
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(COLUMNS)
        for i, n in enumerate(batch):
            for j, q in enumerate(new_tokens):
                for k, c in enumerate(context):
                    writer.writerow([_number(n), _number(q), _number(c), repr(float(seconds[i, j, k]))])


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def required_ranges(scenario, role: str) -> dict[str, tuple[float, float]]:
    """The (low, high) of each axis a scenario asks of a node ('draft' or 'target'), MODEL.md section 5.

    batch: 1 .. n_max; new tokens: 1 .. I_max on the SBS (prefill) and I_max + l_max on the MBS (the
    round-0 verify of prompt plus drafts); context: 0 .. I_max + O_cap + l_max.
    """
    work = scenario.workload
    new_high = work.prompt_max + (scenario.max_speculation if role == "target" else 0)
    return {"batch": (1.0, float(scenario.max_batch)), "new_tokens": (1.0, float(new_high)),
            "context": (0.0, float(work.prompt_max + work.max_new_tokens + scenario.max_speculation))}


def check_profile_coverage(profile: PassProfile, scenario, role: str) -> None:
    """Raise ValueError naming the file and every axis range the profile lacks for this scenario's node."""
    gaps = []
    for name, (low, high) in required_ranges(scenario, role).items():
        axis = profile.axis(name)
        if axis[0] > low or axis[-1] < high:
            gaps.append(f"{name} needs [{low:g}, {high:g}] but the profile covers [{axis[0]:g}, {axis[-1]:g}]")
    if gaps:
        raise ValueError(f"profile {profile.path} (ScenarioConfig.{role}.profile) does not cover scenario "
                         f"{scenario.name!r}: " + "; ".join(gaps))


def check_scenario_profiles(scenario) -> None:
    """Load and coverage-check every node profile a scenario names (no-op when it names none)."""
    for role in ("draft", "target"):
        node = getattr(scenario, role)
        if node.profile is not None:
            check_profile_coverage(load_profile(node.profile), scenario, role)


def example_profile_path(name: str = "llama-2-7b-f16-rtx-3090-llamacpp.csv") -> str:
    """The path of a profile shipped with the package (sdedge_gym/profiles/)."""
    path = resources.files("sdedge_gym") / "profiles" / name
    if not path.is_file():
        raise ValueError(f"no packaged profile {name!r}; see sdedge_gym/profiles/")
    return str(path)
