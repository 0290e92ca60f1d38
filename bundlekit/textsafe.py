"""Untrusted strings made safe to print on a terminal.

A bundle is hostile until verified, and even a verified one carries strings
its producer chose: custody fields, dashboard titles, key ids, file names, a
collector's error details.  Printed raw, an escape sequence in any of them can
clear the screen, rewrite earlier lines (a forged "OK"), set the window title
or, on some terminals, inject input.  Bidirectional and zero-width format
characters can make a name read differently from what it is.

Every such string goes through :func:`neutralize` before it reaches text
output.  JSON output needs none of this: JSON escapes control characters
itself and keeps the exact value.
"""

from __future__ import annotations

import unicodedata

#: Unicode categories that never print as themselves: controls (C0, DEL, C1),
#: format characters (bidi overrides, zero-width), surrogates, private use,
#: unassigned, and the line and paragraph separators.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def neutralize(text: str) -> str:
    """``text`` with every non-printing character shown as a visible escape.

    ``\\x1b[2J`` becomes the eight characters ``\\x1b[2J``: readable, inert.
    Printable text (the common case) is returned as it is, without copying.
    """
    if text.isascii() and text.isprintable():
        return text
    return "".join(_escape(ch) if _unsafe(ch) else ch for ch in text)


def neutralize_lines(text: str) -> str:
    """Like :func:`neutralize`, but keeps line breaks.

    For messages bundlekit composed itself over several lines, with untrusted
    values inside them (which should have been neutralized on their own).
    """
    return "\n".join(neutralize(line) for line in text.split("\n"))


def _unsafe(ch: str) -> bool:
    return unicodedata.category(ch) in _UNSAFE_CATEGORIES


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"
