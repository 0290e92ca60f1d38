"""Sealed mode leaves the machine by no route: no proxy, no name resolution; the report says how.

A loopback listener poses as the proxy that every proxy variable points to
(the variables grpc-core, curl and urllib read, and grpc-core's address-level
``GRPC_ADDRESS_HTTP_PROXY``).  A sealed replay into a real collector must
deliver everything while that listener receives not one byte; the same replay
unsealed does go through it, which shows the listener would notice.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest

from bundlekit.otlp.signals import Signal
from bundlekit.replay import Filters, ReplayFailed, TransportOptions, replay_bundle
from bundlekit.replay.interface import Protocol
from tests.replay.conftest import options_for
from tests.replay.otlpdata import Bundle, flatten
from tests.replay.receivers import (
    ProxyLog,
    Recorder,
    grpc_receiver,
    http_receiver,
    recording_proxy,
)
from tests.replay.rotel import Rotel, needs_rotel

TRACES = Filters(signals=frozenset({Signal.TRACES}))
PROXY_VARIABLES = ("grpc_proxy", "https_proxy", "http_proxy", "HTTPS_PROXY", "HTTP_PROXY")


@pytest.fixture
def proxy() -> Iterator[ProxyLog]:
    with recording_proxy() as log:
        yield log


def point_every_proxy_variable_at(proxy: ProxyLog, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every proxy route grpc-core, curl or urllib would take now leads to ``proxy``."""
    for name in PROXY_VARIABLES:
        monkeypatch.setenv(name, proxy.url)
    # grpc-core's address-level proxy ignores grpc.enable_http_proxy=0.
    monkeypatch.setenv("GRPC_ADDRESS_HTTP_PROXY", f"127.0.0.1:{proxy.port}")
    monkeypatch.setenv("GRPC_ADDRESS_HTTP_PROXY_ENABLED_ADDRESSES", "127.0.0.0/8")


@needs_rotel
@pytest.mark.collector
@pytest.mark.parametrize("protocol", [Protocol.GRPC, Protocol.HTTP])
def test_sealed_replay_sends_nothing_to_a_proxy_from_the_environment(
    bundle: Bundle,
    pipeline: tuple[Rotel, Recorder],
    proxy: ProxyLog,
    monkeypatch: pytest.MonkeyPatch,
    protocol: Protocol,
) -> None:
    rotel, receiver = pipeline
    port = rotel.grpc_port if protocol is Protocol.GRPC else rotel.http_port
    point_every_proxy_variable_at(proxy, monkeypatch)
    report = replay_bundle(bundle.path, options_for(bundle, port, protocol, sealed=True))
    assert report.completed and report.sealed
    assert report.route == f"direct to 127.0.0.1:{port} (sealed; proxy variables ignored: " + (
        "grpc_proxy not allowed by --allow-egress)"
        if protocol is Protocol.GRPC
        else "http_proxy not allowed by --allow-egress)"
    )
    for signal in Signal:
        want = flatten(signal, bundle.requests[signal])
        receiver.wait_for(signal, sum(want.values()))
        assert flatten(signal, receiver.accepted[signal]) == want
    time.sleep(0.2)  # a late connection to the proxy would have arrived by now
    assert proxy.connections == [] and proxy.received == b""


def test_unsealed_grpc_replay_does_go_through_the_proxy_variable(
    bundle: Bundle, proxy: ProxyLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The listener of the test above notices a proxied replay: without --sealed, it is used."""
    monkeypatch.setenv("grpc_proxy", proxy.url)
    with grpc_receiver() as (port, receiver):
        report = replay_bundle(bundle.path, options_for(bundle, port, filters=TRACES))
    assert report.completed and not report.sealed
    assert report.route == (f"via proxy {proxy.url} (from grpc_proxy) to 127.0.0.1:{port}")
    assert proxy.received.startswith(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n".encode())
    assert len(proxy.received) > sum(len(b) for b in bundle.requests[Signal.TRACES]) // 2
    assert flatten(Signal.TRACES, receiver.accepted[Signal.TRACES]) == flatten(
        Signal.TRACES, bundle.requests[Signal.TRACES]
    )


def test_unsealed_grpc_replay_goes_through_grpc_address_http_proxy_unless_sealed(
    bundle: Bundle, proxy: ProxyLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """grpc-core's address-level proxy bypasses grpc.enable_http_proxy=0; it must be off too."""
    monkeypatch.setenv("GRPC_ADDRESS_HTTP_PROXY", f"127.0.0.1:{proxy.port}")
    monkeypatch.setenv("GRPC_ADDRESS_HTTP_PROXY_ENABLED_ADDRESSES", "127.0.0.0/8")
    with grpc_receiver() as (port, receiver):
        for sealed in (True, False):
            report = replay_bundle(
                bundle.path, options_for(bundle, port, filters=TRACES, sealed=sealed)
            )
            assert report.completed
    assert proxy.received == b""
    assert len(receiver.accepted[Signal.TRACES]) >= 2


def test_unsealed_http_replay_honours_http_proxy_like_grpc_does(
    bundle: Bundle, proxy: ProxyLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("http_proxy", proxy.url)
    with http_receiver() as (port, receiver):
        options = options_for(bundle, port, Protocol.HTTP, filters=TRACES, max_elapsed=0.5)
        with pytest.raises(ReplayFailed) as err:
            replay_bundle(bundle.path, options)
        assert receiver.attempts == []
    assert proxy.received.startswith(f"POST http://127.0.0.1:{port}/v1/traces ".encode())
    assert err.value.report is not None
    assert err.value.report.route == f"via proxy {proxy.url} (from http_proxy) to 127.0.0.1:{port}"


def test_no_proxy_keeps_the_http_replay_direct(
    bundle: Bundle, proxy: ProxyLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "example.com,127.0.0.1")
    with http_receiver() as (port, receiver):
        report = replay_bundle(bundle.path, options_for(bundle, port, Protocol.HTTP))
    assert report.completed and receiver.accepted[Signal.TRACES]
    assert report.route == f"direct to 127.0.0.1:{port} (NO_PROXY bypasses the proxy)"
    assert proxy.received == b""


def test_sealed_replay_uses_a_proxy_only_when_allow_egress_names_it(
    bundle: Bundle, proxy: ProxyLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("grpc_proxy", proxy.url)
    with grpc_receiver() as (port, receiver):
        options = options_for(
            bundle, port, filters=TRACES, sealed=True, allow_egress=("127.0.0.1",)
        )
        report = replay_bundle(bundle.path, options)
    assert report.completed and receiver.accepted[Signal.TRACES]
    assert report.route == (
        f"via proxy {proxy.url} (from grpc_proxy) to 127.0.0.1:{port} "
        "(sealed; proxy allowed by --allow-egress)"
    )
    assert proxy.received.startswith(b"CONNECT ")


# -- names are never resolved --------------------------------------------------------------


@pytest.fixture
def no_name_lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Fail the test if Python asks the resolver about anything but an IP literal."""
    import ipaddress

    real = socket.getaddrinfo
    asked: list[str] = []

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        asked.append(name)
        try:
            ipaddress.ip_address(name)
        except ValueError:
            raise AssertionError(f"sealed replay asked the resolver about {name!r}") from None
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


@pytest.mark.parametrize("host", ["localhost.", "LOCALHOST", "LocalHost.", "[::ffff:127.0.0.1]"])
def test_sealed_http_replay_to_a_localhost_spelling_never_resolves_it(
    bundle: Bundle, no_name_lookups: list[str], host: str
) -> None:
    with http_receiver() as (port, receiver):
        transport = TransportOptions(
            endpoint=f"http://{host}:{port}", protocol=Protocol.HTTP, timeout=5.0
        )
        options = options_for(bundle, port, transport=transport, filters=TRACES, sealed=True)
        report = replay_bundle(bundle.path, options)
    assert report.completed
    assert report.route == f"direct to 127.0.0.1:{port} (sealed; proxy variables ignored)"
    assert no_name_lookups and set(no_name_lookups) == {"127.0.0.1"}
    # The Host header still names the endpoint as written.
    assert receiver.attempts[0].headers["host"].lower() == f"{host.lower()}:{port}"


@pytest.mark.parametrize("host", ["localhost.", "LOCALHOST"])
def test_sealed_grpc_replay_to_localhost_dials_the_literal_address(
    bundle: Bundle, host: str
) -> None:
    from bundlekit.replay.grpc_exporter import grpc_target
    from bundlekit.replay.route import Route

    dialled: list[str] = []

    def factory(route: Route, options: TransportOptions, concurrency: int) -> Any:
        from bundlekit.replay.grpc_exporter import GrpcExporter

        dialled.append(grpc_target(route))
        return GrpcExporter(route, options)

    with grpc_receiver() as (port, receiver):
        transport = TransportOptions(endpoint=f"http://{host}:{port}", timeout=5.0)
        options = options_for(bundle, port, transport=transport, filters=TRACES, sealed=True)
        report = replay_bundle(bundle.path, options, exporter_factory=factory)
    assert report.completed and receiver.accepted[Signal.TRACES]
    # ipv4: targets bypass grpc-core's resolvers altogether.
    assert dialled == [f"ipv4:127.0.0.1:{port}"]
    assert report.route == f"direct to 127.0.0.1:{port} (sealed; proxy variables ignored)"


def test_sealed_cli_prints_the_route(bundle: Bundle, run_cli: Callable[..., Any]) -> None:
    with grpc_receiver() as (port, _):
        code, out, err = run_cli(
            "replay",
            bundle.path,
            "--endpoint",
            f"http://localhost.:{port}",
            "--key",
            bundle.key.public_path,
            "--signal",
            "traces",
            "--sealed",
        )
    assert code == 0, err
    assert f"  route: direct to 127.0.0.1:{port} (sealed; proxy variables ignored)\n" in out


def test_json_report_names_the_route(bundle: Bundle) -> None:
    with grpc_receiver() as (port, _):
        report = replay_bundle(bundle.path, options_for(bundle, port, filters=TRACES))
    data = report.to_json()
    assert data["route"] == f"direct to 127.0.0.1:{port}" and data["sealed"] is False


def test_dry_run_reports_the_route_it_would_take(bundle: Bundle) -> None:
    from tests.replay.fakes import NoExporter

    options = options_for(bundle, 4317, dry_run=True, sealed=True)
    options = replace(options, transport=replace(options.transport, endpoint="http://[::1]:4317"))
    report = replay_bundle(bundle.path, options, exporter_factory=NoExporter())
    assert report.route == "direct to [::1]:4317 (sealed; proxy variables ignored)"
