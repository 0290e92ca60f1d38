"""An endpoint without a scheme means TLS: a plaintext collector must fail fast and say so.

Before, gRPC said ``UNAVAILABLE: failed to connect to all addresses ...
WRONG_VERSION_NUMBER`` and HTTP ``TLS error: [SSL: WRONG_VERSION_NUMBER]``:
true, but nothing a user could act on.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bundlekit.otlp.signals import Signal
from bundlekit.replay import Filters, ReplayFailed, TransportOptions, replay_bundle
from bundlekit.replay.interface import Protocol
from bundlekit.replay.tlsprobe import speaks_plaintext
from tests.replay.conftest import options_for
from tests.replay.otlpdata import Bundle
from tests.replay.receivers import grpc_receiver, http_receiver
from tests.replay.rotel import Rotel, free_port, rotel_binary

Run = Callable[..., tuple[int, str, str]]
TRACES = Filters(signals=frozenset({Signal.TRACES}))


@pytest.fixture(scope="module")
def rotel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rotel]:
    if not rotel_binary().exists() and os.environ.get("CI") != "true":
        pytest.skip("rotel-agent is not installed (under CI=true this fails instead)")
    collector = Rotel(Path(tmp_path_factory.mktemp("rotel")), exporter="blackhole")
    collector.start()
    try:
        yield collector
    finally:
        collector.stop()


@pytest.mark.collector
@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_tls_endpoint_against_plaintext_collector_fails_fast_saying_so(
    bundle: Bundle, rotel: Rotel, run_cli: Run, protocol: str
) -> None:
    port = rotel.grpc_port if protocol == "grpc" else rotel.http_port
    started = time.monotonic()
    # The default retry budget (300 s) is left alone: only failing fast keeps this quick.
    code, _, err = run_cli(
        "replay",
        bundle.path,
        "--protocol",
        protocol,
        "--endpoint",
        f"127.0.0.1:{port}",
        "--key",
        bundle.key.public_path,
    )
    elapsed = time.monotonic() - started
    assert code == 6, err
    assert f"the collector at 127.0.0.1:{port} does not speak TLS" in err
    assert f"--endpoint http://127.0.0.1:{port}" in err and "--insecure" in err
    assert "retry budget" not in err
    assert elapsed < 20, elapsed


@pytest.mark.parametrize("protocol", [Protocol.GRPC, Protocol.HTTP])
def test_tls_endpoint_against_plaintext_test_receiver_is_not_retried(
    bundle: Bundle, protocol: Protocol
) -> None:
    receiver = grpc_receiver() if protocol is Protocol.GRPC else http_receiver()
    with receiver as (port, recorder):
        transport = TransportOptions(endpoint=f"127.0.0.1:{port}", protocol=protocol, timeout=5.0)
        options = options_for(bundle, port, transport=transport, filters=TRACES, max_elapsed=60.0)
        started = time.monotonic()
        with pytest.raises(ReplayFailed) as err:
            replay_bundle(bundle.path, options)
        assert time.monotonic() - started < 15
        assert recorder.attempts == []
    assert err.value.exit_code == 6
    assert str(err.value.message).startswith(
        f"cannot send traces data to {protocol.value}://127.0.0.1:{port} (tls): "
        f"the collector at 127.0.0.1:{port} does not speak TLS"
    )
    assert "--insecure" in (err.value.hint or "")
    report = err.value.report
    assert report is not None and report.signals[Signal.TRACES].retries == 0
    assert report.error is not None and "does not speak TLS" in report.error


@pytest.mark.parametrize("protocol", [Protocol.GRPC, Protocol.HTTP])
def test_probe_recognises_plaintext_servers(protocol: Protocol) -> None:
    receiver = grpc_receiver() if protocol is Protocol.GRPC else http_receiver()
    with receiver as (port, _):
        assert speaks_plaintext("127.0.0.1", port, protocol, f"127.0.0.1:{port}")


def test_probe_says_no_for_a_closed_port_or_a_silent_server() -> None:
    assert not speaks_plaintext("127.0.0.1", free_port(), Protocol.GRPC, "x")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        started = time.monotonic()
        assert not speaks_plaintext("127.0.0.1", port, Protocol.HTTP, "x")
        assert time.monotonic() - started < 10  # bounded by PROBE_TIMEOUT
