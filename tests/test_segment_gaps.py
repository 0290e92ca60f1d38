"""Segment framing defects that mutation testing found unguarded (docs/mutation.md).

The decompression caps themselves (max_segment_bytes, max_request_bytes,
max_compression_ratio) are tested in test_segment.py.
"""

from __future__ import annotations

import hashlib
import io

import pytest

from bundlekit.errors import FormatError
from bundlekit.format.segment import compress_segment, frame, iter_records, write_segment

RECORDS = [bytes([i % 251]) * (i * 37 + 1) for i in range(200)]
RAW = b"".join(frame(r) for r in RECORDS)
BLOB = compress_segment(RAW)


class ShortReads:
    """A stream that hands out its bytes in the pieces given, like a socket or pipe."""

    def __init__(self, *pieces: bytes) -> None:
        self._pieces = list(pieces)

    def read(self, size: int = -1, /) -> bytes:
        if not self._pieces:
            return b""
        piece = self._pieces.pop(0)
        if 0 <= size < len(piece):
            self._pieces.insert(0, piece[size:])
            piece = piece[:size]
        return piece


def read(stream: io.BytesIO | ShortReads, size: int | None = None) -> list[bytes]:
    return list(iter_records(stream, compressed_size=size))


def test_frame_cut_before_its_checksum_is_refused() -> None:
    # Every content byte is there; only the 4-byte XXH64 checksum is missing.
    with pytest.raises(FormatError, match="ends before its 4-byte checksum"):
        read(io.BytesIO(BLOB[:-4]), len(BLOB) - 4)


@pytest.mark.parametrize("cut", [1, 2, 3])
def test_frame_with_part_of_its_checksum_is_refused(cut: int) -> None:
    with pytest.raises(FormatError, match="ends before its 4-byte checksum"):
        read(io.BytesIO(BLOB[:-cut]), len(BLOB) - cut)


def test_trailing_bytes_arriving_in_a_later_read_are_refused() -> None:
    with pytest.raises(FormatError, match="bytes after its zstd frame"):
        read(ShortReads(BLOB, b"\x00junk"))


def test_segment_delivered_in_small_reads_gives_every_record() -> None:
    pieces = [BLOB[i : i + 1000] for i in range(0, len(BLOB), 1000)]
    assert read(ShortReads(*pieces)) == RECORDS


def test_segment_ending_inside_a_length_prefix_is_refused() -> None:
    with pytest.raises(FormatError, match=r"inside a record \(2 bytes left over\)"):
        read(io.BytesIO(compress_segment(RAW + b"\x00\x00")))


def test_segment_ending_inside_a_record_body_names_the_leftover() -> None:
    cut = RAW[:-3]
    left = len(frame(RECORDS[-1])) - 3
    with pytest.raises(FormatError, match=rf"inside a record \({left} bytes left over\)"):
        read(io.BytesIO(compress_segment(cut)))


def test_write_segment_returns_the_size_and_digest_of_what_it_wrote() -> None:
    out = io.BytesIO()
    size, digest = write_segment(out, [frame(r) for r in RECORDS], len(RAW))
    assert size == len(out.getvalue())
    assert digest == hashlib.sha256(out.getvalue()).hexdigest()
    assert read(io.BytesIO(out.getvalue()), size) == RECORDS


@pytest.mark.parametrize("delta", [-1, 1])
def test_write_segment_refuses_parts_that_do_not_add_up_to_the_size(delta: int) -> None:
    out = io.BytesIO()
    with pytest.raises(ValueError, match=f"hold {len(RAW)} bytes, expected {len(RAW) + delta}"):
        write_segment(out, [RAW], len(RAW) + delta)
    assert out.getvalue() == b""


def test_wrong_checksum_is_reported_as_a_failed_decompression() -> None:
    blob = bytearray(BLOB)
    blob[-1] ^= 0xFF  # the content is intact; only its XXH64 checksum is wrong
    with pytest.raises(FormatError, match="failed to decompress"):
        read(io.BytesIO(bytes(blob)), len(blob))


@pytest.mark.parametrize("records", [[b""], [b"a", b""], [b"", b""]])
def test_empty_record_at_the_end_is_preserved(records: list[bytes]) -> None:
    blob = compress_segment(b"".join(frame(r) for r in records))
    assert read(io.BytesIO(blob), len(blob)) == records
