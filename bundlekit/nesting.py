"""Nesting depth of JSON and YAML documents, measured without recursion.

Python's json and PyYAML build nested documents recursively: ten thousand
``[`` make them raise RecursionError (or worse, exhaust the C stack) instead
of a clear error.  These checks run first, in loops, and refuse a document
nested deeper than ``Limits.max_nesting_depth`` with an :class:`InputError`
that names the file.
"""

from __future__ import annotations

import re
from array import array
from itertools import accumulate
from pathlib import Path

from bundlekit.errors import InputError

#: A JSON string literal (with escapes); brackets inside strings do not nest.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)  # unrolled: 2x faster
_BRACKETS = b"[]{}"
_NOT_BRACKETS = bytes(b for b in range(256) if b not in _BRACKETS)
_STEPS = bytes.maketrans(b"[]{}", b"\x01\xff\x01\xff")


def _too_deep(path: Path, what: str, limit: int) -> InputError:
    return InputError(
        f"{what} {path} nests deeper than {limit} levels",
        "no real config or dashboard nests this deep; the file is corrupt or hostile",
    )


def check_json_depth(data: bytes, limit: int, path: Path, what: str) -> None:
    """Refuse JSON nested more than ``limit`` arrays/objects deep.

    Strings are removed first (by a regex, in C), then only the bracket bytes
    are walked, so the cost is linear and small.  Unbalanced brackets are left
    for the JSON parser to report.
    """
    brackets = _JSON_STRING.sub(b"", data).translate(None, _NOT_BRACKETS)
    # +1 for an opening bracket, -1 for a closing one, as signed bytes; the
    # running sum is the depth, its maximum the document's depth (all in C).
    steps = array("b", brackets.translate(_STEPS))
    if max(accumulate(steps), default=0) > limit:
        raise _too_deep(path, what, limit)


def check_yaml_depth(data: bytes, limit: int, path: Path, what: str) -> None:
    """Refuse YAML nested more than ``limit`` collections deep, aliases included.

    The event parsers (PyYAML's and LibYAML's) are iterative (a state machine
    with an explicit stack); only the composer and constructor recurse.  So the events are
    walked here with a stack of subtree heights; an alias counts as deep as
    the anchored collection it stands for, so ``[*a]`` chains cannot hide
    depth from the check.  Syntax errors are left for the loader to report.
    """
    import yaml

    heights: dict[str, int] = {}  # anchored collection -> its height (levels, itself included)
    stack: list[tuple[str | None, int]] = []  # open collections: (anchor, tallest child so far)

    def child(height: int) -> None:
        if stack:
            anchor, tallest = stack[-1]
            stack[-1] = (anchor, max(tallest, height))

    try:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # LibYAML when present: ~10x faster
        for event in yaml.parse(data, Loader=loader):
            if isinstance(event, yaml.CollectionStartEvent):
                stack.append((event.anchor, 0))
                if len(stack) > limit:
                    raise _too_deep(path, what, limit)
            elif isinstance(event, yaml.CollectionEndEvent):
                anchor, tallest = stack.pop()
                if anchor is not None:
                    heights[anchor] = tallest + 1
                child(tallest + 1)
            elif isinstance(event, yaml.AliasEvent):
                height = heights.get(event.anchor or "", 0)
                if len(stack) + height > limit:
                    raise _too_deep(path, what, limit)
                child(height)
    except yaml.YAMLError:
        return
