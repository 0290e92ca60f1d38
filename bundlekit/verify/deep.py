"""Deep checks: decode every record and compare it with the manifest's claims.

Runs on the same bytes that are hashed (one read per file) and parses every
request with the full OTLP schema.  Segments are decoded only through
``format.segment.iter_records``, the one bounded reader: a trusted signature
says who packed a bundle, not that its frames are honest, so memory stays
bounded by the limits whatever a frame declares.
"""

from __future__ import annotations

from bundlekit.errors import FormatError
from bundlekit.format.manifest import FileEntry
from bundlekit.format.segment import Readable, iter_records
from bundlekit.format.timefmt import format_ns
from bundlekit.limits import Limits
from bundlekit.otlp.signals import Signal
from bundlekit.otlp.stats import StatsCollector


def deep_check(entry: FileEntry, stream: Readable, limits: Limits) -> tuple[list[str], int]:
    """Return (problems, records seen) for one segment.

    Raises FormatError when the segment cannot be decoded at all.
    """
    signal = entry.signal
    assert signal is not None
    collector = StatsCollector(signal)
    request_class = signal.spec.request_class
    uncompressed = 0
    for index, data in enumerate(iter_records(stream, limits, compressed_size=entry.size)):
        uncompressed += 4 + len(data)
        try:
            request_class.FromString(data)
        except Exception as exc:
            raise FormatError(
                f"request {index} is not a valid {signal.value} request ({exc})"
            ) from exc
        collector.add(data)
    return _compare(entry, signal, collector, uncompressed), collector.stats.records


def _compare(
    entry: FileEntry, signal: Signal, collector: StatsCollector, uncompressed: int
) -> list[str]:
    stats = collector.stats
    problems = []
    claims = (
        ("requests", entry.requests, stats.requests),
        (signal.spec.record_noun, entry.records, stats.records),
        ("uncompressed bytes", entry.uncompressed_size, uncompressed),
    )
    for what, claimed, actual in claims:
        if claimed != actual:
            problems.append(f"manifest says {claimed} {what}, segment holds {actual}")
    if (entry.earliest_ns, entry.latest_ns) != (stats.earliest_ns, stats.latest_ns):
        problems.append(
            f"manifest window {_window(entry.earliest_ns, entry.latest_ns)} differs from the "
            f"records' {_window(stats.earliest_ns, stats.latest_ns)}"
        )
    if set(entry.services) != stats.services:
        problems.append(
            f"manifest services {sorted(entry.services)} differ from the records' "
            f"{sorted(stats.services)}"
        )
    return problems


def _window(low: int | None, high: int | None) -> str:
    if low is None or high is None:
        return "(none)"
    return f"{format_ns(low)}..{format_ns(high)}"
