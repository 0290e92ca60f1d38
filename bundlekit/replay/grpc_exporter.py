"""OTLP/gRPC exporter that sends already-serialized requests.

The channel goes exactly where the :class:`~bundlekit.replay.route.Route`
says.  grpc-core would otherwise read proxy variables on its own
(``grpc_proxy``, ``https_proxy``, ``http_proxy`` and, beyond
``grpc.enable_http_proxy``'s reach, ``GRPC_ADDRESS_HTTP_PROXY``) and resolve
whatever name it is given; so the proxy is passed explicitly or switched off,
the address-level proxy is always off, and an IP literal is given as an
``ipv4:``/``ipv6:`` target, which no resolver sees.

The methods are created with ``unary_unary`` and no serializers, so request
bytes read from a bundle go onto the wire untouched — no decode and re-encode
when nothing needs changing.  One channel is shared by every thread; gRPC
multiplexes the requests in flight over one HTTP/2 connection.
"""

from __future__ import annotations

from typing import Any

import grpc

from bundlekit.otlp.signals import SIGNALS, Signal
from bundlekit.replay.interface import (
    Compression,
    Exporter,
    ExportResult,
    Outcome,
    Protocol,
    TransportOptions,
)
from bundlekit.replay.partial import rejected_records
from bundlekit.replay.route import Route
from bundlekit.replay.rpc_status import parse_status
from bundlekit.replay.tlsprobe import PlaintextDetector

#: Codes the OTLP specification says are transient.
RETRYABLE_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.DATA_LOSS,
    }
)
_DETAILS_KEY = "grpc-status-details-bin"
#: Transport errors that will not go away by waiting: a TLS setup problem.
_PERMANENT_HINTS = ("handshake", "ssl", "certificate", "tls")
_MAX_MESSAGE = 64 * 1024 * 1024


class GrpcExporter(Exporter):
    """Sends raw request bytes to an OTLP/gRPC receiver."""

    def __init__(self, route: Route, options: TransportOptions) -> None:
        endpoint = route.endpoint
        self.target = endpoint.describe(Protocol.GRPC)
        self._timeout = options.timeout
        self._metadata = tuple((k.lower(), v) for k, v in options.headers)
        self._compression = (
            grpc.Compression.Gzip if options.compression is Compression.GZIP else None
        )
        channel_options = [
            ("grpc.max_send_message_length", _MAX_MESSAGE),
            ("grpc.max_receive_message_length", _MAX_MESSAGE),
            # Reconnect quickly once a restarted collector is back.
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 2000),
            *channel_route_options(route),
        ]
        self._plaintext = PlaintextDetector(route) if endpoint.tls else None
        target = grpc_target(route)
        if endpoint.tls:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=_read(options.ca_file),
                private_key=_read(options.key_file),
                certificate_chain=_read(options.cert_file),
            )
            self._channel = grpc.secure_channel(target, credentials, channel_options)
        else:
            self._channel = grpc.insecure_channel(target, channel_options)
        # No serializers: bytes in, bytes out.
        self._methods: dict[Signal, Any] = {
            signal: self._channel.unary_unary(signal.spec.grpc_method) for signal in SIGNALS
        }

    def export(self, signal: Signal, body: bytes) -> ExportResult:
        try:
            response, _call = self._methods[signal].with_call(
                body,
                timeout=self._timeout,
                metadata=self._metadata or None,
                compression=self._compression,
            )
        except grpc.RpcError as err:
            result = classify_error(err)
            if (
                self._plaintext is not None
                and result.outcome is not Outcome.ACCEPTED
                and err.code() is grpc.StatusCode.UNAVAILABLE
            ):
                return self._plaintext.check(result)
            return result
        return _accepted(signal, response)

    def close(self) -> None:
        self._channel.close()


def grpc_target(route: Route) -> str:
    """The channel target: ``ipv4:``/``ipv6:`` for an address, so no resolver is asked."""
    if route.literal:
        scheme = "ipv6" if ":" in route.address else "ipv4"
        return f"{scheme}:{route.authority}"
    return route.authority


def channel_route_options(route: Route) -> list[tuple[str, str | int]]:
    """Channel arguments that make grpc-core follow ``route`` and nothing in the environment."""
    endpoint = route.endpoint
    options: list[tuple[str, str | int]] = [
        # GRPC_ADDRESS_HTTP_PROXY is honoured even with grpc.enable_http_proxy=0;
        # an empty list of enabled addresses is what turns it off.
        ("grpc.address_http_proxy_enabled_addresses", ""),
        # :authority as the user wrote the endpoint, whatever address is dialled;
        # grpc-core also checks the server's certificate against this name.
        ("grpc.default_authority", endpoint.authority),
    ]
    if route.proxy is not None:
        options.append(("grpc.http_proxy", route.proxy))
    else:
        options.append(("grpc.enable_http_proxy", 0))
    return options


def classify_error(err: grpc.RpcError) -> ExportResult:
    """Apply the OTLP/gRPC rules to a failed call."""
    code: grpc.StatusCode = err.code()
    details = err.details() or ""
    delay: float | None = None
    for key, value in err.trailing_metadata() or ():
        if key == _DETAILS_KEY and isinstance(value, bytes):
            status = parse_status(value)
            if status is not None:
                delay = status.retry_delay
    text = f"{code.name}: {details}" if details else code.name
    if code is grpc.StatusCode.RESOURCE_EXHAUSTED:
        # Retryable only when the server says when to come back.
        outcome = Outcome.RETRYABLE if delay is not None else Outcome.FAILED
    elif code in RETRYABLE_CODES:
        lowered = details.lower()
        tls_problem = any(hint in lowered for hint in _PERMANENT_HINTS)
        permanent = code is grpc.StatusCode.UNAVAILABLE and tls_problem
        outcome = Outcome.FAILED if permanent else Outcome.RETRYABLE
    else:
        outcome = Outcome.FAILED
    return ExportResult(outcome, detail=text, retry_after=delay)


def _accepted(signal: Signal, response: bytes) -> ExportResult:
    rejected, message = rejected_records(signal, response)
    return ExportResult(Outcome.ACCEPTED, rejected=rejected, detail=message)


def _read(path: Any) -> bytes | None:
    if path is None:
        return None
    with open(path, "rb") as handle:
        return handle.read()
