"""Hostile segments: decompression is bounded while it happens, not after.

A zstd frame can declare a small content size and then inflate far beyond it
(run-length blocks: four stored bytes per 128 KiB).  The bound that matters is
peak memory, so the bombs are decoded in a child process whose peak RSS is
measured; an unbounded decoder (the code before issue 6) reaches about 1 GB on
these inputs, five times the bound asserted here.  Refusals that happen at the
frame header are checked in-process.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import resource
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import zstandard

from bundlekit.errors import FormatError, LimitExceeded
from bundlekit.format import canonical
from bundlekit.format.segment import compress_segment, iter_records
from bundlekit.keys import GeneratedKey, KeyType
from bundlekit.limits import DEFAULT_LIMITS, Limits
from bundlekit.otlp.framing import frame
from tests import zstdframes as zf
from tests.bundles import pack_small, write_envelope

#: Peak RSS a bounded reader stays under (the interpreter and bundlekit's imports
#: included); the unbounded one reached 1 GB and more on the bombs below.
PEAK_RSS_BOUND = 200 * 1024 * 1024
#: What the bombs inflate to if nothing stops them.
BOMB_BYTES = 512 * 1024 * 1024
#: Address-space ceiling for the children, so a regression fails instead of
#: swapping a shared machine.
CHILD_ADDRESS_SPACE = 4 * 1024 * 1024 * 1024

CHILD = r"""
import json, sys
from bundlekit.errors import BundlekitError
from bundlekit.format.segment import iter_records
from bundlekit.limits import DEFAULT_LIMITS
error = None
records = 0
try:
    with open(sys.argv[1], "rb") as handle:
        for _ in iter_records(handle, DEFAULT_LIMITS, compressed_size=int(sys.argv[2])):
            records += 1
except BundlekitError as exc:
    error = [type(exc).__name__, exc.message]
print(json.dumps({"error": error, "records": records}))
"""


def _limit_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (CHILD_ADDRESS_SPACE, CHILD_ADDRESS_SPACE))


def run_measured(args: list[str], tmp_path: Path) -> tuple[int, str, str, int]:
    """Run ``python args...``; return (exit code, stdout, stderr, the child's peak RSS in bytes).

    Peak RSS comes from wait4 on the child itself, so nothing the child says is trusted
    and no other child of the test process counts.
    """
    out_path, err_path = tmp_path / "child.out", tmp_path / "child.err"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        process = subprocess.Popen(
            [sys.executable, *args], stdout=out, stderr=err, preexec_fn=_limit_address_space
        )
    timer = threading.Timer(180, process.kill)
    timer.start()
    try:
        _, status, usage = os.wait4(process.pid, 0)
    finally:
        timer.cancel()
    process.returncode = os.waitstatus_to_exitcode(status)
    return (
        process.returncode,
        out_path.read_text(),
        err_path.read_text(),
        usage.ru_maxrss * 1024,
    )


def decode_in_child(blob: bytes, tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "segment.binpb.zst"
    path.write_bytes(blob)
    code, out, err, rss = run_measured(["-c", CHILD, str(path), str(len(blob))], tmp_path)
    assert code == 0, err
    result: dict[str, Any] = json.loads(out)
    result["peak_rss"] = rss
    return result


def zstd_made_bomb() -> bytes:
    """512 MiB of a repeating 1 MiB pattern, compressed by zstd itself, relabelled as 1 MiB.

    The blocks are zstd's own compressed blocks with long matches, not RLE.
    """
    pattern = bytes(range(256)) * 4096
    cctx = zstandard.ZstdCompressor(level=1, write_content_size=False, write_checksum=True)
    obj = cctx.compressobj()
    parts = [obj.compress(pattern) for _ in range(BOMB_BYTES // len(pattern))]
    parts.append(obj.flush())
    return zf.relabel(b"".join(parts), 1024 * 1024)


BOMBS: dict[str, Callable[[], bytes]] = {
    # zstd sizes its buffer by the declared size and notices on its own
    "rle_declares_1mib_window_128kib": lambda: zf.rle_bomb(1 << 20, BOMB_BYTES, window_log=17),
    # declared size over window + 2 blocks: zstd's buffer wraps, only our count notices
    "rle_declares_4mib_window_128kib": lambda: zf.rle_bomb(4 << 20, BOMB_BYTES, window_log=17),
    "rle_declares_16mib_window_8mib": lambda: zf.rle_bomb(16 << 20, BOMB_BYTES, window_log=23),
    "rle_declares_1mib_window_1kib": lambda: (
        zf.header(1 << 20, window_log=10) + zf.zero_runs(BOMB_BYTES, block_size=1024) + b"\0\0\0\0"
    ),
    "zstd_compressed_blocks_relabelled": zstd_made_bomb,
}


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_segment_inflating_past_its_declared_size_is_refused_with_bounded_memory(
    name: str, tmp_path: Path
) -> None:
    blob = BOMBS[name]()
    assert len(blob) * 200 < BOMB_BYTES  # small on disk...
    declared = zstandard.get_frame_parameters(blob).content_size
    assert declared * DEFAULT_LIMITS.max_compression_ratio >= len(blob)  # ...and a plausible ratio
    result = decode_in_child(blob, tmp_path)
    assert result["peak_rss"] < PEAK_RSS_BOUND, result
    assert result["error"] == [
        "FormatError",
        f"segment inflates past the {declared} bytes its frame declares",
    ]


def test_bomb_refusal_also_holds_in_process() -> None:
    """The same refusal without a child, so the message is checked where coverage sees it."""
    blob = zf.rle_bomb(4 << 20, 64 << 20)
    with pytest.raises(FormatError, match="inflates past the 4194304 bytes"):
        list(iter_records(io.BytesIO(blob), Limits(max_compression_ratio=10**6), len(blob)))


def test_decoding_output_is_handed_out_in_bounded_chunks() -> None:
    """An honest 64 MiB segment is handed out 1 MiB at a time (docs/format.md section 2)."""
    from bundlekit.format.segment import inflate

    blob = zf.zero_frame(64 << 20, window_log=17)
    sizes = [len(c) for c in inflate(io.BytesIO(blob), Limits(max_compression_ratio=10**6))]
    assert sum(sizes) == 64 << 20
    assert max(sizes) <= 1 << 20  # the documented figure, not the module's constant


# -- refused at the frame header, before a byte is inflated ----------------------------


def test_frame_asking_for_a_huge_window_is_refused_before_decoding() -> None:
    blob = zf.header(1 << 20, window_log=31) + zf.zero_runs(1 << 20) + b"\0\0\0\0"
    with pytest.raises(LimitExceeded, match="2147483648-byte window, over the limit of 8388608"):
        list(iter_records(io.BytesIO(blob), compressed_size=len(blob), limits=DEFAULT_LIMITS))


def test_frame_whose_declared_size_lies_about_its_ratio_is_refused_before_decoding() -> None:
    blob = zf.rle_bomb(64 << 20, 64 << 20)  # 64 MiB declared from ~2 KB: 32,000x
    with pytest.raises(LimitExceeded, match="expanding more than the 2000x bound"):
        list(iter_records(io.BytesIO(blob), compressed_size=len(blob), limits=DEFAULT_LIMITS))


def test_frame_declaring_more_than_the_segment_limit_is_refused_before_decoding() -> None:
    blob = zf.rle_bomb(DEFAULT_LIMITS.max_segment_bytes + 1, 1 << 20)
    with pytest.raises(LimitExceeded, match="67108865 uncompressed bytes, over the limit"):
        list(iter_records(io.BytesIO(blob), limits=DEFAULT_LIMITS))


# -- end to end: the doors a hostile segment comes through ---------------------------


def _plant(bundle: Path, blob: bytes, key: GeneratedKey) -> None:
    """Replace the traces segment with ``blob`` and re-sign a manifest that matches it.

    Size, digest and uncompressed size (what the frame declares) all agree with
    the new file, so the bundle passes every check short of decoding it.
    """
    declared = zstandard.get_frame_parameters(blob).content_size
    doc = json.loads((bundle / "manifest.json").read_bytes())
    entry = next(f for f in doc["predicate"]["files"] if f["role"] == "traces")
    (bundle / entry["name"]).write_bytes(blob)
    totals = doc["predicate"]["totals"]
    totals["size"] += len(blob) - entry["size"]
    totals["uncompressedSize"] += declared - entry["uncompressedSize"]
    entry["size"], entry["uncompressedSize"] = len(blob), declared
    for subject in doc["subject"]:
        if subject["name"] == entry["name"]:
            subject["digest"]["sha256"] = hashlib.sha256(blob).hexdigest()
    raw = canonical.dumps(doc)
    (bundle / "manifest.json").write_bytes(raw)
    write_envelope(bundle, raw, key)


#: Declared size of the planted bomb: over the 128 KiB window plus two blocks, so
#: zstd's own buffer wraps and only a bounded reader stops the inflation.
PLANTED_DECLARED = 1024 * 1024


@pytest.fixture
def bomb_bundle(tmp_path: Path, keys: dict[KeyType, GeneratedKey]) -> tuple[Path, int]:
    """A bundle signed by a trusted key whose traces segment is a bomb matching its manifest."""
    bundle = tmp_path / "bundle"
    key = keys[KeyType.ED25519]
    pack_small(tmp_path / "in", bundle, key)
    _plant(bundle, zf.rle_bomb(PLANTED_DECLARED, BOMB_BYTES, window_log=17), key)
    return bundle, PLANTED_DECLARED


def test_verify_deep_on_a_trusted_bundle_with_a_bomb_exits_5_with_bounded_memory(
    bomb_bundle: tuple[Path, int], keys: dict[KeyType, GeneratedKey], tmp_path: Path
) -> None:
    bundle, declared = bomb_bundle
    public = keys[KeyType.ED25519].public_path
    code, out, err, rss = run_measured(
        ["-m", "bundlekit", "verify", str(bundle), "--deep", "--key", str(public), "--json"],
        tmp_path,
    )
    assert rss < PEAK_RSS_BOUND
    assert code == 5, err
    report = json.loads(out)
    messages = [f["message"] for f in report["failures"]]
    assert (
        f"cannot decode segment: segment inflates past the {declared} bytes its frame declares"
        in messages
    )


def test_verify_without_deep_still_passes_the_bomb_bundle(
    bomb_bundle: tuple[Path, int], keys: dict[KeyType, GeneratedKey], tmp_path: Path
) -> None:
    """The bundle is otherwise valid: the refusal above comes from decoding, not from tampering."""
    bundle, _ = bomb_bundle
    public = keys[KeyType.ED25519].public_path
    code, _, err, _ = run_measured(
        ["-m", "bundlekit", "verify", str(bundle), "--key", str(public)], tmp_path
    )
    assert code == 0, err


def test_replay_no_verify_dry_run_refuses_a_bomb_with_bounded_memory(
    bomb_bundle: tuple[Path, int], tmp_path: Path
) -> None:
    bundle, declared = bomb_bundle
    code, _, err, rss = run_measured(
        [
            "-m",
            "bundlekit",
            "replay",
            str(bundle),
            "--no-verify",
            "--dry-run",
            "--endpoint",
            "http://127.0.0.1:4317",
        ],
        tmp_path,
    )
    assert rss < PEAK_RSS_BOUND
    assert code == 5, err
    assert f"segment inflates past the {declared} bytes its frame declares" in err
    assert "Traceback" not in err


# -- the frame must end exactly where its structure says --------------------------------

GOOD = compress_segment(b"".join(frame(bytes([i]) * (i * 91 + 3)) for i in range(120)))
GOOD_HEAD = zstandard.frame_header_size(GOOD)


def _altered_checksum() -> bytes:
    blob = bytearray(GOOD)
    blob[-1] ^= 0x01
    return bytes(blob)


def _skippable(payload: bytes) -> bytes:
    return b"\x50\x2a\x4d\x18" + len(payload).to_bytes(4, "little") + payload


STRUCTURE: dict[str, tuple[bytes, type[Exception], str]] = {
    "checksum_removed": (GOOD[:-4], FormatError, "ends before its 4-byte checksum"),
    "checksum_cut_short": (GOOD[:-2], FormatError, "ends before its 4-byte checksum"),
    "checksum_altered": (_altered_checksum(), FormatError, "doesn't match checksum"),
    "checksum_flag_cleared_and_checksum_removed": (
        GOOD[:4] + bytes([GOOD[4] & ~0x04]) + GOOD[5:-4],
        FormatError,
        "carries no checksum",
    ),
    "cut_inside_a_block": (GOOD[: len(GOOD) // 2], FormatError, "ends inside its zstd frame"),
    "cut_inside_a_block_header": (GOOD[: GOOD_HEAD + 2], FormatError, "ends inside its zstd frame"),
    "cut_inside_the_frame_header": (GOOD[: GOOD_HEAD - 1], FormatError, "frame header is invalid"),
    "empty_file": (b"", FormatError, "not a zstd frame"),
    "one_trailing_zero_byte": (GOOD + b"\0", FormatError, "bytes after its zstd frame"),
    "second_frame_appended": (GOOD + GOOD, FormatError, "bytes after its zstd frame"),
    "skippable_frame_appended": (GOOD + _skippable(b"hidden"), FormatError, "after its zstd frame"),
    "skippable_frame_instead": (_skippable(GOOD), FormatError, "not a zstd frame"),
    "reserved_block_type": (
        zf.header(8, window_log=17) + zf.block(zf.RESERVED, 8, b"\0" * 8, last=True) + b"\0" * 4,
        FormatError,
        "block of the reserved type",
    ),
    "block_over_the_frame_maximum": (
        zf.header(1 << 20, window_log=17) + zf.rle(0, zf.MAX_BLOCK + 1, last=True) + b"\0" * 4,
        FormatError,
        "131073-byte block, over its 131072-byte maximum",
    ),
    "block_over_a_small_window": (
        zf.header(4096, window_log=10) + zf.rle(0, 1025, last=True) + b"\0" * 4,
        FormatError,
        "1025-byte block, over its 1024-byte maximum",
    ),
    "dictionary_frame": (
        zf.header(8, window_log=17, dict_id=7)
        + zf.raw(b"\0" * 8, last=True)
        + zf.checksum(bytes(8)),
        FormatError,
        "needs dictionary 7",
    ),
    "fewer_bytes_than_declared": (
        zf.header(8192, window_log=17) + zf.zero_runs(4096) + zf.checksum(bytes(4096)),
        FormatError,
        r"failed to decompress after \d+ of the 8192 bytes its frame declares \(.*corruption",
    ),
}


@pytest.mark.parametrize("name", sorted(STRUCTURE))
def test_segment_with_broken_frame_structure_is_refused(name: str) -> None:
    blob, error, words = STRUCTURE[name]
    with pytest.raises(error, match=words):
        list(iter_records(io.BytesIO(blob), Limits(max_compression_ratio=10**6), len(blob)))


def test_intact_frame_built_by_hand_is_accepted() -> None:
    """The builders above make valid frames when they do not lie (controls the tests above)."""
    blob = zf.header(8, window_log=17) + zf.raw(b"\0" * 8, last=True) + zf.checksum(bytes(8))
    assert list(iter_records(io.BytesIO(blob), limits=DEFAULT_LIMITS)) == [b"", b""]
    # an empty block before the last one is valid zstd, not the end of the frame
    blob = (
        zf.header(8, window_log=17)
        + zf.raw(b"")
        + zf.raw(b"\0" * 4)
        + zf.rle(0, 4, last=True)
        + zf.checksum(bytes(8))
    )
    assert list(iter_records(io.BytesIO(blob), limits=DEFAULT_LIMITS)) == [b"", b""]
    assert (
        list(iter_records(io.BytesIO(GOOD), compressed_size=len(GOOD), limits=DEFAULT_LIMITS))[5]
        == bytes([5]) * 458
    )


class _Trickle:
    """A source that returns one byte per read, as a pipe or slow socket may."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def read(self, size: int = -1, /) -> bytes:
        return self._data.read(1 if size != 0 else 0)


def test_short_reads_from_the_source_change_nothing() -> None:
    expected = list(iter_records(io.BytesIO(GOOD), limits=DEFAULT_LIMITS))
    assert list(iter_records(_Trickle(GOOD), limits=DEFAULT_LIMITS)) == expected
    with pytest.raises(FormatError, match="before its 4-byte checksum"):
        list(iter_records(_Trickle(GOOD[:-4]), limits=DEFAULT_LIMITS))
    with pytest.raises(FormatError, match="bytes after its zstd frame"):
        list(iter_records(_Trickle(GOOD + b"\0"), limits=DEFAULT_LIMITS))


# -- replay's reader ---------------------------------------------------------------------


def test_replay_source_refuses_an_oversized_segment_before_reading_it(
    tmp_path: Path, keys: dict[KeyType, GeneratedKey]
) -> None:
    """With --no-verify the manifest's sizes are not trusted; a segment file too big for
    any frame within the limits is refused from its size, before it is read into memory
    (the file is removed first: reading it would fail differently)."""
    from bundlekit.otlp.signals import Signal
    from bundlekit.replay.source import TrustOptions, open_source

    bundle = tmp_path / "bundle"
    pack_small(tmp_path / "in", bundle, keys[KeyType.ED25519])
    limits = Limits(max_segment_bytes=512)
    source = open_source(bundle, TrustOptions(no_verify=True), limits)
    segment = source.segments(Signal.TRACES)[0]
    assert segment.size > limits.max_stored_segment_bytes
    (bundle / segment.name).unlink()
    with pytest.raises(LimitExceeded, match=f"{segment.name} is {segment.size} bytes, more than"):
        source.requests(Signal.TRACES, segment)


def test_replay_source_decodes_through_the_bounded_reader(
    bomb_bundle: tuple[Path, int],
) -> None:
    from bundlekit.otlp.signals import Signal
    from bundlekit.replay.source import TrustOptions, open_source

    bundle, declared = bomb_bundle
    source = open_source(bundle, TrustOptions(no_verify=True), limits=DEFAULT_LIMITS)
    segment = source.segments(Signal.TRACES)[0]
    with pytest.raises(FormatError, match=f"inflates past the {declared} bytes"):
        list(source.requests(Signal.TRACES, segment))
    logs = source.segments(Signal.LOGS)[0]
    assert len(list(source.requests(Signal.LOGS, logs))) == logs.requests
