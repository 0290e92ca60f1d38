"""Counting OTLP records: the one record counter of pack, replay and verify --deep.

* :class:`StatsCollector` accumulates what a manifest records per file and
  ``verify --deep`` recomputes: requests, records, the time window and the
  service names.  Earliest and latest are taken over every non-zero record
  timestamp (zero means "unset" in OTLP): span start and end, log time and
  observed time, data point start and time.
* :class:`RecordCounter` answers per request what replay needs without
  decoding it: the record count (report, ``--rate``, progress) and the
  earliest time (``--speed``).
* :func:`count_decoded` counts the records of an already decoded request.

The serialized paths use the projection views of ``otlp.projection``: C-level
parses with no per-record Python work.  Each parse uses a fresh message:
with upb, re-parsing into one ``Clear()``ed message keeps growing its arena,
so memory would grow with the bundle.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from bundlekit.errors import FormatError
from bundlekit.otlp.projection import METRIC_DATA_FIELDS, TIME_FIELDS, views
from bundlekit.otlp.signals import Signal

SERVICE_NAME_KEY = "service.name"
_SERVICE_CACHE_SIZE = 4096
#: Attribute names of the five metric data kinds in the projection views.
_KINDS = tuple(f"k{n}" for n in METRIC_DATA_FIELDS)


def service_names(resource: bytes) -> frozenset[str]:
    """Every string ``service.name`` attribute of a serialized Resource."""
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource

    try:
        attributes = Resource.FromString(resource).attributes
    except Exception as exc:  # protobuf's DecodeError
        raise FormatError(f"a resource is not valid protobuf ({exc})") from exc
    return frozenset(
        kv.value.string_value
        for kv in attributes
        if kv.key == SERVICE_NAME_KEY and kv.value.HasField("string_value")
    )


@dataclass
class SignalStats:
    """Accumulated statistics for a run of requests of one signal."""

    requests: int = 0
    records: int = 0
    earliest_ns: int | None = None
    latest_ns: int | None = None
    services: set[str] = field(default_factory=set)

    def _widen(self, low: int | None, high: int | None) -> None:
        if low is not None and (self.earliest_ns is None or low < self.earliest_ns):
            self.earliest_ns = low
        if high is not None and (self.latest_ns is None or high > self.latest_ns):
            self.latest_ns = high


class StatsCollector:
    """Adds requests of one signal to a :class:`SignalStats`, quickly.

    Uses the projection views (see ``projection.py``): two C-level parses per
    request and no per-record Python work.
    """

    def __init__(self, signal: Signal) -> None:
        self.signal = signal
        self.stats = SignalStats()
        v = views(signal)
        self._count_cls = v.count
        self._times_cls = v.times
        self._service_cache: dict[bytes, frozenset[str]] = {}

    def add(self, data: bytes) -> int:
        """Account for one serialized request; return its record count."""
        stats = self.stats
        counted = self._count_cls()
        timed = self._times_cls()
        try:
            counted.ParseFromString(data)
            timed.ParseFromString(data)
        except Exception as exc:  # protobuf raises DecodeError, a plain Exception
            raise FormatError(
                f"not a valid {self.signal.value} request ({exc})",
                "the data is corrupt or belongs to another signal",
            ) from exc
        records = _count_view(self.signal, counted)
        for resource in counted.resources:
            stats.services |= self._services(resource.resource)
        stats.requests += 1
        stats.records += records
        for holder in _time_holders(self.signal, timed):
            self._add_times(holder)
        return records

    def _services(self, resource: bytes) -> frozenset[str]:
        """String ``service.name`` values of one serialized Resource, cached by its bytes.

        The same few resources recur in every request, so decoding each once
        saves most of the per-request work.  The cache is bounded.
        """
        names = self._service_cache.get(resource)
        if names is None:
            if len(self._service_cache) >= _SERVICE_CACHE_SIZE:
                self._service_cache.clear()
            names = service_names(resource)
            self._service_cache[resource] = names
        return names

    def _add_times(self, holder: Any) -> None:
        # Serializing the merged record message yields each timestamp field as
        # one packed little-endian uint64 array, which unpacks in a single C call.
        holder.DiscardUnknownFields()
        blob = holder.SerializeToString()
        offset = 0
        while offset < len(blob):
            offset, values = _packed_field(blob, offset)
            high = max(values, default=0)
            if not high:
                continue  # empty, or every timestamp of this kind is unset
            low = min(values) or min(filter(None, values))
            self.stats._widen(low, high)


def _packed_field(blob: bytes, offset: int) -> tuple[int, tuple[int, ...]]:
    """Read one packed ``repeated fixed64`` field at ``offset``; return (next offset, values)."""
    offset += 1  # the tag: field numbers here are below 16, so it is one byte
    length = shift = 0
    while True:
        byte = blob[offset]
        offset += 1
        length |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            break
    end = offset + length
    return end, struct.unpack_from(f"<{length // 8}Q", blob, offset)


def _count_view(signal: Signal, counted: Any) -> int:
    """Records in a parsed count view (data points for metrics)."""
    if signal is Signal.METRICS:
        return sum(
            len(getattr(entry.scope.metric, k).points)
            for entry in counted.resources
            for k in _KINDS
        )
    return sum(len(entry.scope.records) for entry in counted.resources)


def _time_holders(signal: Signal, timed: Any) -> list[Any]:
    """The merged record messages of a parsed times view (one per metric kind)."""
    if signal is Signal.METRICS:
        kinds = timed.resource.scope.metric
        return [getattr(kinds, k).point for k in _KINDS]
    return [timed.resource.scope.record]


class RecordCounter:
    """Record count and earliest time of serialized requests of one signal, without decoding."""

    def __init__(self, signal: Signal) -> None:
        self.signal = signal
        v = views(signal)
        self._count_cls = v.count
        self._times_cls = v.times
        self._time_attrs = tuple(f"t{n}" for n in TIME_FIELDS[signal])

    def count(self, data: bytes) -> int:
        """Records in the request (data points for metrics)."""
        message = self._count_cls()
        try:
            message.ParseFromString(data)
        except Exception as exc:  # protobuf raises DecodeError, a plain Exception
            raise self._broken(exc) from exc
        return _count_view(self.signal, message)

    def earliest_ns(self, data: bytes) -> int | None:
        """Smallest non-zero record timestamp of the request, if any."""
        message = self._times_cls()
        try:
            message.ParseFromString(data)
        except Exception as exc:  # protobuf raises DecodeError, a plain Exception
            raise self._broken(exc) from exc
        best: int | None = None
        for holder in _time_holders(self.signal, message):
            for attr in self._time_attrs:
                values = [v for v in getattr(holder, attr) if v]
                if values:
                    low = min(values)
                    best = low if best is None else min(best, low)
        return best

    def _broken(self, exc: Exception) -> FormatError:
        return FormatError(f"stored {self.signal.value} request does not decode ({exc})")


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
