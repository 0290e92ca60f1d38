"""Writing segments: framing, statistics, rollover, background compression.

Requests of any signal arrive in any order, from any number of threads; each
signal has its own open segment (its own lock, index and statistics), so
traces, logs, traces simply continue the traces segment.  Framed records
collect in memory until a segment reaches its target size; then it is
compressed on a background thread (its content size now known, so the zstd
frame records it) while the next one fills.  At most ``workers`` segments are
being compressed at once and a thread that fills another waits for one to
finish: memory is bounded whatever the volume, and a live receiver feeding
faster than the disk is pushed back rather than buffered.

The target (16 MiB by default) is well under the format's 64 MiB bound: zstd
level 3 matches within a 2 MiB window, so bigger segments compress no better,
while smaller ones keep memory low and let compression overlap reading.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from bundlekit.format import layout
from bundlekit.format.layout import Role
from bundlekit.format.manifest import FileEntry
from bundlekit.format.segment import write_segment
from bundlekit.limits import Limits
from bundlekit.otlp.framing import FRAME_HEADER_BYTES
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


@dataclass
class _Open:
    """One signal's segment being filled."""

    signal: Signal
    lock: threading.Lock = field(default_factory=threading.Lock)
    index: int = 0
    parts: list[bytes] = field(default_factory=list)
    size: int = 0
    stats: StatsCollector | None = None


class SegmentWriter:
    """Appends requests of any signal to numbered segments under ``root``; thread-safe."""

    def __init__(
        self,
        root: Path,
        limits: Limits,
        level: int = 3,
        threads: int = 0,
        target: int = DEFAULT_SEGMENT_TARGET,
        workers: int = 2,
        durable: bool = True,
    ) -> None:
        self._root = root
        #: fsync each segment; False when the segments are staging for an archive,
        #: which is itself fsync'd once it holds them (a killed pack leaves nothing).
        self._durable = durable
        self._target = min(target, limits.max_segment_bytes)
        self._level = level
        self._threads = threads
        self._workers = max(1, workers)
        self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="bundlekit-compress")
        self._open = {signal: _Open(signal) for signal in Signal}
        #: Segments being compressed, oldest first; guarded by ``_lock``.
        self._pending: deque[Future[FileEntry]] = deque()
        self._entries: list[FileEntry] = []
        self._lock = threading.Lock()

    def add(self, signal: Signal, data: bytes) -> int:
        """Append one serialized request; return its record count.

        Raises FormatError (from the statistics) if ``data`` is not a request
        of ``signal``; nothing of it is kept then.
        """
        state = self._open[signal]
        with state.lock:
            if (
                state.stats is not None
                and state.size + FRAME_HEADER_BYTES + len(data) > self._target
            ):
                self._roll(state)
            if state.stats is None:
                state.index += 1
                state.stats = StatsCollector(signal)
            records = state.stats.add(data)
            state.parts.append(len(data).to_bytes(FRAME_HEADER_BYTES, "big"))
            state.parts.append(data)
            state.size += FRAME_HEADER_BYTES + len(data)
        return records

    def flush(self, signal: Signal) -> None:
        """Close ``signal``'s open segment (if any); the next request starts a new one."""
        state = self._open[signal]
        with state.lock:
            if state.stats is not None:
                self._roll(state)

    def close(self) -> list[FileEntry]:
        """Finish everything and return the written segments' manifest entries."""
        try:
            for signal in Signal:
                self.flush(signal)
            self._collect()
        finally:
            self.abort()
        return list(self._entries)

    def abort(self) -> None:
        """Stop after an error: wait for the background threads and drop buffered records.

        Segments already written stay; the caller discards the staging directory.
        """
        self._pool.shutdown(wait=True)
        for state in self._open.values():
            state.parts, state.size, state.stats = [], 0, None

    def _roll(self, state: _Open) -> None:
        assert state.stats is not None
        if not state.stats.stats.requests:  # its only request was refused: nothing to write
            state.index -= 1
            state.parts, state.size, state.stats = [], 0, None
            return
        full = _Full(
            layout.segment_name(state.signal, state.index),
            state.signal,
            state.parts,
            state.size,
            state.stats.stats,
        )
        state.parts, state.size, state.stats = [], 0, None
        self._collect(keep=self._workers - 1)  # bounded: at most `workers` segments in flight
        with self._lock:
            self._pending.append(self._pool.submit(self._compress, full))

    def _compress(self, full: _Full) -> FileEntry:
        path = self._root / full.name
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "xb") as target:
            stored, digest = write_segment(
                target, full.parts, full.size, level=self._level, threads=self._threads
            )
            target.flush()
            if self._durable:
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
        while True:
            with self._lock:
                if len(self._pending) <= keep:
                    return
                oldest = self._pending.popleft()
            entry = oldest.result()
            with self._lock:
                self._entries.append(entry)
