"""Canonical JSON (RFC 8785) out, strict JSON in.

Canonical output means equal content gives equal bytes, so a manifest's hash
and signature depend only on what it says.  Strict input refuses duplicate
keys, which different parsers resolve differently (a classic way to make a
signed document say two things).
"""

from __future__ import annotations

import json
from typing import Any

from bundlekit.errors import FormatError


def dumps(document: Any) -> bytes:
    import rfc8785

    return bytes(rfc8785.dumps(document))


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def loads(data: bytes, what: str) -> Any:
    """Parse strict JSON (UTF-8, no duplicate keys, no NaN); FormatError naming ``what``."""
    try:
        return json.loads(
            data.decode("utf-8"),
            object_pairs_hook=_no_duplicates,
            parse_constant=_reject_constant,
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise FormatError(
            f"{what} is not valid JSON ({exc})",
            f"the {what} is corrupt or was edited by hand",
        ) from exc
