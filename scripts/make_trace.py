"""Write the small synthetic request trace shipped with the package (nothing is downloaded).

    python scripts/make_trace.py            # writes sdedge_gym/traces/sample_azure_format.csv

300 requests in the column layout of the public Azure LLM inference traces (TIMESTAMP as a date-time,
ContextTokens, GeneratedTokens), so that the reader's Azure path is exercised by a file in the repo.
Arrivals are a bursty two-state MMPP (calm 0.5 requests/s for 120 s on average, bursts of 2 requests/s
for 30 s: a mean of 0.8 requests/s, near the online ids' 0.757); token counts are log-normal
(prompt median 256, sigma 0.8; output median 128, sigma 0.9), not drawn from any real trace.
"""

from __future__ import annotations

import argparse
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from sdedge_gym.arrivals import draw_arrivals
from sdedge_gym.config import ArrivalConfig

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "sdedge_gym" / "traces" / "sample_azure_format.csv"
START = datetime(2023, 11, 16, 18, 0, 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--seed", type=int, default=2023)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    config = ArrivalConfig(process="mmpp", arrival_rate=0.5, burst_rate=2.0, calm_duration=120.0, burst_duration=30.0)
    times = draw_arrivals(config, args.requests, rng)
    prompt = np.maximum(np.rint(256.0 * np.exp(0.8 * rng.standard_normal(args.requests))), 1).astype(int)
    output = np.maximum(np.rint(128.0 * np.exp(0.9 * rng.standard_normal(args.requests))), 1).astype(int)
    lines = ["TIMESTAMP,ContextTokens,GeneratedTokens"]
    for t, i, o in zip(times, prompt, output, strict=True):
        stamp = START + timedelta(microseconds=round(t * 1e6))
        lines.append(f"{stamp:%Y-%m-%d %H:%M:%S.%f}0,{i},{o}")  # 7 fractional digits, as in the Azure files
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out} ({args.requests} requests over {times[-1]:.0f} s)")


if __name__ == "__main__":
    main()
