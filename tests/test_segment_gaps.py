"""Segment framing defects that mutation testing found unguarded (docs/mutation.md).

The decompression caps themselves (max_segment_bytes, max_request_bytes,
max_compression_ratio) are tested in test_segment.py.  The second half guards
the bounded decoder (``inflate``) and the frame walker that feeds it: the io
contract of its ``read``, block and header sizes at their maxima, how far
ahead of the decoder the source is read, and what the decoder is asked for.
"""

from __future__ import annotations

import hashlib
import io
import random
from typing import Any

import pytest
import zstandard

from bundlekit.errors import FormatError
from bundlekit.format.segment import (
    _FrameWalker,
    check_frame_header,
    compress_segment,
    inflate,
    iter_records,
    write_segment,
)
from bundlekit.limits import DEFAULT_LIMITS, Limits
from bundlekit.otlp.framing import frame
from tests import zstdframes as zf

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
    return list(iter_records(stream, compressed_size=size, limits=DEFAULT_LIMITS))


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


# -- the frame walker is a file-like object: io's read contract ---------------------------

#: Several compressed blocks (zstd's blocks hold at most 128 KiB of content).
MULTI_BLOCK = compress_segment(random.Random(6).randbytes(300_000) + bytes(200_000))


def walker(blob: bytes) -> _FrameWalker:
    stream = io.BytesIO(blob)
    head = stream.read(18)
    return _FrameWalker(stream, head, check_frame_header(head, None, limits=DEFAULT_LIMITS))


@pytest.mark.parametrize("size", [1, 2, 3, 4, 7, 4096])
def test_frame_walker_read_never_returns_more_than_asked(size: int) -> None:
    # Before the fix a read that met a block header returned all three of its bytes.
    source = walker(MULTI_BLOCK + b"trailing")
    parts = []
    while part := source.read(size):
        assert 1 <= len(part) <= size
        parts.append(part)
    assert b"".join(parts) == MULTI_BLOCK  # the frame, exactly: trailing bytes are not handed on
    assert source.done


def test_frame_walker_read_zero_returns_nothing_and_keeps_its_place() -> None:
    # Before the fix read(0) handed out a whole chunk (here: the whole frame).
    source = walker(MULTI_BLOCK)
    assert source.read(0) == b""
    assert not source.done
    assert source.read(10) == MULTI_BLOCK[:10]


# -- block and header sizes at their maxima ----------------------------------------------


@pytest.mark.parametrize("window_log", [17, 20])
def test_block_of_exactly_the_maximum_size_is_read(window_log: int) -> None:
    blob = zf.header(zf.MAX_BLOCK, window_log=window_log) + zf.rle(7, zf.MAX_BLOCK, last=True)
    blob += zf.checksum(bytes([7]) * zf.MAX_BLOCK)
    chunks = inflate(io.BytesIO(blob), Limits(max_compression_ratio=10**6))
    assert b"".join(chunks) == bytes([7]) * zf.MAX_BLOCK


def test_block_one_byte_over_the_maximum_is_refused_even_in_a_larger_window() -> None:
    # A 1 MiB window does not raise the 128 KiB Block_Maximum_Size (RFC 8878 3.1.1.2.4).
    blob = zf.header(1 << 20, window_log=20) + zf.rle(0, zf.MAX_BLOCK + 1, last=True)
    blob += zf.checksum(bytes(zf.MAX_BLOCK + 1))
    with pytest.raises(FormatError, match="131073-byte block, over its 131072-byte maximum"):
        list(inflate(io.BytesIO(blob), Limits(max_compression_ratio=10**6)))


def header_of_18_bytes(content_size: int) -> bytes:
    """The longest frame header: window descriptor, 4-byte dictionary id (0: none), 8-byte size."""
    descriptor = (3 << 6) | 4 | 3
    return (
        zf.MAGIC
        + bytes([descriptor, (17 - 10) << 3])
        + (0).to_bytes(4, "little")
        + content_size.to_bytes(8, "little")
    )


class Trickle:
    """A source that hands out one byte per read, as a pipe or slow socket may."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)
        self.pulled = 0

    def read(self, size: int = -1, /) -> bytes:
        data = self._data.read(min(size, 1) if size >= 0 else 1)
        self.pulled += len(data)
        return data


@pytest.mark.parametrize("source", [io.BytesIO, Trickle])
def test_frame_header_of_the_maximum_18_bytes_is_read_whole(source: Any) -> None:
    head = header_of_18_bytes(8)
    assert zstandard.frame_header_size(head) == 18
    blob = head + zf.raw(bytes(8), last=True) + zf.checksum(bytes(8))
    assert list(iter_records(source(blob), compressed_size=len(blob), limits=DEFAULT_LIMITS)) == [
        b"",
        b"",
    ]


# -- how far the source is read ahead of the decoder ------------------------------------


class Counting(io.BytesIO):
    """A file that counts the bytes it has handed out."""

    pulled = 0

    def read(self, size: int | None = -1, /) -> bytes:
        data = super().read(size)
        self.pulled += len(data)
        return data


def test_compressed_input_is_read_as_it_is_decoded_not_all_at_once() -> None:
    # Incompressible: zstd stores it in raw blocks, one compressed byte per output byte.
    blob = compress_segment(random.Random(7).randbytes(8 << 20))
    source = Counting(blob)
    first = next(inflate(source, limits=DEFAULT_LIMITS))
    assert len(first) == 1 << 20
    assert source.pulled < 3 << 20  # about one output chunk and a read chunk, not all 8 MiB


# -- what the decoder is asked for --------------------------------------------------------


class ProbedReader:
    """zstd's stream reader, recording each read; optionally ending early without an error."""

    def __init__(self, real: Any, asks: list[tuple[int, int]], stop_after: int | None) -> None:
        self._real = real
        self._asks = asks
        self._stop_after = stop_after
        self._given = 0

    def read(self, size: int) -> bytes:
        self._asks.append((self._given, size))
        if self._stop_after is not None:
            size = min(size, self._stop_after - self._given)
            if size <= 0:
                return b""  # as python-zstandard does when its input ends mid-frame
        out: bytes = self._real.read(size)
        self._given += len(out)
        return out


def probe_decoder(
    monkeypatch: pytest.MonkeyPatch, stop_after: int | None = None, read_size: int | None = None
) -> list[tuple[int, int]]:
    """Wrap the real decoder ``inflate`` builds; returns the (bytes so far, size asked) list."""
    asks: list[tuple[int, int]] = []
    real = zstandard.ZstdDecompressor

    class Probed:
        def __init__(self, **kwargs: Any) -> None:
            self._dctx = real(**kwargs)

        def stream_reader(self, source: Any, **kwargs: Any) -> ProbedReader:
            if read_size is not None:
                kwargs["read_size"] = read_size
            return ProbedReader(self._dctx.stream_reader(source, **kwargs), asks, stop_after)

    monkeypatch.setattr(zstandard, "ZstdDecompressor", Probed)
    return asks


@pytest.mark.parametrize("inflates_to", [(3 << 20) + 5, 64 << 20])
def test_decoder_is_never_asked_for_more_than_one_byte_past_the_declared_size(
    monkeypatch: pytest.MonkeyPatch, inflates_to: int
) -> None:
    declared = (3 << 20) + 5
    blob = zf.header(declared, window_log=17) + zf.zero_runs(inflates_to)
    blob += zf.checksum(bytes(declared)) if inflates_to == declared else b"\0\0\0\0"
    asks = probe_decoder(monkeypatch)
    chunks = inflate(io.BytesIO(blob), Limits(max_compression_ratio=10**6))
    if inflates_to == declared:
        assert sum(len(c) for c in chunks) == declared
    else:
        with pytest.raises(FormatError, match=f"inflates past the {declared} bytes"):
            list(chunks)
    assert asks
    for given, size in asks:
        assert size <= declared - given + 1, asks
    given, size = asks[-1]
    assert size == declared - given + 1, asks  # the last ask reaches the one byte that finds a lie


@pytest.mark.parametrize("stop_after", [len(RAW), len(RAW) - 1])
def test_decoder_ending_early_without_an_error_is_not_trusted(
    monkeypatch: pytest.MonkeyPatch, stop_after: int
) -> None:
    # python-zstandard's reader ends quietly when its input ends mid-frame; inflate
    # must not rest on the decoder to notice a short output or an unfinished frame.
    probe_decoder(monkeypatch, stop_after=stop_after, read_size=16)
    with pytest.raises(
        FormatError, match=f"ends after {stop_after} of the {len(RAW)} bytes its frame declares"
    ):
        list(inflate(io.BytesIO(BLOB), limits=DEFAULT_LIMITS))


def test_frame_cut_right_after_an_empty_last_block_is_missing_only_its_checksum() -> None:
    # zstd's streaming writer ends a frame with an empty last block like this one.
    blob = zf.header(8, window_log=17) + zf.raw(bytes(8)) + zf.raw(b"", last=True)
    assert list(iter_records(io.BytesIO(blob + zf.checksum(bytes(8))), limits=DEFAULT_LIMITS)) == [
        b"",
        b"",
    ]
    with pytest.raises(FormatError, match="ends before its 4-byte checksum"):
        list(iter_records(io.BytesIO(blob), limits=DEFAULT_LIMITS))


def test_window_limit_below_zstds_1_kib_minimum_still_reads_a_frame_within_it() -> None:
    # zstd refuses a decoder window cap under 1 KiB; a smaller limit is checked at the header.
    blob = compress_segment(frame(b"x" * 100))  # single-segment frame: a 104-byte window
    assert list(iter_records(io.BytesIO(blob), Limits(max_window_bytes=104))) == [b"x" * 100]
    with pytest.raises(FormatError, match="104-byte window, over the limit of 103"):
        list(iter_records(io.BytesIO(blob), Limits(max_window_bytes=103)))
