"""Crash-safe writes and hang-proof reads of user files.

Writes: files and bundle directories are written under a temporary sibling
name, fsynced, then renamed into place; the parent directory is fsynced so the
rename itself survives a power cut.  On failure the temporary is removed, and
a pack killed outright (SIGKILL, power cut) leaves staging that the next pack
into the same directory recognises as dead, by its lock, and removes.

Reads: every file a user names (key, trust, config, dashboard, attachment,
OTLP input) is opened through :func:`open_regular`, which refuses FIFOs,
devices and sockets *before* reading from them (a FIFO would block forever,
/dev/zero would never end) and lets callers notice a file that changed while
it was read.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import secrets
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from bundlekit.errors import InputError, IOFailure, UsageError, translate_os_errors

#: Staging directories are ``.NAME.partial-XXXXXXXX``; their lock is the same name + ``.lock``.
_STAGING_NAME = re.compile(r"^\..+\.partial-[0-9a-f]{8}$")
_LOCK_SUFFIX = ".lock"


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_sibling(final: Path, tag: str) -> Path:
    return final.with_name(f".{final.name}.{tag}-{secrets.token_hex(4)}")


# --- reading user files ---------------------------------------------------------------


@dataclass(frozen=True)
class FileStamp:
    """Identity and version of a file: if any field moves, the file changed under us."""

    device: int
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileStamp:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "not a regular file"


def _not_regular(path: Path, what: str, mode: int) -> InputError:
    return InputError(
        f"{what} {path} is {_kind(mode)}, not a regular file",
        "pass a regular file; pipes, devices and sockets are refused because reading them "
        "can block forever or never end",
    )


def open_regular(path: Path, what: str) -> tuple[BinaryIO, FileStamp]:
    """Open ``path`` for reading only if it is a regular file; return it and its stamp.

    The open itself cannot block: O_NONBLOCK makes opening a FIFO return at
    once (and O_NOCTTY keeps a terminal device from becoming ours); the type
    is then checked on the open descriptor with fstat, so a file swapped in
    between a check and the open cannot slip through.  A missing file or a
    directory is a usage error (exit 2); any other OSError is an
    :class:`IOFailure` (exit 7).
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except FileNotFoundError as exc:
        raise InputError(f"{what} not found: {path}") from exc
    except IsADirectoryError as exc:
        raise _not_regular(path, what, stat.S_IFDIR) from exc
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # opening a UNIX socket (or a device with no driver)
            with contextlib.suppress(OSError):
                raise _not_regular(path, what, os.stat(path).st_mode) from exc
        raise IOFailure.from_oserror(exc, f"open {what}", path) from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _not_regular(path, what, st.st_mode)
        os.set_blocking(fd, True)  # a regular file: back to ordinary reads
        handle = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    return handle, FileStamp.of(st)


def changed_while_read(path: Path, what: str) -> IOFailure:
    return IOFailure(
        f"{what} {path} changed while bundlekit was reading it",
        "something is still writing to it: wait until it is complete (or copy it somewhere "
        "stable) and run again",
    )


def check_unchanged(handle: BinaryIO, stamp: FileStamp, path: Path, what: str) -> None:
    """Raise :func:`changed_while_read` if the open file is no longer what was opened."""
    with translate_os_errors(f"read {what}", path):
        now = FileStamp.of(os.fstat(handle.fileno()))
    if now != stamp:
        raise changed_while_read(path, what)


def check_same_file(path: Path, stamp: FileStamp, what: str) -> None:
    """Raise if ``path`` no longer names the file ``stamp`` was taken from (or it changed).

    For inputs read twice (signal detection, then packing): the second read
    must see the file the first one saw.
    """
    try:
        now = FileStamp.of(os.stat(path))
    except FileNotFoundError as exc:
        raise IOFailure(
            f"{what} {path} vanished while bundlekit was using it",
            "make sure nothing moves or deletes the inputs until bundlekit is done",
            errno.ENOENT,
        ) from exc
    except OSError as exc:
        raise IOFailure.from_oserror(exc, f"read {what}", path) from exc
    if now != stamp:
        raise changed_while_read(path, what)


def reopen_unchanged(path: Path, expect: FileStamp, what: str) -> BinaryIO:
    """Open ``path`` again for reading; it must be the very file ``expect`` was taken from.

    For a file read in two passes, or stamped early and copied late: a file
    that vanished, was replaced or was modified in between is refused
    (:class:`IOFailure`), as are FIFOs and devices (:func:`open_regular`).
    """
    check_same_file(path, expect, what)
    handle, stamp = open_regular(path, what)
    if stamp != expect:
        handle.close()
        raise changed_while_read(path, what)
    return handle


def read_regular(path: Path, what: str, max_bytes: int) -> bytes:
    """All of a regular file of at most ``max_bytes``, read bounded and checked unchanged."""
    handle, stamp = open_regular(path, what)
    with handle:
        if stamp.size > max_bytes:
            raise InputError(f"{what} {path} is larger than {max_bytes} bytes")
        with translate_os_errors(f"read {what}", path):
            data = handle.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise changed_while_read(path, what)  # it grew past its stat size while we read
        if len(data) != stamp.size:
            raise changed_while_read(path, what)
        check_unchanged(handle, stamp, path, what)
    return data


# --- writing --------------------------------------------------------------------------


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` atomically with permissions ``mode`` (replacing it)."""
    tmp = _writetemp_sibling(path, data, mode)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_new_file(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` complete or not at all, never replacing anything there.

    The data goes to a temporary sibling first, then is hard-linked to
    ``path``: link(2) fails with EEXIST for any existing entry, a dangling
    symlink included, and is atomic, so a racing writer cannot be clobbered
    and a crash leaves either nothing or the whole file at ``path``.
    Raises FileExistsError if ``path`` exists, other OSErrors as they come.
    """
    tmp = _writetemp_sibling(path, data, mode)
    try:
        publish_new_file(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


#: errno values of link(2) on filesystems without hard links (FAT, exFAT, some FUSE mounts).
_NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS}


def publish_new_file(tmp: Path, final: Path) -> None:
    """Give the complete, fsynced file ``tmp`` its final name, never replacing anything.

    link(2) is atomic and fails for any existing entry; on a filesystem with
    no hard links (a FAT32 USB stick, the usual carrier of bundles) the
    fallback is a rename after a check, which leaves only a tiny window for a
    racing writer.  ``tmp`` stays (the caller removes it) unless renamed.
    Raises FileExistsError if ``final`` exists.
    """
    try:
        os.link(tmp, final, follow_symlinks=False)
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:
            raise
        if os.path.lexists(final):
            raise FileExistsError(errno.EEXIST, "File exists", str(final)) from None
        os.rename(tmp, final)
    fsync_dir(final.parent)


def _writetemp_sibling(path: Path, data: bytes, mode: int) -> Path:
    """Write ``data`` durably to a new temporary sibling of ``path`` and return it.

    The temporary is created exclusively (never through a link) and removed
    again if anything fails, so the caller only has to move it into place.
    """
    tmp = temp_sibling(path, "tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def write_file_synced(path: Path, data: bytes | memoryview) -> None:
    """Write a new file inside a staging directory and fsync it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


# --- staging directories and their liveness locks -------------------------------------


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def clean_stale_staging(parent: Path) -> list[Path]:
    """Remove staging directories in ``parent`` whose pack no longer runs; return them.

    A pack holds an exclusive flock on ``.NAME.partial-XXXXXXXX.lock`` for its
    whole life; the kernel drops it when the process dies, however it dies.
    So a staging directory whose lock can be taken belongs to a dead process
    and is removed; one whose lock is held belongs to a live pack and is left
    alone.  A lock cannot be fooled by PID reuse.  Staging without a lock
    file (made by an older bundlekit, or not ours) is left alone too: only
    what is provably dead is deleted.
    """
    removed: list[Path] = []
    try:
        names = sorted(os.listdir(parent))
    except OSError:
        return removed  # staged_directory reports the unusable directory itself
    for name in names:
        if not name.endswith(_LOCK_SUFFIX):
            continue
        staging_name = name[: -len(_LOCK_SUFFIX)]
        if not _STAGING_NAME.match(staging_name):
            continue
        lock_path = parent / name
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode) or not _try_lock(fd):
                continue  # a live pack holds it (or it is not a lock we made)
            staging = parent / staging_name
            if staging.is_dir() and not staging.is_symlink():
                shutil.rmtree(staging)
                removed.append(staging)
            lock_path.unlink(missing_ok=True)  # still holding the lock: no one else can be mid-way
        except OSError:
            continue  # best effort: leftover litter must not stop a new pack
        finally:
            os.close(fd)
    return removed


def _acquire_staging_lock(final: Path) -> tuple[Path, int]:
    """A fresh staging name and an open fd holding the exclusive lock for it.

    The lock file is created, locked, and then checked to still be linked
    under its name: a cleaner may have taken it in the instant between create
    and flock, found no staging directory and unlinked it; then we start over.
    """
    while True:
        staging = temp_sibling(final, "partial")
        lock_path = staging.with_name(staging.name + _LOCK_SUFFIX)
        fd = os.open(
            lock_path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
        if _try_lock(fd):
            try:
                if os.stat(lock_path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino:
                    return staging, fd
            except FileNotFoundError:
                pass
        os.close(fd)


#: The file inside a staging directory that :func:`staged_directory` publishes with ``file=True``.
STAGED_FILE = ".staged-output"


@contextmanager
def staged_directory(final: Path, file: bool = False) -> Iterator[Path]:
    """Yield a temporary directory that becomes ``final`` only if the block succeeds.

    With ``file=True`` the block writes ``STAGED_FILE`` inside the directory
    (a bundle archive, built from the other staged files) and that file, not
    the directory, becomes ``final``; the rest is removed.  Either way a pack
    killed at any moment leaves nothing at ``final``, only staging that the
    next pack removes.  Refuses to replace an existing ``final``: a bundle is
    evidence and is never overwritten silently.  The staging directory's lock
    is held until the rename is done (see :func:`clean_stale_staging`).
    """
    if os.path.lexists(final):
        raise UsageError(f"{final} already exists", "choose another --out path or remove it first")
    parent = final.parent
    if not parent.is_dir():
        raise UsageError(f"output directory {parent} does not exist")
    staging, lock_fd = _acquire_staging_lock(final)
    lock_path = staging.with_name(staging.name + _LOCK_SUFFIX)
    try:
        staging.mkdir(mode=0o755)
        try:
            yield staging
            for root, dirs, _files in os.walk(staging):
                for name in dirs:
                    fsync_dir(Path(root) / name)
            fsync_dir(staging)
            if os.path.lexists(final):
                raise UsageError(f"{final} appeared while packing", "choose another --out path")
            if file:
                try:
                    publish_new_file(staging / STAGED_FILE, final)
                except FileExistsError:
                    raise UsageError(
                        f"{final} appeared while packing", "choose another --out path"
                    ) from None
                shutil.rmtree(staging, ignore_errors=True)
            else:
                os.rename(staging, final)
                fsync_dir(parent)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    finally:
        with contextlib.suppress(OSError):
            lock_path.unlink(missing_ok=True)
        os.close(lock_fd)
