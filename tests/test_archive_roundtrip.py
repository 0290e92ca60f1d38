"""The single-file bundle end to end: pack --archive, archive, unpack, sign, verify from a pipe.

Each test compares against the directory form of the same bundle, so the two
containers are shown to carry exactly the same bundle.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from bundlekit.build.builder import BuildOptions, BundleBuilder, BundleInfo
from bundlekit.convert import archive_bundle, unpack_bundle
from bundlekit.errors import ExitCode
from bundlekit.format import layout
from bundlekit.format.archive import BLOCK, RECORD, ArchiveReader
from bundlekit.keys import GeneratedKey, KeyType, load_private_key
from bundlekit.limits import DEFAULT_LIMITS
from bundlekit.otlp.signals import Signal
from bundlekit.verify import VerifyOptions, check_bundle
from tests import otlpgen
from tests.bundles import FIXED_CREATED_NS, FIXED_ID, pack_small

ED = KeyType.ED25519
CLI = [sys.executable, "-m", "bundlekit"]


def _trust(keys: dict[KeyType, GeneratedKey], **kwargs: object) -> VerifyOptions:
    return VerifyOptions(keys=[keys[ED].public_path], **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def archive(tmp_path: Path, keys: dict[KeyType, GeneratedKey]) -> Path:
    pack_small(tmp_path / "in", tmp_path / "b.bundle.tar", keys[ED], archive=True)
    return tmp_path / "b.bundle.tar"


def _files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _member_names(path: Path) -> list[str]:
    with ArchiveReader.from_path(path, limits=DEFAULT_LIMITS) as reader:
        head = reader.head()
        names = [layout.MANIFEST_NAME]
        if head.envelope is not None:
            names.append(layout.ENVELOPE_NAME)
        return names + [m.name for m in reader.members()]


def test_pack_archive_holds_the_same_bundle_as_the_directory_in_normative_order(
    tmp_path: Path, archive: Path, keys: dict[KeyType, GeneratedKey]
) -> None:
    directory = tmp_path / "dir"
    pack_small(tmp_path / "in2", directory, keys[ED])
    names = _member_names(archive)
    assert names[:2] == [layout.MANIFEST_NAME, layout.ENVELOPE_NAME]
    assert names[2:] == sorted(names[2:])
    assert sorted(names) == sorted(_files(directory))
    assert archive.stat().st_size % RECORD == 0
    # The archive's members are byte for byte the directory's files.
    out = tmp_path / "unpacked"
    unpack_bundle(archive, out, _trust(keys))
    assert _files(out) == _files(directory)
    # And archiving the directory gives the very bytes pack --archive wrote.
    again = tmp_path / "again.bundle.tar"
    archive_bundle(directory, again, _trust(keys))
    assert again.read_bytes() == archive.read_bytes()


def test_archive_headers_are_fixed_except_name_size_and_mtime(archive: Path) -> None:
    data = archive.read_bytes()
    header = data[:BLOCK]
    assert header[257:265] == b"ustar\x0000"
    assert header[108:116] == header[116:124] == b"0000000\x00"  # uid, gid 0
    assert header[265:297] == bytes(32) and header[297:329] == bytes(32)  # no user or group name
    assert int(header[100:108].rstrip(b"\0"), 8) == 0o644
    assert int(header[136:148].rstrip(b"\0"), 8) == FIXED_CREATED_NS // 1_000_000_000


def test_verify_archive_by_path_and_from_a_real_pipe(
    archive: Path, keys: dict[KeyType, GeneratedKey]
) -> None:
    report = check_bundle(archive, _trust(keys, deep=True))
    assert report.ok, report.failures
    assert report.files_checked == 3 and report.records_checked == 80 + 40 + 60
    out, err, code = _through_a_pipe(
        archive, "verify", "-", "--key", str(keys[ED].public_path), "--json", "--deep"
    )
    assert code == 0, (out, err)
    doc = json.loads(out)
    assert doc["ok"] and doc["bundle"] == "<stdin>"
    assert doc["checked"] == {"files": 3, "bytes": report.bytes_hashed, "records": 180}


def _through_a_pipe(path: Path, *args: str) -> tuple[bytes, bytes, int]:
    """``cat path | bundlekit ARGS``: stdin is a real pipe, not a file."""
    with subprocess.Popen(["cat", str(path)], stdout=subprocess.PIPE) as cat:
        done = subprocess.run(
            [*CLI, *args], stdin=cat.stdout, capture_output=True, timeout=60, check=False
        )
        assert cat.stdout is not None
        cat.stdout.close()
    return done.stdout, done.stderr, done.returncode


def test_tampered_archive_from_a_pipe_fails_with_the_integrity_code(
    archive: Path, keys: dict[KeyType, GeneratedKey], tmp_path: Path
) -> None:
    data = bytearray(archive.read_bytes())
    with ArchiveReader.from_path(archive, limits=DEFAULT_LIMITS) as reader:
        segment = next(m for m in reader.members() if m.name.startswith("otlp/logs/"))
    assert segment.extent is not None
    data[segment.extent.offset + 10] ^= 0xFF
    done = subprocess.run(
        [*CLI, "verify", "-", "--key", str(keys[ED].public_path), "--json"],
        input=bytes(data),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == ExitCode.INTEGRITY, done.stderr
    doc = json.loads(done.stdout)
    assert [(f["code"], f["path"]) for f in doc["failures"]] == [("digest", segment.name)]
    assert b"Traceback" not in done.stderr


def test_inspect_from_a_pipe_reads_only_the_head(
    archive: Path, keys: dict[KeyType, GeneratedKey]
) -> None:
    head_only = archive.read_bytes()[: 4 * BLOCK + 8192]  # cut inside the payload
    done = subprocess.run(
        [*CLI, "inspect", "-", "--json"],
        input=head_only,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["bundleId"] == FIXED_ID and doc["bundle"] == "<stdin>"
    assert doc["signals"]["traces"]["records"] == 80


def test_co_signing_an_archive_rewrites_it_with_both_signatures(
    archive: Path, keys: dict[KeyType, GeneratedKey], run_cli: Callable[..., tuple[int, str, str]]
) -> None:
    before = _member_names(archive)
    code, _out, err = run_cli("sign", archive, "--key", keys[KeyType.ECDSA_P256].private_path)
    assert code == 0, err
    assert _member_names(archive) == before
    both = [keys[ED].public_path, keys[KeyType.ECDSA_P256].public_path]
    report = check_bundle(archive, VerifyOptions(keys=both, threshold=2))
    assert report.ok, report.failures
    assert not [p for p in archive.parent.iterdir() if p.name.startswith(".")]  # no temp litter


def test_unpack_refuses_an_untrusted_archive_and_writes_nothing(
    archive: Path,
    other_key: GeneratedKey,
    tmp_path: Path,
    run_cli: Callable[..., tuple[int, str, str]],
) -> None:
    out = tmp_path / "out"
    code, _out, err = run_cli("unpack", archive, "--out", out, "--key", other_key.public_path)
    assert code == ExitCode.SIGNATURE, err
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.bundle.tar", "in"]


def test_unpack_needs_trust_or_an_explicit_no_verify(
    archive: Path, tmp_path: Path, run_cli: Callable[..., tuple[int, str, str]]
) -> None:
    code, _out, err = run_cli("unpack", archive, "--out", tmp_path / "o")
    assert code == ExitCode.USAGE and "--no-verify" in err
    code, out, err = run_cli("unpack", archive, "--out", tmp_path / "o", "--no-verify", "--json")
    assert code == 0, err
    assert json.loads(out)["signers"] == []
    assert (tmp_path / "o" / layout.ENVELOPE_NAME).is_file()


def test_builder_takes_interleaved_signals_from_several_threads(
    tmp_path: Path, keys: dict[KeyType, GeneratedKey]
) -> None:
    """traces, logs, traces... from 4 threads: segments continue per signal, nothing is lost."""
    order = [Signal.TRACES, Signal.LOGS, Signal.TRACES, Signal.METRICS] * 25
    makers = {
        Signal.TRACES: lambda i: otlpgen.traces(20, start=otlpgen.BASE_NS + i),
        Signal.LOGS: lambda i: otlpgen.logs(10, start=otlpgen.BASE_NS + i),
        Signal.METRICS: lambda i: otlpgen.metrics(5, start=otlpgen.BASE_NS + i),
    }
    options = BuildOptions(archive=True, segment_target=4 * 1024)  # many rollovers
    info = BundleInfo(FIXED_ID, FIXED_CREATED_NS, "default", "2027-01-01", "option")
    out = tmp_path / "live.bundle.tar"
    with BundleBuilder(out, options) as builder:
        errors: list[BaseException] = []

        def feed(worker: int) -> None:
            try:
                for i, sig in enumerate(order):
                    builder.add_request(sig, makers[sig](worker * 1000 + i))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=feed, args=(w,)) for w in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors
        manifest = builder.finish(info, [load_private_key(keys[ED].private_path)])
    totals = manifest.signal_totals()
    assert totals["traces"]["records"] == 4 * 50 * 20
    assert totals["logs"]["records"] == 4 * 25 * 10
    assert totals["metrics"]["records"] == 4 * 25 * 5
    for sig in Signal:
        names = [e.name for e in manifest.segments(sig)]
        assert len(names) > 1
        assert names == [layout.segment_name(sig, i) for i in range(1, len(names) + 1)]
    report = check_bundle(out, _trust(keys, deep=True))
    assert report.ok, report.failures
    assert report.records_checked == 4000 + 1000 + 500


def test_builder_abort_leaves_nothing_at_the_final_path(tmp_path: Path) -> None:
    out = tmp_path / "x.bundle.tar"
    with pytest.raises(RuntimeError), BundleBuilder(out, BuildOptions(archive=True)) as builder:
        builder.add_request(Signal.TRACES, otlpgen.traces(5))
        raise RuntimeError("the receiver died")
    assert list(tmp_path.iterdir()) == []


#: Runs the CLI with one step slowed down and announced on stdout, so a test can kill the
#: process at a chosen phase deterministically (the product code has no test hooks).
_PAUSED_CLI = """
import sys, time
import bundlekit.build.segments as segments
import bundlekit.format.archive as archive

def announce_then_wait(what, real):
    def wrapper(*args, **kwargs):
        result = real(*args, **kwargs) if what == "segments" else None
        print(what, flush=True)
        time.sleep(60)
        return result
    return wrapper

phase = sys.argv.pop(1)
if phase == "segments":
    segments.write_segment = announce_then_wait(phase, segments.write_segment)
else:
    archive.ArchiveWriter.add_file = announce_then_wait(phase, archive.ArchiveWriter.add_file)
from bundlekit.cli import main
main()
"""


@pytest.mark.parametrize("phase", ["segments", "archive"])
def test_sigkill_during_pack_archive_leaves_nothing_at_the_final_path(
    tmp_path: Path, phase: str, run_cli: Callable[..., tuple[int, str, str]]
) -> None:
    source = tmp_path / "traces.binpb"
    source.write_bytes(
        otlpgen.stream(*(otlpgen.traces(200, start=otlpgen.BASE_NS + i) for i in range(20)))
    )
    out = tmp_path / "out" / "big.bundle.tar"
    out.parent.mkdir()
    with subprocess.Popen(
        [
            sys.executable,
            "-c",
            _PAUSED_CLI,
            phase,
            "pack",
            str(source),
            "--out",
            str(out),
            "--archive",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    ) as proc:
        assert proc.stdout is not None
        try:
            assert proc.stdout.readline().strip() == phase.encode()
            staging = [p for p in out.parent.iterdir() if ".partial-" in p.name and p.is_dir()]
            assert len(staging) == 1
            if phase == "segments":
                assert any(staging[0].rglob("*.zst"))  # a segment is on disk, the pack goes on
            else:
                assert (staging[0] / ".staged-output").is_file()  # the archive is being written
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait(10)
    assert not out.exists()
    left = sorted(p.name for p in out.parent.iterdir())
    assert left and all(".partial-" in name for name in left)  # staging and its lock only
    # The next pack into the same directory removes the dead pack's staging.
    code, _o, err = run_cli("pack", source, "--out", out, "--archive")
    assert code == 0, err
    assert "staging left by a pack that was killed" in err
    assert sorted(p.name for p in out.parent.iterdir()) == ["big.bundle.tar"]


def test_dash_with_a_terminal_on_stdin_is_a_usage_error_not_a_hang() -> None:
    import pty

    main, secondary = pty.openpty()
    try:
        done = subprocess.run(
            [*CLI, "inspect", "-"], stdin=secondary, capture_output=True, timeout=30, check=False
        )
    finally:
        os.close(main)
        os.close(secondary)
    assert done.returncode == ExitCode.USAGE
    assert b"standard input, which is a terminal" in done.stderr


def _archive_of(tmp_path: Path, handle: object) -> bytes:
    from bundlekit.format.archive import ArchiveWriter

    member = tmp_path / "member.bin"
    member.write_bytes(bytes(range(256)) * 9)  # 2,304 bytes: not a whole block
    writer = ArchiveWriter(handle, 1_700_000_000)  # type: ignore[arg-type]
    writer.add_bytes(layout.MANIFEST_NAME, b"{}")
    writer.add_file("attachments/member.bin", member.stat().st_size, member)
    writer.finish()
    return member.read_bytes()


def test_archive_writer_gives_the_same_bytes_in_the_kernel_and_through_a_buffer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """copy_file_range when the target is a file; a plain buffer copy otherwise."""
    import io

    with open(tmp_path / "kernel.tar", "wb", buffering=0) as handle:
        content = _archive_of(tmp_path, handle)
    kernel = (tmp_path / "kernel.tar").read_bytes()
    buffered = io.BytesIO()  # no fileno: the buffer path
    _archive_of(tmp_path, buffered)
    monkeypatch.delattr(os, "copy_file_range")  # a platform without it
    with open(tmp_path / "plain.tar", "wb", buffering=0) as handle:
        _archive_of(tmp_path, handle)
    assert kernel == buffered.getvalue() == (tmp_path / "plain.tar").read_bytes()
    assert len(kernel) % RECORD == 0 and kernel.endswith(bytes(2 * BLOCK))
    with ArchiveReader.from_stream(io.BytesIO(kernel), "t", DEFAULT_LIMITS) as reader:
        read = [(m.name, reader.open(m).read()) for m in reader.members()]  # a stream: in order
    assert read == [("attachments/member.bin", content)]


def test_archive_writer_refuses_a_file_whose_size_is_not_the_manifests(tmp_path: Path) -> None:
    import io

    from bundlekit.errors import UsageError
    from bundlekit.format.archive import ArchiveWriter

    member = tmp_path / "m.bin"
    member.write_bytes(b"x" * 10)
    writer = ArchiveWriter(io.BytesIO(), 0)
    with pytest.raises(UsageError, match="is not 11 bytes as the manifest says"):
        writer.add_file("attachments/m.bin", 11, member)
