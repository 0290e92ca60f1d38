"""The synthetic OTLP generator: deterministic, exact, bounded and realistic."""

from __future__ import annotations

import hashlib
import struct
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from bundlekit.synth import (
    EPOCH_NS,
    INCIDENT,
    MAX_REQUEST_BYTES,
    WINDOW_NS,
    companion_counts,
    iter_requests,
    read_stream,
    write_stream,
)
from bundlekit.synth.__main__ import main
from bundlekit.synth.batch import RECORD_BYTES_BOUND

REQUEST = {
    "traces": ExportTraceServiceRequest,
    "metrics": ExportMetricsServiceRequest,
    "logs": ExportLogsServiceRequest,
}
END_NS = EPOCH_NS + WINDOW_NS
PINNED = "8dcea7bb7e9d152f80d8bf87cff4cfb64ea9d2505a3a0438e2eb6caa43eee728"


def parse(signal: str, data: bytes) -> Any:
    message = REQUEST[signal]()
    message.ParseFromString(data)
    return message


def requests(signal: str, **kwargs: Any) -> list[Any]:
    return [parse(signal, r) for r in iter_requests(signal, **kwargs)]


def spans_of(reqs: list[Any]) -> Iterator[tuple[str, Span]]:
    for req in reqs:
        for rs in req.resource_spans:
            service = _service(rs.resource)
            for ss in rs.scope_spans:
                for span in ss.spans:
                    yield service, span


def logs_of(reqs: list[Any]) -> Iterator[Any]:
    for req in reqs:
        for rl in req.resource_logs:
            for sl in rl.scope_logs:
                yield from sl.log_records


def metrics_of(reqs: list[Any]) -> Iterator[tuple[str, Any]]:
    for req in reqs:
        for rm in req.resource_metrics:
            service = _service(rm.resource)
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    yield service, metric


def points(metric: Any) -> Any:
    return getattr(metric, metric.WhichOneof("data")).data_points


def _service(resource: Any) -> str:
    return next(kv.value.string_value for kv in resource.attributes if kv.key == "service.name")


def record_count(signal: str, reqs: list[Any]) -> int:
    if signal == "traces":
        return sum(1 for _ in spans_of(reqs))
    if signal == "logs":
        return sum(1 for _ in logs_of(reqs))
    return sum(len(points(m)) for _, m in metrics_of(reqs))


@pytest.fixture(scope="module")
def traces() -> list[Any]:
    return requests("traces", records=20_000, seed=3)


@pytest.fixture(scope="module")
def metrics() -> list[Any]:
    return requests("metrics", records=3_000, seed=3, trace_records=20_000)


@pytest.fixture(scope="module")
def logs() -> list[Any]:
    return requests(
        "logs", records=companion_counts(20_000, 3)["logs"], seed=3, trace_records=20_000
    )


# --------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("signal", ["traces", "metrics", "logs"])
def test_same_seed_gives_identical_bytes_and_other_seeds_do_not(signal: str) -> None:
    def digest(seed: int) -> str:
        h = hashlib.sha256()
        for r in iter_requests(signal, records=3_000, seed=seed):
            h.update(r)
        return h.hexdigest()

    assert digest(7) == digest(7)
    assert digest(7) != digest(8)


def test_output_is_pinned_across_machines_and_versions() -> None:
    """If this hash changes, so do the committed samples and every pinned benchmark
    data set: regenerate them (samples/make_samples.py) in the same change."""
    h = hashlib.sha256()
    for signal in ("traces", "metrics", "logs"):
        for r in iter_requests(signal, records=500, seed=1, trace_records=500):
            h.update(r)
    assert h.hexdigest() == PINNED


# --------------------------------------------------------------------------- counts & size


@pytest.mark.parametrize("signal", ["traces", "metrics", "logs"])
@pytest.mark.parametrize(("records", "per_request"), [(0, 512), (1, 512), (13, 5), (2_049, 512)])
def test_record_counts_are_exact(signal: str, records: int, per_request: int) -> None:
    reqs = requests(signal, records=records, per_request=per_request)
    assert record_count(signal, reqs) == records
    assert all(0 < record_count(signal, [r]) <= per_request for r in reqs)
    assert len(reqs) == -(-records // per_request)


@pytest.mark.parametrize("signal", ["traces", "metrics", "logs"])
def test_requests_stay_under_4_mib_whatever_per_request_says(signal: str) -> None:
    records = {"traces": 30_000, "metrics": 30_000, "logs": 30_000}[signal]
    raw = list(iter_requests(signal, records=records, per_request=10**9))
    assert len(raw) >= 2, "the data set is meant to need splitting"
    assert all(len(r) <= MAX_REQUEST_BYTES for r in raw)
    assert record_count(signal, [parse(signal, r) for r in raw]) == records


@pytest.mark.parametrize("signal", ["traces", "metrics", "logs"])
def test_requests_parse_as_their_signal_without_unknown_fields(signal: str) -> None:
    for raw in iter_requests(signal, records=2_000, per_request=300):
        message = parse(signal, raw)
        assert message.SerializeToString() == raw  # nothing lost, nothing unknown
        assert message.ByteSize() > 0


def test_no_record_exceeds_the_bound_the_batcher_relies_on(
    traces: list[Any], metrics: list[Any], logs: list[Any]
) -> None:
    sizes = [s.ByteSize() for _, s in spans_of(traces)]
    sizes += [p.ByteSize() for _, m in metrics_of(metrics) for p in points(m)]
    sizes += [r.ByteSize() for r in logs_of(logs)]
    assert max(sizes) < RECORD_BYTES_BOUND // 2


# --------------------------------------------------------------------------- time


def test_every_time_stamp_lies_in_the_window(
    traces: list[Any], metrics: list[Any], logs: list[Any]
) -> None:
    stamps: list[int] = []
    for _, span in spans_of(traces):
        stamps += [span.start_time_unix_nano, span.end_time_unix_nano]
        stamps += [e.time_unix_nano for e in span.events]
    for record in logs_of(logs):
        stamps += [record.time_unix_nano, record.observed_time_unix_nano]
    for _, metric in metrics_of(metrics):
        for p in points(metric):
            stamps += [p.time_unix_nano]
            if p.start_time_unix_nano:
                stamps.append(p.start_time_unix_nano)
            stamps += [e.time_unix_nano for e in getattr(p, "exemplars", [])]
    assert stamps and all(EPOCH_NS <= t <= END_NS for t in stamps)


def test_traffic_spreads_over_the_whole_window(traces: list[Any]) -> None:
    starts = sorted(s.start_time_unix_nano for _, s in spans_of(traces))
    assert starts[0] - EPOCH_NS < WINDOW_NS * 0.01
    assert END_NS - starts[-1] < WINDOW_NS * 0.05


# --------------------------------------------------------------------------- traces


def test_spans_form_trees_with_children_inside_their_parents(traces: list[Any]) -> None:
    by_trace: dict[bytes, dict[bytes, Span]] = {}
    for _, span in spans_of(traces):
        assert len(span.trace_id) == 16 and len(span.span_id) == 8
        assert span.end_time_unix_nano > span.start_time_unix_nano
        by_trace.setdefault(span.trace_id, {})[span.span_id] = span
    roots = 0
    for spans in by_trace.values():
        for span in spans.values():
            if not span.parent_span_id:
                roots += 1
                continue
            parent = spans.get(span.parent_span_id)
            if parent is None:  # the last trace may be cut short; never the parent
                pytest.fail("child span without its parent in the stream")
            assert parent.start_time_unix_nano <= span.start_time_unix_nano
            assert span.end_time_unix_nano <= parent.end_time_unix_nano
    assert roots == len(by_trace) > 1_000


def test_traces_carry_semantic_conventions_and_all_span_kinds(traces: list[Any]) -> None:
    kinds = Counter(span.kind for _, span in spans_of(traces))
    assert {
        Span.SPAN_KIND_SERVER,
        Span.SPAN_KIND_CLIENT,
        Span.SPAN_KIND_INTERNAL,
        Span.SPAN_KIND_PRODUCER,
        Span.SPAN_KIND_CONSUMER,
    } <= set(kinds)
    keys = {kv.key for _, span in spans_of(traces) for kv in span.attributes}
    assert {
        "http.request.method",
        "http.route",
        "http.response.status_code",
        "url.full",
        "db.system",
        "db.query.text",
        "messaging.system",
        "server.address",
    } <= keys
    services = {service for service, _ in spans_of(traces)}
    assert services == {"gateway", "auth", "checkout", "payments", "inventory"}


def test_resources_and_scopes_describe_the_emitter(traces: list[Any]) -> None:
    for req in traces:
        for rs in req.resource_spans:
            keys = {kv.key for kv in rs.resource.attributes}
            assert {
                "service.name",
                "service.version",
                "deployment.environment",
                "host.name",
            } <= keys
            assert all(ss.scope.name for ss in rs.scope_spans)


def test_errors_cluster_in_the_incident_and_carry_exceptions(traces: list[Any]) -> None:
    errors = Counter[bool]()
    total = Counter[bool]()
    exceptions = 0
    for _, span in spans_of(traces):
        if span.parent_span_id:
            continue
        frac = (span.start_time_unix_nano - EPOCH_NS) / WINDOW_NS
        during = INCIDENT[0] <= frac < INCIDENT[1]
        total[during] += 1
        errors[during] += span.status.code == Status.STATUS_CODE_ERROR
    for _, span in spans_of(traces):
        if any(e.name == "exception" for e in span.events):
            exceptions += 1
            assert span.status.code == Status.STATUS_CODE_ERROR
            assert any(kv.key == "error.type" for kv in span.attributes)
    assert errors[False] > 0
    assert errors[True] / total[True] > 5 * errors[False] / total[False]
    assert exceptions >= errors[True] + errors[False] - 1  # the last trace may be cut


def test_links_point_at_producer_spans(traces: list[Any]) -> None:
    spans = {span.span_id: span for _, span in spans_of(traces)}
    linked = [span for _, span in spans_of(traces) if span.links]
    assert len(linked) > 100
    for span in linked:
        target = spans[span.links[0].span_id]
        assert target.trace_id == span.links[0].trace_id != span.trace_id
        assert target.kind == Span.SPAN_KIND_PRODUCER
        assert target.start_time_unix_nano < span.start_time_unix_nano


# --------------------------------------------------------------------------- logs


def test_logs_point_into_the_spans_that_wrote_them(traces: list[Any], logs: list[Any]) -> None:
    spans = {(span.trace_id, span.span_id): span for _, span in spans_of(traces)}
    records = list(logs_of(logs))
    assert len(records) == companion_counts(20_000, 3)["logs"] > 1_000
    for record in records:
        span = spans[(record.trace_id, record.span_id)]
        assert span.start_time_unix_nano <= record.time_unix_nano <= span.end_time_unix_nano
        assert record.observed_time_unix_nano > record.time_unix_nano
        assert record.severity_text and record.severity_number


def test_logs_have_string_and_kvlist_bodies_and_error_severity(logs: list[Any]) -> None:
    records = list(logs_of(logs))
    bodies = Counter(r.body.WhichOneof("value") for r in records)
    assert bodies["string_value"] > 0 and bodies["kvlist_value"] > 0
    assert all("{" not in r.body.string_value for r in records)  # all formatted
    severities = {r.severity_text for r in records}
    assert {"INFO", "ERROR"} <= severities
    assert all(r.attributes for r in records)


# --------------------------------------------------------------------------- metrics


def test_metrics_cover_all_five_types(metrics: list[Any]) -> None:
    kinds = Counter(m.WhichOneof("data") for _, m in metrics_of(metrics))
    assert set(kinds) == {"gauge", "sum", "histogram", "exponential_histogram", "summary"}
    monotonic = {m.sum.is_monotonic for _, m in metrics_of(metrics) if m.HasField("sum")}
    assert monotonic == {True, False}


def test_cumulative_series_never_go_down_and_buckets_add_up(metrics: list[Any]) -> None:
    last: dict[tuple[str, str, bytes], tuple[int, float]] = {}
    for service, metric in metrics_of(metrics):
        kind = metric.WhichOneof("data")
        for p in points(metric):
            assert p.start_time_unix_nano < p.time_unix_nano
            key = (service, metric.name, b"".join(kv.SerializeToString() for kv in p.attributes))
            if kind == "histogram":
                assert sum(p.bucket_counts) == p.count
                assert len(p.bucket_counts) == len(p.explicit_bounds) + 1
            elif kind == "exponential_histogram":
                assert sum(p.positive.bucket_counts) + p.zero_count == p.count
            if kind == "gauge" or (kind == "sum" and not metric.sum.is_monotonic):
                continue
            value = p.as_int if kind == "sum" else p.count
            previous = last.get(key)
            if previous is not None:
                assert previous[0] <= value and previous[1] <= p.time_unix_nano
            last[key] = (value, p.time_unix_nano)
    assert len(last) > 40


def test_exemplars_point_at_root_spans_of_the_same_route(
    traces: list[Any], metrics: list[Any]
) -> None:
    spans = {(span.trace_id, span.span_id): span for _, span in spans_of(traces)}
    found = 0
    for _, metric in metrics_of(metrics):
        if not metric.HasField("histogram"):
            continue
        for p in metric.histogram.data_points:
            route = next(kv.value.string_value for kv in p.attributes if kv.key == "http.route")
            for e in p.exemplars:
                span = spans[(e.trace_id, e.span_id)]
                assert not span.parent_span_id
                assert route in span.name
                assert e.time_unix_nano == span.end_time_unix_nano <= p.time_unix_nano
                found += 1
    assert found > 100


# --------------------------------------------------------------------------- files


def test_write_stream_uses_big_endian_length_framing(tmp_path: Path) -> None:
    path = tmp_path / "metrics.binpb"
    count, size = write_stream(path, "metrics", records=1_000, seed=5, per_request=100)
    data = path.read_bytes()
    assert size == len(data) and count == 10
    expected = list(iter_requests("metrics", records=1_000, seed=5, per_request=100))
    offset, seen = 0, []
    while offset < len(data):
        (n,) = struct.unpack(">I", data[offset : offset + 4])
        seen.append(data[offset + 4 : offset + 4 + n])
        offset += 4 + n
    assert seen == expected == list(read_stream(path))


def test_read_stream_rejects_a_truncated_file(tmp_path: Path) -> None:
    path = tmp_path / "logs.binpb"
    write_stream(path, "logs", records=50)
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(ValueError, match="truncated"):
        list(read_stream(path))


def test_command_line_writes_a_consistent_set(tmp_path: Path) -> None:
    assert (
        main(["--signal", "all", "--records", "3000", "--seed", "9", "--out", str(tmp_path)]) == 0
    )
    counts = companion_counts(3000, 9)
    for signal, n in counts.items():
        got = [parse(signal, r) for r in read_stream(tmp_path / f"{signal}.binpb")]
        assert record_count(signal, got) == n
    expected = tmp_path / "expected.binpb"
    write_stream(expected, "logs", records=counts["logs"], seed=9, trace_records=3000)
    assert expected.read_bytes() == (tmp_path / "logs.binpb").read_bytes()


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown signal"):
        iter_requests("profiles", records=1)
    with pytest.raises(ValueError):
        iter_requests("traces", records=-1)
    with pytest.raises(ValueError):
        iter_requests("traces", records=1, per_request=0)
