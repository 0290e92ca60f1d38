"""Acknowledged progress that survives Ctrl-C, crashes and long collector outages.

Progress is keyed by bundle id, segment name and request index (plus a part
number for the rare request that had to be split).  With several requests in
flight, acknowledgements arrive out of order, so each segment keeps a
contiguous acknowledged prefix plus the set acknowledged beyond it: a resumed
replay skips exactly what was acknowledged, never more (nothing lost) and
never less (nothing sent twice).

The file is replaced atomically (write a temporary file, fsync, rename, fsync
the directory), so a crash leaves either the old or the new state, never a
torn one.  A background writer saves the latest state shortly after each
acknowledgement without making senders wait for the disk.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bundlekit.fsutil import atomic_write
from bundlekit.replay.interface import CheckpointError

FORMAT = "bundlekit-replay-checkpoint/v1"
#: Longest a saved checkpoint may lag the acknowledgements (seconds).
SAVE_INTERVAL = 0.05


@dataclass
class SegmentProgress:
    """Which requests (and parts of split requests) of one segment were acknowledged."""

    prefix: int = 0
    done: set[int] = field(default_factory=set)
    #: request index → (number of parts, parts acknowledged so far)
    parts: dict[int, tuple[int, set[int]]] = field(default_factory=dict)
    #: How many requests the segment holds, once known.
    total: int | None = None

    @property
    def complete(self) -> bool:
        return self.total is not None and self.prefix >= self.total

    def acked(self, index: int) -> bool:
        return index < self.prefix or index in self.done

    def part_acked(self, index: int, part: int) -> bool:
        if self.acked(index):
            return True
        entry = self.parts.get(index)
        return entry is not None and part in entry[1]

    def ack(self, index: int, part: int = 0, nparts: int = 1) -> None:
        if self.acked(index):
            return
        if nparts > 1:
            count, acked = self.parts.setdefault(index, (nparts, set()))
            acked.add(part)
            if len(acked) < count:
                return
            del self.parts[index]
        self.done.add(index)
        while self.prefix in self.done:
            self.done.remove(self.prefix)
            self.prefix += 1

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"prefix": self.prefix}
        if self.done:
            doc["done"] = sorted(self.done)
        if self.parts:
            doc["parts"] = {
                str(i): {"of": n, "acked": sorted(p)} for i, (n, p) in self.parts.items()
            }
        if self.total is not None:
            doc["total"] = self.total
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> SegmentProgress:
        parts = {
            int(i): (int(v["of"]), {int(p) for p in v["acked"]})
            for i, v in doc.get("parts", {}).items()
        }
        total = doc.get("total")
        return cls(
            prefix=int(doc["prefix"]),
            done={int(i) for i in doc.get("done", [])},
            parts=parts,
            total=None if total is None else int(total),
        )


@dataclass
class CheckpointState:
    """Everything a resumed replay needs to continue the same replay."""

    bundle_id: str
    settings: dict[str, Any]
    replay_id: str
    delta_ns: int
    progress: dict[str, SegmentProgress] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "bundle_id": self.bundle_id,
            "settings": self.settings,
            "replay_id": self.replay_id,
            "delta_ns": self.delta_ns,
            "segments": {key: p.to_json() for key, p in sorted(self.progress.items())},
        }

    @classmethod
    def from_json(cls, doc: Any) -> CheckpointState:
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ValueError("not a bundlekit replay checkpoint")
        return cls(
            bundle_id=str(doc["bundle_id"]),
            settings=dict(doc["settings"]),
            replay_id=str(doc["replay_id"]),
            delta_ns=int(doc["delta_ns"]),
            progress={k: SegmentProgress.from_json(v) for k, v in doc["segments"].items()},
        )


def segment_key(signal: str, name: str) -> str:
    return f"{signal}:{name}"


class Tracker:
    """Thread-safe acknowledged progress, optionally persisted to a checkpoint file."""

    def __init__(
        self, state: CheckpointState, path: Path | None = None, resumed: bool = False
    ) -> None:
        self.state = state
        self.path = path
        self.resumed = resumed
        self._lock = threading.Lock()
        self._dirty = threading.Event()
        self._closing = False
        self._writer: threading.Thread | None = None

    # -- lookups and updates -------------------------------------------------
    def segment(self, key: str) -> SegmentProgress:
        with self._lock:
            return self.state.progress.setdefault(key, SegmentProgress())

    def ack(self, keys: list[tuple[str, int, int, int]]) -> None:
        """Record ``(segment key, request index, part, parts)`` tuples as acknowledged."""
        with self._lock:
            for key, index, part, nparts in keys:
                self.state.progress.setdefault(key, SegmentProgress()).ack(index, part, nparts)
        self._dirty.set()

    def set_total(self, key: str, total: int) -> None:
        with self._lock:
            self.state.progress.setdefault(key, SegmentProgress()).total = total
        self._dirty.set()

    # -- persistence -----------------------------------------------------------
    def start(self) -> None:
        """Save once now (so a bad path fails early), then in the background."""
        if self.path is None:
            return
        self.save()
        self._writer = threading.Thread(target=self._run, name="bundlekit-checkpoint", daemon=True)
        self._writer.start()

    def close(self) -> None:
        """Stop the writer and save the final state."""
        if self.path is None:
            return
        self._closing = True
        self._dirty.set()
        if self._writer is not None:
            self._writer.join()
        self.save()

    def save(self) -> None:
        if self.path is None:
            return
        with self._lock:
            text = json.dumps(self.state.to_json(), sort_keys=True, separators=(",", ":"))
        atomic_write(self.path, text.encode())

    def _run(self) -> None:
        while not self._closing:
            self._dirty.wait()
            if self._closing:
                return
            self._dirty.clear()
            # A failed background save is retried at the next acknowledgement and
            # at close(), whose save raises if the disk still refuses it; the
            # replay keeps going meanwhile.
            with contextlib.suppress(OSError):
                self.save()
            time.sleep(SAVE_INTERVAL)


def open_tracker(
    path: Path | None,
    bundle_id: str,
    settings: dict[str, Any],
    replay_id: str,
    delta_ns: int,
) -> Tracker:
    """Load and check an existing checkpoint, or start a new one.

    A checkpoint made for another bundle or with other filters or rebase
    settings is refused: resuming it would skip the wrong records.  A resumed
    replay keeps the original replay id and rebase delta, so ``--rebase now``
    does not shift the second half differently from the first.
    """
    fresh = CheckpointState(bundle_id, settings, replay_id, delta_ns)
    if path is None or not path.exists():
        if path is not None and not path.parent.is_dir():
            raise CheckpointError(f"checkpoint directory {path.parent} does not exist")
        return Tracker(fresh, path)
    try:
        state = CheckpointState.from_json(json.loads(path.read_bytes()))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(
            f"cannot use checkpoint {path}: {exc}",
            "pass another --checkpoint path, or delete this file to start over",
        ) from exc
    if state.bundle_id != bundle_id:
        raise CheckpointError(
            f"checkpoint {path} belongs to bundle {state.bundle_id}, not {bundle_id}",
            "use a separate checkpoint file per bundle",
        )
    if state.settings != settings:
        changed = sorted(
            k
            for k in set(settings) | set(state.settings)
            if settings.get(k) != state.settings.get(k)
        )
        raise CheckpointError(
            f"checkpoint {path} was made with different replay settings ({', '.join(changed)})",
            "resume with the same --signal/--service/--since/--until/--rebase/--no-marker "
            "options, or use a new checkpoint file",
        )
    return Tracker(state, path, resumed=True)
