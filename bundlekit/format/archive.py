"""The single-file bundle: a POSIX (pax) tar of exactly the bundle's files.

Normative form (docs/format.md, section 8): members are regular files only,
``manifest.json`` first, then ``signatures/`` members in name order, then the
other files in manifest (name) order; no directory entries; every header has
uid/gid 0, empty user and group names, mode 0644 and mtime the bundle's
creation time; a pax ``x`` header precedes a member only when its name needs
one.  The archive ends with two zero blocks, padded to a 10240-byte record.

Reading is done here, not by :mod:`tarfile`: tarfile reads a pax header of
any declared size into memory, follows no bound on member counts, and its
extraction filters have had bypasses.  This reader is strict instead: every
header is checked (checksum, magic, numbers), pax headers are capped and only
harmless keys are accepted, and links, devices, FIFOs, directories, unsafe,
duplicate or colliding names and members out of order stop it with a named
:class:`~bundlekit.format.reader.ContainerError`.  It never seeks backwards,
so it reads a pipe as well as a file.
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from bundlekit.errors import UsageError
from bundlekit.format.defects import Defect
from bundlekit.format.directory import is_payload
from bundlekit.format.layout import (
    ENVELOPE_NAME,
    MANIFEST_NAME,
    SIGNATURES_DIR,
    check_relative_path,
)
from bundlekit.format.reader import BundleReader, ContainerError, Extent, Head, Member
from bundlekit.format.segment import Readable
from bundlekit.limits import Limits

SUFFIX = ".bundle.tar"
BLOCK = 512
#: tar pads the archive to a multiple of this (20 blocks), as tar(1) does.
RECORD = 20 * BLOCK
POSIX_MAGIC = b"ustar\x0000"
_ZERO_BLOCK = bytes(BLOCK)
_COPY_CHUNK = 1 << 20
#: pax keys accepted on read: none of them changes where a member goes or how its bytes are read.
_PAX_KEYS = frozenset(
    {"path", "size", "mtime", "atime", "ctime", "uid", "gid", "uname", "gname", "comment"}
)
_REGULAR = (b"0", b"\0")
_NOT_REGULAR = {
    b"1": "a hard link",
    b"2": "a symbolic link",
    b"3": "a character device",
    b"4": "a block device",
    b"5": "a directory",
    b"6": "a FIFO",
}


# --- writing ----------------------------------------------------------------------------


def member_header(name: str, size: int, mtime: int) -> bytes:
    """The header block(s) of one member, fixed in every field but name, size and mtime."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = mtime
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "strict")


def _padding(size: int) -> bytes:
    return bytes(-size % BLOCK)


class ArchiveWriter:
    """Writes members in the order given; the caller keeps to the normative order."""

    def __init__(self, handle: BinaryIO, mtime: int) -> None:
        self._handle = handle
        self._mtime = mtime
        self._written = 0

    def add_bytes(self, name: str, data: bytes) -> None:
        self._write(member_header(name, len(data), self._mtime))
        self._write(data)
        self._write(_padding(len(data)))

    def add_file(self, name: str, size: int, path: Path) -> None:
        """Copy the regular file ``path`` (exactly ``size`` bytes) as member ``name``.

        The bytes move in the kernel (``copy_file_range``) when the handle is
        an unbuffered file; otherwise, or where the call is not supported,
        through a buffer.
        """
        self._write(member_header(name, size, self._mtime))
        with open(path, "rb", buffering=0) as source:
            if os.fstat(source.fileno()).st_size != size:
                raise UsageError(f"{name} is not {size} bytes as the manifest says")
            left = size
            target = _fileno(self._handle)
            if target is not None and hasattr(os, "copy_file_range"):
                left = _copy_in_kernel(source.fileno(), target, left)
            while left:
                chunk = source.read(min(_COPY_CHUNK, left))
                if not chunk:
                    raise UsageError(f"{name} ended {left} bytes early while being archived")
                self._handle.write(chunk)
                left -= len(chunk)
        self._written += size
        self._write(_padding(size))

    def finish(self) -> None:
        """End-of-archive marker (two zero blocks) and padding to a whole record."""
        self._write(_ZERO_BLOCK * 2)
        self._write(bytes(-self._written % RECORD))

    def write_raw(self, data: bytes) -> None:
        """Bytes of a member being streamed in by the caller (header, data, padding)."""
        self._write(data)

    def _write(self, data: bytes) -> None:
        self._handle.write(data)
        self._written += len(data)


def _fileno(handle: object) -> int | None:
    """The OS file descriptor behind ``handle``, if it has one (a BytesIO has not)."""
    try:
        return int(handle.fileno())  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
        return None


def _copy_in_kernel(source: int, target: int, left: int) -> int:
    """Copy up to ``left`` bytes at the files' positions; return how many are left."""
    try:
        while left:
            done = os.copy_file_range(source, target, min(left, 1 << 30))
            if not done:
                break
            left -= done
    except OSError as exc:  # EXDEV on old kernels, ENOSYS, EINVAL on some filesystems
        if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
            raise
    return left


# --- reading ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Header:
    name: str
    size: int
    offset: int  # of the member's data in the archive


def _malformed(message: str, path: str | None = None) -> ContainerError:
    return ContainerError(Defect.ARCHIVE_MALFORMED, message, path)


def _number(field: bytes, what: str) -> int:
    if field[:1] and field[0] & 0x80:
        raise _malformed(f"header field {what} uses base-256, which bundlekit archives never do")
    text = field.split(b"\0", 1)[0].strip(b" ")
    if not text:
        return 0
    if not all(0x30 <= c <= 0x37 for c in text):
        raise _malformed(f"header field {what} is not an octal number")
    return int(text, 8)


def _check_checksum(block: bytes) -> None:
    stored = _number(block[148:156], "chksum")
    unsigned = sum(block[:148]) + 8 * 0x20 + sum(block[156:])
    signed = unsigned - 2 * sum(b for b in block[:148] + block[156:] if b > 0x7F)
    if stored not in (unsigned, signed):
        raise _malformed("a header's checksum does not match: not a tar archive, or corrupt")


def _text(field: bytes, what: str) -> str:
    try:
        return field.split(b"\0", 1)[0].decode("utf-8")
    except UnicodeDecodeError:
        raise _malformed(f"header field {what} is not UTF-8") from None


def _parse_pax(data: bytes) -> dict[str, str]:
    """Records ``"%d %s=%s\\n"``, each length counting itself; strict."""
    records: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos, pos + 20)
        if space < 0 or not data[pos:space].isdigit():
            raise _malformed("a pax header record has no valid length")
        length = int(data[pos:space])
        end = pos + length
        if length <= space - pos + 1 or end > len(data) or data[end - 1 : end] != b"\n":
            raise _malformed("a pax header record's length is wrong")
        key, sep, value = data[space + 1 : end - 1].partition(b"=")
        try:
            key_text, value_text = key.decode("utf-8"), value.decode("utf-8")
        except UnicodeDecodeError:
            raise _malformed("a pax header record is not UTF-8") from None
        if not sep or key_text not in _PAX_KEYS:
            raise _malformed(
                f"pax header key {key_text!r} is not accepted in a bundle archive "
                "(only path, size and informational keys)"
            )
        records[key_text] = value_text
        pos = end
    return records


class _Input:
    """Sequential reads with an offset; skips by seeking when it can."""

    def __init__(self, handle: BinaryIO, seekable: bool, size: int | None) -> None:
        self.handle = handle
        self.seekable = seekable
        self.size = size
        self.offset = 0

    def read_exact(self, n: int, what: str) -> bytes:
        """Exactly ``n`` bytes, gathering short reads (a pipe's) without quadratic copying."""
        data = self.handle.read(n) if n else b""
        if len(data) < n:
            parts, have = [data], len(data)
            while have < n:
                more = self.handle.read(n - have)
                if not more:
                    raise _malformed(f"the archive is cut short inside {what}")
                parts.append(more)
                have += len(more)
            data = b"".join(parts)
        self.offset += n
        return data

    def skip(self, n: int, what: str) -> None:
        if not n:
            return
        if self.seekable:
            if self.size is not None and self.offset + n > self.size:
                raise _malformed(f"the archive is cut short inside {what}")
            self.handle.seek(self.offset + n)
            self.offset += n
            return
        while n:
            step = min(n, _COPY_CHUNK)
            self.read_exact(step, what)
            n -= step


class _MemberStream:
    """The current member's bytes on a stream; never reads past them."""

    def __init__(self, source: _Input, size: int, name: str) -> None:
        self._source = source
        self._left = size
        self._name = name

    def read(self, size: int = -1, /) -> bytes:
        """``size`` bytes (all that is left if negative), fewer only at the member's end.

        A pipe may deliver fewer bytes per read than asked; they are gathered, so a
        caller asking for a whole segment gets all of it or a "cut short" error.
        """
        want = self._left if size < 0 else min(size, self._left)
        if want <= 0:
            return b""
        data = self._source.read_exact(want, self._name)
        self._left -= len(data)
        return data

    def drain(self) -> None:
        self._source.skip(self._left, self._name)
        self._left = 0


class ArchiveReader(BundleReader):
    """A ``.bundle.tar`` from a regular file (random access) or a stream (one pass)."""

    kind = "archive"

    def __init__(
        self,
        handle: BinaryIO,
        location: str,
        limits: Limits,
        *,
        path: str | None,
        size: int | None,
    ) -> None:
        self.location = location
        self.limits = limits
        self.random_access = path is not None
        self._path = path
        self._input = _Input(handle, path is not None, size)
        self._owned = handle if path is not None else None
        self._pending: _Header | None = None
        self._ended = False
        self._count = 0
        self._names: set[str] = set()
        self._folded: dict[str, str] = {}
        self._last = ""
        self._current: _MemberStream | None = None
        self._head_done = False
        self._head: Head | None = None

    @classmethod
    def from_path(cls, path: Path, limits: Limits) -> ArchiveReader:
        flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | os.O_CLOEXEC
        try:
            fd = os.open(path, flags)
        except OSError as exc:
            raise UsageError(f"cannot open bundle {path}: {exc.strerror}") from exc
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            raise UsageError(
                f"{path} is not a bundle directory or archive",
                "pass a directory or .bundle.tar written by bundlekit, or - for standard input",
            )
        os.set_blocking(fd, True)
        handle = os.fdopen(fd, "rb", buffering=0)
        return cls(handle, str(path), limits, path=str(path), size=info.st_size)

    @classmethod
    def from_stream(cls, handle: BinaryIO, location: str, limits: Limits) -> ArchiveReader:
        return cls(handle, location, limits, path=None, size=None)

    def close(self) -> None:
        if self._owned is not None:
            self._owned.close()
            self._owned = None

    # -- the walk --------------------------------------------------------------------

    def _next(self) -> _Header | None:
        """The next member's header, all checks done; None at the end-of-archive marker."""
        if self._pending is not None:
            header, self._pending = self._pending, None
            return header
        if self._ended:
            return None
        pax: dict[str, str] | None = None
        while True:
            block = self._input.read_exact(BLOCK, "a header")
            if block == _ZERO_BLOCK:
                if pax is not None:
                    raise _malformed("a pax header is not followed by a member")
                self._ended = True
                return None
            _check_checksum(block)
            if block[257:265] != POSIX_MAGIC:
                raise _malformed("not a POSIX tar archive (ustar magic missing)")
            kind = block[156:157]
            size = _number(block[124:136], "size")
            if kind == b"x":
                if pax is not None:
                    raise _malformed("two pax headers in a row")
                cap = self.limits.max_pax_header_bytes
                if size > cap:
                    raise ContainerError(
                        Defect.OVERSIZED, f"a pax header of {size} bytes is over the cap of {cap}"
                    )
                pax = _parse_pax(self._input.read_exact(size, "a pax header"))
                self._input.skip(-size % BLOCK, "a pax header")
                continue
            name = _text(block[0:100], "name")
            prefix = _text(block[345:500], "prefix")
            if prefix:
                name = f"{prefix}/{name}"
            if pax is not None:
                name = pax.get("path", name)
                if "size" in pax:
                    if not pax["size"].isdigit():
                        raise _malformed("a pax size is not a number", name)
                    size = int(pax["size"])
            return self._admit(name, kind, size)

    def _admit(self, name: str, kind: bytes, size: int) -> _Header:
        self._count += 1
        if self._count > self.limits.max_files:
            raise ContainerError(
                Defect.LISTING, f"the archive holds more than {self.limits.max_files} members"
            )
        if kind not in _REGULAR:
            what = _NOT_REGULAR.get(kind)
            if what is None:
                raise _malformed(f"member type {kind!r} is not used in bundle archives", name)
            raise ContainerError(Defect.NOT_REGULAR, f"member is {what}", name)
        try:
            check_relative_path(name, self.limits)
        except Exception as exc:
            raise ContainerError(Defect.UNSAFE_NAME, str(exc), name) from None
        if name in self._names:
            raise ContainerError(Defect.DUPLICATE, "the archive holds this name twice", name)
        folded = unicodedata.normalize("NFC", name).casefold()
        if folded in self._folded:
            raise ContainerError(
                Defect.COLLISION,
                f"differs only by case or normalization from {self._folded[folded]!r}",
                name,
            )
        self._names.add(name)
        self._folded[folded] = name
        return _Header(name, size, self._input.offset)

    def head(self) -> Head:
        if self._head is not None:
            return self._head
        self._head = self._read_head()
        return self._head

    def _read_head(self) -> Head:
        self._head_done = True
        try:
            first = self._next()
        except ContainerError as exc:
            if exc.defect is not Defect.ARCHIVE_MALFORMED:
                raise
            raise ContainerError(
                Defect.ARCHIVE_MALFORMED,
                f"{self.location} is not a bundle archive ({exc.message})",
                hint="pass a bundle directory or a .bundle.tar written by bundlekit",
            ) from None
        if first is None:
            raise _malformed(f"{self.location} is an empty archive")
        if first.name != MANIFEST_NAME:
            raise ContainerError(Defect.ORDER, "the first member must be manifest.json", first.name)
        manifest = self._read_small(first, self.limits.max_manifest_bytes)
        envelope = None
        while True:
            header = self._next()
            if header is None or not header.name.startswith(SIGNATURES_DIR + "/"):
                self._pending = header
                self._ended = header is None
                break
            if header.name < self._last:
                raise ContainerError(Defect.ORDER, "signatures are not in name order", header.name)
            self._last = header.name
            data = self._read_small(header, self.limits.max_envelope_bytes)
            if header.name == ENVELOPE_NAME:
                envelope = data
        self._last = ""
        return Head(manifest, envelope)

    def _read_small(self, header: _Header, cap: int) -> bytes:
        if header.size > cap:
            raise ContainerError(
                Defect.OVERSIZED,
                f"{header.size} bytes, over the limit of {cap}",
                header.name,
            )
        data = self._input.read_exact(header.size, header.name)
        self._input.skip(-header.size % BLOCK, header.name)
        return data

    def members(self) -> Iterator[Member]:
        self.head()
        while (header := self._next()) is not None:
            if not is_payload(header.name):
                raise ContainerError(
                    Defect.ORDER,
                    "manifest.json and signatures/ must come before every other member",
                    header.name,
                )
            if header.name <= self._last:
                raise ContainerError(
                    Defect.ORDER, "members are not in manifest (name) order", header.name
                )
            self._last = header.name
            padded = header.size + (-header.size % BLOCK)
            if self._path is not None:
                extent = Extent(self._path, header.offset, header.size)
                self._input.skip(padded, header.name)
                yield Member(header.name, header.size, extent)
            else:
                self._current = _MemberStream(self._input, header.size, header.name)
                yield Member(header.name, header.size)
                if self._current is not None:
                    self._current.drain()
                    self._current = None
                self._input.skip(-header.size % BLOCK, header.name)

    def open(self, member: Member) -> Readable:
        if member.extent is not None:
            return member.extent.open()
        if self._current is None:
            raise UsageError(f"{member.name} was already read past")
        return self._current
