"""One error hierarchy for everything bundlekit reports to a user.

Every error carries a message that says what is wrong and a hint that says what
to do about it, plus the process exit code the CLI uses.  The CLI has exactly
one place that turns a :class:`BundlekitError` into output and an exit code, so
a user mistake never surfaces as a traceback.
"""

from __future__ import annotations

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
