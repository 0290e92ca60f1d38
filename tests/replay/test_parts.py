"""Unit tests of the small parts: filters, marker, pacing, endpoints, sealed mode."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bundlekit.errors import EgressRefused, UsageError
from bundlekit.otlp.signals import Signal
from bundlekit.replay.egress import check_egress, is_loopback, sealed_from_env
from bundlekit.replay.endpoint import parse_endpoint
from bundlekit.replay.filters import Filters
from bundlekit.replay.interface import Protocol, TransportOptions
from bundlekit.replay.marker import BUNDLE_ID_KEY, REPLAY_ID_KEY, apply_marker
from bundlekit.replay.pacing import Pacer

T = 1_793_491_200_000_000_000


def spans_request(
    services: dict[str | None, list[int]], payload: int = 10
) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    for service, starts in services.items():
        rs = request.resource_spans.add()
        if service is not None:
            kv = rs.resource.attributes.add(key="service.name")
            kv.value.string_value = service
        ss = rs.scope_spans.add()
        ss.scope.name = "lib"
        for i, start in enumerate(starts):
            ss.spans.add(
                name=f"{service}-{i}",
                start_time_unix_nano=start,
                end_time_unix_nano=start + 5,
                trace_id=b"x" * payload,
            )
    return request


@dataclass
class Entry:
    name: str = "seg"
    requests: int | None = 1
    records: int | None = 1
    earliest_ns: int | None = None
    latest_ns: int | None = None
    services: tuple[str, ...] = ()


# -- filters --------------------------------------------------------------------------------


def test_service_filter_keeps_only_matching_resources() -> None:
    request = spans_request({"auth": [T], "payments": [T + 1, T + 2], None: [T + 3]})
    Filters(services=frozenset({"payments"})).apply(Signal.TRACES, request)
    assert [s.name for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans] == [
        "payments-0",
        "payments-1",
    ]


def test_time_window_is_half_open_on_original_time() -> None:
    request = spans_request({"a": [T, T + 10, T + 20, T + 30], "b": [T + 40]})
    Filters(since_ns=T + 10, until_ns=T + 30).apply(Signal.TRACES, request)
    kept = [
        s.start_time_unix_nano - T
        for rs in request.resource_spans
        for ss in rs.scope_spans
        for s in ss.spans
    ]
    assert kept == [10, 20]
    assert len(request.resource_spans) == 1  # emptied resource "b" removed


def test_time_filter_on_logs_uses_observed_time_when_time_is_unset() -> None:
    request = ExportLogsServiceRequest()
    scope = request.resource_logs.add().scope_logs.add()
    scope.log_records.add(time_unix_nano=T, body={"string_value": "early"})
    scope.log_records.add(observed_time_unix_nano=T + 50, body={"string_value": "observed"})
    Filters(since_ns=T + 1).apply(Signal.LOGS, request)
    assert [r.body.string_value for r in scope.log_records] == ["observed"]


def test_time_filter_on_metrics_drops_points_then_empty_metrics() -> None:
    request = ExportMetricsServiceRequest()
    scope = request.resource_metrics.add().scope_metrics.add()
    gauge = scope.metrics.add(name="g").gauge
    gauge.data_points.add(time_unix_nano=T, as_int=1)
    gauge.data_points.add(time_unix_nano=T + 100, as_int=2)
    scope.metrics.add(name="old").sum.data_points.add(time_unix_nano=T, as_int=3)
    Filters(since_ns=T + 50).apply(Signal.METRICS, request)
    assert [m.name for m in scope.metrics] == ["g"]
    assert [p.as_int for p in scope.metrics[0].gauge.data_points] == [2]


def test_segments_are_skipped_from_the_manifest_alone() -> None:
    f = Filters(services=frozenset({"auth"}), since_ns=T + 100, until_ns=T + 200)
    assert f.wants_segment(Entry(services=("auth", "x"), earliest_ns=T, latest_ns=T + 150))
    assert not f.wants_segment(Entry(services=("payments",), earliest_ns=T, latest_ns=T + 150))
    assert not f.wants_segment(Entry(services=("auth",), earliest_ns=T, latest_ns=T + 99))
    assert not f.wants_segment(Entry(services=("auth",), earliest_ns=T + 200, latest_ns=T + 300))
    assert f.wants_segment(Entry())  # unknown facts: must look inside


def test_signal_selection_and_fingerprint() -> None:
    f = Filters(signals=frozenset({Signal.LOGS, Signal.TRACES}))
    assert f.selected_signals == (Signal.TRACES, Signal.LOGS)
    assert not f.per_record
    assert Filters().fingerprint()["signals"] == ["logs", "metrics", "traces"]


# -- marker ---------------------------------------------------------------------------------


def test_marker_is_added_to_every_resource_and_replaces_old_values() -> None:
    request = spans_request({"a": [T], "b": [T]})
    old = request.resource_spans[1].resource.attributes.add(key=BUNDLE_ID_KEY)
    old.value.string_value = "an-older-bundle"
    apply_marker(Signal.TRACES, request, "bundle-1", "replay-9")
    for rs in request.resource_spans:
        attrs = [(kv.key, kv.value.string_value) for kv in rs.resource.attributes]
        assert attrs.count((BUNDLE_ID_KEY, "bundle-1")) == 1
        assert attrs.count((REPLAY_ID_KEY, "replay-9")) == 1
        assert [k for k, _ in attrs].count(BUNDLE_ID_KEY) == 1
        assert attrs[0] == ("service.name", rs.scope_spans[0].spans[0].name.split("-")[0])


# -- pacing ---------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> bool:
        self.slept.append(round(seconds, 9))
        self.now += seconds
        return True


def test_speed_replays_at_n_times_the_original_pace() -> None:
    clock = Clock()
    pacer = Pacer(speed=10.0, clock=clock, sleep=clock.sleep)
    for offset_s in (0, 1, 1, 5):
        assert pacer.wait(T + int(offset_s * 1e9), 1)
    assert clock.slept == [0.1, 0.4]  # 1 s -> 0.1 s, then 5 s -> 0.5 s after the start
    assert clock.now == pytest.approx(0.5)


def test_speed_does_not_drift_when_sending_takes_time() -> None:
    clock = Clock()
    pacer = Pacer(speed=1.0, clock=clock, sleep=clock.sleep)
    pacer.wait(T, 1)
    clock.now += 0.3  # sending took 0.3 s
    pacer.wait(T + 10**9, 1)
    assert clock.slept == [pytest.approx(0.7)]


def test_rate_caps_records_per_second() -> None:
    clock = Clock()
    pacer = Pacer(rate=100.0, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        pacer.wait(None, 50)
    assert clock.now == pytest.approx(2.0)  # 4 waits of 0.5 s after the first send


def test_no_pacing_never_sleeps() -> None:
    clock = Clock()
    pacer = Pacer(clock=clock, sleep=clock.sleep)
    assert not pacer.active
    for i in range(3):
        pacer.wait(T + i * 10**12, 10**6)
    assert clock.slept == []


# -- endpoints ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "protocol", "insecure", "expected"),
    [
        (None, Protocol.GRPC, False, ("127.0.0.1", 4317, False, "")),
        (None, Protocol.HTTP, False, ("127.0.0.1", 4318, False, "")),
        ("http://collector:9000", Protocol.GRPC, False, ("collector", 9000, False, "")),
        ("collector:9000", Protocol.GRPC, False, ("collector", 9000, True, "")),
        ("collector", Protocol.GRPC, True, ("collector", 4317, False, "")),
        (
            "https://otlp.example:443/base/",
            Protocol.HTTP,
            False,
            ("otlp.example", 443, True, "/base"),
        ),
        ("http://[::1]:4318", Protocol.HTTP, False, ("::1", 4318, False, "")),
    ],
)
def test_endpoint_parsing(
    endpoint: str | None, protocol: Protocol, insecure: bool, expected: tuple[str, int, bool, str]
) -> None:
    parsed = parse_endpoint(
        TransportOptions(endpoint=endpoint, protocol=protocol, insecure=insecure)
    )
    assert (parsed.host, parsed.port, parsed.tls, parsed.base_path) == expected


def test_http_url_appends_signal_paths() -> None:
    parsed = parse_endpoint(TransportOptions("https://h:1/otlp", Protocol.HTTP))
    assert parsed.url("/v1/logs") == "https://h:1/otlp/v1/logs"


@pytest.mark.parametrize(
    "options",
    [
        TransportOptions("ftp://host:1"),
        TransportOptions("https://host:1", insecure=True),
        TransportOptions("http://host:1", ca_file=Path("ca.pem")),
        TransportOptions("host:1", cert_file=Path("c.pem")),
        TransportOptions("http://host:1/path", Protocol.GRPC),
        TransportOptions("http://user:pw@host:1", Protocol.HTTP),
        TransportOptions("http://:1"),
        TransportOptions("http://host:99999"),
    ],
)
def test_bad_endpoints_are_usage_errors(options: TransportOptions) -> None:
    with pytest.raises(UsageError):
        parse_endpoint(options)


# -- sealed mode ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("localhost", True),
        ("LOCALHOST.", True),
        ("::1", True),
        ("[::1]", True),
        ("::ffff:127.0.0.1", True),
        ("10.0.0.1", False),
        ("192.168.1.1", False),
        ("collector.internal", False),
        ("localhost.evil.com", False),
        ("0.0.0.0", False),
        ("::", False),
    ],
)
def test_loopback_detection(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_sealed_mode_refuses_unless_allowed() -> None:
    check_egress("127.0.0.1", "--sealed", ())
    with pytest.raises(
        EgressRefused, match=r"sealed mode \(--sealed\) refuses .*10\.1\.2\.3"
    ) as err:
        check_egress("10.1.2.3", "--sealed", ("other",))
    assert "--allow-egress 10.1.2.3" in (err.value.hint or "")
    check_egress("Collector.Example", "--sealed", ("collector.example",))


def test_sealed_from_environment() -> None:
    assert sealed_from_env({"BUNDLEKIT_SEALED": "1"})
    assert sealed_from_env({"BUNDLEKIT_SEALED": "true"})
    assert not sealed_from_env({"BUNDLEKIT_SEALED": "0"})
    assert not sealed_from_env({})
