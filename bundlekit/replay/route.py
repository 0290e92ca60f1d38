"""Which way replay's bytes go: straight to an address, or through a proxy.

Both exporters follow the :class:`Route` decided here and nothing else, so the
report can say truthfully how data left the process, and sealed mode has one
place to be airtight:

* **Sealed**: the connection goes straight to a literal loopback address (or
  to a host ``--allow-egress`` names); nothing is resolved.  Proxy variables
  are ignored, unless ``--allow-egress`` names the proxy's host too: a proxy
  forwards wherever it is told, so even one on loopback is egress.
* **Not sealed**: proxies come from the environment, with the same variables
  each transport's usual clients read.  gRPC keeps grpc-core's own rule
  (``grpc_proxy``, ``https_proxy``, ``http_proxy``, lower case only; bypass
  with ``no_grpc_proxy`` or ``no_proxy``), so existing setups keep working.
  OTLP/HTTP follows curl and Python's urllib: ``https_proxy`` for an
  ``https://`` endpoint, ``http_proxy`` for ``http://`` (lower case first,
  then upper case); bypass with ``no_proxy``/``NO_PROXY``.

The exporters get the decision explicitly (gRPC channel arguments, a urllib3
``ProxyManager`` or plain pool), never by letting a library read the
environment on its own.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from bundlekit.errors import UsageError
from bundlekit.replay.egress import check_egress, ip_literal, is_allowed, loopback_address
from bundlekit.replay.endpoint import Endpoint
from bundlekit.replay.interface import Protocol

GRPC_PROXY_VARIABLES = ("grpc_proxy", "https_proxy", "http_proxy")
GRPC_NO_PROXY_VARIABLES = ("no_grpc_proxy", "no_proxy")


@dataclass(frozen=True)
class Route:
    """How to reach the collector; built by :func:`plan_route`."""

    endpoint: Endpoint
    protocol: Protocol
    #: What the socket connects to: an IP literal, or (not sealed, or allowed) a host name.
    address: str
    #: Proxy URL (credentials included) the exporter must use; ``None`` = direct.
    proxy: str | None = None
    #: The environment variable the proxy came from.
    proxy_variable: str | None = None
    #: Why sealed mode is on (``--sealed``, ``BUNDLEKIT_SEALED``, ``airgap bundle``), or ``None``.
    sealed: str | None = None
    #: Proxy variables that were set but not used, and why (shown in the report).
    note: str = ""

    @property
    def literal(self) -> bool:
        """True when :attr:`address` is an IP address: nothing needs resolving."""
        return ip_literal(self.address) is not None

    @property
    def authority(self) -> str:
        """``address:port`` as a connection target (IPv6 in brackets)."""
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.endpoint.port}"

    @property
    def tls_name(self) -> str:
        """The name the collector's certificate is checked against, and sent as SNI."""
        return self.endpoint.host.rstrip(".")

    def describe(self) -> str:
        """One line for the report, e.g. ``direct to 127.0.0.1:4317 (sealed; ...)``."""
        notes = []
        if self.sealed is not None:
            notes.append("sealed")
        if self.proxy is not None:
            text = f"via proxy {redact(self.proxy)} (from {self.proxy_variable})"
            text += f" to {self.endpoint.authority}"
            if self.sealed is not None:
                notes.append("proxy allowed by --allow-egress")
        else:
            text = f"direct to {self.authority}"
        if self.note:
            notes.append(self.note)
        return text + (f" ({'; '.join(notes)})" if notes else "")


def plan_route(
    endpoint: Endpoint,
    protocol: Protocol,
    sealed: str | None,
    allowed: Iterable[str],
    environ: Mapping[str, str] | None = None,
) -> Route:
    """Decide the route; raise EgressRefused or UsageError before anything connects.

    ``sealed`` is the reason sealed mode is on, or ``None``.  ``environ``
    defaults to the process environment (read now, not by the transports).
    """
    env = os.environ if environ is None else environ
    allowed = tuple(allowed)
    address = endpoint.host
    literal = ip_literal(endpoint.host)
    if literal is not None:
        address = literal.compressed
    if sealed is not None:
        loopback = loopback_address(endpoint.host)
        if loopback is not None:
            address = loopback
        else:
            check_egress(endpoint.host, sealed, allowed)
    found = find_proxy(protocol, endpoint, address, env)
    if found is None:
        note = "proxy variables ignored" if sealed is not None else ""
        return Route(endpoint, protocol, address, sealed=sealed, note=note)
    variable, value = found
    if value is None:  # set, but this host is in no_proxy
        note = "proxy variables ignored" if sealed is not None else f"{variable} bypasses the proxy"
        return Route(endpoint, protocol, address, sealed=sealed, note=note)
    # Sealed mode ignores a proxy it does not allow: not even its spelling is checked.
    if sealed is not None and not is_allowed(_proxy_host(value), allowed):
        note = f"proxy variables ignored: {variable} not allowed by --allow-egress"
        return Route(endpoint, protocol, address, sealed=sealed, note=note)
    proxy = _proxy_url(variable, value, protocol)
    return Route(endpoint, protocol, address, proxy, variable, sealed=sealed)


def find_proxy(
    protocol: Protocol, endpoint: Endpoint, address: str, env: Mapping[str, str]
) -> tuple[str, str | None] | None:
    """``(variable, proxy)`` the transport's rule picks; proxy ``None`` when bypassed.

    Returns ``None`` when no proxy variable applies at all.
    """
    if protocol is Protocol.GRPC:
        return _grpc_proxy(address, env)
    return _http_proxy(endpoint.tls, address, env)


def _grpc_proxy(host: str, env: Mapping[str, str]) -> tuple[str, str | None] | None:
    """grpc-core's rule (http_proxy_mapper.cc): the first variable *set* wins; empty = none."""
    return _env_proxy(host, env, GRPC_PROXY_VARIABLES, GRPC_NO_PROXY_VARIABLES, _grpc_bypassed)


def _env_proxy(
    host: str,
    env: Mapping[str, str],
    variables: Iterable[str],
    bypass_variables: Iterable[str],
    bypassed: Callable[[str, str], bool],
) -> tuple[str, str | None] | None:
    """The shape both rules share: the first proxy variable *set* wins (empty means none),
    and the first bypass variable set decides, with ``bypassed``, whether it applies to ``host``.
    """
    variable = next((v for v in variables if v in env), None)
    if variable is None or not env[variable]:
        return None
    bypass = next((b for b in bypass_variables if b in env), None)
    if bypass is not None and bypassed(host, env[bypass]):
        return bypass, None
    return variable, env[variable]


def _grpc_bypassed(host: str, entries: str) -> bool:
    """grpc-core's no_proxy match: a case-insensitive suffix, or a CIDR range for an address."""
    address = ip_literal(host)
    for raw in entries.split(","):
        entry = raw.strip()
        if not entry:
            continue
        if host.lower().endswith(entry.lower()):
            return True
        if address is not None and "/" in entry:
            try:
                network = ipaddress.ip_network(entry, strict=False)
            except ValueError:
                continue
            if address.version == network.version and address in network:
                return True
    return False


def _http_proxy(tls: bool, host: str, env: Mapping[str, str]) -> tuple[str, str | None] | None:
    """curl's and urllib's rule: the scheme's variable, lower case before upper case."""
    name = "https_proxy" if tls else "http_proxy"
    return _env_proxy(host, env, (name, name.upper()), ("no_proxy", "NO_PROXY"), _curl_bypassed)


def _curl_bypassed(host: str, entries: str) -> bool:
    """curl's and urllib's no_proxy match: ``*``, the host itself, or a domain suffix.

    A leading dot is ignored (``.example.com`` and ``example.com`` both cover
    ``a.example.com``); a ``:port`` on an entry is ignored; no CIDR ranges.
    """
    name = host.lower().rstrip(".")
    for raw in entries.split(","):
        entry = raw.strip().lower()
        if entry == "*":
            return True
        if entry.startswith("["):
            entry = entry[1:].split("]", 1)[0]
        elif entry.count(":") == 1:
            entry = entry.split(":", 1)[0]
        entry = entry.lstrip(".").rstrip(".")
        if entry and (name == entry or name.endswith("." + entry)):
            return True
    return False


def _proxy_url(variable: str, value: str, protocol: Protocol) -> str:
    """``value`` as a proxy URL; a missing scheme means ``http://`` (as curl reads it)."""
    text = value.strip()
    if "://" not in text:
        text = f"http://{text}"
    schemes = ("http",) if protocol is Protocol.GRPC else ("http", "https")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        parts = None
    if parts is None or parts.scheme.lower() not in schemes or not parts.hostname:
        raise UsageError(
            f"proxy variable {variable}={redact(value)!r} is not a proxy URL "
            f"{protocol.value} replay can use ({' or '.join(s + '://HOST:PORT' for s in schemes)})",
            f"fix or unset {variable}, or list the collector's host in no_proxy",
        )
    return text


def _proxy_host(value: str) -> str:
    """The host of a proxy value, or ``""`` if it has none that can be read."""
    text = value.strip()
    try:
        return urlsplit(text if "://" in text else f"http://{text}").hostname or ""
    except ValueError:
        return ""


def redact(url: str) -> str:
    """``url`` without any ``user:password@``, for messages and the report."""
    text = url.strip()
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "", text
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = "***@" + authority.rsplit("@", 1)[1]
    return (f"{scheme}://" if sep else "") + authority + slash + path
