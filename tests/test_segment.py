"""Segment framing and its defences against corrupt or hostile files."""

from __future__ import annotations

import io

import pytest
import zstandard

from bundlekit.errors import FormatError, LimitExceeded
from bundlekit.format.segment import (
    check_stored_size,
    compress_segment,
    iter_records,
)
from bundlekit.limits import DEFAULT_LIMITS, Limits
from bundlekit.otlp.framing import frame
from tests import zstdframes as zf

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
    "truncated_frame": (compress_segment(RAW)[:-7], FormatError, "ends inside its zstd frame"),
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
    with pytest.raises(LimitExceeded, match="expanding more than the 100x bound"):
        read(bomb, Limits(max_compression_ratio=100))


def test_record_longer_than_request_limit_is_refused() -> None:
    blob = compress_segment(frame(b"x" * 5000))
    with pytest.raises(LimitExceeded, match="request limit"):
        read(blob, Limits(max_request_bytes=4096))


# -- every segment limit at its boundary: exactly at the cap passes, one over fails --------


def test_segment_exactly_at_the_size_limit_is_read() -> None:
    blob = compress_segment(RAW)
    assert read(blob, Limits(max_segment_bytes=len(RAW))) == RECORDS


def test_segment_one_byte_over_the_size_limit_is_refused() -> None:
    blob = compress_segment(RAW)
    with pytest.raises(LimitExceeded, match=f"declares {len(RAW)} uncompressed bytes, over"):
        read(blob, Limits(max_segment_bytes=len(RAW) - 1))


def test_record_exactly_at_the_request_limit_is_read() -> None:
    blob = compress_segment(frame(b"x" * 4096) + frame(b"y"))
    assert read(blob, Limits(max_request_bytes=4096)) == [b"x" * 4096, b"y"]


def test_record_one_byte_over_the_request_limit_is_refused() -> None:
    blob = compress_segment(frame(b"y") + frame(b"x" * 4097))
    with pytest.raises(LimitExceeded, match="record of 4097 bytes exceeds the 4096-byte"):
        read(blob, Limits(max_request_bytes=4096))


def test_record_length_over_the_limit_is_refused_before_its_bytes_arrive() -> None:
    """A length prefix alone is enough to refuse: nothing waits for (or buffers) 4 GiB."""
    blob = compress_segment(b"\xff\xff\xff\xff" + b"z" * 10)
    with pytest.raises(LimitExceeded, match="record of 4294967295 bytes"):
        read(blob)


#: A 21-byte frame declaring 42,000 zero bytes (10,500 empty records): exactly 2,000x.
AT_RATIO = zf.zero_frame(42_000)


def test_frame_exactly_at_the_compression_ratio_bound_is_read() -> None:
    assert len(AT_RATIO) * DEFAULT_LIMITS.max_compression_ratio == 42_000
    assert read(AT_RATIO) == [b""] * 10_500


def test_frame_one_byte_over_the_compression_ratio_bound_is_refused() -> None:
    blob = zf.zero_frame(42_001)
    assert len(blob) == len(AT_RATIO)
    with pytest.raises(LimitExceeded, match="42001 uncompressed bytes from 21 compressed"):
        read(blob)


def test_compression_ratio_bound_follows_the_limits() -> None:
    with pytest.raises(LimitExceeded, match="expanding more than the 1999x bound"):
        read(AT_RATIO, Limits(max_compression_ratio=1999))


def test_frame_exactly_at_the_window_limit_is_read() -> None:
    blob = compress_segment(RAW)  # single-segment frame: its window is its content size
    window = zstandard.get_frame_parameters(blob).window_size
    assert window == len(RAW)
    assert read(blob, Limits(max_window_bytes=window)) == RECORDS


def test_frame_one_byte_over_the_window_limit_is_refused() -> None:
    blob = compress_segment(RAW)
    with pytest.raises(LimitExceeded, match=f"{len(RAW)}-byte window, over the limit of"):
        read(blob, Limits(max_window_bytes=len(RAW) - 1))


def test_window_limit_applies_to_windowed_frames_too() -> None:
    blob = zf.zero_frame(1 << 20, window_log=20)
    ok = Limits(max_window_bytes=1 << 20, max_compression_ratio=10**6)
    assert len(read(blob, ok)) == (1 << 20) // 4
    with pytest.raises(LimitExceeded, match="1048576-byte window"):
        read(blob, Limits(max_window_bytes=(1 << 20) - 1, max_compression_ratio=10**6))


@pytest.mark.parametrize("level", range(1, 20))
def test_default_window_limit_accepts_every_level_the_writer_offers(level: int) -> None:
    """pack --level takes 1..19; none asks for a window over the default cap at any size."""
    size = DEFAULT_LIMITS.max_segment_bytes
    params = zstandard.ZstdCompressionParameters.from_level(level, source_size=size)
    assert 1 << params.window_log <= DEFAULT_LIMITS.max_window_bytes


def test_level_19_segment_over_8_mib_is_read_with_the_default_window_limit() -> None:
    raw = frame(b"p" * 1000) * 8500  # 8,534,000 bytes: over 8 MiB, so the window is 8 MiB
    blob = compress_segment(raw, level=19)
    assert zstandard.get_frame_parameters(blob).window_size == DEFAULT_LIMITS.max_window_bytes
    # (the repetitive content compresses past the ratio bound, which is not under test)
    assert len(read(blob, Limits(max_compression_ratio=10**6))) == 8500


def test_stored_segment_exactly_at_its_bound_passes_and_one_over_fails() -> None:
    limits = Limits(max_segment_bytes=1 << 20)
    bound = limits.max_stored_segment_bytes
    check_stored_size("s", bound, limits)
    with pytest.raises(LimitExceeded, match=f"s is {bound + 1} bytes, more than any segment"):
        check_stored_size("s", bound + 1, limits)


@pytest.mark.parametrize(
    ("size", "level", "threads"),
    [(0, 3, 0), (1, 3, 0), (1000, 19, 0), (1 << 17, 1, 0), ((1 << 20) + 7, 3, 2), (1 << 20, 19, 0)],
)
def test_stored_segment_bound_covers_zstds_worst_case(size: int, level: int, threads: int) -> None:
    """Incompressible content at the segment limit still fits the stored bound."""
    import os

    limits = Limits(max_segment_bytes=size)
    blob = compress_segment(os.urandom(size), level=level, threads=threads)
    assert len(blob) <= limits.max_stored_segment_bytes


def test_oversized_stored_segment_is_refused_by_the_reader() -> None:
    limits = Limits(max_segment_bytes=1 << 10)
    blob = compress_segment(RAW)
    with pytest.raises(LimitExceeded, match="more than any segment within the limits"):
        read(blob + bytes(limits.max_stored_segment_bytes), limits)


@pytest.mark.parametrize("level", [1, 3, 19])
@pytest.mark.parametrize("size", [0, 1, 7, 1000, 131_071, 131_072, 131_073, 700_001])
def test_every_frame_the_writer_makes_is_read_back(level: int, size: int) -> None:
    """The frame walk agrees with zstd on raw, RLE and compressed blocks, single-segment or not."""
    import random

    rng = random.Random(size * 31 + level)
    records, total = [], 0
    while total < size:
        kind = rng.randrange(3)
        length = min(rng.randrange(1, 40_000), size - total)
        if kind == 0:
            payload = rng.randbytes(length)  # raw blocks
        elif kind == 1:
            payload = b"\0" * length  # RLE blocks
        else:
            payload = (b"span-%d " % rng.randrange(50)) * (length // 8 + 1)
        records.append(payload[:length])
        total += length
    blob = compress_segment(b"".join(frame(r) for r in records), level=level)
    assert read(blob, Limits(max_compression_ratio=10**6)) == records
