"""RFC 3339 timestamps with nanosecond precision, as the manifest stores them.

OTLP timestamps are integer nanoseconds since the Unix epoch.  Canonical JSON
(RFC 8785) stores numbers as IEEE doubles, which cannot hold them exactly, so
the manifest stores strings: ``2026-11-01T00:00:00.123456789Z``.
"""

from __future__ import annotations

import os
import re
import time
from datetime import UTC, datetime

_NS = 1_000_000_000
_RFC3339 = re.compile(
    r"^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$"
)


def format_ns(ns: int) -> str:
    """Nanoseconds since the epoch → ``YYYY-MM-DDTHH:MM:SS[.fffffffff]Z`` (trailing zeros cut)."""
    seconds, frac = divmod(ns, _NS)
    base = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if frac:
        return f"{base}.{frac:09d}".rstrip("0") + "Z"
    return base + "Z"


def parse_ns(text: str) -> int:
    """Inverse of :func:`format_ns`; also accepts numeric offsets. Raises ValueError."""
    match = _RFC3339.match(text.strip().upper().replace(" ", "T", 1))
    if not match:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    date, clock, frac, zone = match.groups()
    offset = "+00:00" if zone == "Z" else zone
    whole = datetime.fromisoformat(f"{date}T{clock}{offset}")
    return int(whole.timestamp()) * _NS + int((frac or "0").ljust(9, "0"))


def created_ns_default() -> int:
    """Now, or ``$SOURCE_DATE_EPOCH`` (seconds) when set, for reproducible bundles."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch and epoch.isdigit():
        return int(epoch) * _NS
    return time.time_ns()
