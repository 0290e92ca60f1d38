"""Record counts, time windows and service names of OTLP requests.

These are the figures a manifest records per file and that ``verify --deep``
recomputes.  Earliest and latest are taken over every non-zero record
timestamp (zero means "unset" in OTLP): span start and end, log time and
observed time, data point start and time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bundlekit.errors import FormatError
from bundlekit.otlp.projection import METRIC_DATA_FIELDS, TIME_FIELDS, views
from bundlekit.otlp.signals import Signal

SERVICE_NAME_KEY = "service.name"


@dataclass
class SignalStats:
    """Accumulated statistics for a run of requests of one signal."""

    requests: int = 0
    records: int = 0
    earliest_ns: int | None = None
    latest_ns: int | None = None
    services: set[str] = field(default_factory=set)

    def merge(self, other: SignalStats) -> None:
        self.requests += other.requests
        self.records += other.records
        self.services |= other.services
        self._widen(other.earliest_ns, other.latest_ns)

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
        self._time_attrs = tuple(f"t{n}" for n in TIME_FIELDS[signal])
        self._metric_kinds = tuple(f"k{n}" for n in METRIC_DATA_FIELDS)

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
            for kv in resource.resource.attributes:
                if kv.key == SERVICE_NAME_KEY and kv.value.HasField("string_value"):
                    stats.services.add(kv.value.string_value)
        stats.requests += 1
        stats.records += records
        if metrics:
            kinds = timed.resource.scope.metric
            for k in self._metric_kinds:
                self._add_times(getattr(kinds, k).point)
        else:
            self._add_times(timed.resource.scope.record)
        return records

    def _add_times(self, holder: object) -> None:
        for attr in self._time_attrs:
            values = getattr(holder, attr)
            if not values:
                continue
            high = max(values)
            if not high:
                continue  # every timestamp of this kind is unset
            low = min(values) or min(filter(None, values))
            self.stats._widen(low, high)
