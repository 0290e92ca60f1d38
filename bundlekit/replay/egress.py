"""Sealed mode: in an air-gapped deployment, replay may only talk to loopback.

Sealed mode is on with ``--sealed``, with ``BUNDLEKIT_SEALED=1`` in the
environment, or for a bundle packed with the ``airgap`` profile.  Then an
endpoint is allowed only if its host is a loopback address (or ``localhost``)
or is named by ``--allow-egress``.

Host names are never resolved in sealed mode: asking DNS (or NSS) would itself
be egress, and a name could resolve differently later.  So the check does not
just say yes or no: :func:`loopback_address` returns the literal address the
exporter then connects to.  What was checked is exactly what is used, whatever
odd spelling the user wrote (``localhost.``, ``LOCALHOST``, ``::ffff:127.0.0.1``)
and however a resolver would have read it.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable, Mapping

from bundlekit.errors import EgressRefused

SEALED_ENV = "BUNDLEKIT_SEALED"
_TRUE = frozenset({"1", "true", "yes", "on"})
#: Where ``localhost`` (any case, with or without the root dot) is sent in sealed mode.
LOCALHOST_ADDRESS = "127.0.0.1"


def sealed_from_env(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return env.get(SEALED_ENV, "").strip().lower() in _TRUE


def normal_host(host: str) -> str:
    """``host`` compared case-insensitively, without brackets or the root dot."""
    return host.strip().strip("[]").rstrip(".").lower()


def ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address ``host`` spells in standard notation, or ``None`` for a name.

    Only the forms :mod:`ipaddress` accepts count: ``127.1``, ``0x7f.0.0.1``,
    ``2130706433`` and leading zeros are names here (``getaddrinfo`` would read
    them as addresses, but bundlekit never hands them to it in sealed mode).
    An IPv6 zone (``::1%lo``) is dropped; an IPv4-mapped IPv6 address becomes
    its IPv4 address.
    """
    name = normal_host(host)
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.scope_id is not None:
            return ipaddress.IPv6Address(name.split("%", 1)[0])
    return address


def loopback_address(host: str) -> str | None:
    """The literal loopback address to connect to for ``host``; ``None`` if not loopback."""
    if normal_host(host) == "localhost":
        return LOCALHOST_ADDRESS
    address = ip_literal(host)
    if address is None or not address.is_loopback:
        return None
    return address.compressed


def is_loopback(host: str) -> bool:
    return loopback_address(host) is not None


def is_allowed(host: str, allowed: Iterable[str]) -> bool:
    """Whether ``--allow-egress`` names ``host`` (case, brackets and root dot ignored)."""
    wanted = normal_host(host)
    return any(wanted == normal_host(a) for a in allowed)


def check_egress(host: str, reason: str, allowed: Iterable[str]) -> None:
    """Raise EgressRefused unless ``host`` is loopback or explicitly allowed."""
    if is_loopback(host) or is_allowed(host, allowed):
        return
    raise EgressRefused(
        f"sealed mode ({reason}) refuses to send to {host}: it is not a loopback address",
        f"pass --allow-egress {host} to allow this destination explicitly",
    )
