"""The one way a bundle is read: a small interface with two containers behind it.

Every command (verify, inspect, replay, sign, unpack, and later ones) reads a
bundle through :class:`BundleReader`; none builds paths into a bundle.  A
bundle is hostile until verified, so a reader hands out only what a verifier
needs, in the order it needs it:

1. :meth:`BundleReader.head`: manifest.json and the signature envelope, each
   bounded by its cap, *before* anything else is read;
2. :meth:`BundleReader.members`: the other files, in stored order, each with
   its size and either an :class:`Extent` (random access: a directory, or an
   archive that is a regular file) or nothing (a stream, such as a pipe: the
   member's bytes are then read with :meth:`BundleReader.open` before the next
   member is asked for).

Structural problems of the container stop the reader with a
:class:`ContainerError` carrying its :class:`Defect`; problems with one entry
of a directory (a link, a special file, an unsafe name) are handed back on
the member, so a report can list them all.
"""

from __future__ import annotations

import os
import stat
import sys
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from bundlekit.errors import FormatError, UsageError
from bundlekit.format.defects import Defect
from bundlekit.format.segment import Readable
from bundlekit.limits import DEFAULT_LIMITS, Limits

#: The argument that names standard input as the bundle.
STDIN = "-"


class ContainerError(FormatError):
    """The container (directory or archive) is malformed or hostile; reading stops here."""

    def __init__(
        self, defect: Defect, message: str, path: str | None = None, hint: str | None = None
    ) -> None:
        super().__init__(
            message, hint or "the bundle is corrupt or was tampered with; obtain a fresh copy"
        )
        self.defect = defect
        self.path = path
        self.exit_code = defect.category.exit_code


@dataclass(frozen=True)
class Head:
    """What is read before anything else: raw manifest and envelope (None if absent)."""

    manifest: bytes | None
    envelope: bytes | None
    #: Why one of them could not be read (over its cap, in a directory; an archive
    #: stops with a ContainerError instead, since its stream cannot skip safely).
    manifest_problem: str | None = None
    envelope_problem: str | None = None


@dataclass(frozen=True)
class Extent:
    """Where a member's bytes lie in a regular file, so any thread or process can read them.

    ``base`` is the file itself (``inner`` None: an archive) or a bundle
    directory (``inner`` the member's relative path, walked one component at
    a time with ``O_NOFOLLOW``, so a link swapped in after listing is refused
    rather than followed).  Picklable: deep verification sends extents to
    worker processes.
    """

    base: str
    offset: int
    size: int
    inner: str | None = None

    def open(self) -> ExtentReader:
        return ExtentReader(self)


class ExtentReader:
    """Reads exactly one extent with ``pread``; never a byte outside it."""

    def __init__(self, extent: Extent) -> None:
        self._fd = _open_no_links(extent.base, extent.inner)
        self._pos = extent.offset
        self._end = extent.offset + extent.size

    def read(self, size: int = -1, /) -> bytes:
        left = self._end - self._pos
        want = left if size < 0 else min(size, left)
        if want <= 0:
            return b""
        data = os.pread(self._fd, want, self._pos)
        self._pos += len(data)
        if not data:
            self._end = self._pos  # the file shrank: end here, the digest tells
        return data

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> ExtentReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LinkRefused(FormatError):
    """A path inside the bundle goes through a symbolic link."""


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _open_no_links(base: str, inner: str | None) -> int:
    """An fd for ``base`` (or ``base/inner``), following no link on the way; regular files only."""
    if inner is None:
        fd = os.open(base, os.O_RDONLY | _NOFOLLOW | os.O_CLOEXEC)
    else:
        fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        parts = inner.split("/")
        try:
            for part in parts[:-1]:
                try:
                    nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW, dir_fd=fd)
                except OSError as exc:
                    raise LinkRefused(f"{inner}: {part} is a link or not a directory") from exc
                os.close(fd)
                fd = nxt
            parent = fd
            fd = os.open(parts[-1], os.O_RDONLY | _NOFOLLOW | os.O_NONBLOCK, dir_fd=parent)
            os.close(parent)
        except BaseException:
            os.close(fd)
            raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise LinkRefused(f"{inner or base} is not a regular file")
    return fd


@dataclass(frozen=True)
class Member:
    """One stored file other than the manifest and signatures."""

    name: str
    size: int
    #: Random access to the bytes; None when they arrive as a stream.
    extent: Extent | None = None
    #: Why a directory entry cannot be used (a link, special file, unsafe name).
    defect: Defect | None = None
    detail: str | None = None


class BundleReader(ABC):
    """A bundle, read as untrusted input.  Use as a context manager."""

    #: How the bundle was named (for messages and reports).
    location: str
    limits: Limits
    #: True if members have extents (any order, any thread); False for a stream.
    random_access: bool
    #: "directory" or "archive".
    kind: str

    @abstractmethod
    def head(self) -> Head:
        """manifest.json and the envelope, bounded by their caps; read first, then kept."""

    @abstractmethod
    def members(self) -> Iterator[Member]:
        """The other files in stored order.  Raises :class:`ContainerError` and stops
        at the first structural problem."""

    def open(self, member: Member) -> Readable:
        """The member's bytes: from its extent, or (streams) the current member."""
        if member.extent is None:
            raise UsageError(f"{member.name}: this bundle is a stream; read members in order")
        return member.extent.open()

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the reader holds."""

    def __enter__(self) -> BundleReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_bundle(location: str | os.PathLike[str], limits: Limits = DEFAULT_LIMITS) -> BundleReader:
    """A reader for a bundle directory, a ``.bundle.tar`` archive, or ``-`` (standard input).

    The container is recognised from what is there, not from the name: a
    directory is a directory bundle; a file or a stream must be an archive.
    """
    from bundlekit.format.archive import ArchiveReader
    from bundlekit.format.directory import DirectoryReader

    text = os.fspath(location)
    if text == STDIN:
        if sys.stdin.isatty():
            raise UsageError(
                "'-' reads a bundle archive from standard input, which is a terminal",
                "pipe or redirect an archive in: bundlekit verify - < incident.bundle.tar",
            )
        stream: BinaryIO = sys.stdin.buffer
        return ArchiveReader.from_stream(stream, "<stdin>", limits)
    path = Path(text)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise UsageError(f"bundle not found: {path}") from None
    except OSError as exc:
        raise UsageError(f"cannot open bundle {path}: {exc.strerror}") from exc
    if stat.S_ISDIR(info.st_mode):
        return DirectoryReader(path, limits)
    return ArchiveReader.from_path(path, limits)
