"""Writing segments: framing, statistics, rollover, background compression.

Records are appended to an uncompressed *spool* file beside the segment; when
the segment is full the spool is compressed into the final segment on a
background thread (its content size now known, so the zstd frame can record
it) while the next spool fills.  Memory stays flat whatever the data volume,
and the same writer serves a live receiver that gets requests one at a time.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from bundlekit.format import layout
from bundlekit.format.layout import Role
from bundlekit.format.manifest import FileEntry
from bundlekit.format.segment import FRAME_HEADER_BYTES, write_segment
from bundlekit.limits import DEFAULT_LIMITS, Limits
from bundlekit.otlp.signals import Signal
from bundlekit.otlp.stats import SignalStats, StatsCollector

_SPOOL_BUFFER = 1 << 20
_READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class _Spool:
    name: str
    signal: Signal
    path: Path
    size: int
    stats: SignalStats


class SegmentWriter:
    """Appends requests of one signal at a time to numbered segments under ``root``."""

    def __init__(
        self,
        root: Path,
        limits: Limits = DEFAULT_LIMITS,
        level: int = 3,
        threads: int = 2,
    ) -> None:
        self._root = root
        self._limits = limits
        self._level = level
        self._threads = threads
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bundlekit-compress")
        self._pending: Future[FileEntry] | None = None
        self._entries: list[FileEntry] = []
        self._signal: Signal | None = None
        self._index = 0
        self._handle: BinaryIO | None = None
        self._spool_path: Path | None = None
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
        if self._handle is not None and (
            self._size + FRAME_HEADER_BYTES + len(data) > self._limits.max_segment_bytes
        ):
            self._roll()
        if self._handle is None:
            self._open(signal)
        assert self._handle is not None and self._stats is not None
        records = self._stats.add(data)
        self._handle.write(len(data).to_bytes(FRAME_HEADER_BYTES, "big"))
        self._handle.write(data)
        self._size += FRAME_HEADER_BYTES + len(data)
        return records

    def finish_signal(self) -> None:
        """Close the current signal's last segment (if any)."""
        if self._handle is not None:
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
        """Stop after an error: wait for the background thread, drop the open spool.

        Segments already written stay; the caller discards the staging directory.
        """
        self._pool.shutdown(wait=True)
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        if self._spool_path is not None:
            self._spool_path.unlink(missing_ok=True)
            self._spool_path = None

    def _open(self, signal: Signal) -> None:
        self._index += 1
        name = layout.segment_name(signal, self._index)
        path = self._root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        self._spool_path = path.with_name(f".{path.name}.spool")
        self._handle = open(self._spool_path, "xb", buffering=_SPOOL_BUFFER)  # noqa: SIM115
        self._size = 0
        self._stats = StatsCollector(signal)

    def _roll(self) -> None:
        assert self._handle is not None and self._spool_path is not None
        assert self._signal is not None and self._stats is not None
        self._handle.close()
        spool = _Spool(
            layout.segment_name(self._signal, self._index),
            self._signal,
            self._spool_path,
            self._size,
            self._stats.stats,
        )
        self._handle, self._spool_path, self._stats = None, None, None
        self._collect()  # at most one segment compressing while the next fills
        self._pending = self._pool.submit(self._compress, spool)

    def _compress(self, spool: _Spool) -> FileEntry:
        path = self._root / spool.name
        try:
            with open(spool.path, "rb") as source, open(path, "xb") as target:
                stored, digest = write_segment(
                    target,
                    iter(lambda: source.read(_READ_CHUNK), b""),
                    spool.size,
                    level=self._level,
                    threads=self._threads,
                )
                target.flush()
                os.fsync(target.fileno())
        finally:
            spool.path.unlink(missing_ok=True)
        stats = spool.stats
        role = Role(spool.signal.value)
        return FileEntry(
            name=spool.name,
            role=role,
            media_type=layout.MEDIA_TYPES[role],
            sha256=digest,
            size=stored,
            uncompressed_size=spool.size,
            requests=stats.requests,
            records=stats.records,
            earliest_ns=stats.earliest_ns,
            latest_ns=stats.latest_ns,
            services=tuple(sorted(stats.services)),
        )

    def _collect(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            self._entries.append(pending.result())
