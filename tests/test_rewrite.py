"""The wire-level rewrite (otlp.rewrite) equals a full decode -> rebase -> marker -> encode.

Equal means: decoding both results with the real OTLP schema gives equal
messages (field order on the wire may differ), the record count is the full
decode's, and a shift out of range raises the same RebaseError.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from bundlekit.otlp.rewrite import METRIC_KINDS, Rewriter
from bundlekit.otlp.signals import Signal
from bundlekit.otlp.stats import count_decoded
from bundlekit.replay.engine import full_rebase, resource_marker
from bundlekit.replay.interface import RebaseError
from bundlekit.replay.marker import BUNDLE_ID_KEY, apply_marker
from bundlekit.replay.rebase import Rebaser
from tests.test_stats import log_requests, metric_requests, trace_requests

BUNDLE, REPLAY = "bundle-1", "replay-2"
T = 1_793_491_200_000_000_000
deltas = st.one_of(
    st.just(0),
    st.integers(min_value=1, max_value=2**63),
    st.integers(min_value=-(2**63), max_value=-1),
    st.sampled_from([1, -1, 3600 * 10**9, -T]),
)


def reference(signal: Signal, data: bytes, delta: int, marker: bool) -> Any:
    """The full path: decode, rebase, mark, (encode and) decode again."""
    request = signal.spec.request_class.FromString(data)
    Rebaser(delta).apply(signal, request)
    if marker:
        apply_marker(signal, request, BUNDLE, REPLAY)
    return signal.spec.request_class.FromString(request.SerializeToString())


def check(signal: Signal, data: bytes, delta: int, marker: bool) -> None:
    rebaser = Rebaser(delta)
    mark = resource_marker(signal, BUNDLE, REPLAY) if marker else None
    rewriter = Rewriter(signal, delta, mark, full_rebase(signal, rebaser))
    try:
        expected = reference(signal, data, delta, marker)
    except RebaseError as exc:
        with pytest.raises(RebaseError) as caught:
            rewriter.rewrite(data)
        assert caught.value.message == exc.message
        return
    out, records = rewriter.rewrite(data)
    assert signal.spec.request_class.FromString(out) == expected
    assert records == count_decoded(signal, expected)


SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(trace_requests(), deltas, st.booleans())
def test_traces_rewrite_equals_the_full_path(data: bytes, delta: int, marker: bool) -> None:
    check(Signal.TRACES, data, delta, marker)


@SETTINGS
@given(log_requests(), deltas, st.booleans())
def test_logs_rewrite_equals_the_full_path(data: bytes, delta: int, marker: bool) -> None:
    check(Signal.LOGS, data, delta, marker)


@SETTINGS
@given(metric_requests(), deltas, st.booleans())
def test_metrics_rewrite_equals_the_full_path(data: bytes, delta: int, marker: bool) -> None:
    check(Signal.METRICS, data, delta, marker)


def rich_traces() -> bytes:
    """Everything a span can hold, existing marker keys, and odd but valid wire forms."""
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add(schema_url="https://opentelemetry.io/schemas/1.21.0")
    rs.resource.attributes.add(key="service.name").value.string_value = "checkout"
    rs.resource.attributes.add(key=BUNDLE_ID_KEY).value.string_value = "old"
    rs.resource.dropped_attributes_count = 2
    ss = rs.scope_spans.add(schema_url="s")
    ss.scope.name, ss.scope.version = "lib", "1.0"
    for i in range(5):
        span = ss.spans.add(
            trace_id=bytes(range(16)),
            span_id=bytes(8),
            parent_span_id=b"p" * 8,
            trace_state="a=b",
            name=f"op-{i}",
            kind=Span.SPAN_KIND_SERVER,
            start_time_unix_nano=T + i if i != 2 else 0,
            end_time_unix_nano=T + 10 + i,
            dropped_attributes_count=1,
            flags=0x301,
        )
        span.attributes.add(key="k").value.int_value = i
        span.events.add(time_unix_nano=T + 5, name="e").attributes.add(key="x")
        span.events.add(time_unix_nano=0, name="unset")
        span.links.add(trace_id=b"t" * 16, span_id=b"s" * 8).attributes.add(key="l")
        span.status.code = span.status.STATUS_CODE_ERROR
    request.resource_spans.add()  # a resource entry with no resource at all
    data = request.SerializeToString()
    # A second occurrence of ResourceSpans.resource merges into the first (repeated
    # attributes append), and an unknown field (99) must survive; both are valid protobuf.
    extra = Resource()
    extra.attributes.add(key="second").value.bool_value = True
    tail = b"\x0a" + _varint(len(extra.SerializeToString())) + extra.SerializeToString()
    tail += b"\x98\x06\x07"  # field 99, varint 7
    first = ExportTraceServiceRequest.FromString(data).resource_spans[0].SerializeToString()
    patched = first + tail
    rest = b"".join(
        b"\x0a" + _varint(len(e.SerializeToString())) + e.SerializeToString()
        for e in ExportTraceServiceRequest.FromString(data).resource_spans[1:]
    )
    return b"\x0a" + _varint(len(patched)) + patched + rest


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


@pytest.mark.parametrize("delta", [0, 3600 * 10**9, -(10**9)])
@pytest.mark.parametrize("marker", [True, False])
def test_everything_else_is_kept_exactly(delta: int, marker: bool) -> None:
    data = rich_traces()
    decoded = ExportTraceServiceRequest.FromString(data)
    assert [kv.key for kv in decoded.resource_spans[0].resource.attributes][-1] == "second"
    check(Signal.TRACES, data, delta, marker)
    out, _ = Rewriter(Signal.TRACES, delta, None, lambda _: None).rewrite(data)
    assert b"\x98\x06\x07" in out  # the unknown field went through


def test_marker_replaces_old_marker_values_once_per_distinct_resource() -> None:
    calls: list[bytes] = []
    mark = resource_marker(Signal.TRACES, BUNDLE, REPLAY)

    def counting(resource: bytes) -> bytes:
        calls.append(resource)
        return mark(resource)

    rewriter = Rewriter(Signal.TRACES, 0, counting, lambda _: None)
    data = rich_traces()
    for _ in range(3):
        out, records = rewriter.rewrite(data)
    assert len(calls) == 2 and records == 5  # two distinct resources, cached after
    entry = ExportTraceServiceRequest.FromString(out).resource_spans[0]
    attrs = [(kv.key, kv.value.string_value) for kv in entry.resource.attributes]
    assert (BUNDLE_ID_KEY, BUNDLE) in attrs and (BUNDLE_ID_KEY, "old") not in attrs


def test_a_metric_with_two_kinds_on_the_wire_resolves_like_a_full_decode() -> None:
    # oneof data: the last kind on the wire wins.
    gauge, total = Metric(name="m"), Metric()
    gauge.gauge.data_points.add(time_unix_nano=T)
    total.sum.data_points.add(time_unix_nano=T + 1)
    total.sum.data_points.add(time_unix_nano=T + 2)
    metric = gauge.SerializeToString() + total.SerializeToString()
    scope = b"\x12" + _varint(len(metric)) + metric
    resource = b"\x12" + _varint(len(scope)) + scope
    data = b"\x0a" + _varint(len(resource)) + resource
    decoded = ExportMetricsServiceRequest.FromString(data)
    assert decoded.resource_metrics[0].scope_metrics[0].metrics[0].WhichOneof("data") == "sum"
    for delta in (0, 5):
        check(Signal.METRICS, data, delta, True)


def test_metric_kind_field_numbers_match_otlp() -> None:
    fields = Metric.DESCRIPTOR.fields_by_name
    for kind, number, exemplars in METRIC_KINDS:
        assert fields[kind].number == number
        point = fields[kind].message_type.fields_by_name["data_points"].message_type
        assert point.fields_by_name["start_time_unix_nano"].number == 2
        assert point.fields_by_name["time_unix_nano"].number == 3
        if exemplars:
            exemplar = point.fields_by_name["exemplars"]
            assert exemplar.number == exemplars
            assert exemplar.message_type.fields_by_name["time_unix_nano"].number == 2
        else:
            assert "exemplars" not in point.fields_by_name


def test_a_shift_out_of_range_names_the_value_like_the_full_path() -> None:
    request = ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add().spans.add(
        start_time_unix_nano=2**64 - 5, end_time_unix_nano=T
    )
    data = request.SerializeToString()
    rewriter = Rewriter(Signal.TRACES, 10, None, full_rebase(Signal.TRACES, Rebaser(10)))
    with pytest.raises(RebaseError, match=str(2**64 - 5)):
        rewriter.rewrite(data)
    # A negative shift to exactly 0 would make the timestamp "unset": refused too.
    back = Rewriter(Signal.TRACES, -T, None, full_rebase(Signal.TRACES, Rebaser(-T)))
    with pytest.raises(RebaseError, match=str(T)):
        back.rewrite(data)
