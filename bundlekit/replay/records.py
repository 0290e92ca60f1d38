"""Counting records and finding a request's earliest time, cheaply.

The raw path sends stored bytes without decoding them, but the report,
``--rate`` and the progress bar still need record counts, and ``--speed``
needs each request's original time.  The projection views of
``bundlekit.otlp.projection`` get both from C-level parses with no
per-record Python work.
"""

from __future__ import annotations

from typing import Any

from bundlekit.errors import FormatError
from bundlekit.otlp.projection import METRIC_DATA_FIELDS, TIME_FIELDS, views
from bundlekit.otlp.signals import Signal

_KINDS = tuple(f"k{n}" for n in METRIC_DATA_FIELDS)


class RecordCounter:
    """Per-signal helpers over serialized requests."""

    def __init__(self, signal: Signal) -> None:
        self.signal = signal
        v = views(signal)
        # Fresh messages per request: with upb, re-parsing into one Clear()ed
        # message keeps growing its arena, so memory would grow with the bundle.
        self._count_cls = v.count
        self._times_cls = v.times
        self._time_attrs = tuple(f"t{n}" for n in TIME_FIELDS[signal])

    def count(self, data: bytes) -> int:
        message = self._count_cls()
        try:
            message.ParseFromString(data)
        except Exception as exc:  # protobuf raises DecodeError, a plain Exception
            raise self._broken(exc) from exc
        if self.signal is Signal.METRICS:
            return sum(
                len(getattr(entry.scope.metric, k).points)
                for entry in message.resources
                for k in _KINDS
            )
        return sum(len(entry.scope.records) for entry in message.resources)

    def _broken(self, exc: Exception) -> FormatError:
        return FormatError(f"stored {self.signal.value} request does not decode ({exc})")

    def earliest_ns(self, data: bytes) -> int | None:
        """Smallest non-zero record timestamp of the request, if any."""
        message = self._times_cls()
        try:
            message.ParseFromString(data)
        except Exception as exc:  # protobuf raises DecodeError, a plain Exception
            raise self._broken(exc) from exc
        if self.signal is Signal.METRICS:
            kinds = message.resource.scope.metric
            holders = [getattr(kinds, k).point for k in _KINDS]
        else:
            holders = [message.resource.scope.record]
        best: int | None = None
        for holder in holders:
            for attr in self._time_attrs:
                values = [v for v in getattr(holder, attr) if v]
                if values:
                    low = min(values)
                    best = low if best is None else min(best, low)
        return best


def count_decoded(signal: Signal, request: Any) -> int:
    """Records in a decoded request (data points for metrics)."""
    spec = signal.spec
    total = 0
    for entry in getattr(request, spec.resource_field):
        for scope in getattr(entry, spec.scope_field):
            records = getattr(scope, spec.record_field)
            if signal is Signal.METRICS:
                for metric in records:
                    kind = metric.WhichOneof("data")
                    if kind is not None:
                        total += len(getattr(metric, kind).data_points)
            else:
                total += len(records)
    return total
