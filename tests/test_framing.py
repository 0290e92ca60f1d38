"""The one length-prefix framing: segments and input files read and write it alike."""

from __future__ import annotations

from pathlib import Path

import pytest

from bundlekit.format import segment
from bundlekit.limits import DEFAULT_LIMITS
from bundlekit.otlp import framing
from bundlekit.otlp.inputs import iter_input_requests


def test_frame_is_a_4_byte_big_endian_length_then_the_payload() -> None:
    assert framing.FRAME_HEADER_BYTES == 4
    assert framing.frame(b"abc") == b"\x00\x00\x00\x03abc"
    assert framing.frame_length(b"\x01\x02\x03\x04") == 0x01020304
    assert framing.frame_length(b"xx\x00\x00\x01\x00", 2) == 256


def test_segments_and_inputs_use_the_same_framing(tmp_path: Path) -> None:
    # The framing has one owner: the segment module imports it rather than keeping a copy.
    assert segment.FRAME_HEADER_BYTES is framing.FRAME_HEADER_BYTES
    assert segment.frame_length is framing.frame_length
    bodies = [b"\x0a\x00", b"\x0a\x02" + b"xy", b""]
    stream = b"".join(framing.frame(b) for b in bodies)
    path = tmp_path / "in.binpb"
    path.write_bytes(stream)
    assert list(iter_input_requests(path, limits=DEFAULT_LIMITS)) == bodies
    blob = segment.compress_segment(stream)
    assert list(segment.iter_records(_Reader(blob), limits=DEFAULT_LIMITS)) == bodies


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._data, self._pos = data, 0

    def read(self, size: int = -1, /) -> bytes:
        end = len(self._data) if size < 0 else self._pos + size
        part = self._data[self._pos : end]
        self._pos += len(part)
        return part


@pytest.mark.parametrize("size", [0, 1, 255, 65_536])
def test_frame_round_trips(size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    framed = framing.frame(payload)
    assert framing.frame_length(framed) == size and framed[4:] == payload
