"""``python -m bundlekit.synth``: write synthetic OTLP as length-delimited files.

Plain argparse, so generating benchmark data does not depend on the CLI stack.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

from bundlekit.synth.stream import SIGNALS, companion_counts, write_stream


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bundlekit.synth",
        description="Write deterministic synthetic OTLP requests, length-delimited "
        "(4-byte big-endian length + Export*ServiceRequest), as the Collector file "
        "exporter does with format: proto.",
    )
    parser.add_argument(
        "--signal",
        choices=(*SIGNALS, "all"),
        required=True,
        help="one signal, or 'all' to write a consistent set into --out DIR",
    )
    parser.add_argument(
        "--records",
        type=int,
        required=True,
        help="spans, data points or log records (with 'all': spans)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--per-request", type=int, default=512)
    parser.add_argument(
        "--trace-records",
        type=int,
        default=None,
        help="size of the traces stream that logs and exemplars refer to",
    )
    parser.add_argument("--out", type=Path, required=True, help="file, or directory with 'all'")
    args = parser.parse_args(argv)

    if args.signal == "all":
        args.out.mkdir(parents=True, exist_ok=True)
        jobs = [
            (args.out / f"{signal}.binpb", signal, n)
            for signal, n in companion_counts(args.records, args.seed).items()
        ]
        trace_records = args.records
    else:
        jobs = [(args.out, args.signal, args.records)]
        trace_records = args.trace_records
    for path, signal, records in jobs:
        began = time.perf_counter()
        requests, size = write_stream(
            path,
            signal,
            records=records,
            seed=args.seed,
            per_request=args.per_request,
            trace_records=trace_records,
        )
        took = time.perf_counter() - began
        print(
            f"{path}: {records} {signal} records, {requests} requests, {size} bytes, {took:.1f} s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
