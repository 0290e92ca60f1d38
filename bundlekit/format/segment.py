"""Segment files: length-prefixed OTLP requests inside one zstd frame.

A segment is ``[4-byte big-endian length][Export*ServiceRequest bytes]``
repeated — the framing the OpenTelemetry Collector's file exporter writes with
``format: proto`` — compressed as a single zstd frame that records its content
size and a checksum.

A frame can lie: it may declare a small content size and then inflate far past
it (a run-length block of four bytes expands to 128 KiB, so a few tens of KB
reach gigabytes).  Checking sizes after a decoder call is therefore too late.
:func:`inflate` is the one way bundlekit decompresses a segment, and it bounds
memory *while* it decodes: the header is checked against ``Limits`` first, the
decoder hands out at most one bounded chunk per call and never more than one
byte past the declared size, and the frame's block structure is walked as its
bytes go by, so a frame cut short (even just before its checksum) or followed
by more bytes is refused.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Protocol, cast

from bundlekit.errors import FormatError, LimitExceeded
from bundlekit.limits import Limits
from bundlekit.otlp.framing import FRAME_HEADER_BYTES, frame_length

__all__ = [
    "OUTPUT_CHUNK",
    "ZSTD_MAGIC",
    "FrameHeader",
    "Readable",
    "Writable",
    "check_frame_header",
    "check_stored_size",
    "compress_segment",
    "inflate",
    "iter_records",
    "write_segment",
]

#: Compressed bytes read from the source per step while reading a segment.
_READ_CHUNK = 1 << 18
#: Most decompressed bytes the decoder may hand out per call: with the window
#: cap and one request, this is what bounds a reader's memory.
OUTPUT_CHUNK = 1 << 20
#: A zstd frame (RFC 8878 section 3.1.1) starts with these four bytes.
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
#: A zstd frame header is 6 to 18 bytes long (magic included).
_MAX_HEADER = 18
#: No zstd block regenerates more than this (Block_Maximum_Size).
_MAX_BLOCK = 128 * 1024
_CHECKSUM_BYTES = 4
_BLOCK_HEADER_BYTES = 3
_REWRITE_HINT = "the file is corrupt or was tampered with"
_FOREIGN_HINT = "bundlekit segments always have one; the file was not written by bundlekit"


class Writable(Protocol):
    def write(self, data: bytes, /) -> int: ...


class Readable(Protocol):
    """The one method a segment reader needs: files, sockets, tar members."""

    def read(self, size: int = -1, /) -> bytes: ...


def write_segment(
    handle: Writable, parts: Iterable[bytes], size: int, level: int = 3, threads: int = 0
) -> tuple[int, str]:
    """Compress already-framed ``parts`` (``size`` bytes in all) into ``handle``.

    The parts are joined and compressed in one call: python-zstandard releases
    the GIL for one-shot compression but not for its streaming objects, and a
    writer compresses on a background thread while the main thread parses.
    Returns (compressed bytes written, their SHA-256 in hex).
    """
    raw = b"".join(parts)
    if len(raw) != size:
        raise ValueError(f"segment parts hold {len(raw)} bytes, expected {size}")
    blob = compress_segment(raw, level=level, threads=threads)
    handle.write(blob)
    return len(blob), hashlib.sha256(blob).hexdigest()


def compress_segment(
    raw: bytes | bytearray | memoryview, level: int = 3, threads: int = 0
) -> bytes:
    """Compress one whole segment into a single frame carrying size and checksum."""
    import zstandard

    cctx = zstandard.ZstdCompressor(
        level=level, threads=threads, write_checksum=True, write_content_size=True
    )
    return cctx.compress(raw)


@dataclass(frozen=True)
class FrameHeader:
    """What a segment's frame header declares, once checked against the limits."""

    #: Bytes of the header itself (magic included).
    size: int
    content_size: int
    window_size: int

    @property
    def max_block(self) -> int:
        """The largest block this frame may hold (RFC 8878 Block_Maximum_Size)."""
        return min(self.window_size, _MAX_BLOCK)


def check_stored_size(name: str, stored: int, limits: Limits) -> None:
    """Refuse a stored segment larger than any valid frame within the limits.

    Lets a reader that holds a compressed segment in memory refuse a huge file
    before reading it, whatever its (possibly unsigned) manifest says.
    """
    bound = limits.max_stored_segment_bytes
    if stored > bound:
        raise LimitExceeded(
            f"{name} is {stored} bytes, more than any segment within the limits can take "
            f"({bound} bytes for {limits.max_segment_bytes} uncompressed)",
            "the file is not a bundlekit segment, or raise Limits.max_segment_bytes for "
            "bundles you already trust",
        )


def check_frame_header(head: bytes, compressed_size: int | None, limits: Limits) -> FrameHeader:
    """Validate a segment's zstd frame header against the format and ``limits``.

    Everything a decoder would allocate for is refused here, before a byte is
    inflated: an unknown or oversized content size, a window over the cap, a
    ratio over the bound; and what bundlekit never writes (no checksum, a
    dictionary, a skippable frame).
    """
    import zstandard

    if head[:4] != ZSTD_MAGIC:
        raise FormatError("segment is not a zstd frame", "the file is corrupt or not a segment")
    try:
        header_size = zstandard.frame_header_size(head)
        params = zstandard.get_frame_parameters(head)
    except zstandard.ZstdError as exc:
        raise FormatError(
            f"segment's zstd frame header is invalid ({exc})",
            "the file is corrupt or not a bundlekit segment",
        ) from exc
    size = params.content_size
    if size in (zstandard.CONTENTSIZE_UNKNOWN, zstandard.CONTENTSIZE_ERROR):
        raise FormatError(
            "segment's zstd frame does not declare its content size",
            "bundlekit segments always record it; the file was not written by bundlekit",
        )
    if not params.has_checksum:
        raise FormatError("segment's zstd frame carries no checksum", _FOREIGN_HINT)
    if params.dict_id:
        raise FormatError(
            f"segment's zstd frame needs dictionary {params.dict_id}",
            "bundlekit never writes dictionary-compressed segments",
        )
    if size > limits.max_segment_bytes:
        raise LimitExceeded(
            f"segment declares {size} uncompressed bytes, over the limit of "
            f"{limits.max_segment_bytes}",
            "raise Limits.max_segment_bytes only for bundles you already trust",
        )
    if params.window_size > limits.max_window_bytes:
        raise LimitExceeded(
            f"segment's zstd frame asks for a {params.window_size}-byte window, over the "
            f"limit of {limits.max_window_bytes}",
            "bundlekit writes at most 8 MiB windows (level 19); this frame was not written "
            "by bundlekit",
        )
    if compressed_size is not None and size > compressed_size * limits.max_compression_ratio:
        raise LimitExceeded(
            f"segment declares {size} uncompressed bytes from {compressed_size} compressed, "
            f"expanding more than the {limits.max_compression_ratio}x bound",
            "this looks like a decompression bomb",
        )
    return FrameHeader(header_size, int(size), int(params.window_size))


def inflate(
    stream: Readable,
    limits: Limits,
    compressed_size: int | None = None,
) -> Iterator[bytes]:
    """Yield one segment's decompressed bytes in chunks of at most ``OUTPUT_CHUNK``.

    The one bounded decompression every reader goes through.  Peak memory is
    the window (at most ``limits.max_window_bytes``) plus one output chunk,
    whatever the frame says; decoding stops as soon as the output passes the
    declared content size.  Raises FormatError (LimitExceeded for a bound)
    on any size, framing or checksum problem, including bytes after the frame
    and a frame that ends early, even if only its checksum is missing.
    """
    import zstandard

    if compressed_size is not None:
        check_stored_size("segment", compressed_size, limits)
    head = _read_up_to(stream, _MAX_HEADER)
    header = check_frame_header(head, compressed_size, limits)
    walker = _FrameWalker(stream, head, header)
    # The decoder's own cap is a second line: it cannot be under 1 KiB (zstd's minimum).
    dctx = zstandard.ZstdDecompressor(max_window_size=max(limits.max_window_bytes, 1 << 10))
    declared = header.content_size
    total = 0
    try:
        # Any object with read() will do (python-zstandard's stub says IO[bytes]).
        source = cast("IO[bytes]", walker)
        reader = dctx.stream_reader(source, read_size=_READ_CHUNK, closefd=False)
        while True:
            # Never ask for more than one byte past what the frame declares.
            out = reader.read(min(OUTPUT_CHUNK, declared - total + 1))
            if not out:
                break
            total += len(out)
            if total > declared:
                raise _inflates_past(declared)
            yield out
    except zstandard.ZstdError as exc:
        if "buffer is too small" in str(exc):
            # zstd sizes its buffer by the declared size when that is below the
            # window, so it notices the same lie first (ZSTD_error_dstSize_tooSmall).
            raise _inflates_past(declared) from exc
        raise FormatError(
            f"segment failed to decompress after {total} of the {declared} bytes its frame "
            f"declares ({exc})",
            _REWRITE_HINT,
        ) from exc
    # zstd checks both at the frame's end too; kept so the promise does not rest on it.
    if total != declared or not walker.done:
        raise FormatError(
            f"segment ends after {total} of the {declared} bytes its frame declares",
            "the file is truncated or was tampered with",
        )
    walker.expect_end()


def iter_records(
    stream: Readable,
    limits: Limits,
    compressed_size: int | None = None,
) -> Iterator[bytes]:
    """Yield each stored request's bytes from one compressed segment stream.

    Memory stays bounded by one request plus one output chunk (and the
    decoder's window), however large the segment or whatever its frame
    claims.  Raises FormatError on any framing, size or checksum problem
    (see :func:`inflate`), on a record longer than ``limits.max_request_bytes``
    and on a record that runs past the end.
    """
    carry = b""
    for chunk in inflate(stream, limits, compressed_size):
        data = carry + chunk if carry else chunk
        offset = 0
        end = len(data)
        while end - offset >= FRAME_HEADER_BYTES:
            length = frame_length(data, offset)
            if length > limits.max_request_bytes:
                raise LimitExceeded(
                    f"segment record of {length} bytes exceeds the "
                    f"{limits.max_request_bytes}-byte request limit",
                    "the file is corrupt or was not written by bundlekit",
                )
            stop = offset + FRAME_HEADER_BYTES + length
            if stop > end:
                break
            yield data[offset + FRAME_HEADER_BYTES : stop]
            offset = stop
        carry = data[offset:]
    if carry:
        raise FormatError(
            f"segment ends inside a record ({len(carry)} bytes left over)",
            "the file is truncated or was tampered with",
        )


def _inflates_past(declared: int) -> FormatError:
    return FormatError(
        f"segment inflates past the {declared} bytes its frame declares",
        "this looks like a decompression bomb, or the file was tampered with",
    )


def _read_up_to(stream: Readable, size: int) -> bytes:
    """Up to ``size`` bytes, fewer only at the end of ``stream`` (reads may be short)."""
    parts = []
    want = size
    while want > 0:
        part = stream.read(want)
        if not part:
            break
        parts.append(part)
        want -= len(part)
    return b"".join(parts)


class _FrameWalker:
    """Hands the decoder exactly one frame's bytes, walking its block headers.

    python-zstandard's stream reader neither reports whether a frame reached its
    checksum nor stops at the frame's end: a frame cut just before its checksum
    decodes to the full declared size, and a second frame after it is decoded
    too.  Walking the block headers (RFC 8878 section 3.1.1.2) as the bytes go
    by tells exactly where the frame ends, so both are refused here whatever
    the decoder does.  The per-block work is a few Python operations.
    """

    def __init__(self, stream: Readable, head: bytes, header: FrameHeader) -> None:
        self._stream = stream
        #: Bytes read from ``stream`` and not yet handed on, from ``_pos``.
        self._buf = head
        self._pos = 0
        self._max_block = header.max_block
        #: Bytes before the next block header (or the frame's end, after the last
        #: block), the current block's own header included; the frame header first.
        self._left = header.size
        self._last = False
        self.done = False

    def read(self, size: int = -1, /) -> bytes:
        """At most ``size`` bytes of the frame (b"" for 0 and after the frame's end).

        io's contract, which a decoder may rely on: never more than asked for, so
        a block header is handed on like any other bytes, not in one piece.  A
        negative size reads one chunk, not the rest of a possibly huge frame.
        """
        want = size if size >= 0 else _READ_CHUNK
        parts: list[bytes] = []
        while want > 0 and not self.done:
            if self._left == 0:
                self._begin_block(self._peek(_BLOCK_HEADER_BYTES))
            part = self._take(min(self._left, want))
            parts.append(part)
            self._left -= len(part)
            want -= len(part)
            if self._left == 0 and self._last:
                self.done = True
        return b"".join(parts)

    def expect_end(self) -> None:
        """Refuse any byte after the frame."""
        if self._pos < len(self._buf) or self._stream.read(1):
            raise FormatError(
                "segment has bytes after its zstd frame", "a segment is exactly one zstd frame"
            )

    def _begin_block(self, header: bytes) -> None:
        value = int.from_bytes(header, "little")
        last, kind, size = value & 1, (value >> 1) & 3, value >> 3
        if kind == 3:
            raise FormatError(
                "segment's zstd frame holds a block of the reserved type", _REWRITE_HINT
            )
        if size > self._max_block:
            raise FormatError(
                f"segment's zstd frame holds a {size}-byte block, over its "
                f"{self._max_block}-byte maximum",
                _REWRITE_HINT,
            )
        # The header itself is handed on too; an RLE block stores one byte.
        self._left = _BLOCK_HEADER_BYTES + (1 if kind == 1 else size)
        if last:
            # check_frame_header refused frames without a checksum, so it always follows.
            self._last = True
            self._left += _CHECKSUM_BYTES

    def _take(self, size: int) -> bytes:
        """1 to ``size`` bytes of the frame; refuses a source that ends first."""
        if self._pos >= len(self._buf):
            self._buf = self._stream.read(max(size, _READ_CHUNK))
            self._pos = 0
            if not self._buf:
                raise self._truncated()
        part = self._buf[self._pos : self._pos + size]
        self._pos += len(part)
        return part

    def _peek(self, size: int) -> bytes:
        """The next ``size`` bytes of the frame, left in place; refuses a source that ends first."""
        while len(self._buf) - self._pos < size:
            more = self._stream.read(_READ_CHUNK)
            if not more:
                raise self._truncated()
            self._buf = self._buf[self._pos :] + more
            self._pos = 0
        return self._buf[self._pos : self._pos + size]

    def _truncated(self) -> FormatError:
        if self._last and self._left <= _CHECKSUM_BYTES:
            return FormatError(
                "segment's zstd frame ends before its 4-byte checksum",
                "the file is truncated or was tampered with",
            )
        return FormatError(
            "segment ends inside its zstd frame", "the file is truncated or was tampered with"
        )
