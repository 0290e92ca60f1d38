"""The three OTLP signals and everything bundlekit needs to know about each.

One table maps a signal to its Export*ServiceRequest class, its OTLP/HTTP path
and its gRPC method, so no other module hard-codes those strings.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from typing import Any


class Signal(StrEnum):
    """An OTLP signal; the value is the directory name inside a bundle."""

    TRACES = "traces"
    METRICS = "metrics"
    LOGS = "logs"

    @property
    def spec(self) -> SignalSpec:
        return _SPECS[self]


@dataclass(frozen=True)
class SignalSpec:
    """Static facts about one signal."""

    signal: Signal
    #: ``module:Class`` of the Export*ServiceRequest message.
    request_type: str
    #: ``module:Class`` of the Export*ServiceResponse message.
    response_type: str
    #: The OTLP/HTTP path, e.g. ``/v1/traces``.
    http_path: str
    #: The full gRPC method name, e.g. ``/opentelemetry.proto...TraceService/Export``.
    grpc_method: str
    #: Field names leading from the request to its records.
    resource_field: str
    scope_field: str
    record_field: str
    #: What one record is called in reports ("spans", "data points", "log records").
    record_noun: str

    @cached_property
    def request_class(self) -> Any:
        return _load(self.request_type)

    @cached_property
    def response_class(self) -> Any:
        return _load(self.response_type)


def _load(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


_COLLECTOR = "opentelemetry.proto.collector"
_SPECS: dict[Signal, SignalSpec] = {
    Signal.TRACES: SignalSpec(
        Signal.TRACES,
        f"{_COLLECTOR}.trace.v1.trace_service_pb2:ExportTraceServiceRequest",
        f"{_COLLECTOR}.trace.v1.trace_service_pb2:ExportTraceServiceResponse",
        "/v1/traces",
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        "resource_spans",
        "scope_spans",
        "spans",
        "spans",
    ),
    Signal.METRICS: SignalSpec(
        Signal.METRICS,
        f"{_COLLECTOR}.metrics.v1.metrics_service_pb2:ExportMetricsServiceRequest",
        f"{_COLLECTOR}.metrics.v1.metrics_service_pb2:ExportMetricsServiceResponse",
        "/v1/metrics",
        "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
        "resource_metrics",
        "scope_metrics",
        "metrics",
        "data points",
    ),
    Signal.LOGS: SignalSpec(
        Signal.LOGS,
        f"{_COLLECTOR}.logs.v1.logs_service_pb2:ExportLogsServiceRequest",
        f"{_COLLECTOR}.logs.v1.logs_service_pb2:ExportLogsServiceResponse",
        "/v1/logs",
        "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
        "resource_logs",
        "scope_logs",
        "log_records",
        "log records",
    ),
}

#: Signals in the order bundlekit always lists, packs and replays them.
SIGNALS: tuple[Signal, ...] = (Signal.TRACES, Signal.METRICS, Signal.LOGS)
