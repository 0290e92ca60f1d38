"""The manifest schema: one source of truth, and strict about what it accepts."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from bundlekit.errors import FormatError
from bundlekit.format import canonical
from bundlekit.format.manifest import Manifest
from bundlekit.format.schema import schema_bytes
from bundlekit.limits import DEFAULT_LIMITS
from tests.bundles import pack_small
from tests.conftest import ROOT


def test_schema_is_a_valid_2020_12_schema() -> None:
    Draft202012Validator.check_schema(json.loads(schema_bytes()))


def test_installed_schema_is_the_top_level_file() -> None:
    assert schema_bytes() == (ROOT / "schemas" / "manifest.schema.json").read_bytes()


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("schema")
    result = pack_small(root / "in", root / "b")
    return json.loads(result.manifest.raw)


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        if value is _DELETE:
            del node[int(last) if last.isdigit() else last]
        else:
            node[int(last) if last.isdigit() else last] = value

    return change


_DELETE = object()

MALFORMED: dict[str, Callable[[dict[str, Any]], None]] = {
    "wrong_statement_type": _set("_type", "https://in-toto.io/Statement/v0.1"),
    "wrong_predicate_type": _set("predicateType", "https://slsa.dev/provenance/v1"),
    "subject_missing": _set("subject", _DELETE),
    "subject_empty": _set("subject", []),
    "digest_not_hex": _set("subject.0.digest.sha256", "Z" * 64),
    "digest_wrong_length": _set("subject.0.digest.sha256", "ab" * 10),
    "subject_path_traversal": _set("subject.0.name", "../etc/passwd"),
    "subject_absolute_path": _set("subject.0.name", "/etc/passwd"),
    "subject_names_manifest": _set("subject.0.name", "manifest.json"),
    "unknown_top_level_field": _set("extra", 1),
    "unknown_predicate_field": _set("predicate.extra", 1),
    "bad_profile": _set("predicate.profile", "yolo"),
    "bad_bundle_id": _set("predicate.bundleId", "not-a-uuid"),
    "created_not_utc": _set("predicate.created", "2026-11-01T00:00:00+02:00"),
    "negative_size": _set("predicate.files.0.size", -1),
    "segment_without_records": _set("predicate.files.0.records", _DELETE),
    "segment_in_wrong_place": _set("predicate.files.0.name", "attachments/x.binpb.zst"),
    "role_unknown": _set("predicate.files.0.role", "secrets"),
    "retention_not_a_date": _set("predicate.retention.retainUntil", "soon"),
    "window_not_rfc3339": _set("predicate.window.earliest", "yesterday"),
    "file_window_year_zero": _set("predicate.files.0.window.earliest", "0000-01-01T00:00:00Z"),
    "file_window_february_30": _set("predicate.files.0.window.latest", "2026-02-30T00:00:00Z"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_schema_rejects_malformed_manifest(good: dict[str, Any], name: str) -> None:
    doc = copy.deepcopy(good)
    MALFORMED[name](doc)
    with pytest.raises(FormatError) as caught:
        Manifest.from_bytes(canonical.dumps(doc), limits=DEFAULT_LIMITS)
    assert "manifest" in caught.value.message


def test_good_manifest_parses(good: dict[str, Any]) -> None:
    assert (
        Manifest.from_bytes(canonical.dumps(good), limits=DEFAULT_LIMITS).bundle_id
        == good["predicate"]["bundleId"]
    )


def test_non_canonical_manifest_is_refused(good: dict[str, Any]) -> None:
    with pytest.raises(FormatError, match="canonical"):
        Manifest.from_bytes(json.dumps(good, indent=2).encode(), limits=DEFAULT_LIMITS)


def test_subject_and_files_must_agree(good: dict[str, Any]) -> None:
    doc = copy.deepcopy(good)
    doc["subject"].reverse()
    with pytest.raises(FormatError, match="inconsistent"):
        Manifest.from_bytes(canonical.dumps(doc), limits=DEFAULT_LIMITS)


def test_manifest_with_duplicate_keys_is_refused(good: dict[str, Any]) -> None:
    raw = canonical.dumps(good)
    forged = raw.replace(b'{"_type"', b'{"_type":"x","_type"', 1)
    with pytest.raises(FormatError, match="duplicate key"):
        Manifest.from_bytes(forged, limits=DEFAULT_LIMITS)


@pytest.mark.parametrize("data", [b"", b"\xff\xfe", b"[]", b"null", b'{"_type": NaN}'])
def test_garbage_manifest_is_a_clear_format_error(data: bytes, tmp_path: Path) -> None:
    with pytest.raises(FormatError):
        Manifest.from_bytes(data, limits=DEFAULT_LIMITS)


def test_generated_fast_validator_is_current() -> None:
    from bundlekit.format.schema import GENERATED_PATH, generate_fast_validator

    assert GENERATED_PATH.read_text() == generate_fast_validator(), (
        "schema changed: run `python -m bundlekit.format.schema` and commit the result"
    )


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**60), 2**60) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_fast_validator_never_accepts_what_jsonschema_rejects(
    good: dict[str, Any], data: st.DataObject
) -> None:
    from bundlekit.format import _manifest_validator
    from bundlekit.format.schema import schema_errors

    doc = copy.deepcopy(good)
    path = data.draw(st.sampled_from(_paths(doc)[1:]))
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    action = data.draw(st.sampled_from(["replace", "delete", "add"]))
    if action == "replace" or (action == "delete" and isinstance(parent, list)):
        parent[path[-1]] = data.draw(_JSON_VALUES)
    elif action == "delete":
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent[data.draw(st.text(max_size=8))] = data.draw(_JSON_VALUES)
    try:
        _manifest_validator.validate(doc)
        fast_valid = True
    except ValueError:
        fast_valid = False
    reference_valid = not schema_errors(doc)
    assert fast_valid == reference_valid, (path, action, schema_errors(doc))


_ASCII_KEYS = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=6)
_ANY_TEXT = st.text(max_size=12)  # any code point, incl. non-BMP, controls, U+2028
_DOCS = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | _ANY_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_ASCII_KEYS, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=500, deadline=None)
@given(_DOCS)
def test_fast_canonical_check_matches_rfc8785(doc: Any) -> None:
    from bundlekit.format.canonical import is_canonical_schema_valid

    raw = canonical.dumps(doc)
    assert is_canonical_schema_valid(doc, raw)
    assert not is_canonical_schema_valid(doc, raw + b" ")


def test_manifest_with_a_float_is_refused(good: dict[str, Any]) -> None:
    raw = canonical.dumps(good).replace(b'"size":', b'"size":1.0,"x":', 1)
    with pytest.raises(FormatError, match="non-integer"):
        Manifest.from_bytes(raw, limits=DEFAULT_LIMITS)
