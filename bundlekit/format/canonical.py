"""Canonical JSON (RFC 8785) out, strict JSON in.

Canonical output means equal content gives equal bytes, so a manifest's hash
and signature depend only on what it says.  Strict input refuses duplicate
keys, which different parsers resolve differently (a classic way to make a
signed document say two things).

Strict input also refuses text that is not Unicode: invalid UTF-8 (overlong
forms and encoded surrogates included) fails to decode, and a JSON escape of a
lone surrogate (``"\\ud800"``) parses into a Python string that cannot be
encoded, hashed, compared or printed later.  Both are format errors here, at
the door, rather than a crash wherever the string is next used.
"""

from __future__ import annotations

import json
import re
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


#: Where a surrogate escape may start; a document without one cannot hold a lone surrogate.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def loads(data: bytes, what: str) -> Any:
    """Parse strict JSON (UTF-8, no duplicate keys, integers only); FormatError naming ``what``."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(
            f"{what} is not valid UTF-8 ({exc})",
            f"the {what} is corrupt or was crafted to crash its readers",
        ) from exc
    try:
        document = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_constant=_reject_constant,
            parse_float=_reject_float,
        )
    except (ValueError, RecursionError) as exc:
        raise FormatError(
            f"{what} is not valid JSON ({exc})",
            f"the {what} is corrupt or was edited by hand",
        ) from exc
    # One C-speed scan; the walk runs only when a surrogate escape is present at all.
    if _SURROGATE_ESCAPE.search(text) and _holds_lone_surrogate(document):
        raise FormatError(
            f"{what} is not valid Unicode (it escapes a lone UTF-16 surrogate)",
            f"the {what} is corrupt or was crafted to crash its readers",
        )
    return document


def _holds_lone_surrogate(document: Any) -> bool:
    """Whether any key or string in ``document`` holds a surrogate (iterative: no recursion).

    json joins an escaped surrogate *pair* into one character, so a surrogate
    left in a parsed string is always a lone one.
    """
    stack = [document]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False
