"""The public entry points: requests as bytes, and length-delimited files."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bundlekit.synth.batch import Batcher, batched
from bundlekit.synth.logs import log_records, logs_for_spans, spans_for_logs
from bundlekit.synth.metrics import metric_records
from bundlekit.synth.timeline import Cycle
from bundlekit.synth.traces import span_records

SIGNALS = ("traces", "metrics", "logs")
#: Metric data points per span in ``companion_counts`` (and the default for exemplars).
SPANS_PER_DATA_POINT = 10
_LENGTH = struct.Struct(">I")


def iter_requests(
    signal: str,
    *,
    records: int,
    seed: int = 1,
    per_request: int = 512,
    trace_records: int | None = None,
) -> Iterator[bytes]:
    """Yield serialized Export*ServiceRequest messages holding ``records`` records.

    ``records`` counts spans, metric data points or log records. A request
    holds at most ``per_request`` of them and never more than 4 MiB.

    ``trace_records`` is the size of the traces stream (same seed) that log
    records and metric exemplars refer to: their trace ids, span ids and
    times then match spans of that stream exactly. By default logs refer to
    the smallest traces stream that writes them all, and metrics to one of
    ``10 * records`` spans.
    """
    if records < 0 or per_request < 1:
        raise ValueError("records must be >= 0 and per_request must be >= 1")
    cycle = Cycle(seed)
    if signal == "traces":
        batcher = Batcher(ExportTraceServiceRequest, "resource_spans", "scope_spans")
        return batched(span_records(records, cycle), batcher, per_request)
    if signal == "logs":
        batcher = Batcher(ExportLogsServiceRequest, "resource_logs", "scope_logs")
        spans = trace_records if trace_records is not None else spans_for_logs(records, cycle)
        return batched(log_records(records, cycle, spans), batcher, per_request)
    if signal == "metrics":
        batcher = Batcher(ExportMetricsServiceRequest, "resource_metrics", "scope_metrics")
        spans = trace_records if trace_records is not None else SPANS_PER_DATA_POINT * records
        return batched(metric_records(records, seed, spans), batcher, per_request)
    raise ValueError(f"unknown signal {signal!r}; expected one of {', '.join(SIGNALS)}")


def companion_counts(spans: int, seed: int = 1) -> dict[str, int]:
    """Record counts for a consistent data set around a ``spans``-span traces stream:
    the log records its traces write and one data point per ten spans.

    Generate each signal with ``trace_records=spans`` so ids and times line up.
    """
    return {
        "traces": spans,
        "metrics": max(1, spans // SPANS_PER_DATA_POINT) if spans else 0,
        "logs": logs_for_spans(spans, Cycle(seed)),
    }


def write_stream(
    path: str | Path,
    signal: str,
    *,
    records: int,
    seed: int = 1,
    per_request: int = 512,
    trace_records: int | None = None,
) -> tuple[int, int]:
    """Write requests length-delimited: a 4-byte big-endian length, then the bytes,
    as the Collector file exporter does with ``format: proto``.

    Streams request by request, so memory stays flat however many records.
    Returns (requests written, bytes written).
    """
    count = size = 0
    with open(path, "wb") as out:
        for request in iter_requests(
            signal, records=records, seed=seed, per_request=per_request, trace_records=trace_records
        ):
            out.write(_LENGTH.pack(len(request)))
            out.write(request)
            count += 1
            size += _LENGTH.size + len(request)
    return count, size


def read_stream(path: str | Path) -> Iterator[bytes]:
    """The requests of a length-delimited file, for tests and tools (no size limits)."""
    with open(path, "rb") as f:
        while header := f.read(_LENGTH.size):
            if len(header) < _LENGTH.size:
                raise ValueError(f"{path}: truncated length prefix")
            (n,) = _LENGTH.unpack(header)
            body = f.read(n)
            if len(body) < n:
                raise ValueError(f"{path}: truncated request")
            yield body
