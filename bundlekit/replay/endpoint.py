"""Turning ``--endpoint`` into host, port, scheme and (for HTTP) a base path.

Plaintext is used only when asked for: the ``http://`` scheme, ``--insecure``,
or the built-in loopback default.  A bare ``host:port`` means TLS, as the OTLP
exporter specification says for ``OTEL_EXPORTER_OTLP_ENDPOINT``.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from bundlekit.errors import UsageError
from bundlekit.replay.interface import Protocol, TransportOptions

DEFAULT_PORTS = {Protocol.GRPC: 4317, Protocol.HTTP: 4318}
DEFAULT_HOST = "127.0.0.1"


@dataclass(frozen=True)
class Endpoint:
    """A parsed collector address."""

    host: str
    port: int
    tls: bool
    #: HTTP only: prefix put before ``/v1/<signal>`` (no trailing slash).
    base_path: str = ""

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def url(self, path: str, authority: str | None = None) -> str:
        """The URL of ``path`` under this endpoint; ``authority`` replaces the host:port
        dialled (a route's literal address), while the scheme and base path stay."""
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{authority or self.authority}{self.base_path}{path}"

    def describe(self, protocol: Protocol) -> str:
        tls = "tls" if self.tls else "plaintext"
        return f"{protocol.value}://{self.authority}{self.base_path} ({tls})"


def parse_endpoint(options: TransportOptions) -> Endpoint:
    """Validate the endpoint and TLS options together; raise UsageError if they clash."""
    protocol = options.protocol
    text = options.endpoint
    if text is None:
        endpoint = Endpoint(DEFAULT_HOST, DEFAULT_PORTS[protocol], tls=False)
    else:
        endpoint = _parse(text.strip(), protocol, options.insecure)
    has_tls_files = any((options.ca_file, options.cert_file, options.key_file))
    if not endpoint.tls and has_tls_files:
        raise UsageError(
            "TLS files were given for a plaintext endpoint",
            "use an https:// endpoint (or drop --insecure) to connect with TLS",
        )
    for path in (options.ca_file, options.cert_file, options.key_file):
        if path is not None and not path.is_file():
            raise UsageError(f"TLS file {path} does not exist or is not a file")
    if bool(options.cert_file) != bool(options.key_file):
        raise UsageError(
            "a client certificate needs its key, and a key its certificate",
            "pass both --client-cert and --client-key",
        )
    return endpoint


def _parse(text: str, protocol: Protocol, insecure: bool) -> Endpoint:
    if "://" not in text:
        text = f"//{text}"
        scheme = ""
    else:
        scheme = text.split("://", 1)[0].lower()
        if scheme not in ("http", "https"):
            raise UsageError(
                f"unsupported endpoint scheme {scheme!r} in {text!r}",
                "use http://HOST:PORT (plaintext) or https://HOST:PORT (TLS)",
            )
    if scheme == "https" and insecure:
        raise UsageError(
            "--insecure contradicts an https:// endpoint", "use http://HOST:PORT for plaintext"
        )
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise UsageError(f"invalid endpoint {text.lstrip('/')!r} ({exc})") from exc
    host = parts.hostname
    if not host:
        raise UsageError(
            f"endpoint {text.lstrip('/')!r} names no host",
            "write it as HOST:PORT, e.g. 127.0.0.1:4317",
        )
    if parts.query or parts.fragment or parts.username:
        raise UsageError(
            f"endpoint {text.lstrip('/')!r} may not carry a query, fragment or credentials",
            "pass credentials with --header-env",
        )
    path = parts.path.rstrip("/")
    if path and protocol is Protocol.GRPC:
        raise UsageError(
            f"a gRPC endpoint has no path: {text.lstrip('/')!r}", "write it as HOST:PORT"
        )
    tls = scheme == "https" or (scheme == "" and not insecure)
    return Endpoint(host, port or DEFAULT_PORTS[protocol], tls=tls, base_path=path)
