"""The archive reader's primitives, one rule at a time (the hostile-archive tests cover them
end to end; these pin each rule's exact behaviour, as mutation testing showed was needed)."""

from __future__ import annotations

import pytest

from bundlekit.format.archive import _check_checksum, _number, _parse_pax, member_header
from bundlekit.format.defects import Defect
from bundlekit.format.reader import ContainerError


def test_numbers_are_octal_terminated_by_nul_or_space() -> None:
    assert _number(b"0000644\x00", "mode") == 0o644
    assert _number(b"   17 \x00\x00", "size") == 0o17
    assert _number(b"12\x0099", "size") == 0o12  # nothing after the first NUL counts
    assert _number(b"\x00" * 12, "size") == 0  # an empty field is zero
    assert _number(b"        ", "size") == 0


@pytest.mark.parametrize(
    ("field", "words"),
    [
        (b"\x80" + bytes(10) + b"\x01", "base-256"),
        (b"\xff" * 12, "base-256"),
        (b"00000000009\x00", "not an octal number"),
        (b"00000000008\x00", "not an octal number"),
        (b"0000000001a\x00", "not an octal number"),
        (b"-0000000001\x00", "not an octal number"),
    ],
)
def test_numbers_that_are_not_plain_octal_are_refused(field: bytes, words: str) -> None:
    with pytest.raises(ContainerError, match=words) as caught:
        _number(field, "size")
    assert caught.value.defect is Defect.ARCHIVE_MALFORMED


def test_header_checksum_accepts_the_unsigned_and_signed_sums_only() -> None:
    header = member_header("otlp/traces/000001.binpb.zst", 5, 0)
    _check_checksum(header)
    high = bytearray(header)
    high[0:4] = b"\x80\x7f\xc3\xa9"  # 0x80 and up count negative in a signed sum; 0x7f does not
    unsigned = sum(high[:148]) + 8 * 0x20 + sum(high[156:])
    signed = unsigned - 2 * sum(b for b in high[:148] + high[156:] if b > 0x7F)
    assert signed != unsigned
    for total in (unsigned, signed):
        high[148:156] = f"{total:06o}\x00 ".encode()
        _check_checksum(bytes(high))
    for total in (unsigned + 1, unsigned - 1, 0):
        high[148:156] = f"{total:06o}\x00 ".encode()
        with pytest.raises(ContainerError, match="checksum does not match"):
            _check_checksum(bytes(high))


def _record(key: str, value: str) -> bytes:
    body = f" {key}={value}\n".encode()
    length = len(body) + len(str(len(body)))
    if len(str(length)) != len(str(len(body))):
        length += 1
    return str(length).encode() + body


def test_pax_records_are_parsed_exactly() -> None:
    data = _record("path", "attachments/" + "n" * 120) + _record("size", "42")
    assert _parse_pax(data) == {"path": "attachments/" + "n" * 120, "size": "42"}
    assert _parse_pax(b"") == {}
    assert _parse_pax(_record("comment", "a=b=c")) == {"comment": "a=b=c"}  # first '=' splits


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"x path=a\n", "no valid length"),
        (b"12path=abc\n", "no valid length"),
        (b"99 path=a\n", "length is wrong"),
        (b"9 path=ab\n", "length is wrong"),  # says 9, the record is 10 bytes
        (b"10 path=ab", "length is wrong"),  # no closing newline
        (b"2 \n", "length is wrong"),  # shorter than its own length field
        (b"3 \n", "is not accepted"),  # no key at all
        (_record("path", "a") + b"5 x", "length is wrong"),  # a second record cut short
        (_record("linkpath", "/etc/passwd"), "linkpath"),
        (_record("GNU.sparse.map", "0,1"), "GNU.sparse.map"),
        (b"8 pathx\n", "is not accepted"),  # no '='
        (b"10 path=\xff\n", "not UTF-8"),
    ],
)
def test_malformed_or_dangerous_pax_records_are_refused(data: bytes, words: str) -> None:
    with pytest.raises(ContainerError, match=words) as caught:
        _parse_pax(data)
    assert caught.value.defect is Defect.ARCHIVE_MALFORMED


# --------------------------------------------------------------------------- reading a stream


class _Trickle:
    """A pipe that hands out at most ``step`` bytes per read, as real pipes may."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data = data
        self._pos = 0
        self._step = step
        self.closed = False

    def read(self, size: int = -1) -> bytes:
        want = self._step if size < 0 else min(size, self._step)
        chunk = self._data[self._pos : self._pos + want]
        self._pos += len(chunk)
        return chunk

    def close(self) -> None:
        self.closed = True


def _small_archive() -> tuple[bytes, dict[str, bytes]]:
    import io

    from bundlekit.format.archive import ArchiveWriter
    from bundlekit.format.layout import MANIFEST_NAME

    members = {"attachments/a.bin": bytes(range(256)) * 3, "attachments/b.bin": b"tail"}
    out = io.BytesIO()
    writer = ArchiveWriter(out, 0)
    writer.add_bytes(MANIFEST_NAME, b'{"m":1}')
    for name, data in members.items():
        writer.add_bytes(name, data)
    writer.finish()
    return out.getvalue(), members


def _read_stream(handle: object) -> tuple[bytes | None, dict[str, bytes]]:
    from bundlekit.format.archive import ArchiveReader
    from bundlekit.limits import DEFAULT_LIMITS

    reader = ArchiveReader.from_stream(handle, "pipe", DEFAULT_LIMITS)  # type: ignore[arg-type]
    with reader:
        head = reader.head()
        got = {}
        for member in reader.members():
            stream = reader.open(member)
            assert stream.read(0) == b""
            got[member.name] = stream.read()  # read() with no size: the whole member
            assert stream.read(10) == b""  # and never a byte past it
    return head.manifest, got


@pytest.mark.parametrize("step", [1, 7, 512, 1 << 20])
def test_a_stream_that_delivers_a_few_bytes_per_read_is_read_whole(step: int) -> None:
    data, members = _small_archive()
    trickle = _Trickle(data, step)
    manifest, got = _read_stream(trickle)
    assert manifest == b'{"m":1}'
    assert got == members
    assert not trickle.closed  # the reader never closes a stream it was given (stdin)


def test_members_not_read_by_the_caller_are_skipped_exactly() -> None:
    import io

    from bundlekit.format.archive import ArchiveReader
    from bundlekit.limits import DEFAULT_LIMITS

    data, members = _small_archive()
    with ArchiveReader.from_stream(io.BytesIO(data), "pipe", DEFAULT_LIMITS) as reader:
        names = []
        for member in reader.members():
            names.append(member.name)
            if member.name.endswith("a.bin"):
                assert reader.open(member).read(5) == members[member.name][:5]  # then left
    assert names == list(members)


@pytest.mark.parametrize("cut", ["inside-data", "inside-header", "before-end-marker"])
def test_a_stream_or_file_cut_short_is_malformed_naming_where(
    cut: str, tmp_path: pytest.TempPathFactory
) -> None:
    import io
    from pathlib import Path

    from bundlekit.format.archive import BLOCK, ArchiveReader
    from bundlekit.limits import DEFAULT_LIMITS

    data, _members = _small_archive()
    a_data = 2 * BLOCK + BLOCK  # manifest header + data block, then a.bin's header
    # manifest (2 blocks), a.bin (3), b.bin (2), then the two end blocks
    length = {"inside-data": a_data + 100, "inside-header": a_data + 3 * BLOCK + 10}.get(
        cut, 7 * BLOCK + 100
    )
    cut_data = data[:length]
    path = Path(str(tmp_path)) / "cut.bundle.tar"
    path.write_bytes(cut_data)
    for reader in (
        ArchiveReader.from_stream(io.BytesIO(cut_data), "pipe", DEFAULT_LIMITS),
        ArchiveReader.from_path(path, DEFAULT_LIMITS),
    ):
        with reader, pytest.raises(ContainerError, match="cut short") as caught:
            reader.head()
            for member in reader.members():
                if member.extent is None:
                    reader.open(member).read()
        assert caught.value.defect is Defect.ARCHIVE_MALFORMED
        if cut == "inside-data":
            assert caught.value.path == "attachments/a.bin" or "attachments/a.bin" in str(
                caught.value
            )


def test_a_reader_closes_the_file_it_opened_and_only_that() -> None:
    import io
    import os
    import tempfile
    from pathlib import Path

    from bundlekit.format.archive import ArchiveReader
    from bundlekit.limits import DEFAULT_LIMITS

    data, _members = _small_archive()
    given = io.BytesIO(data)
    with ArchiveReader.from_stream(given, "pipe", DEFAULT_LIMITS) as reader:
        reader.head()
    assert not given.closed
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "x.bundle.tar"
        path.write_bytes(data)
        before = set(os.listdir("/proc/self/fd"))
        with ArchiveReader.from_path(path, DEFAULT_LIMITS) as reader:
            reader.head()
            assert len(set(os.listdir("/proc/self/fd")) - before) == 1
        assert set(os.listdir("/proc/self/fd")) - before == set()


# --------------------------------------------------------------------------- names, counts, files


def _with_checksum(block: bytearray) -> bytes:
    block[148:156] = b" " * 8
    block[148:156] = f"{sum(block):06o}\x00 ".encode()
    return bytes(block)


def _one_member(header: bytes, data: bytes) -> bytes:
    from bundlekit.format.archive import BLOCK, member_header

    manifest = member_header("manifest.json", 2, 0) + b"{}" + bytes(BLOCK - 2)
    body = data + bytes(-len(data) % BLOCK)
    return manifest + header + body + bytes(2 * BLOCK)


def _names(archive: bytes, **limits: int) -> list[str]:
    import io

    from bundlekit.format.archive import ArchiveReader
    from bundlekit.limits import Limits

    with ArchiveReader.from_stream(io.BytesIO(archive), "t", Limits(**limits)) as reader:
        return [m.name for m in reader.members()]


def test_a_name_that_fills_the_ustar_field_exactly_is_read_whole() -> None:
    name = "attachments/" + "n" * (100 - len("attachments/"))
    header = member_header(name, 1, 0)
    assert len(header) == 512 and header[99:100] == b"n"  # no NUL: the field is full
    assert _names(_one_member(header, b"x")) == [name]


def test_a_ustar_prefix_that_fills_its_field_is_joined_to_the_name() -> None:
    prefix = "attachments/" + "p" * (155 - len("attachments/"))
    block = bytearray(member_header("file.bin", 1, 0))
    block[345:500] = prefix.encode()
    assert _names(_one_member(_with_checksum(block), b"x"), max_path_length=512) == [
        f"{prefix}/file.bin"
    ]


def test_member_count_cap_counts_every_member_including_the_manifest() -> None:
    data, members = _small_archive()  # manifest + 2 members
    assert _names(data, max_files=3) == list(members)
    with pytest.raises(ContainerError, match="more than 2 members") as caught:
        _names(data, max_files=2)
    assert caught.value.defect is Defect.LISTING


def test_from_path_refuses_what_is_not_a_regular_file_without_blocking(tmp_path: object) -> None:
    import os
    from pathlib import Path

    from bundlekit.errors import UsageError
    from bundlekit.format.archive import ArchiveReader
    from bundlekit.limits import DEFAULT_LIMITS

    folder = Path(str(tmp_path))
    fifo = folder / "pipe.bundle.tar"
    os.mkfifo(fifo)
    before = set(os.listdir("/proc/self/fd"))
    with pytest.raises(UsageError, match="is not a bundle directory or archive"):
        ArchiveReader.from_path(fifo, DEFAULT_LIMITS)
    assert set(os.listdir("/proc/self/fd")) == before  # the descriptor was closed
    with pytest.raises(UsageError, match="cannot open bundle"):
        ArchiveReader.from_path(folder / "absent.bundle.tar", DEFAULT_LIMITS)
    link = folder / "link.bundle.tar"
    link.symlink_to(fifo)
    with pytest.raises(UsageError, match="cannot open bundle"):  # O_NOFOLLOW: links refused
        ArchiveReader.from_path(link, DEFAULT_LIMITS)


def test_a_name_that_is_not_utf8_is_malformed() -> None:
    block = bytearray(member_header("attachments/ab", 1, 0))
    block[12:14] = b"\xff\xfe"
    with pytest.raises(ContainerError, match="name is not UTF-8") as caught:
        _names(_one_member(_with_checksum(block), b"x"))
    assert caught.value.defect is Defect.ARCHIVE_MALFORMED


def test_a_streamed_member_read_one_byte_at_a_time_is_whole() -> None:
    import io

    from bundlekit.format.archive import ArchiveReader
    from bundlekit.limits import DEFAULT_LIMITS

    data, members = _small_archive()
    with ArchiveReader.from_stream(io.BytesIO(data), "t", DEFAULT_LIMITS) as reader:
        got = {}
        for member in reader.members():
            stream = reader.open(member)
            got[member.name] = b"".join(iter(lambda s=stream: s.read(1), b""))
    assert got == members


def test_signature_members_out_of_name_order_are_refused() -> None:
    import io

    from bundlekit.format.archive import ArchiveReader, ArchiveWriter
    from bundlekit.limits import DEFAULT_LIMITS

    out = io.BytesIO()
    writer = ArchiveWriter(out, 0)
    writer.add_bytes("manifest.json", b"{}")
    writer.add_bytes("signatures/z.json", b"1")
    writer.add_bytes("signatures/manifest.dsse.json", b"2")
    writer.finish()
    reader = ArchiveReader.from_stream(io.BytesIO(out.getvalue()), "t", DEFAULT_LIMITS)
    with pytest.raises(ContainerError, match="signatures are not in name order") as caught:
        reader.head()
    assert caught.value.defect is Defect.ORDER


def test_manifest_exactly_at_its_cap_is_read_from_an_archive_one_over_is_not() -> None:
    import io

    from bundlekit.format.archive import ArchiveReader, ArchiveWriter
    from bundlekit.limits import Limits

    out = io.BytesIO()
    writer = ArchiveWriter(out, 0)
    writer.add_bytes("manifest.json", b"m" * 100)
    writer.finish()
    reader = ArchiveReader.from_stream(
        io.BytesIO(out.getvalue()), "t", Limits(max_manifest_bytes=100)
    )
    assert reader.head().manifest == b"m" * 100
    reader = ArchiveReader.from_stream(
        io.BytesIO(out.getvalue()), "t", Limits(max_manifest_bytes=99)
    )
    with pytest.raises(ContainerError, match="100 bytes, over the limit of 99") as caught:
        reader.head()
    assert caught.value.defect is Defect.OVERSIZED


def test_a_streamed_member_cannot_be_opened_once_the_stream_moved_on() -> None:
    import io

    from bundlekit.errors import UsageError
    from bundlekit.format.archive import ArchiveReader
    from bundlekit.limits import DEFAULT_LIMITS

    data, _members = _small_archive()
    with ArchiveReader.from_stream(io.BytesIO(data), "t", DEFAULT_LIMITS) as reader:
        seen = list(reader.members())
        with pytest.raises(UsageError, match="was already read past"):
            reader.open(seen[0])
