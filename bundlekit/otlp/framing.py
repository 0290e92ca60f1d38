"""The length-prefix framing of a stream of OTLP requests.

Each request is preceded by its length as a 4-byte big-endian unsigned
integer: the Collector file exporter's ``format: proto``, the framing of
bundlekit's segments (inside their zstd frame) and of length-delimited input
files alike.  This module is the one place that knows it.
"""

from __future__ import annotations

import struct

_LEN = struct.Struct(">I")
#: Bytes of the length prefix before each request.
FRAME_HEADER_BYTES = _LEN.size
#: Largest length the prefix can express.
MAX_FRAME_LENGTH = 2**32 - 1


def frame(payload: bytes) -> bytes:
    """One framed record: the 4-byte big-endian length, then the payload."""
    return _LEN.pack(len(payload)) + payload


def frame_length(data: bytes | bytearray | memoryview, offset: int = 0) -> int:
    """The length a frame header at ``offset`` of ``data`` declares (4 bytes must be there)."""
    length: int = _LEN.unpack_from(data, offset)[0]
    return length
