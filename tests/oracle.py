"""Obviously-correct (slow) reference statistics: decode everything, walk every record.

The packer uses projection schemas for speed; tests compare it with this.
"""

from __future__ import annotations

from typing import Any

from bundlekit.otlp.signals import Signal
from bundlekit.otlp.stats import SignalStats

_METRIC_KINDS = ("gauge", "sum", "histogram", "exponential_histogram", "summary")


def record_times(signal: Signal, record: Any) -> list[int]:
    if signal is Signal.TRACES:
        return [record.start_time_unix_nano, record.end_time_unix_nano]
    if signal is Signal.LOGS:
        return [record.time_unix_nano, record.observed_time_unix_nano]
    raise AssertionError("metrics have data points, not flat records")


def data_points(metric: Any) -> list[Any]:
    kind = metric.WhichOneof("data")
    return list(getattr(metric, kind).data_points) if kind else []


def oracle_stats(signal: Signal, requests: list[bytes]) -> SignalStats:
    spec = signal.spec
    stats = SignalStats()
    for data in requests:
        request = spec.request_class.FromString(data)
        stats.requests += 1
        for resource in getattr(request, spec.resource_field):
            for kv in resource.resource.attributes:
                if kv.key == "service.name" and kv.value.HasField("string_value"):
                    stats.services.add(kv.value.string_value)
            for scope in getattr(resource, spec.scope_field):
                for record in getattr(scope, spec.record_field):
                    if signal is Signal.METRICS:
                        points = data_points(record)
                        stats.records += len(points)
                        times = [
                            t for p in points for t in (p.start_time_unix_nano, p.time_unix_nano)
                        ]
                    else:
                        stats.records += 1
                        times = record_times(signal, record)
                    nonzero = [t for t in times if t]
                    if nonzero:
                        stats._widen(min(nonzero), max(nonzero))
    return stats
