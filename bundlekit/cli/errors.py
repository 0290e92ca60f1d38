"""The one place where errors become messages and exit codes."""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any

import typer
import typer.core

from bundlekit.errors import BundlekitError, ExitCode, IOFailure

DEBUG_ENV = "BUNDLEKIT_DEBUG"


def _stderr(text: str) -> None:
    """Print a message that may quote a bundle: only bundlekit's own line breaks survive.

    Messages are composed by bundlekit, but they quote file names, key ids and
    parser errors from untrusted input.  Every line is neutralized, so an
    escape sequence, carriage return or bidi override in a quoted value is shown
    escaped.  Code that quotes a value which may hold a line break neutralizes
    that value itself (see ``verify.raise_for_report``), so it cannot forge a line.
    """
    from bundlekit.textsafe import neutralize_lines

    sys.stderr.write(neutralize_lines(text) + "\n")
    sys.stderr.flush()


class BundlekitGroup(typer.core.TyperGroup):
    """Turns every BundlekitError into ``error: …`` plus a hint and its exit code.

    A user mistake never shows a traceback; an unexpected exception shows one
    only when $BUNDLEKIT_DEBUG is set.
    """

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        try:
            try:
                return super().invoke(ctx)
            except OSError as exc:
                # Safety net: the library wraps its I/O points, but any OSError that
                # still escapes is the environment (disk, permissions), not a bug.
                action = "access" if exc.filename is not None else "complete an I/O operation"
                raise IOFailure.from_oserror(exc, action) from exc
        except BundlekitError as exc:
            _stderr(f"error: {exc.diagnostics()}")
            sys.exit(int(exc.exit_code))
        except KeyboardInterrupt:
            _stderr("interrupted")
            sys.exit(int(ExitCode.INTERRUPTED))
        except (typer.Exit, typer.Abort, typer.TyperException, SystemExit):
            raise
        except Exception as exc:
            if os.environ.get(DEBUG_ENV):
                traceback.print_exc()
            _stderr(
                f"internal error: {type(exc).__name__}: {exc}\n"
                f"hint: this is a bug in bundlekit; set {DEBUG_ENV}=1 for a traceback and report it"
            )
            sys.exit(int(ExitCode.INTERNAL))
