"""Deep checks: decode every segment and compare it with the manifest's claims.

Each segment is read once, into memory (its size is the trusted manifest's,
itself capped), hashed, and only if the digest matches decoded and counted.
Decoding uses the projection views pack uses for its statistics
(``otlp/projection.py``): the wire structure of every request, resource,
scope and record is parsed by the C protobuf parser, and requests, records,
time window and services are recomputed, without building Python objects for
every span.  Segments are decoded only through ``format.segment.iter_records``,
the one bounded reader: a trusted signature says who packed a bundle, not that
its frames are honest.

Decoding holds the GIL, so segments are decoded in worker *processes*, one per
CPU; a worker opens the segment itself from its :class:`Extent` (or gets the
bytes of a streamed one), so little crosses the process boundary.
"""

from __future__ import annotations

import hashlib
import io
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field

from bundlekit.errors import BundlekitError, FormatError
from bundlekit.format.manifest import FileEntry
from bundlekit.format.reader import Extent
from bundlekit.format.segment import iter_records
from bundlekit.format.timefmt import format_ns
from bundlekit.limits import Limits
from bundlekit.otlp.signals import Signal
from bundlekit.otlp.stats import StatsCollector


@dataclass(frozen=True)
class DeepOutcome:
    """What a worker found in one segment."""

    digest: str | None = None
    records: int = 0
    problems: list[str] = field(default_factory=list)
    #: Why the segment could not be read (``unreadable``) or decoded.
    error: str | None = None
    unreadable: bool = False


def deep_check(entry: FileEntry, source: Extent | bytes, limits: Limits) -> DeepOutcome:
    """Read, hash and (if the digest matches) decode one segment; never raises for bad data."""
    try:
        if isinstance(source, Extent):
            with source.open() as reader:
                data = reader.read(entry.size + 1)
        else:
            data = source
    except (OSError, BundlekitError) as exc:
        return DeepOutcome(error=getattr(exc, "message", None) or str(exc), unreadable=True)
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry.sha256 or len(data) != entry.size:
        return DeepOutcome(digest=digest)
    try:
        problems, records = _decode(entry, data, limits)
    except FormatError as exc:
        return DeepOutcome(digest=digest, error=exc.message)
    return DeepOutcome(digest=digest, records=records, problems=problems)


def _decode(entry: FileEntry, data: bytes, limits: Limits) -> tuple[list[str], int]:
    signal = entry.signal
    assert signal is not None
    collector = StatsCollector(signal)
    uncompressed = 0
    for index, request in enumerate(iter_records(io.BytesIO(data), limits, len(data))):
        uncompressed += 4 + len(request)
        try:
            collector.add(request)
        except FormatError as exc:
            raise FormatError(f"request {index} is not a valid {signal.value} request") from exc
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


class DeepPool:
    """Segments decoded on worker processes, results handed back in submission order.

    At most ``2 x workers`` segments are queued, so a streamed bundle never
    holds more than that many segments' bytes.  With one worker (or one CPU)
    the work runs in this process instead: no pool to start.
    """

    def __init__(self, limits: Limits, workers: int) -> None:
        self._limits = limits
        self._workers = max(1, workers)
        self._pool: ProcessPoolExecutor | None = None
        self._queued: deque[tuple[FileEntry, Future[DeepOutcome] | DeepOutcome]] = deque()
        self._done: deque[tuple[FileEntry, DeepOutcome]] = deque()

    def submit(self, entry: FileEntry, source: Extent | bytes) -> None:
        if self._workers == 1:
            self._done.append((entry, deep_check(entry, source, self._limits)))
            return
        if self._pool is None:
            import multiprocessing

            # forkserver: workers fork from a clean server process, never from this
            # one, whose hashing threads may hold locks at the moment of a fork.
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["bundlekit.verify.deep"])
            self._pool = ProcessPoolExecutor(self._workers, mp_context=context)
        while len(self._queued) >= 2 * self._workers:
            self._settle_oldest()
        self._queued.append((entry, self._pool.submit(deep_check, entry, source, self._limits)))

    def _settle_oldest(self) -> None:
        entry, pending = self._queued.popleft()
        outcome = pending.result() if isinstance(pending, Future) else pending
        self._done.append((entry, outcome))

    def results(self) -> Iterator[tuple[FileEntry, DeepOutcome]]:
        """Every outcome, oldest first, waiting for those still running."""
        while self._queued:
            self._settle_oldest()
        while self._done:
            yield self._done.popleft()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
