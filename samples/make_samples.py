"""Regenerate the sample OTLP streams in samples/otlp/ (committed, byte-identical).

The samples are the traffic of the synthetic shop (bundlekit.synth) over the
incident hour of 2026-11-01, small enough to commit and to read in tests and
demos. Run from anywhere:

    python samples/make_samples.py            # rewrites samples/otlp/*.binpb
    python samples/make_samples.py --out DIR  # writes them elsewhere

Changing SEED or the counts changes every sample; tests/test_samples.py checks
that the committed files are what this script writes.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from bundlekit.synth import companion_counts, write_stream

SEED = 20261101
#: Spans in traces.binpb; the logs are the log records those traces write.
SPANS = 3500
#: Data points in metrics.binpb: about 50 collections of every series.
METRIC_POINTS = 3000
#: Records per Export*ServiceRequest, as a collector's batch processor would send.
PER_REQUEST = 256
DEFAULT_OUT = Path(__file__).resolve().parent / "otlp"


def counts() -> dict[str, int]:
    return {**companion_counts(SPANS, SEED), "metrics": METRIC_POINTS}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for signal, records in counts().items():
        path = args.out / f"{signal}.binpb"
        requests, size = write_stream(path, signal, records=records, seed=SEED,
                                      per_request=PER_REQUEST, trace_records=SPANS)
        print(f"{path}: {records} records in {requests} requests, {size} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
