"""Real gRPC and HTTP exporters against scripted test receivers (no collector in between)."""

from __future__ import annotations

import grpc
import pytest

from bundlekit.otlp.signals import Signal
from bundlekit.replay import Compression, Filters, ReplayFailed, TransportOptions, replay_bundle
from bundlekit.replay.interface import Protocol
from tests.replay.conftest import options_for
from tests.replay.otlpdata import Bundle, flatten
from tests.replay.receivers import Reply, counting_proxy, grpc_receiver, http_receiver
from tests.replay.rotel import free_port

TRACES_ONLY = Filters(signals=frozenset({Signal.TRACES}))


def test_grpc_retries_unavailable_and_resource_exhausted_with_retry_info(bundle: Bundle) -> None:
    with grpc_receiver() as (port, receiver):
        receiver.script = [
            Reply(grpc_code=grpc.StatusCode.UNAVAILABLE, message="warming up"),
            Reply(
                grpc_code=grpc.StatusCode.RESOURCE_EXHAUSTED, message="slow down", retry_delay=0.4
            ),
        ]
        report = replay_bundle(
            bundle.path, options_for(bundle, port, concurrency=1, filters=TRACES_ONLY)
        )
        first, second, third = receiver.attempts[:3]
    assert first.body == second.body == third.body  # the same request, retried
    assert third.at - second.at >= 0.4  # RetryInfo's delay was honoured
    assert report.signals[Signal.TRACES].retries == 2
    assert flatten(Signal.TRACES, receiver.accepted[Signal.TRACES]) == flatten(
        Signal.TRACES, bundle.requests[Signal.TRACES]
    )


def test_grpc_resource_exhausted_without_retry_info_is_fatal(bundle: Bundle) -> None:
    with grpc_receiver() as (port, receiver):
        receiver.script = [Reply(grpc_code=grpc.StatusCode.RESOURCE_EXHAUSTED, message="quota")]
        with pytest.raises(ReplayFailed, match="RESOURCE_EXHAUSTED: quota"):
            replay_bundle(
                bundle.path, options_for(bundle, port, concurrency=1, filters=TRACES_ONLY)
            )
        assert len(receiver.attempts) == 1


def test_grpc_invalid_argument_stops_the_replay(bundle: Bundle) -> None:
    with grpc_receiver() as (port, receiver):
        receiver.script = [
            Reply(),
            Reply(grpc_code=grpc.StatusCode.INVALID_ARGUMENT, message="span has no trace id"),
        ]
        with pytest.raises(ReplayFailed) as err:
            replay_bundle(bundle.path, options_for(bundle, port, concurrency=1, batch_bytes=0))
    assert "refused traces data: INVALID_ARGUMENT: span has no trace id" in err.value.message
    assert len(receiver.attempts) == 2  # nothing after the refusal, no retry of it
    assert err.value.report is not None
    assert err.value.report.signals[Signal.TRACES].requests_acknowledged == 1


def test_http_retries_503_with_retry_after_and_429_then_succeeds(bundle: Bundle) -> None:
    with http_receiver() as (port, receiver):
        receiver.script = [
            Reply(http_status=503, retry_after="1"),
            Reply(http_status=429),
            Reply(http_status=502),
            Reply(http_status=504),
        ]
        report = replay_bundle(
            bundle.path,
            options_for(bundle, port, Protocol.HTTP, concurrency=1, filters=TRACES_ONLY),
        )
        attempts = receiver.attempts
    assert [a.reply.http_status for a in attempts[:5]] == [503, 429, 502, 504, 200]
    assert len({a.body for a in attempts[:5]}) == 1
    assert 1.0 <= attempts[1].at - attempts[0].at < 3.0  # Retry-After: 1 honoured
    assert attempts[2].at - attempts[1].at < 1.0  # 429 without Retry-After: our backoff
    assert report.signals[Signal.TRACES].retries == 4
    assert flatten(Signal.TRACES, receiver.accepted[Signal.TRACES]) == flatten(
        Signal.TRACES, bundle.requests[Signal.TRACES]
    )
    assert attempts[0].headers["content-type"] == "application/x-protobuf"


def test_http_400_stops_with_the_collectors_message(bundle: Bundle) -> None:
    with http_receiver() as (port, receiver):
        receiver.script = [Reply(http_status=400, message="invalid span kind")]
        with pytest.raises(ReplayFailed) as err:
            replay_bundle(bundle.path, options_for(bundle, port, Protocol.HTTP, concurrency=1))
        assert len(receiver.attempts) == 1
    assert "HTTP 400 Bad Request: invalid span kind" in err.value.message


@pytest.mark.parametrize("protocol", [Protocol.GRPC, Protocol.HTTP])
def test_partial_success_is_counted_in_the_report(bundle: Bundle, protocol: Protocol) -> None:
    receiver_cm = grpc_receiver() if protocol is Protocol.GRPC else http_receiver()
    with receiver_cm as (port, receiver):
        receiver.script = [Reply(rejected=5, message="5 spans too old")]
        report = replay_bundle(
            bundle.path, options_for(bundle, port, protocol, concurrency=1, filters=TRACES_ONLY)
        )
        assert len(receiver.attempts) == report.signals[Signal.TRACES].requests_sent
    traces = report.signals[Signal.TRACES]
    assert traces.records_rejected == 5 and traces.retries == 0
    assert traces.records_acknowledged == bundle.records(Signal.TRACES) - 5


@pytest.mark.parametrize("protocol", [Protocol.GRPC, Protocol.HTTP])
@pytest.mark.parametrize("compression", [Compression.NONE, Compression.GZIP])
def test_compression_and_headers_reach_the_receiver(
    bundle: Bundle, protocol: Protocol, compression: Compression
) -> None:
    receiver_cm = grpc_receiver() if protocol is Protocol.GRPC else http_receiver()
    with receiver_cm as (port, receiver), counting_proxy(port) as (proxy_port, wire):
        transport = TransportOptions(
            endpoint=f"http://127.0.0.1:{proxy_port}",
            protocol=protocol,
            compression=compression,
            headers=(("X-Tenant", "acme"),),
        )
        replay_bundle(
            bundle.path,
            options_for(bundle, proxy_port, transport=transport, filters=TRACES_ONLY, marker=False),
        )
        assert flatten(Signal.TRACES, receiver.accepted[Signal.TRACES]) == flatten(
            Signal.TRACES, bundle.requests[Signal.TRACES]
        )
        headers = receiver.attempts[0].headers
    payload = sum(len(b) for b in bundle.requests[Signal.TRACES])
    if compression is Compression.GZIP:
        assert wire[0] < payload * 0.6  # really compressed on the wire
    else:
        assert wire[0] > payload
    assert headers["x-tenant"] == "acme"
    if protocol is Protocol.HTTP and compression is Compression.GZIP:
        assert headers["content-encoding"] == "gzip"


@pytest.mark.parametrize("protocol", [Protocol.GRPC, Protocol.HTTP])
def test_unreachable_collector_exhausts_the_retry_budget(
    bundle: Bundle, protocol: Protocol
) -> None:
    port = free_port()  # nothing listens here
    with pytest.raises(ReplayFailed, match="retry budget") as err:
        replay_bundle(bundle.path, options_for(bundle, port, protocol, max_elapsed=1.0))
    assert err.value.exit_code == 6
    report = err.value.report
    assert report is not None and report.signals[Signal.TRACES].retries >= 2
    assert report.signals[Signal.TRACES].records_acknowledged == 0
