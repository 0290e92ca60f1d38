"""Write a benchmark data set: N spans plus the logs and metrics that go with them.

    python bench/gen_data.py --spans 1000000                 # -> bench/data/spans-1000000/
    python bench/gen_data.py --spans 3000000 --out /tmp/d3m

Writes traces.binpb, metrics.binpb and logs.binpb (Collector file exporter
``format: proto`` framing) from bundlekit.synth with a fixed seed, so the same
command gives the same bytes on every machine and data sets need not be
stored. Logs are the log records the traces write (about 0.43 per span) and
metrics one data point per ten spans. Memory stays flat at any size.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path

from bundlekit.synth import companion_counts, write_stream

DATA = Path(__file__).resolve().parent / "data"
SEED = 1


def generate(spans: int, out: Path, seed: int = SEED, per_request: int = 512) -> dict[str, object]:
    """Write the three files into ``out``; returns what was written, also saved as
    ``out/dataset.json`` so benchmark reports can say what they ran on."""
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, object] = {}
    for signal, records in companion_counts(spans, seed).items():
        path = out / f"{signal}.binpb"
        began = time.perf_counter()
        requests, size = write_stream(
            path, signal, records=records, seed=seed, per_request=per_request, trace_records=spans
        )
        seconds = time.perf_counter() - began
        files[signal] = {
            "file": path.name,
            "records": records,
            "requests": requests,
            "bytes": size,
            "seconds": round(seconds, 2),
        }
        print(
            f"{path}: {records:,} {signal} records, {requests:,} requests, "
            f"{size / 1e6:,.1f} MB in {seconds:.1f} s ({records / max(seconds, 1e-9):,.0f}/s)"
        )
    summary = {
        "generator": "bundlekit.synth",
        "seed": seed,
        "spans": spans,
        "per_request": per_request,
        "files": files,
    }
    (out / "dataset.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output directory (default: bench/data/spans-N, git-ignored)",
    )
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument(
        "--per-request", type=int, default=512, help="records per Export*ServiceRequest"
    )
    args = parser.parse_args(argv)
    out = args.out or DATA / f"spans-{args.spans}"
    generate(args.spans, out, args.seed, args.per_request)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
