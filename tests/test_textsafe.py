"""Untrusted strings are neutralized before they reach a terminal."""

from __future__ import annotations

import pytest

from bundlekit.textsafe import neutralize, neutralize_lines


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b[2J\x1b[HOK", "\\x1b[2J\\x1b[HOK"),  # clear screen, home cursor, forged OK
        ("\x1b]0;pwned\x07", "\\x1b]0;pwned\\x07"),  # OSC: set the window title
        ("a\rOK", "a\\x0dOK"),  # carriage return overwrites the line
        ("line\nforged", "line\\x0aforged"),  # a fake extra line
        ("tab\there", "tab\\x09here"),
        ("\x9b31m", "\\x9b31m"),  # C1 CSI: an escape sequence in one byte
        ("del\x7f", "del\\x7f"),
        ("evil\u202egnp.exe", "evil\\u202egnp.exe"),  # right-to-left override
        ("zero\u200bwidth", "zero\\u200bwidth"),
        ("para\u2029graph", "para\\u2029graph"),
        ("lone \ud800 surrogate", "lone \\ud800 surrogate"),
        ("tag \U000e0041", "tag \\U000e0041"),  # invisible tag character (format)
    ],
)
def test_control_and_format_characters_are_shown_escaped(raw: str, shown: str) -> None:
    assert neutralize(raw) == shown


@pytest.mark.parametrize("text", ["plain ascii", "Zürich, 東京 ✓", "café 🚀", ""])
def test_printable_text_is_unchanged(text: str) -> None:
    assert neutralize(text) == text


def test_lines_keep_their_breaks_but_nothing_else() -> None:
    assert neutralize_lines("first\nsecond \x1b[31mred") == "first\nsecond \\x1b[31mred"
