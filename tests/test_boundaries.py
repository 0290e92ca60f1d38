"""Every cap in bundlekit.limits at its boundary: exactly at the cap passes, one over fails.

The segment and decompression caps (max_segment_bytes, max_request_bytes,
max_compression_ratio) are tested with the segment reader in test_segment.py.
Each cap is tested where a hostile bundle meets it (the parser, and the
verifier's report), so an off-by-one in either place is caught.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from bundlekit.errors import ExitCode, FormatError, InputError, LimitExceeded
from bundlekit.format import canonical, layout
from bundlekit.format.directory import DirectoryReader
from bundlekit.format.dsse import Envelope, Signature
from bundlekit.format.layout import check_relative_path
from bundlekit.format.manifest import PAYLOAD_TYPE, Manifest
from bundlekit.format.reader import ContainerError
from bundlekit.inputs_config import read_collector_config, read_dashboards
from bundlekit.keys import GeneratedKey, KeyType
from bundlekit.limits import DEFAULT_LIMITS, Limits
from bundlekit.verify import VerifyOptions, check_bundle

ED = KeyType.ED25519
#: Caps tested elsewhere (test_segment.py), with the segment reader.
SEGMENT_CAPS = {"max_segment_bytes", "max_request_bytes", "max_compression_ratio"}


def _options(keys: dict[KeyType, GeneratedKey], **caps: int) -> VerifyOptions:
    return VerifyOptions(keys=[keys[ED].public_path], limits=Limits(**caps))


def test_every_limit_has_a_boundary_test_here_or_in_test_segment() -> None:
    """A new cap in Limits must come with its boundary test (add it to TESTED)."""
    tested = {
        "max_manifest_bytes",
        "max_envelope_bytes",
        "max_config_bytes",
        "max_files",
        "max_signatures",
        "max_path_length",
        "max_path_depth",
        "max_key_bytes",  # below
        "max_findings",  # tests/test_untrusted_cost.py
        "max_nesting_depth",  # tests/test_hostile_inputs.py
        "max_operator_chars",  # tests/test_hostile_inputs.py (custody at the door)
        "max_case_id_chars",
        "max_reason_chars",
        "max_window_bytes",  # tests/test_segment.py
        "max_schema_listing_bytes",  # tests/test_fuzz.py
        "max_pax_header_bytes",
    }
    assert {f.name for f in dataclasses.fields(Limits)} == tested | SEGMENT_CAPS


# --------------------------------------------------------------------------- max_manifest_bytes


def test_manifest_exactly_at_max_manifest_bytes_parses_one_byte_over_fails(
    signed_bundle: Path,
) -> None:
    raw = (signed_bundle / layout.MANIFEST_NAME).read_bytes()
    assert Manifest.from_bytes(raw, Limits(max_manifest_bytes=len(raw))).raw == raw
    with pytest.raises(LimitExceeded, match=f"manifest is {len(raw)} bytes, over the limit of"):
        Manifest.from_bytes(raw, Limits(max_manifest_bytes=len(raw) - 1))


def test_verify_at_max_manifest_bytes_passes_one_byte_over_is_oversized(
    bundle: Path, keys: dict[KeyType, GeneratedKey]
) -> None:
    size = (bundle / layout.MANIFEST_NAME).stat().st_size
    report = check_bundle(bundle, _options(keys, max_manifest_bytes=size))
    assert report.ok, report.failures
    report = check_bundle(bundle, _options(keys, max_manifest_bytes=size - 1))
    assert report.exit_code is ExitCode.FORMAT
    # manifest.json is refused unread, and so is the signed payload it copies.
    copy, payload = report.failures
    assert (copy.code, payload.code) == ("oversized", "manifest-invalid")
    assert f"manifest.json is {size} bytes, over the limit of {size - 1}" in copy.message
    assert f"manifest is {size} bytes, over the limit of {size - 1}" in payload.message


# --------------------------------------------------------------------------- max_envelope_bytes


def test_envelope_exactly_at_max_envelope_bytes_parses_one_byte_over_fails(
    signed_bundle: Path,
) -> None:
    data = (signed_bundle / layout.ENVELOPE_NAME).read_bytes()
    assert Envelope.from_bytes(data, Limits(max_envelope_bytes=len(data))).signatures
    with pytest.raises(LimitExceeded, match=f"envelope is {len(data)} bytes, over the limit"):
        Envelope.from_bytes(data, Limits(max_envelope_bytes=len(data) - 1))


def test_verify_at_max_envelope_bytes_passes_one_byte_over_is_oversized(
    bundle: Path, keys: dict[KeyType, GeneratedKey]
) -> None:
    size = (bundle / layout.ENVELOPE_NAME).stat().st_size
    assert check_bundle(bundle, _options(keys, max_envelope_bytes=size)).ok
    report = check_bundle(bundle, _options(keys, max_envelope_bytes=size - 1))
    # An envelope refused unread carries no signature: a format finding, and exit 3.
    assert report.exit_code is ExitCode.SIGNATURE
    assert [f.code for f in report.failures] == ["oversized", "unsigned"]
    assert "manifest.dsse.json" in report.failures[0].message
    assert not report.manifest_examined


def test_file_that_grows_past_the_cap_while_read_is_refused(
    bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The size seen by lstat is not trusted: reading stops one byte past the cap."""
    import bundlekit.format.directory as directory_module

    path = bundle / layout.MANIFEST_NAME
    size = path.stat().st_size
    real_fstat = os.fstat

    def stale_fstat(fd: int) -> os.stat_result:
        info = real_fstat(fd)
        if info.st_ino == path.stat().st_ino:  # the file "grew" after it was measured
            fields = list(info)
            fields[6] = size // 2
            return os.stat_result(fields)
        return info

    monkeypatch.setattr(directory_module.os, "fstat", stale_fstat)
    source = DirectoryReader(bundle, Limits(max_manifest_bytes=size - 1))
    with pytest.raises(LimitExceeded, match="grew past the limit"):
        source.read_small(layout.MANIFEST_NAME, size - 1)
    reader = DirectoryReader(bundle, Limits(max_manifest_bytes=size))
    assert reader.read_small(layout.MANIFEST_NAME, size) == path.read_bytes()


# --------------------------------------------------------------------------- max_files


def _entries(bundle: Path) -> int:
    return sum(len(d) + len(f) for _, d, f in os.walk(bundle))


def test_bundle_with_exactly_max_files_entries_passes_one_more_fails(
    bundle: Path, keys: dict[KeyType, GeneratedKey]
) -> None:
    count = _entries(bundle)
    report = check_bundle(bundle, _options(keys, max_files=count))
    assert report.ok, report.failures
    members = list(DirectoryReader(bundle, Limits(max_files=count)).members())
    assert len(members) == 3  # three segments (manifest and envelope are the head)
    with pytest.raises(ContainerError, match=f"more than {count - 1} entries"):
        list(DirectoryReader(bundle, Limits(max_files=count - 1)).members())
    report = check_bundle(bundle, _options(keys, max_files=count - 1))
    assert [f.code for f in report.failures] == ["listing"]


# --------------------------------------------------------------------------- max_signatures


def _envelope_with(count: int) -> bytes:
    signatures = tuple(Signature(f"k{i}", b"sig") for i in range(count))
    return Envelope(PAYLOAD_TYPE, b"{}", signatures).to_bytes()


def test_envelope_with_exactly_max_signatures_parses_one_more_fails() -> None:
    cap = DEFAULT_LIMITS.max_signatures
    assert len(Envelope.from_bytes(_envelope_with(cap), limits=DEFAULT_LIMITS).signatures) == cap
    with pytest.raises(LimitExceeded, match=f"carries {cap + 1} signatures, over the limit"):
        Envelope.from_bytes(_envelope_with(cap + 1), limits=DEFAULT_LIMITS)
    assert len(Envelope.from_bytes(_envelope_with(3), Limits(max_signatures=3)).signatures) == 3
    with pytest.raises(LimitExceeded, match="carries 4 signatures"):
        Envelope.from_bytes(_envelope_with(4), Limits(max_signatures=3))


def test_verify_refuses_more_than_max_signatures(
    bundle: Path, keys: dict[KeyType, GeneratedKey]
) -> None:
    path = bundle / layout.ENVELOPE_NAME
    doc = json.loads(path.read_bytes())
    doc["signatures"] = doc["signatures"] * 3  # the same good signature, three times
    path.write_bytes(canonical.dumps(doc))
    report = check_bundle(bundle, _options(keys, max_signatures=3))
    assert report.ok, report.failures  # counted once, noted twice
    report = check_bundle(bundle, _options(keys, max_signatures=2))
    assert report.exit_code is ExitCode.SIGNATURE
    assert {f.code for f in report.failures} == {"envelope-malformed", "unsigned"}
    assert any("carries 3 signatures" in f.message for f in report.failures)


# --------------------------------------------------------------------------- paths


@pytest.mark.parametrize("unit", ["a", "é"])
def test_path_exactly_max_path_length_bytes_passes_one_more_fails(unit: str) -> None:
    width = len(unit.encode())
    at_cap = "d/" + unit * ((DEFAULT_LIMITS.max_path_length - 2) // width)
    assert len(at_cap.encode()) == DEFAULT_LIMITS.max_path_length
    assert check_relative_path(at_cap, limits=DEFAULT_LIMITS) == at_cap
    over = at_cap + ("b" if width == 1 else "é")
    with pytest.raises(FormatError, match=f"longer than {DEFAULT_LIMITS.max_path_length} bytes"):
        check_relative_path(over, limits=DEFAULT_LIMITS)
    with pytest.raises(FormatError, match="longer than 10 bytes"):
        check_relative_path("a" * 11, Limits(max_path_length=10))
    assert check_relative_path("a" * 10, Limits(max_path_length=10))


def test_path_exactly_max_path_depth_levels_passes_one_more_fails() -> None:
    cap = DEFAULT_LIMITS.max_path_depth
    at_cap = "/".join(["d"] * cap)
    assert check_relative_path(at_cap, limits=DEFAULT_LIMITS) == at_cap
    with pytest.raises(FormatError, match=f"deeper than {cap} levels"):
        check_relative_path(at_cap + "/x", limits=DEFAULT_LIMITS)
    assert check_relative_path("a/b/c", Limits(max_path_depth=3))
    with pytest.raises(FormatError, match="deeper than 2 levels"):
        check_relative_path("a/b/c", Limits(max_path_depth=2))


def test_verify_flags_a_bundle_file_one_byte_over_max_path_length(
    bundle: Path, keys: dict[KeyType, GeneratedKey]
) -> None:
    name = "attachments/" + "n" * 100
    (bundle / "attachments").mkdir()
    (bundle / name).write_bytes(b"x")
    report = check_bundle(bundle, _options(keys, max_path_length=len(name)))
    assert [(f.code, f.path) for f in report.failures] == [("extra", name)]
    report = check_bundle(bundle, _options(keys, max_path_length=len(name) - 1))
    assert [(f.code, f.path) for f in report.failures] == [("unsafe-name", name)]


def test_verify_flags_a_bundle_file_one_level_over_max_path_depth(
    bundle: Path, keys: dict[KeyType, GeneratedKey]
) -> None:
    name = "attachments/a/b/c.txt"
    (bundle / "attachments/a/b").mkdir(parents=True)
    (bundle / name).write_bytes(b"x")
    report = check_bundle(bundle, _options(keys, max_path_depth=4))
    assert [(f.code, f.path) for f in report.failures] == [("extra", name)]
    report = check_bundle(bundle, _options(keys, max_path_depth=3))
    assert [(f.code, f.path) for f in report.failures] == [("unsafe-name", name)]


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "empty"),
        ("/etc/passwd", "absolute"),
        ("a/../b", "'..' component"),
        ("a/./b", "'.' or '..' component"),
        ("a//b", "empty, '.'"),
        ("a/", "empty, '.'"),
        ("a\\b", "reserved character"),
        ("C:x", "reserved character"),
        ("a\x00b", "control"),
        ("a\x7fb", "control"),
        ("cafe\u0301", "not NFC-normalized"),
    ],
)
def test_unsafe_relative_path_is_refused_with_its_reason(name: str, problem: str) -> None:
    with pytest.raises(FormatError, match="unsafe path in bundle") as caught:
        check_relative_path(name, limits=DEFAULT_LIMITS)
    assert problem in caught.value.message


def test_safe_relative_paths_are_returned_unchanged() -> None:
    for name in ("a", "otlp/traces/000001.binpb.zst", "attachments/caf\u00e9.txt", "a.b/c..d"):
        assert check_relative_path(name, limits=DEFAULT_LIMITS) == name


# --------------------------------------------------------------------------- max_config_bytes


def test_collector_config_exactly_max_config_bytes_is_read_one_more_is_refused(
    tmp_path: Path,
) -> None:
    config = tmp_path / "collector.yaml"
    config.write_bytes(b"receivers: {}\nexporters: {}\n")
    size = config.stat().st_size
    assert read_collector_config(config, Limits(max_config_bytes=size)) == config.read_bytes()
    with pytest.raises(InputError, match=f"larger than {size - 1} bytes"):
        read_collector_config(config, Limits(max_config_bytes=size - 1))


def test_dashboard_exactly_max_config_bytes_is_read_one_more_is_refused(tmp_path: Path) -> None:
    (tmp_path / "board.json").write_text(json.dumps({"title": "Overview", "panels": []}))
    size = (tmp_path / "board.json").stat().st_size
    (board,) = read_dashboards(tmp_path, Limits(max_config_bytes=size))
    assert board.title == "Overview"
    with pytest.raises(InputError, match=f"larger than {size - 1} bytes"):
        read_dashboards(tmp_path, Limits(max_config_bytes=size - 1))


# --------------------------------------------------------------------------- max_key_bytes


def test_key_file_exactly_at_max_key_bytes_loads_one_byte_over_is_refused(
    tmp_path: Path, keys: dict[KeyType, GeneratedKey]
) -> None:
    from bundlekit.errors import InputError
    from bundlekit.keys import load_public_key
    from bundlekit.limits import DEFAULT_LIMITS

    cap = DEFAULT_LIMITS.max_key_bytes
    pem = keys[ED].public_path.read_bytes()
    at_cap = tmp_path / "at-cap.pub"
    at_cap.write_bytes(pem + b"\n" * (cap - len(pem)))
    assert load_public_key(at_cap).keyid == keys[ED].keyid
    over = tmp_path / "over.pub"
    over.write_bytes(pem + b"\n" * (cap - len(pem) + 1))
    with pytest.raises(InputError, match=f"is larger than {cap} bytes"):
        load_public_key(over)


# --------------------------------------------------------------------------- max_pax_header_bytes


def test_pax_header_at_max_pax_header_bytes_is_read_one_byte_over_is_oversized(
    tmp_path: Path,
) -> None:
    """A member name too long for ustar gets a pax header; its size is capped before reading."""
    import io

    from bundlekit.format.archive import ArchiveReader, ArchiveWriter, member_header

    name = "attachments/" + "n" * 200
    buffer = io.BytesIO()
    writer = ArchiveWriter(buffer, 0)
    writer.add_bytes(layout.MANIFEST_NAME, b"{}")
    writer.add_bytes(name, b"x")
    writer.finish()
    pax_size = len(member_header(name, 1, 0)) - 512 * 2  # the pax data block(s), rounded
    pax = int(buffer.getvalue()[512 * 2 + 124 : 512 * 2 + 136].rstrip(b"\0"), 8)
    assert 0 < pax <= pax_size

    def members(cap: int) -> list[str]:
        reader = ArchiveReader.from_stream(
            io.BytesIO(buffer.getvalue()), "t", Limits(max_pax_header_bytes=cap)
        )
        return [m.name for m in reader.members()]

    assert members(pax) == [name]
    with pytest.raises(ContainerError, match=f"pax header of {pax} bytes") as caught:
        members(pax - 1)
    assert caught.value.defect == "oversized"


# --------------------------------------------------------------------------- how limits travel

#: The public entry points, where a default is the caller's convenience; below them limits
#: must be passed on, so a caller's own Limits cannot be dropped silently on the way down.
_ENTRY_POINTS = {"open_bundle", "inspect_bundle", "sign_bundle", "open_unverified"}


def test_no_function_below_the_entry_points_defaults_its_limits() -> None:
    import ast

    root = Path(__file__).resolve().parent.parent / "bundlekit"
    offenders = []
    for path in sorted(root.rglob("*.py")):
        if path.name.startswith("_manifest_validator"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            args = node.args
            positional = [a.arg for a in [*args.posonlyargs, *args.args]]
            with_default = positional[len(positional) - len(args.defaults) :]
            with_default += [
                a.arg for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d
            ]
            defaults = set(with_default)
            if "limits" in defaults and node.name not in _ENTRY_POINTS:
                offenders.append(f"{path.relative_to(root)}:{node.lineno} {node.name}")
    assert offenders == []
