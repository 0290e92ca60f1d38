"""Segment framing and its defences against corrupt or hostile files."""

from __future__ import annotations

import io

import pytest
import zstandard

from bundlekit.errors import FormatError, LimitExceeded
from bundlekit.format.segment import compress_segment, frame, iter_records
from bundlekit.limits import DEFAULT_LIMITS, Limits

RECORDS = [bytes([i % 251]) * (i * 37 + 1) for i in range(200)]
RAW = b"".join(frame(r) for r in RECORDS)


def read(blob: bytes, limits: Limits = DEFAULT_LIMITS) -> list[bytes]:
    return list(iter_records(io.BytesIO(blob), limits, compressed_size=len(blob)))


@pytest.mark.parametrize("threads", [0, 2])
def test_round_trip_keeps_every_record_in_order(threads: int) -> None:
    blob = compress_segment(RAW, threads=threads)
    params = zstandard.get_frame_parameters(blob)
    assert params.content_size == len(RAW)
    assert params.has_checksum
    assert read(blob) == RECORDS


def test_empty_record_is_preserved() -> None:
    records = [b"a", b"", b"bc"]
    assert read(compress_segment(b"".join(frame(r) for r in records))) == records


BAD_SEGMENTS: dict[str, tuple[bytes, type[Exception], str]] = {
    "truncated_frame": (compress_segment(RAW)[:-7], FormatError, "ends after"),
    "trailing_bytes_after_frame": (
        compress_segment(RAW) + b"\x00junk",
        FormatError,
        "after its zstd frame",
    ),
    "second_frame_appended": (
        compress_segment(RAW) + compress_segment(RAW),
        FormatError,
        "after its zstd frame",
    ),
    "record_cut_mid_way": (compress_segment(RAW[:-3]), FormatError, "inside a record"),
    "not_zstd_at_all": (b"PK\x03\x04 this is a zip", FormatError, "not a zstd frame"),
    "no_checksum": (
        zstandard.ZstdCompressor(write_checksum=False).compress(RAW),
        FormatError,
        "no checksum",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_SEGMENTS))
def test_bad_segment_is_refused(name: str) -> None:
    blob, error, words = BAD_SEGMENTS[name]
    with pytest.raises(error, match=words):
        read(blob)


def test_unknown_content_size_is_refused() -> None:
    cctx = zstandard.ZstdCompressor(write_checksum=True, write_content_size=False)
    out = io.BytesIO()
    with cctx.stream_writer(out, closefd=False) as writer:
        writer.write(RAW)
    with pytest.raises(FormatError, match="content size"):
        read(out.getvalue())


def test_flipped_byte_fails_the_checksum_or_decoder() -> None:
    blob = bytearray(compress_segment(RAW))
    blob[len(blob) // 2] ^= 0x40
    with pytest.raises(FormatError):
        read(bytes(blob))


def test_declared_size_over_limit_is_refused_before_inflating() -> None:
    blob = compress_segment(RAW)
    with pytest.raises(LimitExceeded, match="over the limit"):
        read(blob, Limits(max_segment_bytes=len(RAW) - 1))


def test_decompression_bomb_ratio_is_refused() -> None:
    bomb = compress_segment(frame(b"\x00" * 3_000_000))
    with pytest.raises(LimitExceeded, match="expands"):
        read(bomb, Limits(max_compression_ratio=100))


def test_record_longer_than_request_limit_is_refused() -> None:
    blob = compress_segment(frame(b"x" * 5000))
    with pytest.raises(LimitExceeded, match="request limit"):
        read(blob, Limits(max_request_bytes=4096))
