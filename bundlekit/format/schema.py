"""The manifest JSON Schema, loaded from inside the installed package.

``bundlekit/schemas/manifest.schema.json`` is the top-level
``schemas/manifest.schema.json`` (a link in the source tree, a copy in a
wheel), so there is one source of truth.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from bundlekit.errors import FormatError

SCHEMA_RESOURCE = "manifest.schema.json"


def schema_bytes() -> bytes:
    return resources.files("bundlekit.schemas").joinpath(SCHEMA_RESOURCE).read_bytes()


@cache
def _validator() -> Any:
    from jsonschema import Draft202012Validator, FormatChecker

    # The schema itself is checked against the meta-schema by the test suite,
    # not here: that check costs more than validating a manifest.
    return Draft202012Validator(json.loads(schema_bytes()), format_checker=FormatChecker())


def schema_errors(document: Any, limit: int = 20) -> list[str]:
    """Every schema violation of ``document`` (up to ``limit``), as readable lines."""
    errors = sorted(_validator().iter_errors(document), key=lambda e: list(e.absolute_path))
    lines = []
    for error in errors[:limit]:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        lines.append(f"{where}: {error.message}")
    if len(errors) > limit:
        lines.append(f"... and {len(errors) - limit} more")
    return lines


def validate(document: Any) -> None:
    """Raise FormatError listing every violation if ``document`` is not a valid manifest."""
    problems = schema_errors(document)
    if problems:
        raise FormatError(
            "manifest does not match the bundlekit manifest schema:\n  " + "\n  ".join(problems),
            "the manifest was edited or written by an incompatible tool",
        )
