"""When an online episode's tasks arrive: Poisson, two-state MMPP, or a CSV trace (``ArrivalConfig``).

Arrival times are drawn at reset from the episode's Generator *after* every draw of
:func:`sdedge_gym.workload.draw_workload`, so an online episode has exactly the tasks of the offline
episode of the same seed (a trace replaces the token counts, not the other draws). Task k of the queue
is the k-th arrival: times are non-decreasing in queue order.

A trace is a CSV file (gzip-compressed if its name ends in ``.gz``) with a header row and one row per
request, in arrival order. Two real traces ship with the package (``SHIPPED_TRACES``, by name): the Azure
LLM inference traces of 2023 (see sdedge_gym/traces/README.md). Column names:

| quantity        | project's name  | Azure LLM inference trace name |
|-----------------|-----------------|--------------------------------|
| arrival time    | ``arrival_time``  (s, a number)   | ``TIMESTAMP`` (s, or a date-time ``YYYY-MM-DD hh:mm:ss[.f]``) |
| prompt tokens   | ``prompt_tokens`` | ``ContextTokens``   |
| output tokens   | ``output_tokens`` | ``GeneratedTokens`` |

Other columns are ignored. Times must be finite, >= 0 (numbers) and non-decreasing; token counts
integers >= 0. A malformed file raises ``ValueError`` naming the file, the row (1-based line number of
the file, the header is row 1) and the column.
"""

from __future__ import annotations

import csv
import gzip
import math
import os
import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

import numpy as np

from sdedge_gym.config import ArrivalConfig

TRACE_COLUMNS = {  # quantity -> accepted column names, in order of preference
    "arrival_time": ("arrival_time", "TIMESTAMP"),
    "prompt_tokens": ("prompt_tokens", "ContextTokens"),
    "output_tokens": ("output_tokens", "GeneratedTokens"),
}
TRACE_DIR = os.path.join(os.path.dirname(__file__), "traces")
# A synthetic 300-request trace in the Azure column layout, written by scripts/make_trace.py.
SAMPLE_TRACE = os.path.join(TRACE_DIR, "sample_azure_format.csv")
# The real traces (Azure LLM inference 2023, CC-BY 4.0; built by scripts/build_azure_traces.py), by name.
SHIPPED_TRACES = {
    "azure-conv": os.path.join(TRACE_DIR, "azure_conv.csv.gz"),  # conversation service: 19,366 requests
    "azure-code": os.path.join(TRACE_DIR, "azure_code.csv.gz"),  # code completion service: 8,819 requests
}
# Trace episodes for training start in the first 70 % of a trace's requests, held-out ones in the rest.
TRACE_TRAIN_FRACTION = 0.7
_DATETIME = re.compile(r"^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(\.\d+)?$")
_EPOCH = datetime(1970, 1, 1)


@dataclass(frozen=True)
class Trace:
    """A parsed trace: arrival times (s, the first at 0) and token counts, one entry per row."""

    path: str
    arrival_time: np.ndarray
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray

    def __post_init__(self) -> None:
        for column in (self.arrival_time, self.prompt_tokens, self.output_tokens):
            column.setflags(write=False)

    @property
    def num_requests(self) -> int:
        return int(self.arrival_time.size)


def _time_value(text: str) -> float:
    """Seconds from a number or a date-time string (seconds since 1970, naive); ValueError otherwise."""
    text = text.strip()
    match = _DATETIME.match(text)
    if match:
        whole = datetime.strptime(f"{match.group(1)} {match.group(2)}", "%Y-%m-%d %H:%M:%S")
        return (whole - _EPOCH).total_seconds() + (float(match.group(3)) if match.group(3) else 0.0)
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise ValueError("negative or not finite")
    return value


def _token_value(text: str) -> int:
    text = text.strip()
    if not re.fullmatch(r"\+?\d+(\.0*)?", text):  # "12" or "12.0"; not "-3", "1.5", "1e3", "nan"
        raise ValueError("not an integer >= 0")
    return int(float(text))


def trace_path(trace: str | os.PathLike) -> str:
    """A shipped trace's file for its name (``SHIPPED_TRACES``), any other value as a path."""
    trace = os.fspath(trace)
    return SHIPPED_TRACES.get(trace, trace)


def read_trace(path: str | os.PathLike) -> Trace:
    """The trace in ``path``, or the shipped one of that name (see the module docstring); cached per (path,
    modification time, size)."""
    path = trace_path(path)
    try:
        stat = os.stat(path)
    except OSError as error:
        raise ValueError(f"trace {path!r}: cannot be read ({error.strerror}); allowed: a readable CSV file") from None
    if not os.path.isfile(path):
        raise ValueError(f"trace {path!r}: is a directory, not a file; allowed: a readable CSV file")
    try:
        return _read_trace(path, stat.st_mtime_ns, stat.st_size)
    except UnicodeDecodeError as error:
        raise ValueError(f"trace {path!r}: byte {error.start} is not UTF-8 text (a binary file?); allowed: a CSV "
                         "text file") from None
    except OSError as error:
        raise ValueError(f"trace {path!r}: cannot be read ({error.strerror}); allowed: a readable CSV file") from None


@lru_cache(maxsize=16)
def _read_trace(path: str, mtime_ns: int, size: int) -> Trace:
    del mtime_ns, size  # part of the cache key only: a rewritten file is read again
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"trace {path!r}, row 1: the file is empty; allowed: a header row naming the columns "
                             + _columns_hint())
        names = [name.strip() for name in header]
        index = {}
        for quantity, accepted in TRACE_COLUMNS.items():
            found = [names.index(name) for name in accepted if name in names]
            if not found:
                raise ValueError(f"trace {path!r}, row 1: column {quantity!r} is missing; allowed names: "
                                 f"{' | '.join(accepted)} (header has {names})")
            index[quantity] = found[0]
        times, prompts, outputs = [], [], []
        for row_number, row in enumerate(reader, start=2):
            if not row or all(not cell.strip() for cell in row):
                continue  # blank lines (e.g. a trailing newline) are not requests
            values = []
            for quantity, parse, allowed in (
                    ("arrival_time", _time_value, "a number of seconds >= 0 or a date-time YYYY-MM-DD hh:mm:ss[.f]"),
                    ("prompt_tokens", _token_value, "an integer >= 0"),
                    ("output_tokens", _token_value, "an integer >= 0")):
                column = index[quantity]
                cell = row[column] if column < len(row) else ""
                try:
                    values.append(parse(cell))
                except ValueError:
                    raise ValueError(f"trace {path!r}, row {row_number}, column {names[column]!r}: {cell!r} is "
                                     f"invalid; allowed: {allowed}") from None
            if times and values[0] < times[-1]:
                raise ValueError(f"trace {path!r}, row {row_number}, column {names[index['arrival_time']]!r}: "
                                 f"{row[index['arrival_time']]!r} is earlier than the row before; allowed: "
                                 "non-decreasing arrival times (rows in arrival order)")
            times.append(values[0])
            prompts.append(values[1])
            outputs.append(values[2])
    if not times:
        raise ValueError(f"trace {path!r}, row 2: the file has no request rows; allowed: one row per request")
    arrival = np.asarray(times, dtype=float)
    return Trace(path, arrival - arrival[0], np.asarray(prompts, dtype=np.int64), np.asarray(outputs, dtype=np.int64))


def _columns_hint() -> str:
    return "; ".join(f"{q}: {' | '.join(names)}" for q, names in TRACE_COLUMNS.items())


def trace_offsets(trace: Trace, num_tasks: int, window: str = "first") -> tuple[int, int]:
    """The first and last offset (inclusive) at which a ``window`` (``config.TRACE_WINDOWS``) of ``num_tasks``
    requests may start: "first" only at 0; "train" so that the window ends within the first
    ``TRACE_TRAIN_FRACTION`` of the requests; "test" so that it starts at or after that boundary; "any"
    anywhere. ValueError if that part of the trace is shorter than ``num_tasks``."""
    total = trace.num_requests
    split = int(TRACE_TRAIN_FRACTION * total)
    low, high, part = {"first": (0, 0, "the trace"), "train": (0, split - num_tasks, "its training part"),
                       "test": (split, total - num_tasks, "its test part"),
                       "any": (0, total - num_tasks, "the trace")}[window]
    if high < low or total < num_tasks:
        raise ValueError(f"trace {trace.path!r} has {total} requests; {part} cannot hold a window of "
                         f"WorkloadConfig.num_tasks = {num_tasks}; allowed: num_tasks <= "
                         f"{total if window in ('first', 'any') else (split if window == 'train' else total - split)}"
                         " (lower num_tasks or use a longer trace)")
    return low, high


def trace_window(trace: Trace, num_tasks: int, offset: int = 0) -> Trace:
    """Requests ``offset`` .. ``offset + num_tasks - 1`` of ``trace``, times shifted so that the first arrives
    at 0; ValueError if the trace has fewer."""
    trace_offsets(trace, num_tasks, "any")  # the trace holds one window at all
    if not 0 <= offset <= trace.num_requests - num_tasks:
        raise ValueError(f"trace offset {offset!r} is invalid; allowed: an integer in "
                         f"[0, {trace.num_requests - num_tasks}]")
    sl = slice(offset, offset + num_tasks)
    return Trace(trace.path, trace.arrival_time[sl] - trace.arrival_time[offset], trace.prompt_tokens[sl].copy(),
                 trace.output_tokens[sl].copy())


def trace_rate(trace: Trace) -> float:
    """The trace's mean arrival rate over its whole span, requests / s."""
    span = float(trace.arrival_time[-1] - trace.arrival_time[0])
    if span <= 0:
        raise ValueError(f"trace {trace.path!r}: every request arrives at once; allowed for load=: a trace whose "
                         "arrival times span a positive time")
    return (trace.num_requests - 1) / span


def trace_tokens(trace: Trace, prompt_max: int, max_new_tokens: int) -> tuple[np.ndarray, np.ndarray]:
    """A trace's (prompt, output) lengths clipped to [1, prompt_max] and [1, max_new_tokens].

    The caps are the scenario's: the memory limit n_mem is computed for them, and O_k = 0 would be a
    padding task that needs no round.
    """
    return np.clip(trace.prompt_tokens, 1, prompt_max), np.clip(trace.output_tokens, 1, max_new_tokens)


def draw_arrivals(config: ArrivalConfig, num_tasks: int, rng: np.random.Generator,
                  trace: Trace | None = None) -> np.ndarray:
    """(K,) non-decreasing arrival times (s) of one episode; draws from ``rng`` only for poisson / mmpp."""
    if config.process == "offline":
        return np.zeros(num_tasks)
    if config.process == "poisson":
        return np.cumsum(rng.exponential(1.0 / config.arrival_rate, num_tasks))
    if config.process == "mmpp":
        return _mmpp_arrivals(config, num_tasks, rng)
    if trace is None:
        raise ValueError("draw_arrivals: process 'trace' needs the parsed trace (read_trace(config.trace))")
    return np.array(trace.arrival_time[:num_tasks], dtype=float)


def _mmpp_arrivals(config: ArrivalConfig, num_tasks: int, rng: np.random.Generator) -> np.ndarray:
    """Two-state MMPP by competing exponentials: in state s the next event is an arrival at rate lambda_s
    or a switch at rate 1 / (mean sojourn of s); memorylessness makes the race exact."""
    rates = (config.arrival_rate, config.burst_rate)
    leave = (1.0 / config.calm_duration, 1.0 / config.burst_duration)
    p_burst = config.burst_duration / (config.calm_duration + config.burst_duration)
    state = int(rng.random() < p_burst)
    times = np.empty(num_tasks)
    now, count = 0.0, 0
    while count < num_tasks:
        total = rates[state] + leave[state]
        now += rng.exponential(1.0 / total)
        if rng.random() * total < rates[state]:
            times[count] = now
            count += 1
        else:
            state = 1 - state
    return times
