"""The one record counter (otlp.stats) agrees with a full decode, on any input."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bundlekit.otlp.signals import Signal
from bundlekit.otlp.stats import RecordCounter, StatsCollector, count_decoded
from tests import otlpgen
from tests.oracle import oracle_stats

# Timestamps: often unset (0), sometimes extreme, so "unset" handling is exercised.
stamps = st.one_of(st.just(0), st.integers(min_value=1, max_value=2**64 - 1))
services = st.one_of(st.none(), st.sampled_from(["a", "b", "checkout", ""]))


@st.composite
def trace_requests(draw: st.DrawFn) -> bytes:
    request = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(0, 3))):
        rs = request.resource_spans.add()
        name = draw(services)
        if name is not None:
            kv = rs.resource.attributes.add(key="service.name")
            kv.value.string_value = name
        if draw(st.booleans()):
            rs.resource.attributes.add(key="service.name").value.int_value = 7  # not a string
        for _ in range(draw(st.integers(0, 3))):
            ss = rs.scope_spans.add()
            for _ in range(draw(st.integers(0, 5))):
                span = ss.spans.add(
                    start_time_unix_nano=draw(stamps), end_time_unix_nano=draw(stamps)
                )
                if draw(st.booleans()):
                    span.name = "n"
                    span.events.add(time_unix_nano=draw(stamps))  # event times are not record times
    return request.SerializeToString()


@st.composite
def log_requests(draw: st.DrawFn) -> bytes:
    request = ExportLogsServiceRequest()
    for _ in range(draw(st.integers(0, 3))):
        rl = request.resource_logs.add()
        name = draw(services)
        if name is not None:
            rl.resource.attributes.add(key="service.name").value.string_value = name
        for _ in range(draw(st.integers(0, 3))):
            sl = rl.scope_logs.add()
            for _ in range(draw(st.integers(0, 5))):
                sl.log_records.add(
                    time_unix_nano=draw(stamps), observed_time_unix_nano=draw(stamps)
                )
    return request.SerializeToString()


@st.composite
def metric_requests(draw: st.DrawFn) -> bytes:
    request = ExportMetricsServiceRequest()
    for _ in range(draw(st.integers(0, 2))):
        rm = request.resource_metrics.add()
        name = draw(services)
        if name is not None:
            rm.resource.attributes.add(key="service.name").value.string_value = name
        for _ in range(draw(st.integers(0, 2))):
            sm = rm.scope_metrics.add()
            for _ in range(draw(st.integers(0, 4))):
                metric = sm.metrics.add(name="m")
                kind = draw(
                    st.sampled_from(
                        ["gauge", "sum", "histogram", "exponential_histogram", "summary", None]
                    )
                )
                if kind is None:
                    continue
                holder = getattr(metric, kind)
                holder.SetInParent()
                for _ in range(draw(st.integers(0, 4))):
                    point = holder.data_points.add(
                        start_time_unix_nano=draw(stamps), time_unix_nano=draw(stamps)
                    )
                    if kind == "gauge" and draw(st.booleans()):
                        point.exemplars.add(time_unix_nano=draw(stamps))  # not a record time
    return request.SerializeToString()


def _check(signal: Signal, requests: list[bytes]) -> None:
    collector = StatsCollector(signal)
    counter = RecordCounter(signal)
    for data in requests:
        records = collector.add(data)
        # Count-only, earliest time and the decoded count agree with the full statistics.
        one = oracle_stats(signal, [data])
        assert records == counter.count(data) == one.records
        assert count_decoded(signal, signal.spec.request_class.FromString(data)) == one.records
        assert counter.earliest_ns(data) == one.earliest_ns
    assert collector.stats == oracle_stats(signal, requests)


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(st.lists(trace_requests(), min_size=1, max_size=4))
def test_trace_stats_match_full_decode(requests: list[bytes]) -> None:
    _check(Signal.TRACES, requests)


@SETTINGS
@given(st.lists(log_requests(), min_size=1, max_size=4))
def test_log_stats_match_full_decode(requests: list[bytes]) -> None:
    _check(Signal.LOGS, requests)


@SETTINGS
@given(st.lists(metric_requests(), min_size=1, max_size=4))
def test_metric_stats_match_full_decode(requests: list[bytes]) -> None:
    _check(Signal.METRICS, requests)


def test_known_values() -> None:
    collector = StatsCollector(Signal.TRACES)
    collector.add(otlpgen.traces(10, service="checkout", start=1_000, step=100))
    stats = collector.stats
    assert (stats.requests, stats.records) == (1, 10)
    assert (stats.earliest_ns, stats.latest_ns) == (1_000, 1_000 + 900 + 500)
    assert stats.services == {"checkout"}
