"""Offline verification: round trips, co-signing, and a table of tampered bundles."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from bundlekit.errors import ExitCode, FormatError
from bundlekit.format import canonical, layout
from bundlekit.format.manifest import Custody, Manifest
from bundlekit.keys import GeneratedKey, KeyType, load_private_key
from bundlekit.limits import DEFAULT_LIMITS
from bundlekit.sign import sign_bundle
from bundlekit.verify import VerificationFailed, VerifyOptions, check_bundle, verify_bundle
from tests.bundles import pack_small, write_envelope

ED = KeyType.ED25519


@pytest.mark.parametrize("kind", list(KeyType))
def test_round_trip_with_every_key_type(
    tmp_path: Path, keys: dict[KeyType, GeneratedKey], kind: KeyType
) -> None:
    pack_small(tmp_path / "in", tmp_path / "b", keys[kind])
    report = check_bundle(tmp_path / "b", VerifyOptions(keys=[keys[kind].public_path], deep=True))
    assert report.ok, report.failures
    assert [s.keyid for s in report.signers] == [keys[kind].keyid]
    assert report.records_checked == 80 + 40 + 60
    assert report.files_checked == 3


def test_co_signing_meets_threshold_two(tmp_path: Path, keys: dict[KeyType, GeneratedKey]) -> None:
    pack_small(tmp_path / "in", tmp_path / "b", keys[ED])
    manifest_before = (tmp_path / "b" / "manifest.json").read_bytes()
    both = VerifyOptions(
        keys=[keys[ED].public_path, keys[KeyType.ECDSA_P256].public_path], threshold=2
    )
    assert check_bundle(tmp_path / "b", both).exit_code is ExitCode.SIGNATURE
    sign_bundle(tmp_path / "b", load_private_key(keys[KeyType.ECDSA_P256].private_path))
    assert (tmp_path / "b" / "manifest.json").read_bytes() == manifest_before
    report = check_bundle(tmp_path / "b", both)
    assert report.ok, report.failures
    assert {s.keyid for s in report.signers} == {keys[ED].keyid, keys[KeyType.ECDSA_P256].keyid}


def test_unsigned_bundle_can_be_signed_later(
    tmp_path: Path, keys: dict[KeyType, GeneratedKey]
) -> None:
    pack_small(tmp_path / "in", tmp_path / "b")
    options = VerifyOptions(keys=[keys[ED].public_path])
    assert check_bundle(tmp_path / "b", options).exit_code is ExitCode.SIGNATURE
    sign_bundle(tmp_path / "b", load_private_key(keys[ED].private_path))
    assert check_bundle(tmp_path / "b", options).ok


def test_trust_directory(bundle: Path, keys: dict[KeyType, GeneratedKey], tmp_path: Path) -> None:
    trust = tmp_path / "trust"
    trust.mkdir()
    shutil.copy(keys[ED].public_path, trust / "site.pub")
    shutil.copy(keys[KeyType.RSA_PSS_3072].public_path, trust / "other.pem")
    assert check_bundle(bundle, VerifyOptions(trust_dir=trust)).ok


def _first_segment(bundle: Path) -> Path:
    return sorted((bundle / "otlp" / "traces").iterdir())[0]


def _flip_byte(bundle: Path, _: dict) -> None:
    path = _first_segment(bundle)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _truncate(bundle: Path, _: dict) -> None:
    path = _first_segment(bundle)
    path.write_bytes(path.read_bytes()[:-20])


def _remove(bundle: Path, _: dict) -> None:
    _first_segment(bundle).unlink()


def _add(bundle: Path, _: dict) -> None:
    (bundle / "otlp" / "traces" / "000099.binpb.zst").write_bytes(b"smuggled")


def _rename(bundle: Path, _: dict) -> None:
    path = _first_segment(bundle)
    path.rename(path.with_name("000042.binpb.zst"))


def _edit_manifest(bundle: Path, _: dict) -> None:
    doc = json.loads((bundle / "manifest.json").read_bytes())
    doc["predicate"]["custody"] = {"operator": "mallory"}
    (bundle / "manifest.json").write_bytes(canonical.dumps(doc))


def _edit_payload(bundle: Path, _: dict) -> None:
    path = bundle / layout.ENVELOPE_NAME
    doc = json.loads(path.read_bytes())
    manifest = json.loads((bundle / "manifest.json").read_bytes())
    manifest["predicate"]["custody"] = {"operator": "mallory"}
    edited = canonical.dumps(manifest)
    import base64

    doc["payload"] = base64.b64encode(edited).decode()
    path.write_bytes(canonical.dumps(doc))
    (bundle / "manifest.json").write_bytes(edited)  # a careful forger edits both


def _change_payload_type(bundle: Path, _: dict) -> None:
    path = bundle / layout.ENVELOPE_NAME
    doc = json.loads(path.read_bytes())
    doc["payloadType"] = "application/vnd.dsse+json"
    path.write_bytes(canonical.dumps(doc))


def _untrusted_signature(bundle: Path, k: dict) -> None:
    write_envelope(bundle, (bundle / "manifest.json").read_bytes(), k["other"])


def _signature_from_another_bundle(bundle: Path, k: dict) -> None:
    other = bundle.parent / "other"
    pack_small(bundle.parent / "other-in", other, k["keys"][ED], custody=Custody("someone-else"))
    theirs = json.loads((other / layout.ENVELOPE_NAME).read_bytes())["signatures"]
    path = bundle / layout.ENVELOPE_NAME
    doc = json.loads(path.read_bytes())
    doc["signatures"] = theirs
    path.write_bytes(canonical.dumps(doc))


def _duplicate_signature(bundle: Path, _: dict) -> None:
    path = bundle / layout.ENVELOPE_NAME
    doc = json.loads(path.read_bytes())
    doc["signatures"] = doc["signatures"] * 2
    path.write_bytes(canonical.dumps(doc))


def _remove_envelope(bundle: Path, _: dict) -> None:
    (bundle / layout.ENVELOPE_NAME).unlink()


def _symlink_in_bundle(bundle: Path, _: dict) -> None:
    os.symlink("/etc/passwd", bundle / "attachments-link")


def _signed_manifest_fails_schema(bundle: Path, k: dict) -> None:
    doc = json.loads((bundle / "manifest.json").read_bytes())
    doc["predicate"]["unexpected"] = True
    raw = canonical.dumps(doc)
    (bundle / "manifest.json").write_bytes(raw)
    write_envelope(bundle, raw, k["keys"][ED])


def _signed_manifest_not_json(bundle: Path, k: dict) -> None:
    raw = b"this is not json"
    (bundle / "manifest.json").write_bytes(raw)
    write_envelope(bundle, raw, k["keys"][ED])


def _signed_manifest_lies_about_counts(bundle: Path, k: dict) -> None:
    doc = json.loads((bundle / "manifest.json").read_bytes())
    for item in doc["predicate"]["files"]:
        if item["role"] == "traces":
            item["records"] += 1
    doc["predicate"]["totals"]["signals"]["traces"]["records"] += 1
    raw = canonical.dumps(doc)
    (bundle / "manifest.json").write_bytes(raw)
    write_envelope(bundle, raw, k["keys"][ED])


# name: (tamper, threshold, deep, expected exit code, a failure code the report must hold)
TAMPERS: dict[str, tuple[Callable[[Path, dict], None], int, bool, ExitCode, str]] = {
    "byte_flipped_in_segment": (_flip_byte, 1, False, ExitCode.INTEGRITY, "digest"),
    "truncated_file": (_truncate, 1, False, ExitCode.INTEGRITY, "size"),
    "file_removed": (_remove, 1, False, ExitCode.INTEGRITY, "missing"),
    "file_added": (_add, 1, False, ExitCode.INTEGRITY, "extra"),
    "file_renamed": (_rename, 1, False, ExitCode.INTEGRITY, "extra"),
    "manifest_edited": (_edit_manifest, 1, False, ExitCode.INTEGRITY, "manifest-mismatch"),
    "payload_edited": (_edit_payload, 1, False, ExitCode.SIGNATURE, "threshold"),
    "payload_type_changed": (_change_payload_type, 1, False, ExitCode.SIGNATURE, "threshold"),
    "signature_by_untrusted_key": (_untrusted_signature, 1, False, ExitCode.SIGNATURE, "threshold"),
    "signature_copied_from_another_bundle": (
        _signature_from_another_bundle,
        1,
        False,
        ExitCode.SIGNATURE,
        "threshold",
    ),
    "threshold_not_met": (lambda b, k: None, 2, False, ExitCode.SIGNATURE, "threshold"),
    "same_key_signature_twice_counted_once": (
        _duplicate_signature,
        2,
        False,
        ExitCode.SIGNATURE,
        "threshold",
    ),
    "envelope_removed": (_remove_envelope, 1, False, ExitCode.SIGNATURE, "unsigned"),
    "symlink_in_bundle": (_symlink_in_bundle, 1, False, ExitCode.INTEGRITY, "not-regular"),
    "signed_manifest_fails_schema": (
        _signed_manifest_fails_schema,
        1,
        False,
        ExitCode.FORMAT,
        "manifest-invalid",
    ),
    "signed_manifest_not_json": (
        _signed_manifest_not_json,
        1,
        False,
        ExitCode.FORMAT,
        "manifest-invalid",
    ),
    "signed_manifest_lies_about_counts": (
        _signed_manifest_lies_about_counts,
        1,
        True,
        ExitCode.INTEGRITY,
        "deep",
    ),
}


@pytest.mark.parametrize("name", sorted(TAMPERS))
def test_tampered_bundle(
    name: str,
    bundle: Path,
    keys: dict[KeyType, GeneratedKey],
    other_key: GeneratedKey,
    run_cli: Callable[..., tuple[int, str, str]],
) -> None:
    tamper, threshold, deep, expected, code = TAMPERS[name]
    tamper(bundle, {"keys": keys, "other": other_key})
    trusted = [keys[ED].public_path, keys[KeyType.ECDSA_P256].public_path]
    options = VerifyOptions(keys=trusted, threshold=threshold, deep=deep)
    report = check_bundle(bundle, options)
    assert report.exit_code is expected, report.failures
    assert code in {f.code for f in report.failures}, report.failures
    args = ["verify", bundle, "--threshold", str(threshold), "--json"]
    for key in trusted:
        args += ["--key", key]
    exit_code, out, _err = run_cli(*args, *(["--deep"] if deep else []))
    assert exit_code == expected
    assert json.loads(out)["ok"] is False
    with pytest.raises(VerificationFailed) as caught:
        verify_bundle(bundle, options)
    assert caught.value.exit_code is expected
    assert caught.value.report.failures == report.failures


def test_untampered_bundle_passes_the_same_checks(
    bundle: Path, keys: dict[KeyType, GeneratedKey]
) -> None:
    report = check_bundle(bundle, VerifyOptions(keys=[keys[ED].public_path], deep=True))
    assert report.ok and report.exit_code is ExitCode.OK


def test_report_lists_every_failure_not_just_the_first(
    bundle: Path, keys: dict[KeyType, GeneratedKey]
) -> None:
    _flip_byte(bundle, {})
    _add(bundle, {})
    sorted((bundle / "otlp" / "logs").iterdir())[0].unlink()
    report = check_bundle(bundle, VerifyOptions(keys=[keys[ED].public_path]))
    assert {f.code for f in report.failures} == {"digest", "extra", "missing"}


def test_deep_checks_are_skipped_when_the_manifest_is_not_trusted(
    bundle: Path, other_key: GeneratedKey
) -> None:
    report = check_bundle(bundle, VerifyOptions(keys=[other_key.public_path], deep=True))
    assert report.exit_code is ExitCode.SIGNATURE
    assert report.records_checked == 0
    assert any("deep checks skipped" in n for n in report.notes)


def test_manifest_that_is_not_json_is_a_clear_error() -> None:
    with pytest.raises(FormatError, match="manifest is not valid JSON"):
        Manifest.from_bytes(b'{"_type": ', limits=DEFAULT_LIMITS)


def test_cosigning_refuses_a_signatures_link(
    bundle: Path, keys: dict[KeyType, GeneratedKey], tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.rmtree(bundle / "signatures")
    os.symlink(outside, bundle / "signatures")
    with pytest.raises(FormatError, match="link"):
        sign_bundle(bundle, load_private_key(keys[ED].private_path))
    assert list(outside.iterdir()) == []
