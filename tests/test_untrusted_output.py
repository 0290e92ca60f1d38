"""Strings a bundle supplies never reach a terminal raw (issue 6, item 3).

Each test builds a bundle whose *signed* manifest, envelope or directory holds
escape sequences, carriage returns, line breaks, C1 controls and bidi
overrides, runs the CLI (in process, and once as a real subprocess), and checks
that text output shows every such character as an inert escape while --json
still carries the exact value.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from bundlekit.errors import ExitCode
from bundlekit.format import canonical, layout
from bundlekit.format.dsse import Envelope, Signature
from bundlekit.format.manifest import PAYLOAD_TYPE
from bundlekit.keys import GeneratedKey, KeyType, load_private_key
from bundlekit.verify import VerificationFailed, VerifyOptions, check_bundle, verify_bundle
from tests.bundles import pack_small
from tests.test_cli import bundlekit

Run = Callable[..., tuple[int, str, str]]
ED = KeyType.ED25519

#: Clears the screen, homes the cursor, sets the window title (OSC), colours with
#: a one-byte C1 CSI, reverses text direction, rewrites the line with a carriage
#: return and forges a new line (plain and Unicode separators), plus rich markup
#: and an emoji code that must be shown as typed.
EVIL = (
    "\x1b[2J\x1b[H\x1b]0;pwned\x07\x9b31m\u202eevil\u200b\rOK\nFORGED line\u2028sep"
    "\x00 [/] [bold]:warning:"
)
#: A key id hint; signatures' key ids are not covered by any signature.
EVIL_KEYID = "\x1b]8;;http://x\x07\x9b2J\u202e\u2066keyid\r\nFORGED keyid"
#: A file on disk named with an escape (refused as unsafe) ...
ESC_NAME = "otlp/\x1b[31mred\nFORGED file"
#: ... and one whose C1 control and bidi override pass the path rules (an extra file).
C1_NAME = "attachments/\x9b2J\u202etxt.exe"

RAW = ("\x1b", "\x9b", "\r", "\x07", "\x00", "\u202e", "\u2066", "\u200b", "\u2028")


def assert_neutral(text: str) -> None:
    """No raw control or format character, and no line an attacker began."""
    for char in RAW:
        assert char not in text, f"raw {char!r} reached the terminal: {text!r}"
    assert not any(line.lstrip().startswith("FORGED") for line in text.splitlines()), text


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory, keys: dict[KeyType, GeneratedKey]) -> Path:
    """A bundle signed by a trusted key whose manifest says hostile things.

    The manifest is edited by hand, made canonical again and re-signed, so it
    passes the signature check and every one of its strings is "trusted".
    """
    root = tmp_path_factory.mktemp("hostile")
    dashboards = root / "dashboards"
    dashboards.mkdir()
    (dashboards / "ops.json").write_text('{"title": "Ops"}')
    bundle = root / "bundle"
    pack_small(root / "in", bundle, keys[ED], dashboards=dashboards)
    doc = json.loads((bundle / layout.MANIFEST_NAME).read_bytes())
    predicate = doc["predicate"]
    predicate["custody"] = {"operator": EVIL, "caseId": EVIL, "reason": EVIL}
    predicate["producer"]["platform"] = EVIL
    predicate["services"] = sorted([*predicate["services"], EVIL])
    for item in predicate["files"]:
        if item["role"] == "dashboard":
            item["title"] = EVIL
        if item["role"] == "traces":  # services must be the union of the files' services
            item["services"] = sorted([*item["services"], EVIL])
    raw = canonical.dumps(doc)
    (bundle / layout.MANIFEST_NAME).write_bytes(raw)
    signer = load_private_key(keys[ED].private_path)
    envelope = Envelope(PAYLOAD_TYPE, raw)
    envelope = envelope.with_signature(Signature(signer.keyid, signer.sign(envelope.pae())))
    envelope = envelope.with_signature(Signature(EVIL_KEYID, b"\x00" * 64))
    (bundle / layout.ENVELOPE_NAME).write_bytes(envelope.to_bytes())
    return bundle


@pytest.fixture
def bundle(hostile: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "bundle"
    shutil.copytree(hostile, copy)
    return copy


def _with_hostile_files(bundle: Path) -> Path:
    (bundle / "attachments").mkdir(exist_ok=True)
    for name in (ESC_NAME, C1_NAME):
        (bundle / name).write_bytes(b"smuggled")
    return bundle


def test_inspect_text_neutralizes_custody_titles_producer_services_and_keyids(
    bundle: Path, keys: dict[KeyType, GeneratedKey], run_cli: Run
) -> None:
    code, out, err = run_cli("inspect", bundle, "--key", keys[ED].public_path)
    assert code == 0, err
    assert_neutral(out + err)
    shown = "\\x1b[2J\\x1b[H\\x1b]0;pwned\\x07\\x9b31m\\u202eevil\\u200b\\x0dOK\\x0aFORGED line"
    assert f"operator={shown}" in out  # custody is shown, escaped, not dropped
    assert f"platform={shown}" in out  # producer
    assert "(\\x1b[2J" in out  # the dashboard title
    assert "[/] [bold]:warning:" in out  # no rich markup or emoji codes
    assert "\\x1b]8;;http://x\\x07\\x9b2…  NOT trusted" in out  # the hostile key id hint


def test_inspect_json_keeps_the_exact_values(
    bundle: Path, keys: dict[KeyType, GeneratedKey], run_cli: Run
) -> None:
    code, out, _ = run_cli("inspect", bundle, "--key", keys[ED].public_path, "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["custody"] == {"operator": EVIL, "caseId": EVIL, "reason": EVIL}
    assert doc["producer"]["platform"] == EVIL
    assert EVIL in doc["services"]
    assert [f["title"] for f in doc["files"] if f["role"] == "dashboard"] == [EVIL]
    assert [s["keyid"] for s in doc["signers"]][1] == EVIL_KEYID
    assert "\x1b" not in out  # JSON escapes it: \u001b


def test_verify_text_neutralizes_file_names_key_ids_and_the_bundle_path(
    bundle: Path, keys: dict[KeyType, GeneratedKey], run_cli: Run
) -> None:
    _with_hostile_files(bundle)
    code, out, err = run_cli("verify", bundle, "--key", keys[ED].public_path)
    assert code == ExitCode.INTEGRITY
    assert_neutral(out + err)
    assert "[integrity] otlp/\\x1b[31mred\\x0aFORGED file: file name is not allowed" in err
    assert "[integrity] attachments/\\x9b2J\\u202etxt.exe: file is not listed" in err
    assert (
        "note: signature with key id \\x1b]8;;http://x\\x07\\x9b2… is not by a trusted key" in err
    )


def test_verify_json_carries_the_exact_file_names_and_key_ids(
    bundle: Path, keys: dict[KeyType, GeneratedKey], run_cli: Run
) -> None:
    _with_hostile_files(bundle)
    code, out, _ = run_cli("verify", bundle, "--key", keys[ED].public_path, "--json")
    assert code == ExitCode.INTEGRITY
    doc = json.loads(out)
    assert {"unsafe-name": ESC_NAME, "extra": C1_NAME}.items() <= {
        f["code"]: f["path"] for f in doc["failures"]
    }.items()
    assert any(EVIL_KEYID[:16] in note for note in doc["notes"])


def test_verify_ok_report_neutralizes_the_bundle_path(
    hostile: Path, tmp_path: Path, keys: dict[KeyType, GeneratedKey], run_cli: Run
) -> None:
    bundle = tmp_path / "b\x1b[2J\u202e\rOK"
    shutil.copytree(hostile, bundle)
    code, out, err = run_cli("verify", bundle, "--key", keys[ED].public_path)
    assert code == 0, err
    assert_neutral(out + err)
    assert out.startswith(f"OK {tmp_path}/b\\x1b[2J\\u202e\\x0dOK\n")


def test_sign_text_neutralizes_key_ids_already_in_the_envelope(
    bundle: Path, keys: dict[KeyType, GeneratedKey], run_cli: Run
) -> None:
    code, out, err = run_cli("sign", bundle, "--key", keys[KeyType.ECDSA_P256].private_path)
    assert code == 0, err
    assert_neutral(out + err)
    assert "\\x1b]8;;http://x\\x07\\x9b2…" in out
    code, out, _ = run_cli(
        "sign", bundle, "--key", keys[KeyType.RSA_PSS_3072].private_path, "--json"
    )
    assert json.loads(out)["signatures"][1] == EVIL_KEYID


def test_pack_text_neutralizes_the_bundle_path(tmp_path: Path, run_cli: Run) -> None:
    from tests.bundles import small_inputs

    inputs = [str(i.path) for i in small_inputs(tmp_path / "in")]
    out_dir = tmp_path / "out\x1b]0;pwned\x07\u202e"
    code, out, err = run_cli("pack", *inputs, "--out", out_dir)
    assert code == 0, err
    assert_neutral(out + err)
    assert "out\\x1b]0;pwned\\x07\\u202e" in out


def test_failed_verification_error_quotes_each_value_on_its_own_line(
    bundle: Path, keys: dict[KeyType, GeneratedKey]
) -> None:
    """The raising door (used by replay) composes text: values inside it are neutralized."""
    _with_hostile_files(bundle)
    with pytest.raises(VerificationFailed) as caught:
        verify_bundle(bundle, VerifyOptions(keys=[keys[ED].public_path]))
    assert caught.value.exit_code is ExitCode.INTEGRITY
    message = caught.value.message
    assert_neutral(message)
    report = check_bundle(bundle, VerifyOptions(keys=[keys[ED].public_path]))
    # One header line, one line per failure, one per note: nothing forged in between.
    assert len(message.splitlines()) == 1 + len(report.failures) + len(report.notes)
    assert ESC_NAME in {f.path for f in caught.value.report.failures}  # type: ignore[attr-defined]


def test_replay_error_printed_by_the_cli_is_neutralized(
    bundle: Path, keys: dict[KeyType, GeneratedKey], run_cli: Run
) -> None:
    _with_hostile_files(bundle)
    code, out, err = run_cli("replay", bundle, "--key", keys[ED].public_path, "--dry-run")
    assert code == ExitCode.INTEGRITY
    assert err.startswith("error: bundle ")
    assert_neutral(out + err)
    assert "otlp/\\x1b[31mred\\x0aFORGED file" in err


def test_real_process_output_is_neutralized(
    bundle: Path, keys: dict[KeyType, GeneratedKey]
) -> None:
    """The same through a real process: what a terminal would receive, byte for byte."""
    _with_hostile_files(bundle)
    done = bundlekit("verify", bundle, "--key", keys[ED].public_path)
    assert done.returncode == ExitCode.INTEGRITY
    assert_neutral(done.stdout + done.stderr)
    assert "\\x1b[31mred" in done.stderr
    done = bundlekit("inspect", bundle, "--key", keys[ED].public_path)
    assert done.returncode == 0, done.stderr
    assert_neutral(done.stdout + done.stderr)
    assert "operator=\\x1b[2J" in done.stdout
    done = bundlekit("inspect", bundle, "--json")
    assert json.loads(done.stdout)["custody"]["operator"] == EVIL
