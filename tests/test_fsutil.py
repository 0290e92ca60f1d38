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
