"""How long a bundle must be kept: from ``--retention`` or from its profile."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from bundlekit.errors import UsageError
from bundlekit.format.manifest import PROFILE_RETENTION_DAYS

_DAYS = re.compile(r"^(\d{1,5})d?$")


def resolve_retention(option: str | None, profile: str, created_ns: int) -> tuple[str, str]:
    """Return (retain-until date ``YYYY-MM-DD``, basis ``option`` or ``profile``).

    ``option`` is a number of days (``90`` or ``90d``) counted from the bundle's
    creation, or an ISO date.  A date before creation is refused.
    """
    created = datetime.fromtimestamp(created_ns / 1e9, UTC).date()
    if option is None:
        return (created + timedelta(days=PROFILE_RETENTION_DAYS[profile])).isoformat(), "profile"
    text = option.strip()
    match = _DAYS.match(text)
    if match:
        return (created + timedelta(days=int(match.group(1)))).isoformat(), "option"
    try:
        until = date.fromisoformat(text)
    except ValueError as exc:
        raise UsageError(
            f"--retention {option!r} is neither a number of days nor a date",
            "use e.g. --retention 90d or --retention 2027-06-30",
        ) from exc
    if until < created:
        raise UsageError(f"--retention {option} is before the bundle's creation date {created}")
    return until.isoformat(), "option"
