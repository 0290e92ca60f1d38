"""Untrusted bytes cost little (issue 6, item 4), and the limits around them hold at the boundary.

* A manifest no trusted key signed is not read, parsed, validated or listed:
  a multi-megabyte one is refused in well under a second and a few MB,
  measured in a separate process (wall time and peak RSS).
* An envelope of megabytes of junk signatures or nesting is refused before it
  is parsed.
* Text that is not Unicode (a JSON-escaped lone surrogate, invalid UTF-8,
  overlong forms, encoded surrogates) is a format error wherever a manifest or
  envelope is read, never an internal error.
* The failure list is capped at ``Limits.max_findings``; signatures at
  ``max_signatures``; a listing at ``max_files`` -- each tested at its boundary.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bundlekit.errors import ExitCode, FormatError, LimitExceeded, UsageError
from bundlekit.format import canonical, layout
from bundlekit.format.dsse import Envelope, Signature
from bundlekit.format.manifest import PAYLOAD_TYPE, Manifest
from bundlekit.inspect import inspect_bundle
from bundlekit.keys import GeneratedKey, KeyType, load_private_key
from bundlekit.limits import DEFAULT_LIMITS, Limits, envelope_bytes_for
from bundlekit.sign import sign_bundle
from bundlekit.verify import (
    Defect,
    VerificationReport,
    VerifyOptions,
    check_bundle,
    open_unverified,
    verify_bundle,
)
from tests.bundles import write_envelope

Run = Callable[..., tuple[int, str, str]]
ED = KeyType.ED25519
MiB = 1024 * 1024


def _document(bundle: Path) -> dict[str, Any]:
    return json.loads((bundle / layout.MANIFEST_NAME).read_bytes())  # type: ignore[no-any-return]


def _resign(bundle: Path, raw: bytes, key: GeneratedKey) -> None:
    """Write ``raw`` as manifest.json and as the payload of an envelope ``key`` signed."""
    (bundle / layout.MANIFEST_NAME).write_bytes(raw)
    write_envelope(bundle, raw, key)


def _with_missing_files(doc: dict[str, Any], count: int) -> bytes:
    """``doc`` listing ``count`` more attachments (absent on disk), subjects and totals kept."""
    predicate = doc["predicate"]
    for index in range(count):
        name = f"attachments/a{index:07d}"
        predicate["files"].append(
            {
                "mediaType": "application/octet-stream",
                "name": name,
                "role": "attachment",
                "size": 1,
                "uncompressedSize": 1,
            }
        )
        doc["subject"].append({"digest": {"sha256": "0" * 64}, "name": name})
    predicate["files"].sort(key=lambda f: f["name"])
    doc["subject"].sort(key=lambda s: s["name"])
    predicate["totals"]["files"] += count
    predicate["totals"]["size"] += count
    predicate["totals"]["uncompressedSize"] += count
    # For a schema-valid document of ASCII and integers, this is the canonical form
    # (format/canonical.py), and much faster than rfc8785 for megabytes.
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


# --- a manifest no trusted key signed is not examined ---------------------------------


@pytest.mark.parametrize(
    ("change", "codes"),
    [
        ("no-envelope", {"unsigned"}),
        ("untrusted-key", {"threshold"}),
        ("unreadable-envelope", {"envelope-malformed", "unsigned"}),
        ("oversized-envelope", {"oversized", "unsigned"}),
    ],
)
def test_untrusted_manifest_is_not_examined(
    bundle: Path,
    other_key: GeneratedKey,
    keys: dict[KeyType, GeneratedKey],
    change: str,
    codes: set[str],
) -> None:
    """Garbage in manifest.json and tampered files: nothing is reported about them, unread."""
    (bundle / layout.MANIFEST_NAME).write_bytes(b'{"not": "a manifest"')
    sorted((bundle / "otlp" / "traces").iterdir())[0].unlink()
    (bundle / "otlp" / "logs" / "000099.binpb.zst").write_bytes(b"smuggled")
    envelope = bundle / layout.ENVELOPE_NAME
    limits = DEFAULT_LIMITS
    if change == "no-envelope":
        envelope.unlink()
    elif change == "untrusted-key":
        write_envelope(bundle, b'{"not": "a manifest"', other_key)
    elif change == "unreadable-envelope":
        envelope.write_bytes(b"\xff not json")
    else:
        limits = Limits(max_envelope_bytes=envelope.stat().st_size - 1)
    options = VerifyOptions(keys=[keys[ED].public_path], deep=True, limits=limits)
    report = check_bundle(bundle, options)
    assert {f.code for f in report.failures} == codes
    assert report.exit_code is ExitCode.SIGNATURE
    assert report.manifest is None and not report.manifest_examined
    assert report.files_checked == 0 and report.records_checked == 0
    assert any(note.startswith("manifest not examined") for note in report.notes)
    assert any(note.startswith("deep checks skipped") for note in report.notes)
    assert report.to_json()["manifestExamined"] is False


def test_trusted_manifest_is_examined(bundle: Path, keys: dict[KeyType, GeneratedKey]) -> None:
    report = check_bundle(bundle, VerifyOptions(keys=[keys[ED].public_path]))
    assert report.ok and report.manifest_examined and report.files_checked == 3
    assert report.to_json()["manifestExamined"] is True
    assert not any("not examined" in note for note in report.notes)


#: Runs the CLI in process and records its exit code, the seconds the command took
#: (start-up excluded: it is not what the input costs) and the peak RSS.  Peak RSS
#: is VmHWM, the high-water mark of this process's own memory: getrusage's
#: ru_maxrss would carry over the (large) pytest parent's peak across fork and exec.
_PROBE = r"""
import json, sys, time
from bundlekit.cli.app import app
start = time.perf_counter()
try:
    app(sys.argv[2:], prog_name="bundlekit")
    code = 0
except SystemExit as exc:
    code = exc.code
seconds = time.perf_counter() - start
with open("/proc/self/status") as status:
    kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
with open(sys.argv[1], "w") as out:
    json.dump({"code": code, "seconds": seconds, "rss_mib": kib / 1024}, out)
"""


def _measure(tmp_path: Path, *args: str | os.PathLike[str]) -> dict[str, Any]:
    """Run the CLI in a fresh process; its exit code, seconds spent in the command, peak RSS."""
    result = tmp_path / "measured.json"
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(result), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert result.exists(), done.stderr[-2000:]
    measured: dict[str, Any] = json.loads(result.read_text())
    measured["stdout"] = done.stdout[:600]
    measured["stderr"] = done.stderr[:600]
    return measured


#: Generous bounds (2 CPUs shared by several test runs): the old code took seconds
#: and hundreds of MB on these inputs; the new one takes milliseconds and start-up RSS.
MAX_SECONDS = 1.0
MAX_RSS_MIB = 150
needs_proc = pytest.mark.skipif(
    not Path("/proc/self/status").exists(), reason="peak RSS is read from Linux /proc"
)


@pytest.fixture(scope="module")
def big_manifest(signed_bundle: Path) -> bytes:
    """A schema-valid manifest of about 23 MB listing 100,000 files (``max_files``)."""
    raw = _with_missing_files(_document(signed_bundle), DEFAULT_LIMITS.max_files - 3)
    assert len(raw) > 20 * MiB
    return raw


@needs_proc
@pytest.mark.parametrize("signed_by", ["nobody", "untrusted-key"])
def test_multi_megabyte_untrusted_manifest_is_refused_quickly_and_small(
    tmp_path: Path,
    big_manifest: bytes,
    other_key: GeneratedKey,
    keys: dict[KeyType, GeneratedKey],
    signed_by: str,
) -> None:
    """Unsigned, the 23 MB manifest is not even read (the old code: 8 s, 228 MiB).

    Signed by an untrusted key, the envelope must be decoded to check the
    signature, which costs about three times its size; a third of the manifest
    (an 8 MB envelope) keeps that well inside the bound.
    """
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / layout.MANIFEST_NAME).write_bytes(big_manifest)
    if signed_by == "untrusted-key":
        (bundle / layout.SIGNATURES_DIR).mkdir()
        write_envelope(bundle, big_manifest[: len(big_manifest) // 3], other_key)
    measured = _measure(tmp_path, "verify", bundle, "--key", keys[ED].public_path)
    assert measured["seconds"] < MAX_SECONDS, measured
    assert measured["rss_mib"] < MAX_RSS_MIB, measured
    assert measured["code"] == ExitCode.SIGNATURE, measured
    assert "manifest not examined" in measured["stderr"]


def _junk_signatures(size: int) -> bytes:
    head = b'{"payload":"e30=","payloadType":"application/vnd.in-toto+json","signatures":['
    item = b'{"keyid":"","sig":""},'
    return head + item * ((size - len(head)) // len(item)) + item[:-1] + b"]}"


def _nested(size: int) -> bytes:
    return b'{"payload":"e30=","payloadType":"x","signatures":' + b"[" * size + b"]" * size + b"}"


@needs_proc
@pytest.mark.parametrize(
    ("kind", "mib"),
    [("junk-signatures", 7), ("junk-signatures", 40), ("deep-nesting", 7), ("junk-commas", 40)],
)
def test_multi_megabyte_junk_envelope_is_refused_quickly_and_small(
    bundle: Path, tmp_path: Path, keys: dict[KeyType, GeneratedKey], kind: str, mib: int
) -> None:
    """7 MiB fits the old 8 MiB envelope cap; 40 MiB fits the new one (a 32 MiB manifest's)."""
    size = mib * MiB
    data = {
        "junk-signatures": lambda: _junk_signatures(size),
        "deep-nesting": lambda: _nested(size // 2),
        "junk-commas": lambda: _junk_signatures(64)[:-2] + b"," * size + b"]}",
    }[kind]()
    (bundle / layout.ENVELOPE_NAME).write_bytes(data)
    measured = _measure(tmp_path, "verify", bundle, "--key", keys[ED].public_path, "--json")
    assert measured["seconds"] < MAX_SECONDS, measured
    assert measured["rss_mib"] < MAX_RSS_MIB, measured
    assert measured["code"] == ExitCode.SIGNATURE, measured
    with pytest.raises(LimitExceeded, match="JSON objects, arrays and separators"):
        Envelope.from_bytes(data, limits=DEFAULT_LIMITS)


# --- text that is not Unicode is a format error everywhere ----------------------------

#: Bytes spliced into a JSON string: each is not Unicode in its own way.
NOT_UNICODE = {
    "escaped-lone-high-surrogate": b"\\ud800",
    "escaped-lone-low-surrogate": b"\\uDC00x",
    "escaped-reversed-pair": b"\\udc00\\ud800",
    "invalid-utf8": b"\xff",
    "overlong-slash": b"\xc0\xaf",
    "encoded-surrogate": b"\xed\xa0\x80",
}


def _not_unicode_manifest(bundle: Path, poison: bytes) -> bytes:
    doc = _document(bundle)
    doc["predicate"]["custody"] = {"operator": "POISON"}
    return canonical.dumps(doc).replace(b"POISON", poison)


@pytest.mark.parametrize("name", sorted(NOT_UNICODE))
def test_signed_manifest_that_is_not_unicode_is_a_format_error(
    bundle: Path, keys: dict[KeyType, GeneratedKey], run_cli: Run, name: str
) -> None:
    raw = _not_unicode_manifest(bundle, NOT_UNICODE[name])
    _resign(bundle, raw, keys[ED])
    report = check_bundle(bundle, VerifyOptions(keys=[keys[ED].public_path]))
    assert [f.code for f in report.failures] == ["manifest-invalid"]
    assert "not valid" in report.failures[0].message
    code, out, err = run_cli("verify", bundle, "--key", keys[ED].public_path)
    assert code == ExitCode.FORMAT, err
    code, out, err = run_cli("inspect", bundle)
    assert (code, out) == (ExitCode.FORMAT, "")
    assert err.startswith("error: manifest is not valid")
    with pytest.raises(FormatError, match="not valid"):
        open_unverified(bundle)
    (bundle / layout.ENVELOPE_NAME).unlink()
    code, _, err = run_cli("sign", bundle, "--key", keys[ED].private_path)
    assert code == ExitCode.FORMAT and err.startswith("error: manifest is not valid"), err


def test_lone_surrogate_message_names_unicode(bundle: Path) -> None:
    with pytest.raises(FormatError, match="not valid Unicode"):
        Manifest.from_bytes(_not_unicode_manifest(bundle, b"\\ud800"), limits=DEFAULT_LIMITS)
    with pytest.raises(FormatError, match="not valid UTF-8"):
        Manifest.from_bytes(_not_unicode_manifest(bundle, b"\xc0\xaf"), limits=DEFAULT_LIMITS)


def test_escaped_surrogate_pair_and_escaped_backslash_are_fine() -> None:
    """A valid pair is one character, and ``\\\\ud800`` is a backslash then text."""
    assert canonical.loads(b'["\\ud83d\\ude00", "\\\\ud800"]', "x") == ["\U0001f600", "\\ud800"]


def _envelope_with_keyid(bundle: Path, keyid_json: bytes) -> None:
    doc = json.loads((bundle / layout.ENVELOPE_NAME).read_bytes())
    doc["signatures"][0]["keyid"] = "KEYID"
    raw = canonical.dumps(doc).replace(b"KEYID", keyid_json)
    (bundle / layout.ENVELOPE_NAME).write_bytes(raw)


@pytest.mark.parametrize("name", sorted(NOT_UNICODE))
def test_envelope_that_is_not_unicode_is_a_format_error(
    bundle: Path, keys: dict[KeyType, GeneratedKey], run_cli: Run, name: str
) -> None:
    _envelope_with_keyid(bundle, NOT_UNICODE[name])
    with pytest.raises(FormatError, match="not valid"):
        Envelope.from_bytes((bundle / layout.ENVELOPE_NAME).read_bytes(), limits=DEFAULT_LIMITS)
    # verify: a format finding, and exit 3 (an unreadable envelope is no trusted signature).
    code, out, _ = run_cli("verify", bundle, "--key", keys[ED].public_path, "--json")
    assert code == ExitCode.SIGNATURE
    assert {f["code"] for f in json.loads(out)["failures"]} == {"envelope-malformed", "unsigned"}
    for args in (
        ("inspect", bundle),
        ("sign", bundle, "--key", keys[KeyType.ECDSA_P256].private_path),
        ("replay", bundle, "--no-verify", "--dry-run"),
    ):
        code, _, err = run_cli(*args)
        assert code == ExitCode.FORMAT, (args, err)
        assert err.startswith("error: signature envelope is not valid"), err
    with pytest.raises(FormatError):
        open_unverified(bundle)
    with pytest.raises(FormatError):
        inspect_bundle(bundle)


# --- the failure list is capped -------------------------------------------------------


@pytest.mark.parametrize(("missing", "shown", "omitted"), [(5, 5, 0), (6, 5, 1), (9, 5, 4)])
def test_findings_are_capped_at_max_findings(
    bundle: Path,
    keys: dict[KeyType, GeneratedKey],
    run_cli: Run,
    missing: int,
    shown: int,
    omitted: int,
) -> None:
    _resign(bundle, _with_missing_files(_document(bundle), missing), keys[ED])
    options = VerifyOptions(keys=[keys[ED].public_path], limits=Limits(max_findings=5))
    report = check_bundle(bundle, options)
    assert [f.code for f in report.failures] == ["missing"] * shown
    assert report.omitted == omitted
    assert report.exit_code is ExitCode.INTEGRITY
    doc = report.to_json()
    assert doc["failuresNotShown"] == omitted
    more = [n for n in doc["notes"] if "more problem(s) not shown" in n]
    assert more == (
        [f"{omitted} more problem(s) not shown (a report lists at most 5)"] if omitted else []
    )
    # The raising door carries the same capped list, and says how many it left out.
    with pytest.raises(Exception) as caught:
        verify_bundle(bundle, options)
    assert caught.value.message.count("[integrity]") == shown  # type: ignore[attr-defined]
    assert ("more problem(s) not shown" in caught.value.message) is bool(omitted)  # type: ignore[attr-defined]


def test_default_findings_cap_applies_to_the_cli(
    bundle: Path, keys: dict[KeyType, GeneratedKey], run_cli: Run
) -> None:
    cap = DEFAULT_LIMITS.max_findings
    _resign(bundle, _with_missing_files(_document(bundle), cap + 2), keys[ED])
    code, _, err = run_cli("verify", bundle, "--key", keys[ED].public_path)
    assert code == ExitCode.INTEGRITY
    assert err.count("[integrity]") == cap
    assert f"FAILED {bundle} ({cap + 2:,} problem(s))" in err
    assert "note: 2 more problem(s) not shown" in err


def test_omitted_failures_still_decide_the_exit_code() -> None:
    report = VerificationReport("b", 1, False, max_findings=1)
    report.fail(Defect.OVERSIZED, "too big")
    report.fail(Defect.MISSING, "gone", "x")
    assert [f.code for f in report.failures] == ["oversized"]
    assert report.exit_code is ExitCode.INTEGRITY
    assert not report.ok


def test_a_report_at_zero_failures_is_ok_and_lists_no_note() -> None:
    report = VerificationReport("b", 1, False, max_findings=0)
    assert report.ok and report.all_notes == []
    report.fail(Defect.MISSING, "gone", "x")
    assert not report.ok and report.failures == [] and report.exit_code is ExitCode.INTEGRITY


# --- other bounds and doors, each at its boundary -------------------------------------


@pytest.mark.parametrize("threshold", [0, -1])
def test_library_refuses_a_threshold_below_one(
    bundle: Path, keys: dict[KeyType, GeneratedKey], threshold: int
) -> None:
    options = VerifyOptions(keys=[keys[ED].public_path], threshold=threshold)
    with pytest.raises(UsageError, match="at least 1"):
        check_bundle(bundle, options)
    with pytest.raises(UsageError, match="at least 1"):
        verify_bundle(bundle, options)


def test_signature_item_that_is_not_an_object_is_a_format_error(
    bundle: Path, keys: dict[KeyType, GeneratedKey]
) -> None:
    path = bundle / layout.ENVELOPE_NAME
    doc = json.loads(path.read_bytes())
    for item in ("a string", 7, ["keyid", "sig"], None):
        doc["signatures"] = [item]
        data = canonical.dumps(doc)
        with pytest.raises(FormatError, match="signature 0 is not an object"):
            Envelope.from_bytes(data, limits=DEFAULT_LIMITS)
        path.write_bytes(data)
        report = check_bundle(bundle, VerifyOptions(keys=[keys[ED].public_path]))
        assert {f.code for f in report.failures} == {"envelope-malformed", "unsigned"}


def _envelope_with(signatures: int, payload: bytes = b"{}") -> bytes:
    envelope = Envelope(PAYLOAD_TYPE, payload)
    for index in range(signatures):
        envelope = envelope.with_signature(Signature(f"{index:064x}", bytes(384)))
    return envelope.to_bytes()


@pytest.mark.parametrize("limits", [DEFAULT_LIMITS, Limits(max_signatures=3)], ids=["64", "3"])
def test_max_signatures_at_the_cap_is_accepted_one_over_is_refused(limits: Limits) -> None:
    cap = limits.max_signatures
    assert len(Envelope.from_bytes(_envelope_with(cap), limits).signatures) == cap
    with pytest.raises(
        LimitExceeded, match=f"carries {cap + 1} signatures, over the limit of {cap}"
    ):
        Envelope.from_bytes(_envelope_with(cap + 1), limits)


def test_max_signatures_in_verify(bundle: Path, keys: dict[KeyType, GeneratedKey]) -> None:
    """A valid trusted signature among cap-1 others passes; one more and the envelope is refused."""
    limits = Limits(max_signatures=3)
    path = bundle / layout.ENVELOPE_NAME
    doc = json.loads(path.read_bytes())
    junk = {"keyid": "junk", "sig": base64.b64encode(bytes(64)).decode()}
    options = VerifyOptions(keys=[keys[ED].public_path], limits=limits)
    doc["signatures"] += [junk] * 2
    path.write_bytes(canonical.dumps(doc))
    assert check_bundle(bundle, options).ok
    doc["signatures"] += [junk]
    path.write_bytes(canonical.dumps(doc))
    report = check_bundle(bundle, options)
    assert {f.code for f in report.failures} == {"envelope-malformed", "unsigned"}
    assert "over the limit of 3" in report.failures[0].message


def test_envelope_cap_fits_a_manifest_at_its_cap_with_every_signature() -> None:
    """Signatures over a manifest within its cap are never refused for the envelope's size."""
    manifest, signatures = 3001, 5
    limits = Limits(
        max_manifest_bytes=manifest,
        max_signatures=signatures,
        max_envelope_bytes=envelope_bytes_for(manifest, signatures),
    )
    data = _envelope_with(signatures, b"x" * manifest)
    assert len(Envelope.from_bytes(data, limits).payload) == manifest
    # And the defaults: base64 of a 32 MiB manifest with 64 RSA-size signatures fits.
    defaults = DEFAULT_LIMITS
    b64 = 4 * -(-defaults.max_manifest_bytes // 3)
    one_signature = len(_envelope_with(1)) - len(_envelope_with(0))
    assert defaults.max_envelope_bytes > b64 + defaults.max_signatures * one_signature
    assert defaults.max_envelope_bytes < 2 * b64  # and is no looser than it needs to be


def test_envelope_cap_is_enforced_at_the_byte(bundle: Path) -> None:
    data = (bundle / layout.ENVELOPE_NAME).read_bytes()
    assert Envelope.from_bytes(data, Limits(max_envelope_bytes=len(data))).signatures
    with pytest.raises(LimitExceeded, match="signature envelope is"):
        Envelope.from_bytes(data, Limits(max_envelope_bytes=len(data) - 1))


def _entries(bundle: Path) -> int:
    return sum(len(dirs) + len(files) for _, dirs, files in os.walk(bundle))


def test_listing_at_max_files_passes_one_over_fails(
    bundle: Path, keys: dict[KeyType, GeneratedKey]
) -> None:
    count = _entries(bundle)
    at_cap = VerifyOptions(keys=[keys[ED].public_path], limits=Limits(max_files=count))
    assert check_bundle(bundle, at_cap).ok
    under = VerifyOptions(keys=[keys[ED].public_path], limits=Limits(max_files=count - 1))
    report = check_bundle(bundle, under)
    assert [f.code for f in report.failures] == ["listing"]
    assert report.exit_code is ExitCode.FORMAT and not report.ok


def test_sign_refuses_a_manifest_with_a_lone_surrogate_before_signing(
    bundle: Path, keys: dict[KeyType, GeneratedKey]
) -> None:
    raw = _not_unicode_manifest(bundle, b"\\ud800")
    (bundle / layout.MANIFEST_NAME).write_bytes(raw)
    (bundle / layout.ENVELOPE_NAME).unlink()
    with pytest.raises(FormatError, match="not valid Unicode"):
        sign_bundle(bundle, load_private_key(keys[ED].private_path))
    assert not (bundle / layout.ENVELOPE_NAME).exists()


@pytest.mark.parametrize(
    "data",
    [
        b'{"\\ud800": 1}',  # in a key
        b'{"a": [[1, {"b": ["ok", "\\udfff"]}]]}',  # deep in lists and objects
        b'"\\uD83D"',  # a bare top-level string, upper-case hex
        b'["\\ud83d\\ude00", "\\ud83d"]',  # a good pair does not excuse a lone one
    ],
)
def test_lone_surrogate_anywhere_in_a_document_is_refused(data: bytes) -> None:
    with pytest.raises(FormatError, match="not valid Unicode"):
        canonical.loads(data, "manifest")


def _keyid_padded_to(structure: int) -> bytes:
    """A one-signature envelope whose JSON holds exactly ``structure`` of ``{``, ``[`` and ``,``."""
    base = _envelope_with(1)
    found = base.count(b"{") + base.count(b"[") + base.count(b",")
    data = base.replace(f"{0:064x}".encode(), b"," * (structure - found), 1)
    assert data.count(b"{") + data.count(b"[") + data.count(b",") == structure
    return data


def test_envelope_structure_budget_at_the_cap_passes_one_over_fails() -> None:
    """The budget is twice what max_signatures need: exactly that is parsed, one more is not."""
    limits = Limits(max_signatures=3)
    budget = 2 * (4 + 3 * limits.max_signatures)
    assert Envelope.from_bytes(_keyid_padded_to(budget), limits).signatures[0].keyid.count(",")
    with pytest.raises(LimitExceeded, match=f"more than the {budget} allowed"):
        Envelope.from_bytes(_keyid_padded_to(budget + 1), limits)


def test_untrusted_bundle_is_not_hashed_to_the_end(
    bundle: Path, other_key: GeneratedKey, keys: dict[KeyType, GeneratedKey]
) -> None:
    """Hashing starts before the signature check; refusing the signature abandons it at once.

    A 4 GiB sparse attachment takes seconds to hash; a bundle signed by an untrusted
    key must be refused without reading it to the end.
    """
    import time

    write_envelope(bundle, (bundle / layout.MANIFEST_NAME).read_bytes(), other_key)
    (bundle / "attachments").mkdir()
    with open(bundle / "attachments" / "big.bin", "wb") as big:
        big.truncate(4 * 1024 * MiB)
    options = VerifyOptions(keys=[keys[ED].public_path], workers=2)
    start = time.perf_counter()
    report = check_bundle(bundle, options)
    elapsed = time.perf_counter() - start
    assert report.exit_code is ExitCode.SIGNATURE
    assert elapsed < MAX_SECONDS, elapsed
