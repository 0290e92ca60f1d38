"""The ``bundlekit`` command line: a thin layer over the public Python API.

Only the standard library and typer are imported before arguments are parsed;
each command imports what it needs, so ``bundlekit --version`` stays fast.
"""

from __future__ import annotations


def main() -> None:
    from bundlekit.cli.app import app

    app(prog_name="bundlekit")
