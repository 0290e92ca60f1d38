"""One error hierarchy for everything bundlekit reports to a user.

Every error carries a message that says what is wrong and a hint that says what
to do about it, plus the process exit code the CLI uses.  The CLI has exactly
one place that turns a :class:`BundlekitError` into output and an exit code, so
a user mistake never surfaces as a traceback.
"""

from __future__ import annotations

import errno
import os
from enum import IntEnum


class ExitCode(IntEnum):
    """Documented process exit codes (see docs/cli.md)."""

    OK = 0
    INTERNAL = 1
    USAGE = 2
    SIGNATURE = 3
    INTEGRITY = 4
    FORMAT = 5
    EXPORT = 6
    IO = 7
    INTERRUPTED = 130


class BundlekitError(Exception):
    """Base class: a problem the user can act on."""

    exit_code: ExitCode = ExitCode.INTERNAL

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def diagnostics(self) -> str:
        """The full text shown to a user: what is wrong, then what to do."""
        if self.hint:
            return f"{self.message}\nhint: {self.hint}"
        return self.message


class UsageError(BundlekitError):
    """Bad arguments, a missing or unreadable input, a wrong passphrase."""

    exit_code = ExitCode.USAGE


class InputError(UsageError):
    """An input file (OTLP data, config, dashboard, key) cannot be used."""


class KeyError_(UsageError):
    """A key cannot be loaded, decrypted or used for signing."""


class FormatError(BundlekitError):
    """A bundle, manifest or envelope is not in the documented format."""

    exit_code = ExitCode.FORMAT


class LimitExceeded(FormatError):
    """A hostile or corrupt bundle tried to exceed a configured bound."""


class IntegrityError(BundlekitError):
    """A bundle file is missing, extra, or differs from the manifest."""

    exit_code = ExitCode.INTEGRITY


class SignatureError(BundlekitError):
    """The manifest is not signed by enough trusted keys."""

    exit_code = ExitCode.SIGNATURE


class ExportError(BundlekitError):
    """A collector refused data or could not be reached within the retry budget."""

    exit_code = ExitCode.EXPORT


class EgressRefused(UsageError):
    """Sealed mode refused a destination that is not loopback."""


#: What to do about the environment failures a user can meet, by errno.
_IO_HINTS: dict[int, str] = {
    errno.ENOSPC: "the filesystem is full: free some space, or write to a disk with room",
    errno.EDQUOT: "your disk quota is used up: free some space, or write somewhere else",
    errno.EROFS: "the filesystem is mounted read-only: write to a writable location",
    errno.EACCES: "permission denied: check the owner and mode of the file and its directory, "
    "or use a path you may access",
    errno.EPERM: "the operation is not permitted here: check the file's owner, mode and "
    "attributes, or use another path",
    errno.ENOENT: "the file or directory disappeared while bundlekit was using it: make sure "
    "nothing else moves or deletes it, then retry",
    errno.EIO: "the device reported an I/O error: check the disk and the system log",
    errno.EMFILE: "too many open files: raise the open-file limit (ulimit -n)",
    errno.ENFILE: "the system ran out of file handles: close other programs and retry",
    errno.ENAMETOOLONG: "the path is too long for this filesystem: choose a shorter one",
    errno.EXDEV: "source and destination are on different filesystems",
}


class IOFailure(BundlekitError):
    """The environment refused a read or write: disk full, read-only, permission, vanished file.

    Not a bug and not bad input: the same command works once the environment is
    fixed, so it gets its own exit code and a hint chosen by errno.
    """

    exit_code = ExitCode.IO

    def __init__(
        self, message: str, hint: str | None = None, errno_code: int | None = None
    ) -> None:
        super().__init__(message, hint)
        self.errno = errno_code

    @classmethod
    def from_oserror(
        cls, exc: OSError, action: str, path: str | os.PathLike[str] | None = None
    ) -> IOFailure:
        """``cannot <action> <path>: ENOSPC (No space left on device)`` plus a fitting hint.

        The path the OS names (``exc.filename``) wins over ``path``: it is the
        exact file that failed, e.g. one segment inside a staging directory.
        """
        where = exc.filename if exc.filename is not None else path
        code = exc.errno
        name = errno.errorcode.get(code, f"errno {code}") if code is not None else "OSError"
        why = exc.strerror or str(exc)
        target = f" {os.fsdecode(where)}" if where is not None else ""
        hint = (
            _IO_HINTS.get(code, "check the path and the filesystem, then retry") if code else None
        )
        return cls(f"cannot {action}{target}: {name} ({why})", hint, code)


class translate_os_errors:
    """Context manager: an OSError inside becomes an :class:`IOFailure` naming ``action``."""

    def __init__(self, action: str, path: str | os.PathLike[str] | None = None) -> None:
        self.action = action
        self.path = path

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, OSError):
            raise IOFailure.from_oserror(exc, self.action, self.path) from exc
