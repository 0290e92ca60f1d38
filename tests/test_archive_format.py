"""The archive reader's primitives, one rule at a time (the hostile-archive tests cover them
end to end; these pin each rule's exact behaviour, as mutation testing showed was needed)."""

from __future__ import annotations

import pytest

from bundlekit.format.archive import _check_checksum, _number, _parse_pax, member_header
from bundlekit.format.defects import Defect
from bundlekit.format.reader import ContainerError


def test_numbers_are_octal_terminated_by_nul_or_space() -> None:
    assert _number(b"0000644\x00", "mode") == 0o644
    assert _number(b"   17 \x00\x00", "size") == 0o17
    assert _number(b"12\x0099", "size") == 0o12  # nothing after the first NUL counts
    assert _number(b"\x00" * 12, "size") == 0  # an empty field is zero
    assert _number(b"        ", "size") == 0


@pytest.mark.parametrize(
    ("field", "words"),
    [
        (b"\x80" + bytes(10) + b"\x01", "base-256"),
        (b"\xff" * 12, "base-256"),
        (b"00000000009\x00", "not an octal number"),
        (b"0000000001a\x00", "not an octal number"),
        (b"-0000000001\x00", "not an octal number"),
    ],
)
def test_numbers_that_are_not_plain_octal_are_refused(field: bytes, words: str) -> None:
    with pytest.raises(ContainerError, match=words) as caught:
        _number(field, "size")
    assert caught.value.defect is Defect.ARCHIVE_MALFORMED


def test_header_checksum_accepts_the_unsigned_and_signed_sums_only() -> None:
    header = member_header("otlp/traces/000001.binpb.zst", 5, 0)
    _check_checksum(header)
    high = bytearray(header)
    high[0:4] = "é".encode() + b"xy"  # bytes over 0x7f: signed and unsigned sums differ
    unsigned = sum(high[:148]) + 8 * 0x20 + sum(high[156:])
    signed = unsigned - 2 * sum(b for b in high[:148] + high[156:] if b > 0x7F)
    assert signed != unsigned
    for total in (unsigned, signed):
        high[148:156] = f"{total:06o}\x00 ".encode()
        _check_checksum(bytes(high))
    for total in (unsigned + 1, unsigned - 1, 0):
        high[148:156] = f"{total:06o}\x00 ".encode()
        with pytest.raises(ContainerError, match="checksum does not match"):
            _check_checksum(bytes(high))


def _record(key: str, value: str) -> bytes:
    body = f" {key}={value}\n".encode()
    length = len(body) + len(str(len(body)))
    if len(str(length)) != len(str(len(body))):
        length += 1
    return str(length).encode() + body


def test_pax_records_are_parsed_exactly() -> None:
    data = _record("path", "attachments/" + "n" * 120) + _record("size", "42")
    assert _parse_pax(data) == {"path": "attachments/" + "n" * 120, "size": "42"}
    assert _parse_pax(b"") == {}
    assert _parse_pax(_record("comment", "a=b=c")) == {"comment": "a=b=c"}  # first '=' splits


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"x path=a\n", "no valid length"),
        (b"12path=abc\n", "no valid length"),
        (b"99 path=a\n", "length is wrong"),
        (b"9 path=ab\n", "length is wrong"),  # says 9, the record is 10 bytes
        (b"10 path=ab", "length is wrong"),  # no closing newline
        (b"2 \n", "length is wrong"),  # shorter than its own length field
        (b"3 \n", "is not accepted"),  # no key at all
        (_record("path", "a") + b"5 x", "length is wrong"),  # a second record cut short
        (_record("linkpath", "/etc/passwd"), "linkpath"),
        (_record("GNU.sparse.map", "0,1"), "GNU.sparse.map"),
        (b"8 pathx\n", "is not accepted"),  # no '='
        (b"10 path=\xff\n", "not UTF-8"),
    ],
)
def test_malformed_or_dangerous_pax_records_are_refused(data: bytes, words: str) -> None:
    with pytest.raises(ContainerError, match=words) as caught:
        _parse_pax(data)
    assert caught.value.defect is Defect.ARCHIVE_MALFORMED
