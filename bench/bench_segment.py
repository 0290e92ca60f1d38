"""Time segment decoding (``iter_records``) on a realistic 16 MiB traces segment.

    python bench/gen_data.py --spans 60000 --out /tmp/segdata
    python bench/bench_segment.py /tmp/segdata/traces.binpb --reps 9

Takes the first requests of a Collector ``format: proto`` file up to 16 MiB,
compresses them as pack does (zstd level 3, one frame with size and checksum)
and reports the median wall time and throughput of decoding every record, the
work ``verify --deep`` and replay do for each segment before parsing.
"""

from __future__ import annotations

import argparse
import io
import statistics
import struct
import time
from collections.abc import Sequence
from pathlib import Path

from bundlekit.format.segment import compress_segment, iter_records
from bundlekit.limits import DEFAULT_LIMITS

TARGET = 16 * 1024 * 1024


def build(path: Path, target: int = TARGET) -> bytes:
    """The framed requests of ``path`` that fit in ``target`` bytes."""
    data = path.read_bytes()
    offset = 0
    while offset + 4 <= len(data):
        (length,) = struct.unpack_from(">I", data, offset)
        if offset + 4 + length > target:
            break
        offset += 4 + length
    return data[:offset]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", type=Path, help="a Collector format: proto file (traces.binpb)")
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--level", type=int, default=3)
    args = parser.parse_args(argv)
    raw = build(args.input)
    blob = compress_segment(raw, level=args.level)
    times = []
    for _ in range(args.reps):
        began = time.perf_counter()
        count = sum(
            1
            for _ in iter_records(
                io.BytesIO(blob), compressed_size=len(blob), limits=DEFAULT_LIMITS
            )
        )
        times.append(time.perf_counter() - began)
    median = statistics.median(times)
    print(
        f"{len(raw):,} bytes in {count} requests ({len(blob):,} compressed): median "
        f"{median * 1000:.1f} ms over {args.reps} runs, {len(raw) / median / 1e6:,.0f} MB/s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
