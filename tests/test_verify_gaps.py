"""Verifier defects that mutation testing found the suite would not notice.

Each test is named after the behaviour change it guards against: a mutant of
the verifier, trust store, bundle source, envelope parser or manifest checks
that used to survive the whole suite (see docs/mutation.md).  Manifests that
must get past the signature check are hand-edited, canonicalized and re-signed
with a trusted key, so the consistency checks behind the signature are what
is being tested.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bundlekit.errors import ExitCode, FormatError, LimitExceeded, UsageError
from bundlekit.format import canonical, layout
from bundlekit.format.dsse import Envelope, Signature
from bundlekit.format.manifest import PAYLOAD_TYPE, Manifest
from bundlekit.format.reader import Extent
from bundlekit.keys import GeneratedKey, KeyType, load_private_key, load_public_key
from bundlekit.limits import DEFAULT_LIMITS, Limits
from bundlekit.verify import (
    TrustStore,
    VerificationFailed,
    VerifyOptions,
    check_bundle,
    verify_bundle,
)
from bundlekit.verify.signatures import check_signatures
from tests.bundles import write_envelope

ED = KeyType.ED25519
P256 = KeyType.ECDSA_P256


def _trust(keys: dict[KeyType, GeneratedKey], *kinds: KeyType) -> VerifyOptions:
    return VerifyOptions(keys=[keys[k].public_path for k in kinds or (ED,)])


def _codes(report: Any) -> set[str]:
    return {f.code for f in report.failures}


def _manifest_doc(bundle: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((bundle / layout.MANIFEST_NAME).read_bytes())
    return doc


def _resign(bundle: Path, doc: dict[str, Any], key: GeneratedKey) -> bytes:
    """Write ``doc`` as canonical manifest.json and sign it with a trusted key."""
    raw = canonical.dumps(doc)
    (bundle / layout.MANIFEST_NAME).write_bytes(raw)
    write_envelope(bundle, raw, key)
    return raw


# --------------------------------------------------------------------------- threshold


@pytest.mark.parametrize("threshold", [0, -1])
def test_check_bundle_refuses_a_threshold_below_one_at_the_library_door(
    bundle: Path, keys: dict[KeyType, GeneratedKey], threshold: int
) -> None:
    options = VerifyOptions(keys=[keys[ED].public_path], threshold=threshold)
    with pytest.raises(UsageError, match="threshold must be at least 1") as caught:
        check_bundle(bundle, options)
    assert caught.value.exit_code is ExitCode.USAGE
    with pytest.raises(UsageError):
        verify_bundle(bundle, options)


def test_threshold_above_the_number_of_trusted_keys_is_a_usage_error(
    bundle: Path, keys: dict[KeyType, GeneratedKey]
) -> None:
    options = VerifyOptions(keys=[keys[ED].public_path], threshold=2)
    with pytest.raises(UsageError, match=r"threshold 2 is more than the 1 trusted key") as caught:
        check_bundle(bundle, options)
    assert caught.value.hint is not None and "lower --threshold" in caught.value.hint


def test_default_threshold_is_one_signature(
    bundle: Path, keys: dict[KeyType, GeneratedKey]
) -> None:
    assert VerifyOptions().threshold == 1
    report = check_bundle(
        bundle, VerifyOptions(keys=[keys[ED].public_path, keys[P256].public_path])
    )
    assert report.ok, report.failures
    assert report.threshold == 1


# --------------------------------------------------------------------------- listing


def _entries(bundle: Path) -> int:
    return sum(len(d) + len(f) for _, d, f in os.walk(bundle))


def test_failed_listing_over_max_files_is_reported_as_a_failure_not_ok(
    bundle: Path, keys: dict[KeyType, GeneratedKey]
) -> None:
    limits = Limits(max_files=_entries(bundle) - 1)
    options = VerifyOptions(keys=[keys[ED].public_path], limits=limits)
    report = check_bundle(bundle, options)
    assert not report.ok
    assert report.exit_code is ExitCode.FORMAT
    (finding,) = report.failures
    assert finding.code == "listing"
    assert f"more than {limits.max_files} entries" in finding.message
    assert report.files_checked == 0
    with pytest.raises(VerificationFailed, match="more than") as caught:
        verify_bundle(bundle, options)
    assert caught.value.exit_code is ExitCode.FORMAT


def test_every_unsafe_file_name_is_flagged_not_silently_dropped(
    bundle: Path, keys: dict[KeyType, GeneratedKey]
) -> None:
    folder = bundle / "attachments"
    folder.mkdir()
    unsafe = [f"bad{i}\x01name" for i in range(5)] + ["cafe\u0301.txt", "a:b", "q?.txt"]
    extra = [f"extra-{i}.txt" for i in range(5)]
    for name in unsafe + extra:
        (folder / name).write_bytes(b"x")
    report = check_bundle(bundle, _trust(keys))
    assert report.exit_code is ExitCode.INTEGRITY
    flagged = sorted(f.path for f in report.failures if f.code == "unsafe-name")
    assert flagged == sorted(f"attachments/{n}" for n in unsafe)
    assert all("not allowed" in f.message for f in report.failures if f.code == "unsafe-name")
    # The safe files beside them are still seen (and are extra: the manifest does not list them).
    extras = sorted(f.path for f in report.failures if f.code == "extra")
    assert extras == sorted(f"attachments/{n}" for n in extra)


def test_unsafe_names_are_never_hashed_or_opened(
    bundle: Path, keys: dict[KeyType, GeneratedKey]
) -> None:
    (bundle / "evil\\..\\name").write_bytes(b"x")
    report = check_bundle(bundle, _trust(keys))
    assert {f.code for f in report.failures} == {"unsafe-name"}
    assert report.files_checked == 3


def test_fifo_in_bundle_is_flagged_as_not_regular_and_never_opened(
    bundle: Path, keys: dict[KeyType, GeneratedKey]
) -> None:
    os.mkfifo(bundle / "attachments-fifo")
    report = check_bundle(bundle, _trust(keys))  # would block forever if the FIFO were opened
    assert [(f.code, f.path) for f in report.failures] == [("not-regular", "attachments-fifo")]
    assert report.exit_code is ExitCode.INTEGRITY


def test_files_in_subdirectories_are_all_listed_and_checked(
    bundle: Path, keys: dict[KeyType, GeneratedKey]
) -> None:
    report = check_bundle(bundle, _trust(keys))
    assert report.ok, report.failures
    assert report.files_checked == 3
    assert report.bytes_hashed == sum(p.stat().st_size for p in (bundle / "otlp").rglob("*.zst"))


def test_a_symlinked_directory_is_not_walked_into(
    bundle: Path, keys: dict[KeyType, GeneratedKey], tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"secret")
    os.symlink(outside, bundle / "attachments")
    report = check_bundle(bundle, _trust(keys))
    assert [(f.code, f.path) for f in report.failures] == [("not-regular", "attachments")]


# --------------------------------------------------------------------------- trust store


def test_trust_directory_loads_only_pub_and_pem_files(
    bundle: Path, keys: dict[KeyType, GeneratedKey], tmp_path: Path
) -> None:
    trust = tmp_path / "trust"
    trust.mkdir()
    shutil.copy(keys[P256].public_path, trust / "other.pub")
    # The bundle's signer is here too, but under a suffix that is not a key suffix.
    shutil.copy(keys[ED].public_path, trust / "signer.pub.bak")
    shutil.copy(keys[ED].public_path, trust / "signer.txt")
    (trust / "README").write_text("keys for the site\n")
    store = TrustStore.load(trust)
    assert [k.keyid for k in store.keys] == [keys[P256].keyid]
    report = check_bundle(bundle, VerifyOptions(trust_dir=trust))
    assert report.exit_code is ExitCode.SIGNATURE
    assert "threshold" in _codes(report)


def test_trust_directory_refuses_a_directory_with_a_key_suffix(
    keys: dict[KeyType, GeneratedKey], tmp_path: Path
) -> None:
    """Something that claims to be a key but is not a file is a broken trust store, said aloud."""
    from bundlekit.errors import InputError

    trust = tmp_path / "trust"
    trust.mkdir()
    shutil.copy(keys[P256].public_path, trust / "other.pub")
    (trust / "nested.pem").mkdir()
    with pytest.raises(InputError, match=r"nested\.pem is a directory, not a regular file"):
        TrustStore.load(trust)


def test_trust_directory_takes_both_suffixes(
    keys: dict[KeyType, GeneratedKey], tmp_path: Path
) -> None:
    trust = tmp_path / "trust"
    trust.mkdir()
    shutil.copy(keys[ED].public_path, trust / "a.pub")
    shutil.copy(keys[P256].public_path, trust / "b.pem")
    shutil.copy(keys[P256].public_path, trust / "c.pub")  # same key twice counts once
    store = TrustStore.load(trust)
    assert sorted(k.keyid for k in store.keys) == sorted([keys[ED].keyid, keys[P256].keyid])


def test_trust_directory_that_does_not_exist_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="trust directory not found") as caught:
        TrustStore.load(tmp_path / "nowhere")
    assert caught.value.exit_code is ExitCode.USAGE


def test_trust_directory_that_is_a_file_is_a_usage_error(
    keys: dict[KeyType, GeneratedKey],
) -> None:
    with pytest.raises(UsageError, match="trust directory not found"):
        TrustStore.load(keys[ED].public_path)


def test_trust_directory_without_keys_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("no keys here")
    with pytest.raises(UsageError, match=r"no \*\.pub or \*\.pem public keys"):
        TrustStore.load(tmp_path)


def test_no_trusted_keys_at_all_is_a_usage_error(bundle: Path) -> None:
    with pytest.raises(UsageError, match="no trusted keys given"):
        TrustStore.load()
    with pytest.raises(UsageError, match="no trusted keys given"):
        check_bundle(bundle, VerifyOptions())


def test_preloaded_trust_is_used_instead_of_key_paths(
    bundle: Path, keys: dict[KeyType, GeneratedKey], other_key: GeneratedKey
) -> None:
    trusted = TrustStore.of([load_public_key(keys[ED].public_path)])
    report = check_bundle(bundle, VerifyOptions(keys=[other_key.public_path], trust=trusted))
    assert report.ok, report.failures
    untrusted = TrustStore.of([load_public_key(other_key.public_path)])
    report = check_bundle(bundle, VerifyOptions(keys=[keys[ED].public_path], trust=untrusted))
    assert report.exit_code is ExitCode.SIGNATURE


@pytest.mark.parametrize("hint", ["", "0" * 64, "wrong-hint"])
def test_signature_with_a_wrong_key_id_hint_is_still_checked_against_every_trusted_key(
    bundle: Path, keys: dict[KeyType, GeneratedKey], hint: str
) -> None:
    raw = (bundle / layout.MANIFEST_NAME).read_bytes()
    envelope = Envelope(PAYLOAD_TYPE, raw)
    signer = load_private_key(keys[ED].private_path)
    envelope = envelope.with_signature(Signature(hint, signer.sign(envelope.pae())))
    (bundle / layout.ENVELOPE_NAME).write_bytes(envelope.to_bytes())
    report = check_bundle(bundle, _trust(keys, P256, ED))
    assert report.ok, report.failures
    assert [s.keyid for s in report.signers] == [keys[ED].keyid]


def test_signature_hinting_another_trusted_key_is_still_checked_against_the_signer(
    bundle: Path, keys: dict[KeyType, GeneratedKey]
) -> None:
    raw = (bundle / layout.MANIFEST_NAME).read_bytes()
    envelope = Envelope(PAYLOAD_TYPE, raw)
    signer = load_private_key(keys[ED].private_path)
    envelope = envelope.with_signature(Signature(keys[P256].keyid, signer.sign(envelope.pae())))
    (bundle / layout.ENVELOPE_NAME).write_bytes(envelope.to_bytes())
    report = check_bundle(bundle, _trust(keys, P256, ED))
    assert report.ok, report.failures


def test_candidates_try_the_hinted_key_first_then_every_other_key_once(
    keys: dict[KeyType, GeneratedKey],
) -> None:
    store = TrustStore.of(
        load_public_key(keys[k].public_path) for k in (ED, P256, KeyType.RSA_PSS_3072)
    )
    order = [k.keyid for k in store.candidates(keys[P256].keyid)]
    assert order[0] == keys[P256].keyid
    assert sorted(order) == sorted(k.keyid for k in store.keys)
    assert len(store.candidates("unknown")) == 3


# --------------------------------------------------------------------------- signatures


def test_signature_report_names_untrusted_and_repeated_signers(
    bundle: Path, keys: dict[KeyType, GeneratedKey], other_key: GeneratedKey
) -> None:
    raw = (bundle / layout.MANIFEST_NAME).read_bytes()
    write_envelope(bundle, raw, keys[ED], other_key, keys[ED], keys[P256])
    report = check_bundle(
        bundle, VerifyOptions(keys=[keys[ED].public_path, keys[P256].public_path], threshold=2)
    )
    assert report.ok, report.failures
    assert [s.keyid for s in report.signers] == [keys[ED].keyid, keys[P256].keyid]
    assert any(other_key.keyid[:16] in n and "not by a trusted key" in n for n in report.notes)
    assert any(keys[ED].keyid[:16] in n and "more than once" in n for n in report.notes)


def test_signatures_over_another_payload_type_count_for_nothing(
    bundle: Path, keys: dict[KeyType, GeneratedKey]
) -> None:
    raw = (bundle / layout.MANIFEST_NAME).read_bytes()
    write_envelope(bundle, raw, keys[ED], payload_type="application/vnd.other+json")
    envelope = Envelope.from_bytes(
        (bundle / layout.ENVELOPE_NAME).read_bytes(), limits=DEFAULT_LIMITS
    )
    result = check_signatures(envelope, TrustStore.of([load_public_key(keys[ED].public_path)]))
    assert result.accepted == []
    assert result.unmatched == [keys[ED].keyid]
    assert not result.met(1)
    assert result.met(0)
    report = check_bundle(bundle, _trust(keys))
    assert {"payload-type", "threshold"} <= _codes(report)
    payload_type = next(f for f in report.failures if f.code == "payload-type")
    assert "application/vnd.other+json" in payload_type.message


def test_threshold_is_met_exactly_at_the_number_of_distinct_trusted_signers(
    keys: dict[KeyType, GeneratedKey], bundle: Path
) -> None:
    raw = (bundle / layout.MANIFEST_NAME).read_bytes()
    write_envelope(bundle, raw, keys[ED], keys[P256])
    envelope = Envelope.from_bytes(
        (bundle / layout.ENVELOPE_NAME).read_bytes(), limits=DEFAULT_LIMITS
    )
    store = TrustStore.of(load_public_key(keys[k].public_path) for k in (ED, P256))
    result = check_signatures(envelope, store)
    assert result.met(2)
    assert not result.met(3)
    assert result.unmatched == [] and result.duplicates == []


# --------------------------------------------------------------------------- envelope


ENVELOPE_ITEMS: dict[str, tuple[Any, str]] = {
    "number": (1, "signature 0 is not an object"),
    "string": ("sig", "signature 0 is not an object"),
    "list": ([["k", "YQ=="]], "signature 0 is not an object"),
    "null": (None, "signature 0 is not an object"),
    "unknown_field": ({"keyid": "k", "sig": "YQ==", "cert": "x"}, "not an object of keyid"),
    "keyid_not_a_string": ({"keyid": 7, "sig": "YQ=="}, "keyid that is not a string"),
    "sig_missing": ({"keyid": "k"}, "signature 0 is missing or not a string"),
    "sig_not_a_string": ({"keyid": "k", "sig": 5}, "signature 0 is missing or not a string"),
}


@pytest.mark.parametrize("name", sorted(ENVELOPE_ITEMS))
def test_envelope_signature_item_that_is_not_an_object_is_a_format_error(name: str) -> None:
    item, words = ENVELOPE_ITEMS[name]
    doc = {"payloadType": PAYLOAD_TYPE, "payload": "YQ==", "signatures": [item]}
    with pytest.raises(FormatError, match=words) as caught:
        Envelope.from_bytes(json.dumps(doc).encode(), limits=DEFAULT_LIMITS)
    assert caught.value.message.startswith("signature envelope is malformed")
    assert caught.value.hint is not None


def test_envelope_item_that_is_not_an_object_fails_verification_cleanly(
    bundle: Path, keys: dict[KeyType, GeneratedKey]
) -> None:
    path = bundle / layout.ENVELOPE_NAME
    doc = json.loads(path.read_bytes())
    doc["signatures"].append(42)
    path.write_bytes(canonical.dumps(doc))
    report = check_bundle(bundle, _trust(keys))
    assert {"envelope-malformed", "unsigned"} <= _codes(report)
    assert report.exit_code is ExitCode.SIGNATURE
    malformed = next(f for f in report.failures if f.code == "envelope-malformed")
    assert "signature 1 is not an object" in malformed.message


def test_second_bad_signature_item_is_found_after_a_good_one() -> None:
    doc = {
        "payloadType": PAYLOAD_TYPE,
        "payload": "YQ==",
        "signatures": [{"keyid": "a", "sig": "YQ=="}, {"keyid": "b", "sig": "***"}],
    }
    with pytest.raises(FormatError, match="signature 1 is not standard padded base64"):
        Envelope.from_bytes(json.dumps(doc).encode(), limits=DEFAULT_LIMITS)


def test_envelope_signature_without_keyid_is_accepted_with_an_empty_hint() -> None:
    doc = {"payloadType": PAYLOAD_TYPE, "payload": "YQ==", "signatures": [{"sig": "YWI="}]}
    envelope = Envelope.from_bytes(json.dumps(doc).encode(), limits=DEFAULT_LIMITS)
    assert envelope.signatures == (Signature("", b"ab"),)
    assert envelope.payload == b"a"


@pytest.mark.parametrize("payload_type", ["", 7, None])
def test_envelope_with_empty_or_non_string_payload_type_is_malformed(payload_type: Any) -> None:
    doc = {"payloadType": payload_type, "payload": "YQ==", "signatures": []}
    with pytest.raises(FormatError, match="payloadType is missing or not a string"):
        Envelope.from_bytes(json.dumps(doc).encode(), limits=DEFAULT_LIMITS)


def test_envelope_that_is_a_json_array_is_malformed() -> None:
    with pytest.raises(FormatError, match="it is not a JSON object"):
        Envelope.from_bytes(b"[]", limits=DEFAULT_LIMITS)


def test_envelope_with_unexpected_fields_names_them() -> None:
    doc = {"payloadType": "t", "payload": "YQ==", "signatures": [], "b": 1, "a": 2}
    with pytest.raises(FormatError, match=r"unexpected fields \['a', 'b'\]"):
        Envelope.from_bytes(json.dumps(doc).encode(), limits=DEFAULT_LIMITS)


def test_envelope_serializes_to_the_dsse_json_shape(keys: dict[KeyType, GeneratedKey]) -> None:
    envelope = Envelope("t", b"payload", (Signature("k1", b"s1"), Signature("k2", b"s2")))
    assert json.loads(envelope.to_bytes()) == {
        "payloadType": "t",
        "payload": base64.b64encode(b"payload").decode(),
        "signatures": [
            {"keyid": "k1", "sig": base64.b64encode(b"s1").decode()},
            {"keyid": "k2", "sig": base64.b64encode(b"s2").decode()},
        ],
    }
    assert Envelope.from_bytes(envelope.to_bytes(), limits=DEFAULT_LIMITS) == envelope


# --------------------------------------------------------------------------- signed manifests


def _dup_subject(doc: dict[str, Any]) -> None:
    doc["subject"].insert(0, doc["subject"][0])
    doc["predicate"]["files"].insert(0, doc["predicate"]["files"][0])


def _subject_disagrees(doc: dict[str, Any]) -> None:
    doc["subject"][0]["name"] = "attachments/other.txt"
    doc["subject"].sort(key=lambda s: s["name"])


def _subject_unsorted(doc: dict[str, Any]) -> None:
    doc["subject"].reverse()
    doc["predicate"]["files"].reverse()


def _totals_files(doc: dict[str, Any]) -> None:
    doc["predicate"]["totals"]["files"] += 1


def _totals_size(doc: dict[str, Any]) -> None:
    doc["predicate"]["totals"]["size"] -= 1


def _role_misfit(doc: dict[str, Any]) -> None:
    first = doc["predicate"]["files"][0]
    first["role"] = "metrics" if first["role"] != "metrics" else "logs"


def _window_reversed(doc: dict[str, Any]) -> None:
    window = doc["predicate"]["files"][0]["window"]
    window["earliest"], window["latest"] = "2030-01-01T00:00:01Z", "2030-01-01T00:00:00Z"


SIGNED_MANIFEST_DEFECTS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "duplicate_subject": (_dup_subject, "subject lists a file more than once"),
    "subject_and_files_disagree": (_subject_disagrees, "do not list the same files"),
    "subject_not_sorted": (_subject_unsorted, "subject is not sorted by name"),
    "totals_wrong_file_count": (_totals_files, "totals do not add up"),
    "totals_wrong_size": (_totals_size, "totals do not add up"),
    "role_does_not_fit_path": (_role_misfit, "does not fit its path"),
    "window_ends_before_it_starts": (_window_reversed, "window ends before it starts"),
}


@pytest.mark.parametrize("name", sorted(SIGNED_MANIFEST_DEFECTS))
def test_signed_manifest_that_is_inconsistent_is_refused(
    name: str, bundle: Path, keys: dict[KeyType, GeneratedKey]
) -> None:
    edit, words = SIGNED_MANIFEST_DEFECTS[name]
    doc = _manifest_doc(bundle)
    edit(doc)
    raw = _resign(bundle, doc, keys[ED])
    report = check_bundle(bundle, _trust(keys))
    assert report.exit_code is ExitCode.FORMAT, report.failures
    assert report.signers and report.signers[0].keyid == keys[ED].keyid  # the signature is good
    (finding,) = [f for f in report.failures if f.code == "manifest-invalid"]
    assert words in finding.message
    assert report.manifest is None
    with pytest.raises(FormatError, match="manifest is inconsistent") as caught:
        Manifest.from_bytes(raw, limits=DEFAULT_LIMITS)
    assert words in caught.value.message
    with pytest.raises(VerificationFailed) as failed:
        verify_bundle(bundle, _trust(keys))
    assert failed.value.exit_code is ExitCode.FORMAT


def test_consistent_resigned_manifest_still_verifies(
    bundle: Path, keys: dict[KeyType, GeneratedKey]
) -> None:
    """The re-signing used above is sound: an unedited manifest passes."""
    _resign(bundle, _manifest_doc(bundle), keys[ED])
    report = check_bundle(bundle, VerifyOptions(keys=[keys[ED].public_path], deep=True))
    assert report.ok, report.failures
    assert report.manifest is not None and report.manifest.bundle_id


def test_manifest_file_names_are_checked_as_paths(
    keys: dict[KeyType, GeneratedKey], bundle: Path
) -> None:
    doc = _manifest_doc(bundle)
    name = "attachments/" + "d/" * 20 + "x"
    doc["subject"].append({"name": name, "digest": doc["subject"][0]["digest"]})
    doc["predicate"]["files"].append(
        {"name": name, "role": "attachment", "mediaType": "a/b", "size": 1, "uncompressedSize": 1}
    )
    with pytest.raises(FormatError, match="deeper than 16 levels"):
        Manifest.from_bytes(canonical.dumps(doc), limits=DEFAULT_LIMITS)


def test_signed_manifest_over_the_size_limit_is_refused_before_parsing(
    bundle: Path, keys: dict[KeyType, GeneratedKey]
) -> None:
    raw = (bundle / layout.MANIFEST_NAME).read_bytes()
    with pytest.raises(LimitExceeded, match="over the limit"):
        Manifest.from_bytes(raw, Limits(max_manifest_bytes=len(raw) - 1))


# --------------------------------------------------------------------------- verifier flow


def test_missing_manifest_json_is_reported_and_the_signed_payload_still_checks_files(
    bundle: Path, keys: dict[KeyType, GeneratedKey]
) -> None:
    (bundle / layout.MANIFEST_NAME).unlink()
    _flip_last_byte(sorted((bundle / "otlp" / "logs").iterdir())[0])
    report = check_bundle(bundle, _trust(keys))
    assert report.exit_code is ExitCode.INTEGRITY
    assert sorted((f.code, f.path) for f in report.failures) == [
        ("digest", "otlp/logs/000001.binpb.zst"),
        ("manifest-missing", layout.MANIFEST_NAME),
    ]
    assert report.manifest is not None  # the signed payload is the manifest of record
    assert report.files_checked == 3


def test_bundle_without_envelope_is_unsigned_and_never_deep_checked(
    bundle: Path, keys: dict[KeyType, GeneratedKey]
) -> None:
    # Whether the unsigned manifest.json is still parsed and its files listed is left open
    # (issue 6 asks that untrusted manifests cost little); being unsigned is not.
    (bundle / layout.ENVELOPE_NAME).unlink()
    report = check_bundle(bundle, VerifyOptions(keys=[keys[ED].public_path], deep=True))
    assert report.exit_code is ExitCode.SIGNATURE
    assert "unsigned" in _codes(report)
    assert report.records_checked == 0
    assert report.signers == []


def test_bundle_with_neither_manifest_nor_envelope_reports_both(
    bundle: Path, keys: dict[KeyType, GeneratedKey]
) -> None:
    (bundle / layout.MANIFEST_NAME).unlink()
    (bundle / layout.ENVELOPE_NAME).unlink()
    report = check_bundle(bundle, _trust(keys))
    # Without a trusted signature the manifest is not looked for at all.
    assert [f.code for f in report.failures] == ["unsigned"]
    assert not report.manifest_examined
    assert report.manifest is None and report.files_checked == 0


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def _hash_threads() -> list[str]:
    import threading

    return [t.name for t in threading.enumerate() if t.name.startswith("bundlekit-hash")]


def test_verification_leaves_no_hashing_threads_running_even_when_it_stops_early(
    bundle: Path, keys: dict[KeyType, GeneratedKey], tmp_path: Path
) -> None:
    folder = bundle / "attachments"
    folder.mkdir()
    block = os.urandom(1 << 16)
    for index in range(400):
        (folder / f"f{index:03d}.bin").write_bytes(block)
    with pytest.raises(UsageError):  # no trusted keys: raised after hashing has started
        check_bundle(bundle, VerifyOptions(workers=1))
    assert _hash_threads() == []
    report = check_bundle(bundle, VerifyOptions(keys=[keys[ED].public_path], workers=2))
    assert _hash_threads() == []
    assert sum(f.code == "extra" for f in report.failures) == 400


def test_deep_check_decodes_every_segment_and_counts_records(
    bundle: Path, keys: dict[KeyType, GeneratedKey]
) -> None:
    report = check_bundle(bundle, VerifyOptions(keys=[keys[ED].public_path], deep=True))
    assert report.ok, report.failures
    assert report.records_checked == 80 + 40 + 60
    assert report.bytes_hashed == sum(p.stat().st_size for p in (bundle / "otlp").rglob("*.zst"))
    assert report.notes == []


def test_raise_for_report_picks_the_error_of_the_first_failing_category(
    bundle: Path, keys: dict[KeyType, GeneratedKey]
) -> None:
    from bundlekit.verify.verifier import raise_for_report

    ok = check_bundle(bundle, _trust(keys))
    raise_for_report(ok)  # an ok report raises nothing
    (bundle / "attachments-extra").write_bytes(b"x")
    report = check_bundle(bundle, _trust(keys))
    with pytest.raises(VerificationFailed, match="failed verification") as caught:
        raise_for_report(report)
    assert caught.value.exit_code is ExitCode.INTEGRITY
    assert "attachments-extra" in caught.value.message
    assert caught.value.report is report
    (bundle / layout.ENVELOPE_NAME).unlink()
    with pytest.raises(VerificationFailed) as unsigned:
        raise_for_report(check_bundle(bundle, _trust(keys)))
    assert unsigned.value.exit_code is ExitCode.SIGNATURE


def test_size_mismatch_does_not_stop_the_other_files_being_checked(
    bundle: Path, keys: dict[KeyType, GeneratedKey]
) -> None:
    first = sorted((bundle / "otlp" / "logs").iterdir())[0]  # the first file in manifest order
    first.write_bytes(first.read_bytes()[:-5])
    _flip_last_byte(sorted((bundle / "otlp" / "traces").iterdir())[0])
    report = check_bundle(bundle, _trust(keys))
    assert sorted((f.code, f.path) for f in report.failures) == [
        ("digest", "otlp/traces/000001.binpb.zst"),
        ("size", "otlp/logs/000001.binpb.zst"),
    ]
    assert report.files_checked == 2


def test_missing_file_does_not_stop_the_other_files_being_checked(
    bundle: Path, keys: dict[KeyType, GeneratedKey]
) -> None:
    sorted((bundle / "otlp" / "logs").iterdir())[0].unlink()
    _flip_last_byte(sorted((bundle / "otlp" / "traces").iterdir())[0])
    report = check_bundle(bundle, _trust(keys))
    assert sorted(f.code for f in report.failures) == ["digest", "missing"]
    assert report.files_checked == 2


def _failing_open(name: str, fail_on: set[int], swap_to: bytes | None = None) -> Any:
    """An Extent.open that fails (or first swaps the file) on chosen opens of ``name``."""
    real = Extent.open
    count = [0]

    def open_(extent: Extent) -> Any:
        if extent.inner == name:
            count[0] += 1
            if count[0] in fail_on:
                if swap_to is None:
                    raise PermissionError(13, "Permission denied", name)
                (Path(extent.base) / name).write_bytes(swap_to)
        return real(extent)

    return open_


def test_unreadable_file_is_reported_and_the_rest_are_still_checked(
    bundle: Path, keys: dict[KeyType, GeneratedKey], monkeypatch: pytest.MonkeyPatch
) -> None:
    name = "otlp/logs/000001.binpb.zst"
    monkeypatch.setattr(Extent, "open", _failing_open(name, {1}))
    _flip_last_byte(bundle / "otlp/traces/000001.binpb.zst")
    report = check_bundle(bundle, _trust(keys))
    assert report.exit_code is ExitCode.INTEGRITY
    assert sorted((f.code, f.path) for f in report.failures) == [
        ("digest", "otlp/traces/000001.binpb.zst"),
        ("unreadable", name),
    ]
    unreadable = next(f for f in report.failures if f.code == "unreadable")
    assert "Permission denied" in unreadable.message
    assert report.files_checked == 3
    assert report.bytes_hashed == sum(
        p.stat().st_size for p in (bundle / "otlp").rglob("*.zst") if not str(p).endswith(name)
    )


def test_file_unreadable_during_deep_check_is_reported(
    bundle: Path, keys: dict[KeyType, GeneratedKey], monkeypatch: pytest.MonkeyPatch
) -> None:
    name = "otlp/logs/000001.binpb.zst"
    monkeypatch.setattr(Extent, "open", _failing_open(name, {1}))
    # One worker: deep runs in this process, where the patch applies.
    options = VerifyOptions(keys=[keys[ED].public_path], deep=True, workers=1)
    report = check_bundle(bundle, options)
    assert [(f.code, f.path) for f in report.failures] == [("unreadable", name)]
    assert report.exit_code is ExitCode.INTEGRITY
    assert report.records_checked == 80 + 40  # the other two segments were decoded


def test_segment_swapped_before_the_deep_read_is_a_digest_failure_and_not_decoded(
    bundle: Path, keys: dict[KeyType, GeneratedKey], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Deep reads each segment once: the bytes it decodes are the bytes it hashed."""
    from bundlekit.format.segment import compress_segment
    from tests import otlpgen

    name = "otlp/logs/000001.binpb.zst"
    swapped = compress_segment(otlpgen.stream(otlpgen.logs(7)))  # a valid, different segment
    monkeypatch.setattr(Extent, "open", _failing_open(name, {1}, swap_to=swapped))
    options = VerifyOptions(keys=[keys[ED].public_path], deep=True, workers=1)
    report = check_bundle(bundle, options)
    changed = [f for f in report.failures if f.code == "digest"]
    assert [f.path for f in changed] == [name]
    assert report.records_checked == 80 + 40  # the swapped logs segment was not decoded


def test_signed_segment_that_does_not_decode_is_a_deep_format_failure(
    bundle: Path, keys: dict[KeyType, GeneratedKey]
) -> None:
    import hashlib

    name = "otlp/logs/000001.binpb.zst"
    garbage = b"this is not a zstd frame at all"
    (bundle / name).write_bytes(garbage)
    doc = _manifest_doc(bundle)
    old_size = 0
    for item in doc["predicate"]["files"]:
        if item["name"] == name:
            old_size, item["size"] = item["size"], len(garbage)
    for subject in doc["subject"]:
        if subject["name"] == name:
            subject["digest"]["sha256"] = hashlib.sha256(garbage).hexdigest()
    doc["predicate"]["totals"]["size"] += len(garbage) - old_size
    _resign(bundle, doc, keys[ED])
    assert check_bundle(bundle, _trust(keys)).ok  # hashes match the signed manifest
    report = check_bundle(bundle, VerifyOptions(keys=[keys[ED].public_path], deep=True))
    assert [(f.code, f.path) for f in report.failures] == [("undecodable", name)]
    assert report.exit_code is ExitCode.FORMAT
    assert "cannot decode segment" in report.failures[0].message


# --------------------------------------------------------------------------- bundle source


def test_bundle_path_that_does_not_exist_is_a_usage_error(
    tmp_path: Path, keys: dict[KeyType, GeneratedKey]
) -> None:
    with pytest.raises(UsageError, match="bundle not found") as caught:
        check_bundle(tmp_path / "nowhere", _trust(keys))
    assert caught.value.exit_code is ExitCode.USAGE


def test_bundle_path_that_is_a_file_but_not_an_archive_is_a_format_failure(
    tmp_path: Path, keys: dict[KeyType, GeneratedKey]
) -> None:
    (tmp_path / "bundle.tar").write_bytes(b"not a directory")
    report = check_bundle(tmp_path / "bundle.tar", _trust(keys))
    assert [f.code for f in report.failures] == ["archive-malformed"]
    assert "is not a bundle archive" in report.failures[0].message
    assert report.exit_code is ExitCode.FORMAT


def test_envelope_reached_through_a_symlinked_signatures_directory_is_not_read(
    bundle: Path, keys: dict[KeyType, GeneratedKey], tmp_path: Path
) -> None:
    outside = tmp_path / "outside-signatures"
    shutil.move(bundle / layout.SIGNATURES_DIR, outside)
    os.symlink(outside, bundle / layout.SIGNATURES_DIR)
    report = check_bundle(bundle, _trust(keys))
    assert report.exit_code is ExitCode.SIGNATURE
    # The envelope behind the link is never read, so nothing vouches for the manifest
    # and the bundle's files (the link among them) are not examined either.
    assert [(f.code, f.path) for f in report.failures] == [("unsigned", layout.ENVELOPE_NAME)]
    assert report.signers == [] and not report.manifest_examined


def test_manifest_that_is_a_symlink_is_not_followed(
    bundle: Path, keys: dict[KeyType, GeneratedKey], tmp_path: Path
) -> None:
    outside = tmp_path / "manifest-outside.json"
    shutil.move(bundle / layout.MANIFEST_NAME, outside)
    os.symlink(outside, bundle / layout.MANIFEST_NAME)
    report = check_bundle(bundle, _trust(keys))
    assert sorted(f.code for f in report.failures) == ["manifest-missing", "not-regular"]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_directory_swapped_for_a_link_during_hashing_is_reported_not_a_hang(
    bundle: Path, keys: dict[KeyType, GeneratedKey], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import threading

    real = Extent.open
    name = "otlp/logs/000001.binpb.zst"

    def swap_then_open(extent: Extent) -> Any:
        if extent.inner == name and not (bundle / "otlp" / "logs").is_symlink():
            # An attacker replaces the directory with a link after it was listed.
            shutil.move(bundle / "otlp" / "logs", tmp_path / "logs-elsewhere")
            os.symlink(tmp_path / "logs-elsewhere", bundle / "otlp" / "logs")
        return real(extent)

    monkeypatch.setattr(Extent, "open", swap_then_open)
    reports: list[Any] = []
    worker = threading.Thread(
        target=lambda: reports.append(check_bundle(bundle, _trust(keys))), daemon=True
    )
    worker.start()
    worker.join(10)  # it takes well under a second when it works
    assert reports, "check_bundle did not return within 10 s"
    assert not reports[0].ok
    assert name in {f.path for f in reports[0].failures}
