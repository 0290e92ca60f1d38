"""The manifest JSON Schema, loaded from inside the installed package.

``bundlekit/schemas/manifest.schema.json`` is the top-level
``schemas/manifest.schema.json`` (a link in the source tree, a copy in a
wheel), so there is one source of truth.

Validation has a fast path: ``_manifest_validator.py`` is Python code
generated from the schema by fastjsonschema (``python -m
bundlekit.format.schema`` regenerates it; a test checks it is current).  It
decides a valid manifest in about a millisecond, without importing
jsonschema, which costs more than hashing a bundle of 50 MB.  jsonschema stays
the reference: any manifest the fast path rejects is re-checked by it to list
every violation, and a test checks the two agree.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from bundlekit.errors import FormatError

SCHEMA_RESOURCE = "manifest.schema.json"


def schema_bytes() -> bytes:
    from importlib import resources

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


def validate(document: Any, *, list_all: bool = True) -> None:
    """Raise FormatError if ``document`` is not a valid manifest.

    The error lists every violation when ``list_all`` (jsonschema walks the whole
    document in Python, seconds for a manifest of a few MB), else only the first
    one the generated validator found: callers pass False for large manifests so
    that refusing a hostile one costs milliseconds, not minutes.
    """
    from bundlekit.format import _manifest_validator
    from bundlekit.format._validator_support import (
        JsonSchemaValueException,
        JsonSchemaValuesException,
    )

    try:
        _manifest_validator.validate(document)  # type: ignore[no-untyped-call]  # generated
    except (JsonSchemaValueException, JsonSchemaValuesException) as exc:
        fast_message = str(exc)
    except RecursionError:
        # Both validators recurse per level, more deeply than the JSON parser that
        # accepted the document; a real manifest nests seven levels at most.
        raise _too_deep() from None
    else:
        return
    try:
        problems = (schema_errors(document) if list_all else []) or [fast_message]
    except RecursionError:
        raise _too_deep() from None
    if problems:
        raise FormatError(
            "manifest does not match the bundlekit manifest schema:\n  " + "\n  ".join(problems),
            "the manifest was edited or written by an incompatible tool",
        )


def _too_deep() -> FormatError:
    return FormatError(
        "manifest does not match the bundlekit manifest schema: it nests too deeply",
        "the manifest was edited or written by an incompatible tool",
    )


GENERATED_HEADER = (
    "# Generated from schemas/manifest.schema.json by `python -m bundlekit.format.schema`.\n"
    "# Do not edit; regenerate after changing the schema (tests/test_schema.py checks it).\n"
)
_FASTJSONSCHEMA_IMPORT = (
    "from fastjsonschema import JsonSchemaValueException, JsonSchemaValuesException"
)
_OUR_IMPORT = (
    "from bundlekit.format._validator_support import "
    "JsonSchemaValueException, JsonSchemaValuesException"
)


def generate_fast_validator() -> str:
    """Source of ``_manifest_validator.py`` for the current schema (needs fastjsonschema)."""
    import fastjsonschema

    code = fastjsonschema.compile_to_code(json.loads(schema_bytes()))
    if _FASTJSONSCHEMA_IMPORT not in code:
        raise RuntimeError("fastjsonschema changed its generated imports; update schema.py")
    entry = re.search(r"^def (validate_\w+)\(", code, re.MULTILINE)
    if entry is None:
        raise RuntimeError("fastjsonschema generated no validate function")
    code = code.replace(_FASTJSONSCHEMA_IMPORT, _OUR_IMPORT)
    return f"{GENERATED_HEADER}{code}\n\nvalidate = {entry.group(1)}\n"


GENERATED_PATH = Path(__file__).with_name("_manifest_validator.py")


if __name__ == "__main__":
    GENERATED_PATH.write_text(generate_fast_validator())
    print(f"wrote {GENERATED_PATH}")
