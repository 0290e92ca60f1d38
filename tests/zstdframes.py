"""Hand-built zstd frames (RFC 8878) for tests of hostile segments.

zstandard only writes honest frames; these helpers write the lies a hostile
bundle can tell: a content size the blocks do not match, a huge window, a
missing or wrong checksum, reserved block types.
"""

from __future__ import annotations

import struct

import zstandard

MAGIC = b"\x28\xb5\x2f\xfd"
RAW, RLE, COMPRESSED, RESERVED = 0, 1, 2, 3
MAX_BLOCK = 128 * 1024


def header(
    content_size: int,
    *,
    window_log: int | None = None,
    checksum: bool = True,
    dict_id: int = 0,
) -> bytes:
    """A frame header declaring ``content_size`` (8-byte field).

    With ``window_log`` the frame has a window descriptor of 2**window_log bytes;
    without, it is a single-segment frame whose window is its content size.
    """
    descriptor = (3 << 6) | (4 if checksum else 0) | (2 if dict_id else 0)
    if window_log is None:
        descriptor |= 0x20
    out = MAGIC + bytes([descriptor])
    if window_log is not None:
        out += bytes([(window_log - 10) << 3])
    if dict_id:
        out += struct.pack("<H", dict_id)
    return out + struct.pack("<Q", content_size)


def block(kind: int, size: int, content: bytes, last: bool = False) -> bytes:
    """One block: a 3-byte little-endian header, then ``content`` as stored."""
    value = int(last) | (kind << 1) | (size << 3)
    return value.to_bytes(3, "little") + content


def rle(byte: int, size: int, last: bool = False) -> bytes:
    """A run-length block: four stored bytes that regenerate ``size`` bytes."""
    return block(RLE, size, bytes([byte]), last)


def raw(data: bytes, last: bool = False) -> bytes:
    return block(RAW, len(data), data, last)


def zero_runs(total: int, block_size: int = MAX_BLOCK) -> bytes:
    """RLE blocks regenerating ``total`` zero bytes, the last one flagged last."""
    sizes = [block_size] * (total // block_size)
    if total % block_size or not sizes:
        sizes.append(total % block_size)
    return b"".join(rle(0, size, last=i == len(sizes) - 1) for i, size in enumerate(sizes))


def checksum(content: bytes) -> bytes:
    """The frame checksum of ``content`` (low 4 bytes of its XXH64), as zstd writes it."""
    return zstandard.ZstdCompressor(write_checksum=True).compress(content)[-4:]


def zero_frame(size: int, *, window_log: int | None = None) -> bytes:
    """An honest frame of ``size`` zero bytes (``size // 4`` empty records) in RLE blocks."""
    return header(size, window_log=window_log) + zero_runs(size) + checksum(bytes(size))


def rle_bomb(declared: int, inflates_to: int, window_log: int = 17) -> bytes:
    """A frame that declares ``declared`` bytes and inflates to ``inflates_to`` zeros.

    Four stored bytes per 128 KiB: 1 GiB is 32 KiB of frame.  The window
    descriptor (128 KiB by default) keeps zstd from noticing the lie before
    the frame's end, as a single-segment frame would let it.
    """
    return header(declared, window_log=window_log) + zero_runs(inflates_to) + b"\0\0\0\0"


def relabel(blob: bytes, declared: int) -> bytes:
    """A frame zstd wrote, with its header replaced by one declaring ``declared`` bytes.

    Keeps the window and the blocks, so the decoder meets zstd's own compressed
    blocks (long matches, not just RLE) under a lying content size.
    """
    params = zstandard.get_frame_parameters(blob)
    window_log = params.window_size.bit_length() - 1
    assert params.window_size == 1 << window_log, "relabel needs a power-of-two window"
    body = blob[zstandard.frame_header_size(blob) :]
    return header(declared, window_log=window_log, checksum=params.has_checksum) + body
