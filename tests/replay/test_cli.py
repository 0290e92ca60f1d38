"""``bundlekit replay`` on the command line: flags, JSON report, exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from bundlekit.otlp.signals import Signal
from tests.replay.otlpdata import Bundle, flatten
from tests.replay.receivers import Reply, grpc_receiver, http_receiver

Run = Callable[..., tuple[int, str, str]]


def test_replay_with_json_report_headers_and_secret_from_env(
    bundle: Bundle, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REPLAY_TOKEN", "s3cret")
    with http_receiver() as (port, receiver):
        code, out, err = run_cli(
            "replay",
            bundle.path,
            "--protocol",
            "http",
            "--endpoint",
            f"http://127.0.0.1:{port}",
            "--key",
            bundle.key.public_path,
            "--header",
            "x-tenant=acme",
            "--header-env",
            "authorization=REPLAY_TOKEN",
            "--json",
        )
        assert code == 0, err
        assert receiver.attempts[0].headers["authorization"] == "s3cret"
        assert receiver.attempts[0].headers["x-tenant"] == "acme"
        for signal in Signal:
            assert flatten(signal, receiver.accepted[signal]) == flatten(
                signal, bundle.requests[signal]
            )
    report = json.loads(out)
    assert "s3cret" not in out + err  # secrets never echoed
    assert report["completed"] and report["verification_skipped"] is False
    assert report["signals"]["traces"]["records_acknowledged"] == bundle.records(Signal.TRACES)
    assert set(report["signals"]["logs"]) >= {
        "records_sent",
        "requests_sent",
        "records_acknowledged",
        "records_rejected",
        "retries",
    }
    assert report["duration_s"] > 0 and report["records_per_second"] > 0


def test_dry_run_sends_nothing(bundle: Bundle, run_cli: Run) -> None:
    with grpc_receiver() as (port, receiver):
        code, out, _ = run_cli(
            "replay",
            bundle.path,
            "--endpoint",
            f"http://127.0.0.1:{port}",
            "--key",
            bundle.key.public_path,
            "--dry-run",
            "--signal",
            "logs",
        )
        assert code == 0
        assert receiver.attempts == []
    assert "dry run" in out and f"would send {bundle.records(Signal.LOGS):,} records" in out


def test_human_summary(bundle: Bundle, run_cli: Run) -> None:
    with grpc_receiver() as (port, _):
        code, out, _ = run_cli(
            "replay",
            bundle.path,
            "--endpoint",
            f"http://127.0.0.1:{port}",
            "--key",
            bundle.key.public_path,
            "--rebase",
            "+1h",
        )
    assert code == 0
    assert "complete" in out and "timestamps shifted by +3600.000 s" in out
    assert f"sent {bundle.records(Signal.TRACES):,} records" in out


def test_refused_data_exits_6_and_still_prints_the_report(bundle: Bundle, run_cli: Run) -> None:
    with http_receiver() as (port, receiver):
        receiver.script = [Reply(http_status=400, message="bad data")]
        code, out, err = run_cli(
            "replay",
            bundle.path,
            "--protocol",
            "http",
            "--endpoint",
            f"http://127.0.0.1:{port}",
            "--key",
            bundle.key.public_path,
            "--json",
        )
    assert code == 6
    assert "HTTP 400 Bad Request: bad data" in err
    assert json.loads(out)["completed"] is False


def test_no_verify_warns_loudly(bundle: Bundle, run_cli: Run) -> None:
    with grpc_receiver() as (port, _):
        code, out, err = run_cli(
            "replay", bundle.path, "--endpoint", f"http://127.0.0.1:{port}", "--no-verify", "--json"
        )
    assert code == 0
    assert "WARNING" in err and "NOT" in err
    assert json.loads(out)["verification_skipped"] is True


def test_without_trust_the_bundle_is_refused(bundle: Bundle, run_cli: Run, tmp_path: Path) -> None:
    empty = tmp_path / "trust"
    empty.mkdir()
    with grpc_receiver() as (port, receiver):
        code, _, err = run_cli(
            "replay", bundle.path, "--endpoint", f"http://127.0.0.1:{port}", "--trust", empty
        )
        assert receiver.attempts == []
    assert code != 0 and "error:" in err


def test_sealed_mode_refuses_and_says_how_to_allow(bundle: Bundle, run_cli: Run) -> None:
    code, _, err = run_cli(
        "replay",
        bundle.path,
        "--endpoint",
        "http://192.0.2.10:4317",
        "--key",
        bundle.key.public_path,
        "--sealed",
    )
    assert code == 2
    assert "sealed mode" in err and "--allow-egress 192.0.2.10" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--speed", "fast"], "--speed"),
        (["--rebase", "tomorrow"], "--rebase"),
        (["--since", "yesterday"], "--since"),
        (["--header", "no-equals-sign"], "--header"),
        (["--header-env", "authorization=UNSET_VARIABLE_XYZ"], "not set"),
        (["--endpoint", "ftp://x:1"], "scheme"),
    ],
)
def test_bad_flags_are_usage_errors(
    bundle: Bundle, run_cli: Run, args: list[str], message: str
) -> None:
    code, _, err = run_cli("replay", bundle.path, "--key", bundle.key.public_path, *args)
    assert code == 2
    assert message in err


def test_ctrl_c_then_rerun_with_checkpoint_delivers_each_request_once(
    bundle: Bundle, tmp_path: Path
) -> None:
    """A real SIGINT to a real `bundlekit replay` process, then the same command again."""
    checkpoint = tmp_path / "replay.checkpoint"
    total = sum(bundle.records(s) for s in Signal)
    with grpc_receiver() as (port, receiver):
        command = [
            sys.executable,
            "-m",
            "bundlekit",
            "replay",
            str(bundle.path),
            "--endpoint",
            f"http://127.0.0.1:{port}",
            "--key",
            str(bundle.key.public_path),
            "--checkpoint",
            str(checkpoint),
            "--no-marker",
            "--batch-bytes",
            "0",
        ]
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        process = subprocess.Popen(
            [*command, "--rate", str(total / 3)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        try:
            deadline = time.monotonic() + 30
            while not receiver.attempts and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.7)
            process.send_signal(signal.SIGINT)
            _, err = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        assert process.returncode == 130, err.decode()
        assert b"interrupted" in err and str(checkpoint).encode() in err
        first = sum(len(v) for v in receiver.accepted.values())
        assert 0 < first < sum(len(v) for v in bundle.requests.values())

        rerun = subprocess.run(command, capture_output=True, env=env, timeout=60)
        assert rerun.returncode == 0, rerun.stderr.decode()
        for s in Signal:
            assert Counter(receiver.accepted[s]) == Counter(bundle.requests[s]), s
