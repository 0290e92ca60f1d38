"""OTLP/HTTP (binary protobuf) exporter over a urllib3 connection pool.

The pool holds one connection per request in flight, so the engine's worker
threads never wait for each other's sockets.  urllib3's own retries and
redirects are off: the shared OTLP retry policy decides, and a collector
answering with a redirect is misconfigured rather than something to follow
silently with telemetry in hand.

The pool follows the :class:`~bundlekit.replay.route.Route`: a
``ProxyManager`` when the route goes through a proxy, otherwise a plain pool
(urllib3 itself never reads proxy variables).  The URL names the route's
address, so a sealed replay to ``localhost`` connects to ``127.0.0.1`` without
asking a resolver, while the ``Host`` header and the TLS name stay what the
user wrote.
"""

from __future__ import annotations

import gzip

import urllib3

from bundlekit._version import __version__
from bundlekit.otlp.signals import Signal
from bundlekit.replay.interface import (
    Compression,
    Exporter,
    ExportResult,
    Outcome,
    Protocol,
    TransportOptions,
)
from bundlekit.replay.partial import rejected_records
from bundlekit.replay.retry import parse_retry_after
from bundlekit.replay.route import Route
from bundlekit.replay.rpc_status import parse_status
from bundlekit.replay.tlsprobe import PlaintextDetector

#: Status codes the OTLP/HTTP specification says are transient.
RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
#: Most response bytes read, so a hostile endpoint cannot make us buffer without end.
_MAX_RESPONSE = 1024 * 1024


class HttpExporter(Exporter):
    """POSTs ``application/x-protobuf`` requests to ``<base>/v1/<signal>``."""

    def __init__(self, route: Route, options: TransportOptions, connections: int) -> None:
        endpoint = route.endpoint
        self.target = endpoint.describe(Protocol.HTTP)
        self._urls = {
            signal: endpoint.url(signal.spec.http_path, route.authority) for signal in Signal
        }
        self._plaintext = PlaintextDetector(route) if endpoint.tls else None
        self._gzip = options.compression is Compression.GZIP
        headers = {
            "Content-Type": "application/x-protobuf",
            "User-Agent": f"bundlekit/{__version__}",
            "Host": endpoint.authority,
        }
        if self._gzip:
            headers["Content-Encoding"] = "gzip"
        headers.update(dict(options.headers))
        self._headers = headers
        tls: dict[str, object] = {}
        if endpoint.tls:
            tls = {
                "cert_reqs": "CERT_REQUIRED",
                "ca_certs": str(options.ca_file) if options.ca_file else None,
                "cert_file": str(options.cert_file) if options.cert_file else None,
                "key_file": str(options.key_file) if options.key_file else None,
                # The certificate is checked against the name written, not the address dialled.
                "server_hostname": route.tls_name,
                "assert_hostname": route.tls_name,
            }
        pool_options: dict[str, object] = {
            "num_pools": 2,
            "maxsize": max(1, connections),
            "block": True,
            "retries": False,
            "timeout": urllib3.Timeout(total=options.timeout),
            **tls,
        }
        self._pool: urllib3.PoolManager
        if route.proxy is not None:
            self._pool = urllib3.ProxyManager(route.proxy, **pool_options)  # type: ignore[arg-type]
        else:
            self._pool = urllib3.PoolManager(**pool_options)  # type: ignore[arg-type]

    def export(self, signal: Signal, body: bytes) -> ExportResult:
        payload = gzip.compress(body, compresslevel=5) if self._gzip else body
        try:
            response = self._pool.request(
                "POST",
                self._urls[signal],
                body=payload,
                headers=self._headers,
                redirect=False,
                preload_content=False,
            )
        except urllib3.exceptions.SSLError as exc:
            return self._transport_failure(ExportResult(Outcome.FAILED, detail=f"TLS error: {exc}"))
        except urllib3.exceptions.HTTPError as exc:
            # Refused, reset, timed out: the network, not the data — retry.
            failure = ExportResult(Outcome.RETRYABLE, detail=f"connection error: {exc}")
            return self._transport_failure(failure)
        try:
            content = response.read(_MAX_RESPONSE, decode_content=True)
        except urllib3.exceptions.HTTPError as exc:
            return ExportResult(Outcome.RETRYABLE, detail=f"connection error: {exc}")
        finally:
            response.drain_conn()
            response.release_conn()
        return classify_response(
            signal, response.status, response.reason, response.headers.get("Retry-After"), content
        )

    def _transport_failure(self, result: ExportResult) -> ExportResult:
        return result if self._plaintext is None else self._plaintext.check(result)

    def close(self) -> None:
        self._pool.clear()


def classify_response(
    signal: Signal, status: int, reason: str | None, retry_after: str | None, body: bytes
) -> ExportResult:
    """Apply the OTLP/HTTP rules to one response."""
    if 200 <= status < 300:
        rejected, message = rejected_records(signal, body)
        return ExportResult(Outcome.ACCEPTED, rejected=rejected, detail=message)
    text = f"HTTP {status}" + (f" {reason}" if reason else "")
    parsed = parse_status(body) if body else None
    if parsed is not None and parsed.message:
        text += f": {parsed.message}"
    elif body and body.isascii() and len(body) < 512:
        text += f": {body.decode('ascii').strip()}"
    if status in RETRYABLE_STATUS:
        delay = parse_retry_after(retry_after)
        return ExportResult(Outcome.RETRYABLE, detail=text, retry_after=delay)
    return ExportResult(Outcome.FAILED, detail=text)
