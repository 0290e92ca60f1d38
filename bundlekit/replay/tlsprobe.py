"""Telling "the collector does not speak TLS" apart from other transport failures.

An endpoint without a scheme means TLS (OTLP specification), so pointing
replay at a plaintext collector is an easy mistake.  gRPC then reports
``UNAVAILABLE: ... WRONG_VERSION_NUMBER`` and urllib3 an ``SSLError``, or just a
closed socket, depending on the server: nothing that says what is wrong.

After a failure that could be a failed handshake, one plaintext greeting is
sent to the same address (an HTTP/2 connection preface for gRPC, an HTTP/1.1
``OPTIONS`` request for OTLP/HTTP).  A TLS server never answers that with
``HTTP/...`` or an HTTP/2 SETTINGS frame; a plaintext one always does.  Only
then is the failure reported as a TLS mismatch, which is not retryable: the
collector will not start speaking TLS by waiting.  The probe runs at most once
per exporter, is bounded in time, and goes only where the route already goes
directly (never through a proxy).
"""

from __future__ import annotations

import socket
import threading
import time

from bundlekit.replay.interface import ExportResult, Outcome, Protocol
from bundlekit.replay.route import Route

#: Longest the probe may take, connecting and waiting for the answer (each at most this).
PROBE_TIMEOUT = 2.0
#: Words in a failure that may mean the TLS handshake did not happen.
_HANDSHAKE_HINTS = (
    "handshake",
    "ssl",
    "tls",
    "wrong version",
    "wrong_version",
    "socket closed",
    "eof",
    "reset",
    "aborted",
    "disconnected",
)
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
_H2_SETTINGS = 0x04


def speaks_plaintext(address: str, port: int, protocol: Protocol, host_header: str) -> bool:
    """Whether the server at ``address:port`` answers a plaintext HTTP greeting in kind."""
    if protocol is Protocol.GRPC:
        greeting = _H2_PREFACE
    else:
        greeting = (
            f"OPTIONS * HTTP/1.1\r\nHost: {host_header}\r\nConnection: close\r\n\r\n".encode()
        )
    data = b""
    deadline = time.monotonic() + PROBE_TIMEOUT
    try:
        with socket.create_connection((address, port), timeout=PROBE_TIMEOUT) as sock:
            sock.sendall(greeting)
            while len(data) < 9:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                sock.settimeout(left)
                chunk = sock.recv(64)
                if not chunk:
                    break
                data += chunk
    except OSError:
        pass
    if data.startswith(b"HTTP/"):
        return True
    # An HTTP/2 frame header: 3 bytes length, type, flags; the server's first frame is SETTINGS.
    return len(data) >= 9 and data[3] == _H2_SETTINGS


class PlaintextDetector:
    """Turns a transport failure into a clear TLS-mismatch error when the probe proves it."""

    def __init__(self, route: Route) -> None:
        self._route = route
        self._lock = threading.Lock()
        self._plaintext: bool | None = None

    def check(self, result: ExportResult) -> ExportResult:
        """``result``, or a non-retryable "does not speak TLS" result if that is the cause."""
        lowered = result.detail.lower()
        if self._route.proxy is not None or not any(h in lowered for h in _HANDSHAKE_HINTS):
            return result
        with self._lock:
            if self._plaintext is None:
                endpoint = self._route.endpoint
                self._plaintext = speaks_plaintext(
                    self._route.address, endpoint.port, self._route.protocol, endpoint.authority
                )
        if not self._plaintext:
            return result
        authority = self._route.endpoint.authority
        return ExportResult(
            Outcome.FAILED,
            detail=(
                f"the collector at {authority} does not speak TLS (it answered in plaintext), "
                "but the endpoint asks for TLS"
            ),
            hint=(
                "an endpoint without a scheme (or with https://) means TLS; to send in "
                f"plaintext use --endpoint http://{authority} or add --insecure"
            ),
        )
