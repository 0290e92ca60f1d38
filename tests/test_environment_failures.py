"""Environment failures are clear errors with exit code 7 (IO), and leave nothing behind.

Every failure here is real: a tiny tmpfs that fills up (ENOSPC), the same
remounted read-only (EROFS), the CLI run as an unprivileged user against
root-owned paths (EACCES), and files that change or vanish while a pack reads
them.  Mounting needs root; without it the tests skip locally and fail in CI.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bundlekit.errors import ExitCode, IOFailure
from bundlekit.keys import KeyType, generate_key
from bundlekit.otlp.signals import Signal
from bundlekit.pack import PackInput, pack_bundle
from tests import otlpgen
from tests.conftest import ROOT, SAMPLE_OTLP

RunCli = Callable[..., tuple[int, str, str]]
IO = int(ExitCode.IO)
NOBODY = 65534


@contextmanager
def tmpfs(size: str = "256k") -> Iterator[Path]:
    """A freshly mounted tmpfs of ``size``; always unmounted and removed afterwards."""
    where = Path(tempfile.mkdtemp(prefix="bk-tmpfs-"))
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(where)],
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError:
        done = None
    if done is None or done.returncode != 0:
        where.rmdir()
        why = done.stderr.strip() if done else "no mount command"
        if os.environ.get("CI") == "true":
            pytest.fail(f"mount -t tmpfs is not permitted in CI: {why}")
        pytest.skip(f"mount -t tmpfs is not permitted here: {why}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=False)
        shutil.rmtree(where, ignore_errors=True)


def remount_ro(where: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True)


def fill(where: Path) -> None:
    """Write to ``where`` until the filesystem refuses with ENOSPC."""
    chunk = os.urandom(64 * 1024)
    with open(where / "filler", "wb", buffering=0) as handle:
        while True:
            try:
                handle.write(chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break
    probe = where / "probe"
    with pytest.raises(OSError), open(probe, "wb") as handle:  # really full now
        handle.write(b"x" * 4096)
        handle.flush()
    probe.unlink(missing_ok=True)


def world_dir() -> Path:
    """A root-owned directory anyone may read (pytest's tmp_path is root-only)."""
    where = Path(tempfile.mkdtemp(prefix="bk-world-"))
    where.chmod(0o755)
    return where


def _interpreter_for(user: int) -> tuple[str, str] | None:
    """A Python that ``user`` may run, with a PYTHONPATH that finds bundlekit and its deps.

    The venv's interpreter may live under a root-only home (pyenv in /root);
    then the system interpreter of the same minor version runs the same code,
    given the venv's site-packages on PYTHONPATH.
    """
    import site

    path = os.pathsep.join([str(ROOT), *site.getsitepackages()])
    minor = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for python in (sys.executable, f"/usr/bin/{minor}", f"/usr/local/bin/{minor}"):
        try:
            probe = subprocess.run(
                [python, "-c", "import bundlekit.cli.app, cryptography, yaml, zstandard"],
                env={"PYTHONPATH": path, "PYTHONDONTWRITEBYTECODE": "1", "HOME": "/tmp"},
                user=user,
                group=user,
                extra_groups=[],
                capture_output=True,
                timeout=60,
                check=False,
            )
        except OSError:
            continue
        if probe.returncode == 0:
            return python, path
    return None


def cli_as(user: int, *args: str | os.PathLike[str]) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a subprocess as an unprivileged ``user`` (root ignores mode bits)."""
    found = _interpreter_for(user)
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"no Python interpreter that uid {user} may run")
        pytest.skip(f"no Python interpreter that uid {user} may run")
    python, path = found
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": path,
        "PYTHONDONTWRITEBYTECODE": "1",
        "HOME": "/tmp",
        "LANG": "C.UTF-8",
    }
    return subprocess.run(
        [python, "-m", "bundlekit", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
        user=user,
        group=user,
        extra_groups=[],
    )


def assert_io_error(code: int, err: str, *words: str) -> None:
    assert code == IO, err
    assert err.startswith("error: cannot ") or "error: " in err, err
    assert "internal error" not in err
    assert "hint: " in err
    for word in words:
        assert word in err, err


def leftovers(where: Path, keep: tuple[str, ...] = ()) -> list[str]:
    return sorted(name for name in os.listdir(where) if name not in keep)


# --- disk full ------------------------------------------------------------------------


def test_pack_onto_a_full_disk_is_an_io_error_not_internal(tmp_path: Path, run_cli: RunCli) -> None:
    big = tmp_path / "evidence.bin"
    big.write_bytes(os.urandom(1024 * 1024))  # incompressible, 4x the filesystem
    with tmpfs("256k") as disk:
        out = disk / "bundle"
        code, _, err = run_cli("pack", SAMPLE_OTLP[0], "--attach", big, "--out", out)
        assert_io_error(code, err, "ENOSPC", "No space left on device", str(disk), "full")
        assert leftovers(disk) == []  # no bundle, no staging, no lock


def test_keygen_onto_a_full_disk_writes_no_key(run_cli: RunCli) -> None:
    with tmpfs("128k") as disk:
        fill(disk)
        code, _, err = run_cli("keygen", "--out", disk / "site", "--no-passphrase")
        assert_io_error(code, err, "ENOSPC", "site.key", "full")
        assert leftovers(disk, keep=("filler",)) == []


def test_sign_onto_a_full_disk_leaves_the_bundle_unsigned(tmp_path: Path, run_cli: RunCli) -> None:
    key = generate_key(tmp_path / "k", KeyType.ED25519)
    with tmpfs("2m") as disk:
        bundle = disk / "b"
        code, _, err = run_cli("pack", SAMPLE_OTLP[0], "--out", bundle)
        assert code == 0, err
        before = sorted(p.relative_to(bundle) for p in bundle.rglob("*"))
        fill(disk)
        code, _, err = run_cli("sign", bundle, "--key", key.private_path)
        assert_io_error(code, err, "ENOSPC", "manifest.dsse.json")
        assert not (bundle / "signatures" / "manifest.dsse.json").exists()
        after = sorted(p.relative_to(bundle) for p in bundle.rglob("*"))
        assert [p for p in after if p not in before] in ([], [Path("signatures")])


# --- read-only filesystem -------------------------------------------------------------


def test_pack_onto_a_read_only_filesystem(run_cli: RunCli) -> None:
    with tmpfs("1m") as disk:
        remount_ro(disk)
        code, _, err = run_cli("pack", SAMPLE_OTLP[0], "--out", disk / "bundle")
        assert_io_error(code, err, "EROFS", "Read-only file system", "read-only")
        assert leftovers(disk) == []


def test_keygen_onto_a_read_only_filesystem(run_cli: RunCli) -> None:
    with tmpfs("1m") as disk:
        remount_ro(disk)
        code, _, err = run_cli("keygen", "--out", disk / "site", "--no-passphrase")
        assert_io_error(code, err, "EROFS", "site.key", "read-only")
        assert leftovers(disk) == []


def test_sign_on_a_read_only_filesystem(tmp_path: Path, run_cli: RunCli) -> None:
    key = generate_key(tmp_path / "k", KeyType.ED25519)
    with tmpfs("2m") as disk:
        bundle = disk / "b"
        assert run_cli("pack", SAMPLE_OTLP[0], "--out", bundle)[0] == 0
        remount_ro(disk)
        code, _, err = run_cli("sign", bundle, "--key", key.private_path)
        assert_io_error(code, err, "EROFS", "read-only")
        assert not (bundle / "signatures").exists()


# --- permission denied (as an unprivileged user; root ignores mode bits) --------------


def test_pack_into_a_directory_the_user_may_not_write() -> None:
    where = world_dir()
    try:
        shutil.copy(SAMPLE_OTLP[0], where / "in.binpb")
        (where / "in.binpb").chmod(0o644)
        done = cli_as(NOBODY, "pack", where / "in.binpb", "--out", where / "bundle")
        assert_io_error(done.returncode, done.stderr, "EACCES", "Permission denied", "permission")
        assert str(where) in done.stderr
        assert leftovers(where) == ["in.binpb"]
    finally:
        shutil.rmtree(where)


def test_keygen_into_a_directory_the_user_may_not_write() -> None:
    where = world_dir()
    try:
        done = cli_as(NOBODY, "keygen", "--out", where / "site", "--no-passphrase")
        assert_io_error(done.returncode, done.stderr, "EACCES", "site.key")
        assert leftovers(where) == []
    finally:
        shutil.rmtree(where)


def test_input_the_user_may_not_read_is_an_io_error() -> None:
    where = world_dir()
    try:
        out = where / "out"
        out.mkdir(mode=0o777)
        out.chmod(0o777)
        shutil.copy(SAMPLE_OTLP[0], where / "secret.binpb")
        (where / "secret.binpb").chmod(0o600)
        done = cli_as(NOBODY, "pack", where / "secret.binpb", "--out", out / "bundle")
        assert_io_error(done.returncode, done.stderr, "EACCES", "secret.binpb")
        assert leftovers(out) == []
    finally:
        shutil.rmtree(where)


# --- files that change or vanish while read -------------------------------------------


def _inputs(folder: Path) -> tuple[Path, Path]:
    traces = folder / "traces.binpb"
    traces.write_bytes(otlpgen.stream(*[otlpgen.traces(200) for _ in range(40)]))
    logs = folder / "logs.binpb"
    logs.write_bytes(otlpgen.stream(otlpgen.logs(50)))
    return traces, logs


def test_input_growing_while_packed_is_refused(tmp_path: Path) -> None:
    traces, logs = _inputs(tmp_path)
    out = tmp_path / "out"
    grown: list[int] = []

    def writer_appends(done: int, total: int) -> None:
        if not grown:  # another program appends to the file pack is reading
            with open(traces, "ab") as handle:
                handle.write(otlpgen.stream(otlpgen.traces(5)))
            grown.append(done)

    with pytest.raises(
        IOFailure, match=r"traces\.binpb changed while bundlekit was reading it"
    ) as e:
        pack_bundle([traces, logs], out, progress=writer_appends)
    assert e.value.exit_code == ExitCode.IO
    assert grown
    assert leftovers(tmp_path) == ["logs.binpb", "traces.binpb"]


def test_input_rewritten_concurrently_is_refused(tmp_path: Path) -> None:
    """A real concurrent writer (a thread appending all the time), no hooks into pack."""
    traces, logs = _inputs(tmp_path)
    out = tmp_path / "out"
    stop = threading.Event()
    record = otlpgen.stream(otlpgen.traces(1))

    def keep_appending() -> None:
        with open(traces, "ab", buffering=0) as handle:
            while not stop.is_set():
                handle.write(record)
                stop.wait(0.0005)

    size = traces.stat().st_size
    thread = threading.Thread(target=keep_appending)
    thread.start()
    try:
        while traces.stat().st_size == size:
            pass
        with pytest.raises(IOFailure, match="changed while bundlekit was reading it"):
            pack_bundle([traces, logs], out)
    finally:
        stop.set()
        thread.join()
    assert leftovers(tmp_path) == ["logs.binpb", "traces.binpb"]


def test_input_vanishing_between_reads_is_an_io_error(tmp_path: Path) -> None:
    traces, logs = _inputs(tmp_path)
    out = tmp_path / "out"

    def delete_logs(done: int, total: int) -> None:  # traces are packed before logs
        logs.unlink(missing_ok=True)

    with pytest.raises(IOFailure, match=r"logs\.binpb vanished while bundlekit was using it"):
        pack_bundle([traces, PackInput(logs, Signal.LOGS)], out, progress=delete_logs)
    assert leftovers(tmp_path) == ["traces.binpb"]


def test_input_replaced_between_reads_is_refused(tmp_path: Path) -> None:
    traces, logs = _inputs(tmp_path)
    out = tmp_path / "out"
    other = tmp_path / "other.binpb"
    other.write_bytes(logs.read_bytes())  # same size and content, but another file

    def swap(done: int, total: int) -> None:
        if other.exists():
            os.replace(other, logs)

    with pytest.raises(IOFailure, match=r"logs\.binpb changed"):
        pack_bundle([traces, logs], out, progress=swap)
    assert not out.exists()


@pytest.mark.parametrize("change", ["append", "replace", "delete"])
def test_attachment_changed_during_the_pack_is_refused(tmp_path: Path, change: str) -> None:
    """Attachments are checked when pack starts and copied at its end: in between, another
    program modifies, replaces or deletes one (from the progress callback, so it happens
    exactly mid-pack)."""
    from bundlekit.pack import PackOptions

    traces, _ = _inputs(tmp_path)
    attachment = tmp_path / "capture.pcap"
    attachment.write_bytes(os.urandom(64 * 1024))
    done: list[bool] = []

    def meddle(_done: int, _total: int) -> None:
        if done:
            return
        done.append(True)
        if change == "append":
            with open(attachment, "ab") as handle:
                handle.write(b"tampered")
        elif change == "replace":
            (tmp_path / "other").write_bytes(attachment.read_bytes())
            os.replace(tmp_path / "other", attachment)
        else:
            attachment.unlink()

    words = "vanished" if change == "delete" else "changed while bundlekit was reading it"
    with pytest.raises(IOFailure, match=rf"attachment .*capture\.pcap {words}"):
        pack_bundle(
            [traces], tmp_path / "out", PackOptions(attachments=(attachment,)), progress=meddle
        )
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out*"))


# --- the CLI's safety net -------------------------------------------------------------


def test_stray_oserror_is_an_io_error_not_an_internal_error(
    tmp_path: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any OSError that escapes the library still becomes exit 7 with errno and path."""
    import bundlekit.inspect

    def broken_disk(*args: object, **kwargs: object) -> object:
        raise OSError(errno.EIO, "Input/output error", str(tmp_path / "b" / "manifest.json"))

    monkeypatch.setattr(bundlekit.inspect, "inspect_bundle", broken_disk)
    code, _, err = run_cli("inspect", tmp_path / "b")
    assert_io_error(code, err, "EIO", "Input/output error", "manifest.json", "disk")


def test_io_failure_names_errno_path_and_hint() -> None:
    exc = IOFailure.from_oserror(
        OSError(errno.ENOSPC, "No space left on device", "/x/y"), "write bundle", "/x"
    )
    assert exc.message == "cannot write bundle /x/y: ENOSPC (No space left on device)"
    assert exc.hint is not None and "full" in exc.hint
    assert exc.errno == errno.ENOSPC
    bare = IOFailure.from_oserror(OSError(errno.EROFS, "Read-only file system"), "write", "/x")
    assert bare.message == "cannot write /x: EROFS (Read-only file system)"


# --- staging left by killed packs -----------------------------------------------------


def _slow_input(folder: Path) -> Path:
    """~16 MB of traces: at zstd level 19 a pack of it takes seconds, long enough to catch."""
    path = folder / "big.binpb"
    one = otlpgen.traces(2000)
    path.write_bytes(otlpgen.stream(*[one] * 60))
    return path


def _start_slow_pack(source: Path, out: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bundlekit",
            "pack",
            str(source),
            "--out",
            str(out),
            "--level",
            "19",
            "--segment-mib",
            "1",
            "--json",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _staging_of(out: Path) -> list[Path]:
    return sorted(
        p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.partial-") and p.is_dir()
    )


def _wait_mid_write(process: subprocess.Popen[bytes], out: Path) -> Path:
    """Wait until the pack has written a first segment into its staging directory."""
    import time

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, "the pack finished before it could be caught mid-write"
        staging = _staging_of(out)
        if staging and any((staging[0] / "otlp").rglob("*.zst")):
            return staging[0]
        time.sleep(0.02)
    raise AssertionError("the pack never started writing")


@pytest.mark.slow
def test_staging_of_a_killed_pack_is_removed_by_the_next_pack(
    tmp_path: Path, run_cli: RunCli
) -> None:
    import signal

    source = _slow_input(tmp_path)
    bundles = tmp_path / "bundles"
    bundles.mkdir()
    victim = _start_slow_pack(source, bundles / "first")
    try:
        staging = _wait_mid_write(victim, bundles / "first")
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait()
    assert staging.is_dir()  # the litter this guards against
    assert not (bundles / "first").exists()

    code, _, err = run_cli("pack", SAMPLE_OTLP[0], "--out", bundles / "second")
    assert code == 0, err
    assert f"removed {staging}: staging left by a pack that was killed" in err
    assert not staging.exists()
    assert sorted(os.listdir(bundles)) == ["second"]  # its lock file is gone too


@pytest.mark.slow
def test_staging_of_a_running_pack_is_left_alone(tmp_path: Path, run_cli: RunCli) -> None:
    source = _slow_input(tmp_path)
    bundles = tmp_path / "bundles"
    bundles.mkdir()
    running = _start_slow_pack(source, bundles / "first")
    try:
        staging = _wait_mid_write(running, bundles / "first")
        code, _, err = run_cli("pack", SAMPLE_OTLP[0], "--out", bundles / "second")
        assert code == 0, err
        assert "removed" not in err
        assert staging.is_dir()  # the live pack's work is untouched...
        assert running.wait(timeout=300) == 0  # ...and it completes
    finally:
        if running.poll() is None:
            running.kill()
            running.wait()
    assert sorted(os.listdir(bundles)) == ["first", "second"]


def test_only_staging_whose_lock_is_free_is_removed(tmp_path: Path) -> None:
    """A held lock means alive, a free lock means dead, no lock means not provably ours."""
    import fcntl

    from bundlekit.fsutil import clean_stale_staging

    def staging(name: str, lock: bool) -> Path:
        path = tmp_path / f".{name}.partial-0123abcd"
        (path / "otlp").mkdir(parents=True)
        (path / "otlp" / "seg.zst").write_bytes(b"x" * 1000)
        if lock:
            path.with_name(path.name + ".lock").touch()
        return path

    dead = staging("dead", lock=True)
    alive = staging("alive", lock=True)
    unknown = staging("unknown", lock=False)
    (tmp_path / ".orphan.partial-89abcdef.lock").touch()  # killed before its staging was made
    (tmp_path / ".look.alike.lock").touch()  # not a staging lock: never touched
    holder = os.open(alive.with_name(alive.name + ".lock"), os.O_RDWR)
    fcntl.flock(holder, fcntl.LOCK_EX)  # as a live pack holds it
    try:
        removed = clean_stale_staging(tmp_path)
    finally:
        os.close(holder)
    assert removed == [dead]
    assert not dead.exists() and not dead.with_name(dead.name + ".lock").exists()
    assert alive.is_dir() and alive.with_name(alive.name + ".lock").exists()
    assert unknown.is_dir()
    assert not (tmp_path / ".orphan.partial-89abcdef.lock").exists()
    assert (tmp_path / ".look.alike.lock").exists()
    # once its holder is gone, the formerly live one is stale too
    assert clean_stale_staging(tmp_path) == [alive]


def test_pack_holds_its_staging_lock_while_writing(tmp_path: Path) -> None:
    """The liveness lock is really held during the pack (else a live pack could be wiped)."""
    import fcntl

    from bundlekit.fsutil import clean_stale_staging

    (tmp_path / "in").mkdir()
    traces, logs = _inputs(tmp_path / "in")
    out = tmp_path / "out"
    seen: list[tuple[list[Path], bool]] = []

    def during(done: int, total: int) -> None:
        if seen:
            return
        locks = list(tmp_path.glob(".out.partial-*.lock"))
        fd = os.open(locks[0], os.O_RDWR)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                free = True
            except BlockingIOError:
                free = False
        finally:
            os.close(fd)
        seen.append((clean_stale_staging(tmp_path), free))

    result = pack_bundle([traces, logs], out, progress=during)
    assert seen == [([], False)]
    assert result.removed_staging == ()
    assert sorted(os.listdir(tmp_path)) == ["in", "out"]


def test_input_truncated_while_packed_is_reported_as_changed_not_corrupt(tmp_path: Path) -> None:
    traces, logs = _inputs(tmp_path)
    cut: list[int] = []

    def truncate(done: int, total: int) -> None:
        if not cut:
            cut.append(done)
            os.truncate(traces, done + 10)  # mid-record, just past what was read

    with pytest.raises(IOFailure, match=r"traces\.binpb changed while bundlekit was reading it"):
        pack_bundle([traces, logs], tmp_path / "out", progress=truncate)
    assert not (tmp_path / "out").exists()
