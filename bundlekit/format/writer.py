"""Writing segments: framing, statistics, rollover, background compression.

Framed records collect in memory until the segment reaches its target size;
then the segment is compressed on a background thread (its content size now
known, so the zstd frame records it) while the next one fills.  Two workers by
default, so on two cores compression and parsing together use both; at most
``workers + 1`` segments are held, so memory is bounded whatever the data
volume, and the same writer serves a live receiver that gets requests one at a
time.

The target (16 MiB by default) is well under the format's 64 MiB bound: zstd
level 3 matches within a 2 MiB window, so bigger segments compress no better,
while smaller ones keep memory low and let compression overlap reading.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bundlekit.format import layout
from bundlekit.format.layout import Role
from bundlekit.format.manifest import FileEntry
from bundlekit.format.segment import FRAME_HEADER_BYTES, write_segment
from bundlekit.limits import DEFAULT_LIMITS, Limits
from bundlekit.otlp.signals import Signal
from bundlekit.otlp.stats import SignalStats, StatsCollector

#: Default uncompressed size at which a new segment is started.
DEFAULT_SEGMENT_TARGET = 16 * 1024 * 1024


@dataclass(frozen=True)
class _Full:
    """A finished segment waiting to be compressed."""

    name: str
    signal: Signal
    parts: list[bytes]
    size: int
    stats: SignalStats


class SegmentWriter:
    """Appends requests of one signal at a time to numbered segments under ``root``."""

    def __init__(
        self,
        root: Path,
        limits: Limits = DEFAULT_LIMITS,
        level: int = 3,
        threads: int = 0,
        target: int = DEFAULT_SEGMENT_TARGET,
        workers: int = 2,
    ) -> None:
        self._root = root
        self._target = min(target, limits.max_segment_bytes)
        self._level = level
        self._threads = threads
        self._workers = max(1, workers)
        self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="bundlekit-compress")
        #: Segments being compressed, oldest first (entries are kept in segment order).
        self._pending: deque[Future[FileEntry]] = deque()
        self._entries: list[FileEntry] = []
        self._signal: Signal | None = None
        self._index = 0
        self._parts: list[bytes] = []
        self._size = 0
        self._stats: StatsCollector | None = None

    def add(self, signal: Signal, data: bytes) -> int:
        """Append one serialized request; return its record count.

        Raises FormatError (from the statistics) if ``data`` is not a request
        of ``signal``; the caller decides how to report it.
        """
        if signal is not self._signal:
            self.finish_signal()
            self._signal, self._index = signal, 0
        if self._stats is not None and self._size + FRAME_HEADER_BYTES + len(data) > self._target:
            self._roll()
        if self._stats is None:
            self._index += 1
            self._stats = StatsCollector(signal)
        records = self._stats.add(data)
        self._parts.append(len(data).to_bytes(FRAME_HEADER_BYTES, "big"))
        self._parts.append(data)
        self._size += FRAME_HEADER_BYTES + len(data)
        return records

    def finish_signal(self) -> None:
        """Close the current signal's last segment (if any)."""
        if self._stats is not None:
            self._roll()

    def close(self) -> list[FileEntry]:
        """Finish everything and return the written segments' manifest entries."""
        try:
            self.finish_signal()
            self._collect()
        finally:
            self.abort()
        return self._entries

    def abort(self) -> None:
        """Stop after an error: wait for the background thread and drop buffered records.

        Segments already written stay; the caller discards the staging directory.
        """
        self._pool.shutdown(wait=True)
        self._parts, self._size, self._stats = [], 0, None

    def _roll(self) -> None:
        assert self._signal is not None and self._stats is not None
        full = _Full(
            layout.segment_name(self._signal, self._index),
            self._signal,
            self._parts,
            self._size,
            self._stats.stats,
        )
        self._parts, self._size, self._stats = [], 0, None
        self._collect(keep=self._workers - 1)  # bounded: at most `workers` segments in flight
        self._pending.append(self._pool.submit(self._compress, full))

    def _compress(self, full: _Full) -> FileEntry:
        path = self._root / full.name
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "xb") as target:
            stored, digest = write_segment(
                target, full.parts, full.size, level=self._level, threads=self._threads
            )
            target.flush()
            os.fsync(target.fileno())
        stats = full.stats
        role = Role(full.signal.value)
        return FileEntry(
            name=full.name,
            role=role,
            media_type=layout.MEDIA_TYPES[role],
            sha256=digest,
            size=stored,
            uncompressed_size=full.size,
            requests=stats.requests,
            records=stats.records,
            earliest_ns=stats.earliest_ns,
            latest_ns=stats.latest_ns,
            services=tuple(sorted(stats.services)),
        )

    def _collect(self, keep: int = 0) -> None:
        """Wait for the oldest segments until at most ``keep`` are still compressing."""
        while len(self._pending) > keep:
            self._entries.append(self._pending.popleft().result())
