"""Build the shipped Azure LLM inference traces from a copy of the public files (nothing is downloaded).

    python scripts/build_azure_traces.py PATH/TO/AzurePublicDataset/data
    # writes sdedge_gym/traces/azure_conv.csv.gz and azure_code.csv.gz, prints their row counts and digests

The inputs are ``AzureLLMInferenceTrace_conv.csv`` and ``AzureLLMInferenceTrace_code.csv`` of the public
GitHub repository Azure/AzurePublicDataset, folder ``data/`` (columns ``TIMESTAMP,ContextTokens,
GeneratedTokens``; CC-BY 4.0, Patel et al., "Splitwise: Efficient generative LLM inference using phase
splitting", ISCA 2024). Each output keeps every request, in the recorded order, as
``arrival_time,prompt_tokens,output_tokens``: the time in seconds from the trace's first request, written
exactly from the timestamp's 100 ns ticks (7 decimals); the token counts as recorded (the env clips them
to the scenario, see sdedge_gym/traces/README.md). The gzip header carries no time stamp or name, so the
same inputs give the same bytes.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import io
import itertools
import re
from datetime import datetime
from pathlib import Path

TRACES = {"azure_conv": "AzureLLMInferenceTrace_conv.csv", "azure_code": "AzureLLMInferenceTrace_code.csv"}
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "sdedge_gym" / "traces"
_STAMP = re.compile(r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})(?:\.(\d{1,7}))?$")
TICKS_PER_SECOND = 10_000_000  # the timestamps' resolution: 100 ns


def ticks(stamp: str) -> int:
    """The timestamp in 100 ns ticks since 1970 (naive), exactly."""
    match = _STAMP.match(stamp.strip())
    if match is None:
        raise ValueError(f"timestamp {stamp!r} is invalid; allowed: YYYY-MM-DD hh:mm:ss[.fffffff]")
    whole = int((datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S") - datetime(1970, 1, 1)).total_seconds())
    fraction = (match.group(2) or "").ljust(7, "0")
    return whole * TICKS_PER_SECOND + int(fraction)


def convert(source: Path) -> bytes:
    """The shipped file's bytes (gzip of the CSV) for one public trace file."""
    with source.open(newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise ValueError(f"{source}: no request rows")
    times = [ticks(row["TIMESTAMP"]) for row in rows]
    if any(b < a for a, b in itertools.pairwise(times)):
        raise ValueError(f"{source}: timestamps are not in arrival order")
    text = io.StringIO()
    text.write("arrival_time,prompt_tokens,output_tokens\n")
    for t, row in zip(times, rows, strict=True):
        offset = t - times[0]
        text.write(f"{offset // TICKS_PER_SECOND}.{offset % TICKS_PER_SECOND:07d},"
                   f"{int(row['ContextTokens'])},{int(row['GeneratedTokens'])}\n")
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, compresslevel=9, mtime=0) as archive:
        archive.write(text.getvalue().encode())
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="folder holding the two public CSV files")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    for name, public in TRACES.items():
        data = convert(args.data / public)
        path = args.out / f"{name}.csv.gz"
        path.write_bytes(data)
        rows = gzip.decompress(data).count(b"\n") - 1
        print(f"{path}: {rows} requests, {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()[:16]}")


if __name__ == "__main__":
    main()
