"""Sealed mode: in an air-gapped deployment, replay may only talk to loopback.

Sealed mode is on with ``--sealed``, with ``BUNDLEKIT_SEALED=1`` in the
environment, or for a bundle packed with the ``airgap`` profile.  Then an
endpoint is allowed only if its host is a loopback address (or ``localhost``)
or is named by ``--allow-egress``.  Host names are not resolved: asking DNS
would itself be egress, and a name could resolve differently later.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable, Mapping

from bundlekit.errors import EgressRefused

SEALED_ENV = "BUNDLEKIT_SEALED"
_TRUE = frozenset({"1", "true", "yes", "on"})


def sealed_from_env(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return env.get(SEALED_ENV, "").strip().lower() in _TRUE


def is_loopback(host: str) -> bool:
    name = host.strip().strip("[]").rstrip(".").lower()
    if name == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def check_egress(host: str, reason: str, allowed: Iterable[str]) -> None:
    """Raise EgressRefused unless ``host`` is loopback or explicitly allowed."""
    if is_loopback(host):
        return
    wanted = host.strip().strip("[]").rstrip(".").lower()
    if any(wanted == a.strip().strip("[]").rstrip(".").lower() for a in allowed):
        return
    raise EgressRefused(
        f"sealed mode ({reason}) refuses to send to {host}: it is not a loopback address",
        f"pass --allow-egress {host} to allow this destination explicitly",
    )
