"""A bundle stored as a directory, read as untrusted input.

Lists files without following links, reports anything that is not a regular
file or has an unsafe name, and bounds how many entries and how deep, so a
hostile bundle cannot make a reader wander outside it or list forever.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from bundlekit.errors import LimitExceeded, UsageError
from bundlekit.format.defects import Defect
from bundlekit.format.layout import (
    ENVELOPE_NAME,
    MANIFEST_NAME,
    SIGNATURES_DIR,
    check_relative_path,
)
from bundlekit.format.reader import (
    BundleReader,
    ContainerError,
    Extent,
    Head,
    LinkRefused,
    Member,
    _open_no_links,
)
from bundlekit.limits import Limits


def is_payload(name: str) -> bool:
    """True for every bundle file except manifest.json and the signatures."""
    return name != MANIFEST_NAME and not name.startswith(SIGNATURES_DIR + "/")


class DirectoryReader(BundleReader):
    """A bundle directory: random access, members in name (manifest) order."""

    random_access = True
    kind = "directory"

    def __init__(self, root: Path, limits: Limits) -> None:
        if not root.is_dir():
            raise UsageError(
                f"{root} is not a bundle directory",
                "pass the directory or .bundle.tar written by `bundlekit pack`",
            )
        self.root = root
        self.location = str(root)
        self.limits = limits
        self._head: Head | None = None

    def head(self) -> Head:
        if self._head is None:
            self._head = self._read_head()
        return self._head

    def _read_head(self) -> Head:
        manifest = envelope = None
        manifest_problem = envelope_problem = None
        try:
            manifest = self.read_small(MANIFEST_NAME, self.limits.max_manifest_bytes)
        except LimitExceeded as exc:
            manifest_problem = exc.message
        try:
            envelope = self.read_small(ENVELOPE_NAME, self.limits.max_envelope_bytes)
        except LimitExceeded as exc:
            envelope_problem = exc.message
        return Head(manifest, envelope, manifest_problem, envelope_problem)

    def read_small(self, name: str, limit: int) -> bytes | None:
        """Whole contents of a small file, None if absent; LimitExceeded if over ``limit``."""
        try:
            fd = _open_no_links(str(self.root), check_relative_path(name, self.limits))
        except (FileNotFoundError, LinkRefused, NotADirectoryError):
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # the final component is a link
                return None
            raise
        with os.fdopen(fd, "rb") as handle:
            size = os.fstat(fd).st_size
            if size > limit:
                raise LimitExceeded(f"{name} is {size} bytes, over the limit of {limit}")
            data = handle.read(limit + 1)
        if len(data) > limit:
            raise LimitExceeded(f"{name} grew past the limit of {limit} bytes while being read")
        return data

    def members(self) -> Iterator[Member]:
        found: list[Member] = []
        count = 0
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=False):
            base = Path(dirpath)
            rel_dir = base.relative_to(self.root).as_posix()
            for name in [*dirnames, *filenames]:
                count += 1
                if count > self.limits.max_files:
                    raise ContainerError(
                        Defect.LISTING,
                        f"bundle holds more than {self.limits.max_files} entries",
                        hint="this is not a bundle bundlekit wrote",
                    )
                rel = name if rel_dir == "." else f"{rel_dir}/{name}"
                info = os.lstat(base / name)
                if stat.S_ISDIR(info.st_mode):
                    continue
                try:
                    check_relative_path(rel, self.limits)
                except Exception:
                    found.append(
                        Member(rel, 0, None, Defect.UNSAFE_NAME, "file name is not allowed")
                    )
                    continue
                if not stat.S_ISREG(info.st_mode):
                    found.append(
                        Member(
                            rel,
                            0,
                            None,
                            Defect.NOT_REGULAR,
                            "a link or special file, not a regular file",
                        )
                    )
                elif is_payload(rel):
                    found.append(
                        Member(rel, info.st_size, Extent(self.location, 0, info.st_size, rel))
                    )
            dirnames[:] = [d for d in dirnames if not (base / d).is_symlink()]
        found.sort(key=lambda m: m.name)
        yield from found
