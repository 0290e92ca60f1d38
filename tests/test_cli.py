"""The command line: exit codes, messages without tracebacks, every choice wired."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from bundlekit.cli.app import KeyTypeChoice, ProfileChoice
from bundlekit.errors import ExitCode
from bundlekit.format.manifest import Profile
from bundlekit.keys import KeyType
from tests.bundles import small_inputs

Run = Callable[..., tuple[int, str, str]]


def bundlekit(
    *args: str | os.PathLike[str], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a subprocess, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "bundlekit", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )


def test_version() -> None:
    from bundlekit import __version__

    done = bundlekit("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"bundlekit {__version__}"


def test_every_key_type_choice_maps_to_a_key_type() -> None:
    assert {KeyType(c.value) for c in KeyTypeChoice} == set(KeyType)


def test_every_profile_choice_maps_to_a_profile() -> None:
    assert {Profile(c.value) for c in ProfileChoice} == set(Profile)


@pytest.mark.parametrize("choice", list(KeyTypeChoice))
def test_keygen_each_type_via_cli(tmp_path: Path, run_cli: Run, choice: KeyTypeChoice) -> None:
    code, out, _ = run_cli(
        "keygen", "--type", choice.value, "--out", tmp_path / "k", "--no-passphrase", "--json"
    )
    assert code == 0
    assert json.loads(out)["type"] == choice.value
    assert (tmp_path / "k.key").exists() and (tmp_path / "k.pub").exists()


def test_user_mistakes_get_a_message_and_an_exit_code_not_a_traceback(tmp_path: Path) -> None:
    cases = [
        (
            ["pack", tmp_path / "missing.binpb", "--out", tmp_path / "b"],
            ExitCode.USAGE,
            "not found",
        ),
        (["verify", tmp_path / "nope", "--key", tmp_path / "k.pub"], ExitCode.USAGE, "not found"),
        (["verify", tmp_path], ExitCode.USAGE, "no trusted keys"),
        (["keygen", "--out", tmp_path / "k"], ExitCode.USAGE, "no passphrase"),
        (["pack", "--out", tmp_path / "b"], ExitCode.USAGE, "nothing to pack"),
        (["verify"], ExitCode.USAGE, "Missing argument"),
    ]
    for args, code, words in cases:
        done = bundlekit(*args)
        assert done.returncode == code, (args, done.stderr)
        assert words in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr + done.stdout


def test_encrypted_key_flow_with_passphrase_from_environment(tmp_path: Path) -> None:
    env = {"BUNDLEKIT_PASSPHRASE": "s3cret-sample"}
    assert bundlekit("keygen", "--out", tmp_path / "k", env=env).returncode == 0
    assert b"ENCRYPTED" in (tmp_path / "k.key").read_bytes()
    inputs = [i.path for i in small_inputs(tmp_path / "in")]
    done = bundlekit("pack", *inputs, "--out", tmp_path / "b", "--key", tmp_path / "k.key")
    assert done.returncode == ExitCode.USAGE and "BUNDLEKIT_PASSPHRASE" in done.stderr
    assert not (tmp_path / "b").exists()
    assert (
        bundlekit(
            "pack", *inputs, "--out", tmp_path / "b", "--key", tmp_path / "k.key", env=env
        ).returncode
        == 0
    )
    assert bundlekit("verify", tmp_path / "b", "--key", tmp_path / "k.pub").returncode == 0


def test_pack_sign_verify_inspect_via_cli(tmp_path: Path, run_cli: Run) -> None:
    for name in ("a", "b"):
        assert run_cli("keygen", "--out", tmp_path / name, "--no-passphrase")[0] == 0
    inputs = [i.path for i in small_inputs(tmp_path / "in")]
    code, out, _ = run_cli(
        "pack",
        *inputs,
        "--out",
        tmp_path / "bundle",
        "--key",
        tmp_path / "a.key",
        "--profile",
        "forensic",
        "--operator",
        "alice",
        "--case-id",
        "INC-9",
        "--reason",
        "audit",
        "--json",
    )
    assert code == 0
    packed = json.loads(out)
    assert packed["totals"]["signals"]["traces"]["records"] == 80
    verify_args = [
        "verify",
        tmp_path / "bundle",
        "--key",
        tmp_path / "a.pub",
        "--key",
        tmp_path / "b.pub",
    ]
    assert run_cli(*verify_args, "--threshold", "2")[0] == ExitCode.SIGNATURE
    assert run_cli("sign", tmp_path / "bundle", "--key", tmp_path / "b.key")[0] == 0
    code, out, _ = run_cli(*verify_args, "--threshold", "2", "--deep", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["ok"] and len(report["signers"]) == 2 and report["checked"]["records"] == 180
    code, out, _ = run_cli("inspect", tmp_path / "bundle", "--json", "--key", tmp_path / "a.pub")
    assert code == 0
    summary = json.loads(out)
    assert summary["profile"] == "forensic"
    assert summary["custody"] == {"caseId": "INC-9", "operator": "alice", "reason": "audit"}
    assert [s["trusted"] for s in summary["signers"]] == [True, False]
    assert summary["signals"]["logs"]["records"] == 60
    code, out, _ = run_cli("inspect", tmp_path / "bundle")
    assert code == 0 and "INC-9" in out and "traces" in out


def test_signing_twice_with_one_key_is_refused(tmp_path: Path, run_cli: Run) -> None:
    run_cli("keygen", "--out", tmp_path / "a", "--no-passphrase")
    inputs = [i.path for i in small_inputs(tmp_path / "in")]
    run_cli("pack", *inputs, "--out", tmp_path / "bundle", "--key", tmp_path / "a.key")
    code, _, err = run_cli("sign", tmp_path / "bundle", "--key", tmp_path / "a.key")
    assert code == ExitCode.USAGE and "already signed" in err


def test_verify_text_report_names_each_failure(tmp_path: Path, run_cli: Run) -> None:
    run_cli("keygen", "--out", tmp_path / "a", "--no-passphrase")
    inputs = [i.path for i in small_inputs(tmp_path / "in")]
    run_cli("pack", *inputs, "--out", tmp_path / "bundle", "--key", tmp_path / "a.key")
    (tmp_path / "bundle" / "attachments").mkdir()
    (tmp_path / "bundle" / "attachments" / "extra.txt").write_text("x")
    code, _, err = run_cli("verify", tmp_path / "bundle", "--key", tmp_path / "a.pub")
    assert code == ExitCode.INTEGRITY
    assert (
        "FAILED" in err and "attachments/extra.txt" in err and "not listed in the manifest" in err
    )


def test_inspect_output_is_not_truncated_off_a_terminal(tmp_path: Path, run_cli: Run) -> None:
    inputs = [i.path for i in small_inputs(tmp_path / "in")]
    run_cli("pack", *inputs, "--out", tmp_path / "bundle")
    code, out, _ = run_cli("inspect", tmp_path / "bundle")
    assert code == 0
    assert "2026-11-01T00:00:00.000000069Z" in out  # the logs' latest time, in full
