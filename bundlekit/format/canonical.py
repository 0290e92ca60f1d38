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


def is_canonical_schema_valid(document: Any, raw: bytes) -> bool:
    """Whether ``raw`` is the RFC 8785 form of ``document``, for schema-valid manifests.

    A manifest that passed the schema has ASCII keys and integer numbers only;
    for such documents Python's sorted, compact, non-ASCII-escaping JSON
    encoder produces exactly the RFC 8785 bytes (keys sort identically by code
    point and by UTF-16 unit when ASCII; escapes match), and it is written in C.
    A test checks the equivalence.
    """
    fast = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return fast.encode("utf-8") == raw


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def _reject_float(text: str) -> Any:
    raise ValueError(f"non-integer number {text} (bundlekit documents hold integers only)")


def loads(data: bytes, what: str) -> Any:
    """Parse strict JSON (UTF-8, no duplicate keys, integers only); FormatError naming ``what``."""
    try:
        return json.loads(
            data.decode("utf-8"),
            object_pairs_hook=_no_duplicates,
            parse_constant=_reject_constant,
            parse_float=_reject_float,
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise FormatError(
            f"{what} is not valid JSON ({exc})",
            f"the {what} is corrupt or was edited by hand",
        ) from exc
