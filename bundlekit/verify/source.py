"""Reading a bundle directory as untrusted input.

Lists files without following links, refuses anything that is not a regular
file, and bounds how many files and how deep, so a hostile bundle cannot make
the verifier wander outside it or read forever.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from bundlekit.errors import FormatError, LimitExceeded, UsageError
from bundlekit.format.layout import ENVELOPE_NAME, MANIFEST_NAME, check_relative_path
from bundlekit.limits import DEFAULT_LIMITS, Limits


class LinkRefused(FormatError):
    """A path inside the bundle goes through a symbolic link."""


@dataclass
class Listing:
    #: Regular files by relative POSIX path, with their sizes.
    files: dict[str, int] = field(default_factory=dict)
    #: Paths that are links, devices, sockets or otherwise not regular files.
    irregular: list[str] = field(default_factory=list)
    #: Paths whose names are unsafe (not normalized, control characters...).
    unsafe: list[str] = field(default_factory=list)


class DirectorySource:
    """A bundle stored as a directory."""

    def __init__(self, root: Path, limits: Limits = DEFAULT_LIMITS) -> None:
        if not root.exists():
            raise UsageError(f"bundle not found: {root}")
        if not root.is_dir():
            raise UsageError(
                f"{root} is not a bundle directory",
                "pass the directory written by `bundlekit pack`",
            )
        self.root = root
        self.limits = limits

    def listing(self) -> Listing:
        result = Listing()
        count = 0
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=False):
            base = Path(dirpath)
            rel_dir = base.relative_to(self.root).as_posix()
            for name in [*dirnames, *filenames]:
                count += 1
                if count > self.limits.max_files:
                    raise LimitExceeded(
                        f"bundle holds more than {self.limits.max_files} entries",
                        "this is not a bundle bundlekit wrote",
                    )
                rel = name if rel_dir == "." else f"{rel_dir}/{name}"
                info = os.lstat(base / name)
                if stat.S_ISDIR(info.st_mode):
                    continue
                try:
                    check_relative_path(rel, self.limits)
                except Exception:
                    result.unsafe.append(rel)
                    continue
                if stat.S_ISREG(info.st_mode):
                    result.files[rel] = info.st_size
                else:
                    result.irregular.append(rel)
            dirnames[:] = [d for d in dirnames if not (base / d).is_symlink()]
        return result

    def path_of(self, name: str) -> Path:
        """The on-disk path of ``name``, refusing any link along the way."""
        path = self.root
        for part in check_relative_path(name, self.limits).split("/")[:-1]:
            path = path / part
            if path.is_symlink():
                raise LinkRefused(f"{name}: {path.relative_to(self.root)} is a link")
        return path / name.rsplit("/", 1)[-1]

    def read_small(self, name: str, limit: int) -> bytes | None:
        """Whole contents of a small file, None if absent; LimitExceeded if over ``limit``."""
        try:
            path = self.path_of(name)
            info = os.lstat(path)
        except (FileNotFoundError, LinkRefused):
            return None
        if not stat.S_ISREG(info.st_mode):
            return None
        if info.st_size > limit:
            raise LimitExceeded(f"{name} is {info.st_size} bytes, over the limit of {limit}")
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as handle:
            data = handle.read(limit + 1)
        if len(data) > limit:
            raise LimitExceeded(f"{name} grew past the limit of {limit} bytes while being read")
        return data

    def read_manifest(self) -> bytes | None:
        """manifest.json's bytes (None if absent), bounded by ``max_manifest_bytes``."""
        return self.read_small(MANIFEST_NAME, self.limits.max_manifest_bytes)

    def read_envelope(self) -> bytes | None:
        """The signature envelope's bytes (None if absent), bounded by ``max_envelope_bytes``."""
        return self.read_small(ENVELOPE_NAME, self.limits.max_envelope_bytes)

    def open(self, name: str) -> BinaryIO:
        """Open a listed file for reading without following a final link."""
        fd = os.open(self.path_of(name), os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        return os.fdopen(fd, "rb")
