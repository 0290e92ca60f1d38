"""Raw tar headers for hostile-archive tests.

Python's tarfile refuses to write some of the lies a hostile archive tells
(a pax header of any key, a checksum that does not match, a name with ``..``
in the ustar field, a device with a made-up size), so these helpers write the
512-byte blocks themselves.  Everything else (reading a good archive back into
its members) goes through the same format: ``split`` only reads archives
bundlekit wrote.
"""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass
from pathlib import Path

from bundlekit.limits import DEFAULT_LIMITS

BLOCK = 512
RECORD = 20 * BLOCK
MAGIC = b"ustar\x0000"

REGULAR, HARDLINK, SYMLINK, CHARDEV, BLOCKDEV, DIRECTORY, FIFO = (
    b"0",
    b"1",
    b"2",
    b"3",
    b"4",
    b"5",
    b"6",
)
PAX, GNU_LONGNAME = b"x", b"L"


def _octal(value: int, width: int) -> bytes:
    return f"{value:0{width - 1}o}".encode() + b"\0"


def header(
    name: str | bytes,
    size: int,
    *,
    kind: bytes = REGULAR,
    mode: int = 0o644,
    mtime: int = 0,
    linkname: str = "",
    prefix: str = "",
    magic: bytes = MAGIC,
    checksum: int | None = None,
    size_field: bytes | None = None,
) -> bytes:
    """One header block; every field as given, checksum computed unless ``checksum``."""
    raw_name = name if isinstance(name, bytes) else name.encode("utf-8")
    block = bytearray(BLOCK)
    block[0:100] = raw_name[:100].ljust(100, b"\0")
    block[100:108] = _octal(mode, 8)
    block[108:116] = _octal(0, 8)
    block[116:124] = _octal(0, 8)
    block[124:136] = size_field if size_field is not None else _octal(size, 12)
    block[136:148] = _octal(mtime, 12)
    block[156:157] = kind
    block[157:257] = linkname.encode("utf-8").ljust(100, b"\0")
    block[257:265] = magic
    block[345:500] = prefix.encode("utf-8").ljust(155, b"\0")
    block[148:156] = b" " * 8
    value = sum(block) if checksum is None else checksum
    block[148:156] = f"{value:06o}".encode() + b"\0 "
    return bytes(block)


def padding(size: int) -> bytes:
    return bytes(-size % BLOCK)


def member(name: str | bytes, data: bytes = b"", **fields: object) -> bytes:
    """Header, data and padding of one member (``fields`` go to :func:`header`)."""
    return header(name, len(data), **fields) + data + padding(len(data))  # type: ignore[arg-type]


def pax_record(key: str, value: str) -> bytes:
    """One ``"%d key=value\\n"`` record whose length counts itself."""
    body = f" {key}={value}\n".encode()
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length += 1
    return str(length).encode() + body


def pax(records: bytes | list[tuple[str, str]], *, declared: int | None = None) -> bytes:
    """A pax extended header (type ``x``) holding ``records``."""
    data = records if isinstance(records, bytes) else b"".join(pax_record(*r) for r in records)
    size = len(data) if declared is None else declared
    return header("././@PaxHeader", size, kind=PAX) + data + padding(len(data))


def replant(doc: dict, name: str, blob: bytes, declared: int) -> None:  # type: ignore[type-arg]
    """Edit manifest ``doc`` so file ``name`` is ``blob`` (``declared`` bytes uncompressed):
    its size, uncompressed size and digest, and the totals, all consistent again."""
    import hashlib

    entry = next(f for f in doc["predicate"]["files"] if f["name"] == name)
    totals = doc["predicate"]["totals"]
    totals["size"] += len(blob) - entry["size"]
    totals["uncompressedSize"] += declared - entry["uncompressedSize"]
    entry["size"], entry["uncompressedSize"] = len(blob), declared
    for subject in doc["subject"]:
        if subject["name"] == name:
            subject["digest"]["sha256"] = hashlib.sha256(blob).hexdigest()


def end() -> bytes:
    """Two zero blocks (the record padding is added by :func:`archive`)."""
    return bytes(2 * BLOCK)


def archive(*parts: bytes, terminate: bool = True) -> bytes:
    body = b"".join(parts) + (end() if terminate else b"")
    return body + bytes(-len(body) % RECORD) if terminate else body


@dataclass(frozen=True)
class Entry:
    name: str
    data: bytes

    def member(self, **fields: object) -> bytes:
        return member(self.name, self.data, **fields)


def split(data: bytes) -> list[Entry]:
    """The members of an archive bundlekit wrote (a trusted one: tarfile is fine here)."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        out = []
        for info in tar:
            handle = tar.extractfile(info)
            assert handle is not None
            out.append(Entry(info.name, handle.read()))
        return out


# -- fuzzing (tests/test_fuzz.py PARSERS, bench/fuzz.py TARGETS) ------------------------


def archive_of(bundle: Path) -> bytes:
    """A bundle directory as the archive bundlekit writes (the fuzzers' seed)."""
    from bundlekit.format.archive import ArchiveWriter
    from bundlekit.format.layout import ENVELOPE_NAME, MANIFEST_NAME

    out = io.BytesIO()
    writer = ArchiveWriter(out, 0)
    names = sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file())
    payload = [n for n in names if n not in (MANIFEST_NAME, ENVELOPE_NAME)]
    for name in [MANIFEST_NAME, ENVELOPE_NAME, *payload]:
        if (bundle / name).is_file():
            writer.add_bytes(name, (bundle / name).read_bytes())
    writer.finish()
    return out.getvalue()


def parse_archive(data: bytes) -> str:
    """The archive reader on ``data`` as a stream (head, then every member read out),
    then ``check_bundle`` on it as a file (files checked against its manifest, trust
    skipped).  Only BundlekitError may come out of the reader; the report never raises."""
    import tempfile

    from bundlekit.format.archive import ArchiveReader
    from bundlekit.verify import VerifyOptions, check_bundle

    outcome = "accepted"
    try:
        with ArchiveReader.from_stream(io.BytesIO(data), "<fuzz>", limits=DEFAULT_LIMITS) as reader:
            reader.head()
            for entry in reader.members():
                stream = reader.open(entry)
                while stream.read(1 << 16):
                    pass
    except Exception as exc:
        from bundlekit.errors import BundlekitError

        if not isinstance(exc, BundlekitError):
            raise
        outcome = type(exc).__name__
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.bundle.tar"
        path.write_bytes(data)
        check_bundle(path, VerifyOptions(require_trust=False, workers=1))
    return outcome
