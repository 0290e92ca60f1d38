"""The one place where errors become messages and exit codes."""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any

import typer
import typer.core

from bundlekit.errors import BundlekitError, ExitCode

DEBUG_ENV = "BUNDLEKIT_DEBUG"


def _stderr(text: str) -> None:
    from rich.console import Console

    Console(stderr=True, highlight=False, soft_wrap=True).print(text, markup=False)


class BundlekitGroup(typer.core.TyperGroup):
    """Turns every BundlekitError into ``error: …`` plus a hint and its exit code.

    A user mistake never shows a traceback; an unexpected exception shows one
    only when $BUNDLEKIT_DEBUG is set.
    """

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        try:
            return super().invoke(ctx)
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
