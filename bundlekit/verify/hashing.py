"""Hashing many files on a few threads while the caller does other work.

hashlib releases the GIL on large buffers, so files hash in parallel with each
other and with the signature and manifest checks on the calling thread.  Plain
threads rather than concurrent.futures: that module imports logging, which
costs more start-up time than hashing a 50 MB bundle.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable
from typing import Protocol

CHUNK = 1 << 20


class _Stream(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...
    def __enter__(self) -> _Stream: ...
    def __exit__(self, *exc: object) -> None: ...


class ParallelHasher:
    """Hex SHA-256 of each named file; ``result(name)`` waits for that one file."""

    def __init__(
        self, names: Iterable[str], opener: Callable[[str], _Stream], workers: int
    ) -> None:
        self._queue = list(names)
        self._opener = opener
        self._lock = threading.Lock()
        self._done = {name: threading.Event() for name in self._queue}
        self._results: dict[str, str | Exception] = {}
        self._stopped = False
        self._threads = [
            threading.Thread(target=self._work, name=f"bundlekit-hash-{i}", daemon=True)
            for i in range(max(1, min(workers, len(self._queue))))
        ]
        self._queue.reverse()  # pop() from the end hands out files in the given order
        for thread in self._threads:
            thread.start()

    @property
    def names(self) -> list[str]:
        return sorted(self._done)

    def result(self, name: str) -> str | Exception:
        """The file's digest, or the error that stopped it from being read.

        Any error is handed back rather than left to kill the thread: a file
        swapped for a link after the listing (``LinkRefused``) must be a
        finding, not a verifier that waits forever.
        """
        self._done[name].wait()
        return self._results[name]

    def stop(self) -> None:
        """Hash nothing more: files being read are abandoned at their next chunk.

        A bundle refused at its signature may hold files of any size; waiting
        for one being hashed would let untrusted bytes cost their full size.
        """
        with self._lock:
            self._stopped = True
            self._queue.clear()
        for thread in self._threads:
            thread.join()

    def _work(self) -> None:
        while True:
            with self._lock:
                if self._stopped or not self._queue:
                    return
                name = self._queue.pop()
            try:
                result = self._hash(name)
            except Exception as exc:  # a waiter must never hang on a lost thread
                result = exc
            if result is None:  # abandoned by stop(): a partial digest is no digest
                return
            self._results[name] = result
            self._done[name].set()

    def _hash(self, name: str) -> str | Exception | None:
        digest = hashlib.sha256()
        try:
            with self._opener(name) as stream:
                while chunk := stream.read(CHUNK):
                    if self._stopped:
                        return None
                    digest.update(chunk)
        except OSError as exc:
            return exc
        return digest.hexdigest()


class StreamHasher:
    """SHA-256 of files that arrive one after another on one stream, hashed on threads.

    A stream (``verify -``) must be read in order, but each member has a digest
    of its own, so the caller reads member *n + 1* while threads hash member *n*:
    each member goes whole to the least-loaded thread, and chunks are handed
    over as read.  At most ``budget`` bytes are held between reader and hashers
    (one chunk more if a single chunk is larger), so memory stays flat however
    large the bundle.
    """

    def __init__(self, workers: int, budget: int = 4 * CHUNK) -> None:
        import queue

        count = max(1, workers)
        self._queues: list[queue.SimpleQueue[tuple[str, bytes | None] | None]] = [
            queue.SimpleQueue() for _ in range(count)
        ]
        self._load = [0] * count
        self._cond = threading.Condition()
        self._held = 0
        self._budget = budget
        self._stopped = False
        self._current = 0
        self._results: dict[str, str] = {}
        self._done: dict[str, threading.Event] = {}
        self._threads = [
            threading.Thread(target=self._work, args=(i,), name=f"bundlekit-hash-{i}", daemon=True)
            for i in range(count)
        ]
        for thread in self._threads:
            thread.start()

    def begin(self, name: str) -> None:
        """Start the next member; its chunks follow with :meth:`feed`, then :meth:`end`."""
        with self._cond:
            self._current = min(range(len(self._load)), key=self._load.__getitem__)
        self._done[name] = threading.Event()
        self._name = name

    def feed(self, chunk: bytes) -> None:
        with self._cond:
            while self._held and self._held + len(chunk) > self._budget and not self._stopped:
                self._cond.wait()
            self._held += len(chunk)
            self._load[self._current] += len(chunk)
        self._queues[self._current].put((self._name, chunk))

    def end(self) -> None:
        self._queues[self._current].put((self._name, None))

    def ready(self, name: str) -> bool:
        return self._done[name].is_set()

    def result(self, name: str) -> str:
        self._done[name].wait()
        return self._results[name]

    def stop(self) -> None:
        """Hash nothing more; threads drop what they hold and end."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        for q in self._queues:
            q.put(None)
        for thread in self._threads:
            thread.join()

    def _work(self, index: int) -> None:
        source = self._queues[index]
        digests: dict[str, hashlib._Hash] = {}
        while (item := source.get()) is not None:
            name, chunk = item
            if chunk is None:
                digest = digests.pop(name, None) or hashlib.sha256()
                self._results[name] = digest.hexdigest()
                self._done[name].set()
                continue
            if not self._stopped:
                digests.setdefault(name, hashlib.sha256()).update(chunk)
            with self._cond:
                self._held -= len(chunk)
                self._load[index] -= len(chunk)
                self._cond.notify_all()
