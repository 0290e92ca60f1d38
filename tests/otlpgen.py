"""Small hand-built OTLP requests for unit tests that need exact control."""

from __future__ import annotations

from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

BASE_NS = 1_793_491_200_000_000_000  # 2026-11-01T00:00:00Z


def _resource(holder: Any, service: str | None) -> None:
    if service is not None:
        kv = holder.resource.attributes.add()
        kv.key = "service.name"
        kv.value.string_value = service


def traces(spans: int, service: str = "checkout", start: int = BASE_NS, step: int = 1_000) -> bytes:
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    _resource(rs, service)
    ss = rs.scope_spans.add()
    ss.scope.name = "tests"
    for i in range(spans):
        span = ss.spans.add()
        span.trace_id = (i + 1).to_bytes(16, "big")
        span.span_id = (i + 1).to_bytes(8, "big")
        span.name = f"op-{i}"
        span.start_time_unix_nano = start + i * step
        span.end_time_unix_nano = start + i * step + 500
        attr = span.attributes.add()
        attr.key = "payload"
        attr.value.string_value = "x" * 64
    return request.SerializeToString()


def logs(records: int, service: str = "payments", start: int = BASE_NS) -> bytes:
    request = ExportLogsServiceRequest()
    rl = request.resource_logs.add()
    _resource(rl, service)
    sl = rl.scope_logs.add()
    for i in range(records):
        record = sl.log_records.add()
        record.time_unix_nano = start + i
        record.observed_time_unix_nano = start + i + 10
        record.severity_number = 9
        record.body.string_value = f"message {i}"
    return request.SerializeToString()


def metrics(points: int, service: str = "inventory", start: int = BASE_NS) -> bytes:
    request = ExportMetricsServiceRequest()
    rm = request.resource_metrics.add()
    _resource(rm, service)
    sm = rm.scope_metrics.add()
    gauge = sm.metrics.add()
    gauge.name = "queue.depth"
    for i in range(points):
        point = gauge.gauge.data_points.add()
        point.time_unix_nano = start + i
        point.as_int = i
    return request.SerializeToString()


def stream(*requests: bytes) -> bytes:
    """The length-delimited form: 4-byte big-endian length before each request."""
    return b"".join(len(r).to_bytes(4, "big") + r for r in requests)
