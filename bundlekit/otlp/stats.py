"""Record counts, time windows and service names of OTLP requests.

These are the figures a manifest records per file and that ``verify --deep``
recomputes.  Earliest and latest are taken over every non-zero record
timestamp (zero means "unset" in OTLP): span start and end, log time and
observed time, data point start and time.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from bundlekit.errors import FormatError
from bundlekit.otlp.projection import METRIC_DATA_FIELDS, views
from bundlekit.otlp.signals import Signal

SERVICE_NAME_KEY = "service.name"
_SERVICE_CACHE_SIZE = 4096


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
        self._metric_kinds = tuple(f"k{n}" for n in METRIC_DATA_FIELDS)
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
        records = 0
        metrics = self.signal is Signal.METRICS
        for resource in counted.resources:
            if metrics:
                kinds = resource.scope.metric
                records += sum(len(getattr(kinds, k).points) for k in self._metric_kinds)
            else:
                records += len(resource.scope.records)
            stats.services |= self._services(resource.resource)
        stats.requests += 1
        stats.records += records
        if metrics:
            kinds = timed.resource.scope.metric
            for k in self._metric_kinds:
                self._add_times(getattr(kinds, k).point)
        else:
            self._add_times(timed.resource.scope.record)
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
