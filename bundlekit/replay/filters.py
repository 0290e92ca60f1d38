"""``--signal``, ``--service``, ``--since`` and ``--until``: choosing what to replay.

Whole segments are skipped using the manifest's per-file services and time
window, so a narrow filter does not even decompress most of a bundle; the
rest is filtered record by record.  A record's time is its *original* time:
span start, log time (observed time when unset), data point time.  The window
is ``since <= time < until``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bundlekit.otlp.signals import SIGNALS, Signal
from bundlekit.replay.source import SegmentInfo

SERVICE_NAME_KEY = "service.name"


@dataclass(frozen=True)
class Filters:
    """What to replay; empty ``signals``/``services`` mean "all"."""

    signals: frozenset[Signal] = frozenset()
    services: frozenset[str] = frozenset()
    since_ns: int | None = None
    until_ns: int | None = None

    @property
    def selected_signals(self) -> tuple[Signal, ...]:
        return tuple(s for s in SIGNALS if not self.signals or s in self.signals)

    @property
    def per_record(self) -> bool:
        """Whether requests must be decoded to apply these filters."""
        return bool(self.services) or self.since_ns is not None or self.until_ns is not None

    def fingerprint(self) -> dict[str, Any]:
        return {
            "signals": sorted(s.value for s in self.selected_signals),
            "services": sorted(self.services),
            "since_ns": self.since_ns,
            "until_ns": self.until_ns,
        }

    def wants_segment(self, entry: SegmentInfo) -> bool:
        """False only when the manifest proves no record of the segment can match."""
        if self.services and entry.services and not self.services.intersection(entry.services):
            return False
        latest = entry.latest_ns
        if self.since_ns is not None and latest is not None and latest < self.since_ns:
            return False
        return not (
            self.until_ns is not None
            and entry.earliest_ns is not None
            and entry.earliest_ns >= self.until_ns
        )

    def apply(self, signal: Signal, request: Any) -> None:
        """Remove non-matching resources and records (and emptied containers), in place."""
        spec = signal.spec
        resources = getattr(request, spec.resource_field)
        if self.services:
            _keep(resources, lambda entry: _service(entry) in self.services)
        if self.since_ns is None and self.until_ns is None:
            return
        low = self.since_ns if self.since_ns is not None else 0
        high = self.until_ns if self.until_ns is not None else 2**64
        for entry in resources:
            scopes = getattr(entry, spec.scope_field)
            for scope in scopes:
                records = getattr(scope, spec.record_field)
                if signal is Signal.TRACES:
                    _keep(records, lambda span: low <= span.start_time_unix_nano < high)
                elif signal is Signal.LOGS:
                    _keep(
                        records,
                        lambda log: (
                            low <= (log.time_unix_nano or log.observed_time_unix_nano) < high
                        ),
                    )
                else:
                    for metric in records:
                        kind = metric.WhichOneof("data")
                        if kind is not None:
                            _keep(
                                getattr(metric, kind).data_points,
                                lambda point: low <= point.time_unix_nano < high,
                            )
                    _keep(records, _has_points)
            _keep(scopes, lambda scope: len(getattr(scope, spec.record_field)) > 0)
        _keep(resources, lambda entry: len(getattr(entry, spec.scope_field)) > 0)


def _service(entry: Any) -> str | None:
    for kv in entry.resource.attributes:
        if kv.key == SERVICE_NAME_KEY and kv.value.HasField("string_value"):
            return str(kv.value.string_value)
    return None


def _has_points(metric: Any) -> bool:
    kind = metric.WhichOneof("data")
    return kind is not None and len(getattr(metric, kind).data_points) > 0


def _keep(items: Any, predicate: Callable[[Any], bool]) -> None:
    """Keep the items of a repeated message field for which ``predicate`` holds."""
    kept = [item for item in items if predicate(item)]
    if len(kept) == len(items):
        return
    copies = [type(item)() for item in kept]
    for copy, item in zip(copies, kept, strict=True):
        copy.CopyFrom(item)
    del items[:]
    items.extend(copies)
