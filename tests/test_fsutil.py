"""Crash-safe writes, used for keys, signatures and replay checkpoints."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bundlekit.fsutil import atomic_write as write_atomic


def test_atomic_write_keeps_the_old_file_when_interrupted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "cp.json"
    write_atomic(target, b"old")

    def crash(src: object, dst: object) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk gone"):
        write_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cp.json"]  # no temp file left


def test_atomic_write_fsyncs_before_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(
        os, "replace", lambda a, b: (events.append("rename"), real_replace(a, b))[1]
    )
    write_atomic(tmp_path / "cp.json", b"{}")
    assert events[:2] == ["fsync", "rename"]  # data durable before it becomes visible
    assert events[-1] == "fsync"  # and the directory entry too


def test_read_regular_size_cap_at_its_boundary(tmp_path: Path) -> None:
    from bundlekit.errors import InputError
    from bundlekit.fsutil import read_regular

    path = tmp_path / "c.yaml"
    path.write_bytes(b"x" * 100)
    assert read_regular(path, "collector config", 100) == b"x" * 100
    with pytest.raises(InputError, match="larger than 99 bytes"):
        read_regular(path, "collector config", 99)


def test_read_regular_follows_a_symlink_to_a_regular_file(tmp_path: Path) -> None:
    """User-named paths may be links (a key in a shared folder); only the target's type counts."""
    from bundlekit.fsutil import read_regular

    (tmp_path / "real.pub").write_bytes(b"data")
    (tmp_path / "link.pub").symlink_to(tmp_path / "real.pub")
    assert read_regular(tmp_path / "link.pub", "key file", 10) == b"data"


def test_missing_file_and_directory_are_usage_errors(tmp_path: Path) -> None:
    from bundlekit.errors import ExitCode, InputError
    from bundlekit.fsutil import read_regular

    with pytest.raises(InputError, match="key file not found") as missing:
        read_regular(tmp_path / "nope", "key file", 10)
    assert missing.value.exit_code == ExitCode.USAGE
    with pytest.raises(InputError, match="is a directory, not a regular file"):
        read_regular(tmp_path, "key file", 10)


@pytest.mark.parametrize("change", ["append", "rewrite-same-size", "replace"])
def test_a_file_changed_after_opening_is_noticed(tmp_path: Path, change: str) -> None:
    from bundlekit.errors import ExitCode, IOFailure
    from bundlekit.fsutil import check_same_file, check_unchanged, open_regular

    path = tmp_path / "in.binpb"
    path.write_bytes(b"0123456789")
    handle, stamp = open_regular(path, "input file")
    with handle:
        check_unchanged(handle, stamp, path, "input file")  # untouched: fine
        check_same_file(path, stamp, "input file")
        if change == "append":
            with open(path, "ab") as other:
                other.write(b"more")
        elif change == "rewrite-same-size":
            with open(path, "r+b") as other:
                other.write(b"9876543210")
            os.utime(path, ns=(stamp.mtime_ns + 1_000_000, stamp.mtime_ns + 1_000_000))
        else:
            (tmp_path / "new").write_bytes(b"0123456789")
            os.replace(tmp_path / "new", path)
        with pytest.raises(IOFailure, match="changed while bundlekit was reading it") as e:
            check_same_file(path, stamp, "input file")
        assert e.value.exit_code == ExitCode.IO
        if change != "replace":  # the open file itself changed
            with pytest.raises(IOFailure, match="changed while"):
                check_unchanged(handle, stamp, path, "input file")


def test_staging_lock_is_gone_after_success_and_failure(tmp_path: Path) -> None:
    from bundlekit.fsutil import staged_directory

    with staged_directory(tmp_path / "ok") as staging:
        (staging / "f").write_bytes(b"x")
        assert len(list(tmp_path.glob(".ok.partial-*.lock"))) == 1
    assert sorted(os.listdir(tmp_path)) == ["ok"]
    with pytest.raises(RuntimeError), staged_directory(tmp_path / "bad"):
        raise RuntimeError("boom")
    assert sorted(os.listdir(tmp_path)) == ["ok"]


def test_staged_directory_refuses_a_dangling_symlink_at_the_final_path(tmp_path: Path) -> None:
    from bundlekit.errors import UsageError
    from bundlekit.fsutil import staged_directory

    (tmp_path / "b").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UsageError, match="already exists"), staged_directory(tmp_path / "b"):
        pass
    assert not (tmp_path / "elsewhere").exists()
