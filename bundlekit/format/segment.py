"""Segment files: length-prefixed OTLP requests inside one zstd frame.

A segment is ``[4-byte big-endian length][Export*ServiceRequest bytes]``
repeated — the framing the OpenTelemetry Collector's file exporter writes with
``format: proto`` — compressed as a single zstd frame that records its content
size and a checksum.  Knowing the content size up front lets a reader refuse an
oversized (or decompression-bomb) segment before inflating a byte of it.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Iterator
from typing import Protocol

from bundlekit.errors import FormatError, LimitExceeded
from bundlekit.limits import DEFAULT_LIMITS, Limits

_LEN = struct.Struct(">I")
FRAME_HEADER_BYTES = _LEN.size
#: Compressed bytes fed to the decoder per step while reading a segment.
_READ_CHUNK = 1 << 18


class Writable(Protocol):
    def write(self, data: bytes, /) -> int: ...


class Readable(Protocol):
    """The one method a segment reader needs: files, sockets, tar members."""

    def read(self, size: int = -1, /) -> bytes: ...


def frame(payload: bytes) -> bytes:
    """One framed record: the 4-byte big-endian length, then the payload."""
    return _LEN.pack(len(payload)) + payload


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


def check_frame_header(
    head: bytes, compressed_size: int | None, limits: Limits = DEFAULT_LIMITS
) -> int:
    """Validate a segment's zstd frame header; return the declared content size."""
    import zstandard

    try:
        params = zstandard.get_frame_parameters(head)
    except zstandard.ZstdError as exc:
        raise FormatError(
            f"segment is not a zstd frame ({exc})", "the file is corrupt or not a bundlekit segment"
        ) from exc
    size = params.content_size
    if size in (zstandard.CONTENTSIZE_UNKNOWN, zstandard.CONTENTSIZE_ERROR):
        raise FormatError(
            "segment's zstd frame does not declare its content size",
            "bundlekit segments always record it; the file was not written by bundlekit",
        )
    if not params.has_checksum:
        raise FormatError(
            "segment's zstd frame carries no checksum",
            "bundlekit segments always carry one; the file was not written by bundlekit",
        )
    if size > limits.max_segment_bytes:
        raise LimitExceeded(
            f"segment declares {size} uncompressed bytes, over the limit of "
            f"{limits.max_segment_bytes}",
            "raise Limits.max_segment_bytes only for bundles you already trust",
        )
    if compressed_size and size > compressed_size * limits.max_compression_ratio:
        raise LimitExceeded(
            f"segment expands {size // max(compressed_size, 1)}x, over the bound of "
            f"{limits.max_compression_ratio}x",
            "this looks like a decompression bomb",
        )
    return int(size)


def iter_records(
    stream: Readable,
    limits: Limits = DEFAULT_LIMITS,
    compressed_size: int | None = None,
) -> Iterator[bytes]:
    """Yield each stored request's bytes from one compressed segment stream.

    Memory stays bounded by one request plus one read chunk, however large
    the segment.  Raises FormatError on any framing, size or checksum problem,
    including trailing bytes after the frame and a length that runs past the end.
    """
    import zstandard

    head = stream.read(_READ_CHUNK)
    declared = check_frame_header(head, compressed_size, limits)
    dobj = zstandard.ZstdDecompressor(max_window_size=1 << 27).decompressobj()
    buf = bytearray()
    total = 0
    chunk = head
    try:
        while chunk:
            if dobj.eof:
                raise FormatError(
                    "segment has bytes after its zstd frame", "a segment is exactly one zstd frame"
                )
            out = dobj.decompress(chunk)
            total += len(out)
            if total > declared:
                raise FormatError("segment inflates past its declared content size")
            buf += out
            yield from _drain(buf, limits)
            if dobj.eof and dobj.unused_data:
                raise FormatError(
                    "segment has bytes after its zstd frame", "a segment is exactly one zstd frame"
                )
            chunk = stream.read(_READ_CHUNK)
    except zstandard.ZstdError as exc:
        raise FormatError(
            f"segment failed to decompress ({exc})", "the file is corrupt or was tampered with"
        ) from exc
    if not dobj.eof or total != declared:
        raise FormatError(
            f"segment ends after {total} of the {declared} bytes its frame declares",
            "the file is truncated or was tampered with",
        )
    if buf:
        raise FormatError(
            f"segment ends inside a record ({len(buf)} bytes left over)",
            "the file is truncated or was tampered with",
        )


def _drain(buf: bytearray, limits: Limits) -> Iterator[bytes]:
    """Yield every complete record at the front of ``buf`` and remove them."""
    offset = 0
    end = len(buf)
    while end - offset >= FRAME_HEADER_BYTES:
        (length,) = _LEN.unpack_from(buf, offset)
        if length > limits.max_request_bytes:
            raise LimitExceeded(
                f"segment record of {length} bytes exceeds the {limits.max_request_bytes}-byte "
                "request limit",
                "the file is corrupt or was not written by bundlekit",
            )
        stop = offset + FRAME_HEADER_BYTES + length
        if stop > end:
            break
        yield bytes(buf[offset + FRAME_HEADER_BYTES : stop])
        offset = stop
    if offset:
        del buf[:offset]
