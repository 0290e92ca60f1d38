"""The one request splitter (otlp.split), used by pack and replay."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bundlekit.errors import InputError, LimitExceeded
from bundlekit.limits import Limits
from bundlekit.otlp.signals import Signal
from bundlekit.otlp.split import split_input, split_request
from bundlekit.pack import PackOptions, pack_bundle
from tests.replay.otlpdata import flatten

T = 1_793_491_200_000_000_000


def spans_request(
    services: dict[str | None, list[int]], payload: int = 10, scopes: int = 1
) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    for service, starts in services.items():
        rs = request.resource_spans.add(schema_url="https://example.com/r")
        if service is not None:
            kv = rs.resource.attributes.add(key="service.name")
            kv.value.string_value = service
        for s in range(scopes):
            ss = rs.scope_spans.add(schema_url=f"https://example.com/s{s}")
            ss.scope.name = f"lib-{s}"
            for i, start in enumerate(starts):
                ss.spans.add(
                    name=f"{service}-{s}-{i}",
                    start_time_unix_nano=start,
                    end_time_unix_nano=start + 5,
                    trace_id=b"x" * payload,
                )
    return request


def ordered(signal: Signal, parts: list[bytes]) -> list[tuple[bytes, bytes, str, bytes]]:
    """Every record with its resource, scope (and schema URLs), in the order sent."""
    spec = signal.spec
    out = []
    for data in parts:
        request = spec.request_class.FromString(data)
        for entry in getattr(request, spec.resource_field):
            resource = entry.resource.SerializeToString() + entry.schema_url.encode()
            for scope in getattr(entry, spec.scope_field):
                head = scope.scope.SerializeToString() + scope.schema_url.encode()
                for record in getattr(scope, spec.record_field):
                    out.append((resource, head, type(record).__name__, record.SerializeToString()))
    return out


def test_oversized_request_is_split_into_valid_requests_under_the_limit() -> None:
    request = spans_request(
        {"a": [T + i for i in range(300)], "b": [T + i for i in range(50)]}, payload=200
    )
    whole = request.SerializeToString()
    parts = split_request(Signal.TRACES, request, 8 * 1024)
    assert len(parts) > 1
    assert all(len(p) <= 8 * 1024 for p in parts)
    assert flatten(Signal.TRACES, parts) == flatten(Signal.TRACES, [whole])
    assert split_request(Signal.TRACES, request, len(whole)) == [whole]


@pytest.mark.parametrize("bound", [700, 1_000, 4_096, 20_000, 60_000])
def test_pieces_keep_record_order_resource_scope_and_fill_greedily(bound: int) -> None:
    request = spans_request(
        {"a": [T + i for i in range(40)], "b": [T + i for i in range(7)], None: [T, T + 1]},
        payload=100,
        scopes=3,
    )
    whole = request.SerializeToString()
    parts = split_request(Signal.TRACES, request, bound)
    assert ordered(Signal.TRACES, parts) == ordered(Signal.TRACES, [whole])
    assert all(0 < len(p) <= bound for p in parts)
    # Greedy: no two consecutive pieces would have fitted in one request.
    for first, second in itertools.pairwise(parts):
        assert len(first) + len(second) > bound - 64


def test_metrics_and_logs_split_too() -> None:
    metrics = ExportMetricsServiceRequest()
    scope = metrics.resource_metrics.add().scope_metrics.add()
    for i in range(60):
        metric = scope.metrics.add(name=f"m{i}", description="d" * 100)
        metric.gauge.data_points.add(time_unix_nano=T + i, as_int=i)
    logs = ExportLogsServiceRequest()
    records = logs.resource_logs.add().scope_logs.add()
    for i in range(60):
        records.log_records.add(time_unix_nano=T + i).body.string_value = "x" * 100
    for signal, request in ((Signal.METRICS, metrics), (Signal.LOGS, logs)):
        parts = split_request(signal, request, 1_000)
        assert len(parts) > 3 and all(len(p) <= 1_000 for p in parts)
        assert ordered(signal, parts) == ordered(signal, [request.SerializeToString()])


def test_a_record_alone_over_the_bound_is_refused_naming_its_size_and_the_bound() -> None:
    request = spans_request({"a": [T, T + 1]}, payload=5_000)
    record = request.resource_spans[0].scope_spans[0].spans[0].ByteSize()
    with pytest.raises(LimitExceeded) as caught:
        split_request(Signal.TRACES, request, 4_000, where="seg 3")
    message = caught.value.message
    assert message.startswith("seg 3: ")
    assert f"record is {record} bytes" in message and "at most 4000 bytes" in message


def test_split_input_passes_small_requests_untouched_and_refuses_as_input_error() -> None:
    data = spans_request({"a": [T]}).SerializeToString()
    assert split_input(Signal.TRACES, data, len(data), "f") == [data]
    with pytest.raises(InputError, match="f: not a valid traces request"):
        split_input(Signal.TRACES, b"\x0a\xff\xff", 2, "f")
    big = spans_request({"a": [T]}, payload=2_000).SerializeToString()
    with pytest.raises(InputError, match=r"record is \d+ bytes"):
        split_input(Signal.TRACES, big, 1_000, "f")


def test_pack_refuses_a_record_over_the_request_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.binpb"
    path.write_bytes(spans_request({"a": [T]}, payload=2_000).SerializeToString())
    with pytest.raises(InputError, match=f"{path}: one traces record is"):
        pack_bundle([path], tmp_path / "b", PackOptions(limits=Limits(max_request_bytes=1_000)))
    assert not (tmp_path / "b").exists()
