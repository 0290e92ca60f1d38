"""--rebase: every timestamp kind moves by exactly one delta; zero (unset) stays zero."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bundlekit.format.timefmt import parse_ns
from bundlekit.otlp.signals import Signal
from bundlekit.replay.interface import RebaseError
from bundlekit.replay.rebase import (
    RebaseKind,
    Rebaser,
    parse_rebase,
    parse_signed_duration,
    resolve_delta,
)

T = 1_793_491_200_000_000_000  # 2026-11-01T00:00:00Z
D = 86_400_000_000_123  # a day and a bit, not a round number


def traces() -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    for r in range(2):
        scope = request.resource_spans.add().scope_spans.add()
        for i in range(3):
            span = scope.spans.add(
                name=f"s{r}{i}", start_time_unix_nano=T + i, end_time_unix_nano=T + 100 + i
            )
            span.events.add(name="e1", time_unix_nano=T + 50 + i)
            span.events.add(name="e2", time_unix_nano=T + 60 + i)
            span.links.add(trace_id=b"t" * 16, span_id=b"s" * 8)
    scope.spans.add(name="open", start_time_unix_nano=T)  # no end: stays 0
    return request


def logs() -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    scope = request.resource_logs.add().scope_logs.add()
    scope.log_records.add(time_unix_nano=T + 1, observed_time_unix_nano=T + 2)
    scope.log_records.add(time_unix_nano=0, observed_time_unix_nano=T + 3)  # time unset
    scope.log_records.add(time_unix_nano=T + 4, observed_time_unix_nano=0)  # observed unset
    return request


def metrics() -> ExportMetricsServiceRequest:
    request = ExportMetricsServiceRequest()
    scope = request.resource_metrics.add().scope_metrics.add()
    gauge = scope.metrics.add(name="g").gauge.data_points.add(time_unix_nano=T + 1, as_double=1)
    gauge.exemplars.add(time_unix_nano=T + 2, as_double=1)
    total = scope.metrics.add(name="c").sum
    total.data_points.add(start_time_unix_nano=T, time_unix_nano=T + 10, as_int=5)
    total.data_points[0].exemplars.add(time_unix_nano=T + 5, as_int=1)
    hist = scope.metrics.add(name="h").histogram.data_points.add(
        start_time_unix_nano=T, time_unix_nano=T + 20, count=1
    )
    hist.exemplars.add(time_unix_nano=T + 15, as_double=0.2)
    hist.exemplars.add(time_unix_nano=0, as_double=0.3)  # unset stays unset
    exp = scope.metrics.add(name="e").exponential_histogram.data_points.add(
        start_time_unix_nano=T, time_unix_nano=T + 30, count=1
    )
    exp.exemplars.add(time_unix_nano=T + 25, as_double=0.5)
    scope.metrics.add(name="s").summary.data_points.add(
        start_time_unix_nano=T + 3, time_unix_nano=T + 40
    )
    return request


def timestamps(message: object) -> list[int]:
    """Every timestamp field of a message tree, in a fixed order (independent walker)."""
    out: list[int] = []

    def walk(m: object) -> None:
        for field, value in m.ListFields():  # type: ignore[attr-defined]
            if field.name.endswith("time_unix_nano"):
                out.append(value)
            elif field.message_type is not None:
                if field.is_repeated:
                    for item in value:
                        walk(item)
                else:
                    walk(value)

    walk(message)
    return out


@pytest.mark.parametrize(
    ("signal", "build", "kinds"),
    [
        (Signal.TRACES, traces, 2 * 3 * 4 + 1),  # start, end, 2 events per span; open span: start
        (Signal.LOGS, logs, 4),
        (Signal.METRICS, metrics, 2 + 3 + 3 + 3 + 2),  # zero exemplar time absent
    ],
)
def test_every_timestamp_moves_by_exactly_delta(signal: Signal, build: object, kinds: int) -> None:
    original = build()  # type: ignore[operator]
    before = timestamps(original)
    assert len(before) == kinds  # the fixture really holds every kind
    moved = build()  # type: ignore[operator]
    Rebaser(D).apply(signal, moved)
    after = timestamps(moved)
    # Same set of present fields (unset ones were not invented), each moved by D.
    assert after == [t + D for t in before]
    # Everything else is byte-identical: shifting back restores the original.
    Rebaser(-D).apply(signal, moved)
    assert moved.SerializeToString() == original.SerializeToString()


def test_order_and_durations_are_kept() -> None:
    request = traces()
    spans = [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
    durations = [
        s.end_time_unix_nano - s.start_time_unix_nano for s in spans if s.end_time_unix_nano
    ]
    Rebaser(-12_345).apply(Signal.TRACES, request)
    moved = [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert [
        s.end_time_unix_nano - s.start_time_unix_nano for s in moved if s.end_time_unix_nano
    ] == durations
    assert [s.name for s in moved] == [s.name for s in spans]  # same order as stored
    assert [s.start_time_unix_nano + 12_345 for s in moved] == [
        s.start_time_unix_nano for s in traces().resource_spans[0].scope_spans[0].spans
    ] + [s.start_time_unix_nano for s in traces().resource_spans[1].scope_spans[0].spans]


def test_out_of_range_shift_is_refused() -> None:
    with pytest.raises(RebaseError, match="outside"):
        Rebaser(-T - 1).apply(Signal.TRACES, traces())
    with pytest.raises(RebaseError):
        Rebaser(2**64).apply(Signal.LOGS, logs())


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("+1h", 3600 * 10**9),
        ("-90s", -90 * 10**9),
        ("+1d12h", 36 * 3600 * 10**9),
        ("-1.5h", -5400 * 10**9),
        ("+250ms", 250 * 10**6),
        ("+3us", 3000),
        ("-7ns", -7),
        ("+1h30m15s", (3600 + 1800 + 15) * 10**9),
    ],
)
def test_durations(text: str, ns: int) -> None:
    assert parse_signed_duration(text) == ns
    assert parse_rebase(text).shift_ns == ns


@pytest.mark.parametrize(
    "text", ["+", "+1", "+1x", "1h", "+h", "+1h-2m", "yesterday", "+ 1h", "2026-13-01T00:00:00Z"]
)
def test_bad_rebase_values(text: str) -> None:
    with pytest.raises(RebaseError):
        spec = parse_rebase(text)
        if spec.kind is RebaseKind.NONE:  # pragma: no cover - would be a bug
            raise AssertionError(text)


def test_resolve_delta() -> None:
    assert resolve_delta(parse_rebase("none"), T, 0) == 0
    assert resolve_delta(parse_rebase("now"), T, T + 500) == 500
    at = "2026-11-02T00:00:00.5Z"
    assert resolve_delta(parse_rebase(at), T, 0) == parse_ns(at) - T
    assert resolve_delta(parse_rebase("-2h"), None, 0) == -7200 * 10**9
    with pytest.raises(RebaseError, match="no timestamps"):
        resolve_delta(parse_rebase("now"), None, T)


def test_canonical_text_is_stable() -> None:
    assert parse_rebase("+60m").canonical() == parse_rebase("+1h").canonical()
    assert parse_rebase("2026-11-01T01:00:00+01:00").canonical() == "2026-11-01T00:00:00Z"
    assert parse_rebase("NOW").canonical() == "now"


@settings(max_examples=60, deadline=None)
@given(
    delta=st.integers(min_value=-T + 1, max_value=10**18),
    times=st.lists(st.integers(min_value=0, max_value=2 * T), min_size=1, max_size=20),
)
def test_shift_and_back_is_identity(delta: int, times: list[int]) -> None:
    request = ExportLogsServiceRequest()
    scope = request.resource_logs.add().scope_logs.add()
    for t in times:
        scope.log_records.add(time_unix_nano=t, observed_time_unix_nano=t // 2)
    original = request.SerializeToString()
    try:
        Rebaser(delta).apply(Signal.LOGS, request)
    except RebaseError:
        assert any(t and not 0 < t + delta < 2**64 for t in times + [t // 2 for t in times])
        return
    assert [r.time_unix_nano for r in scope.log_records] == [t + delta if t else 0 for t in times]
    Rebaser(-delta).apply(Signal.LOGS, request)
    assert request.SerializeToString() == original
