"""Crash-safe writes: nothing half-written ever sits at a final path.

Files and bundle directories are written under a temporary sibling name,
fsynced, then renamed into place; the parent directory is fsynced so the
rename itself survives a power cut.  On failure the temporary is removed.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bundlekit.errors import UsageError


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temp_sibling(final: Path, tag: str) -> Path:
    return final.with_name(f".{final.name}.{tag}-{secrets.token_hex(4)}")


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` atomically with permissions ``mode``."""
    tmp = _temp_sibling(path, "tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_file_synced(path: Path, data: bytes | memoryview) -> None:
    """Write a new file inside a staging directory and fsync it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


@contextmanager
def staged_directory(final: Path) -> Iterator[Path]:
    """Yield a temporary directory that becomes ``final`` only if the block succeeds.

    Refuses to replace an existing ``final``: a bundle is evidence and is
    never overwritten silently.
    """
    if final.exists() or final.is_symlink():
        raise UsageError(f"{final} already exists", "choose another --out path or remove it first")
    parent = final.parent
    if not parent.is_dir():
        raise UsageError(f"output directory {parent} does not exist")
    staging = _temp_sibling(final, "partial")
    staging.mkdir(mode=0o755)
    try:
        yield staging
        for root, dirs, _files in os.walk(staging):
            for name in dirs:
                fsync_dir(Path(root) / name)
        fsync_dir(staging)
        if final.exists():
            raise UsageError(f"{final} appeared while packing", "choose another --out path")
        os.rename(staging, final)
        fsync_dir(parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
