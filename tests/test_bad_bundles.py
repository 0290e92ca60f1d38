"""One bad bundle per finding code, committed under tests/bad_bundles/ and named after it.

The test iterates over the :class:`Defect` enum, so a new code without a bad
bundle fails here.  ``listing`` and ``unreadable`` are made at test time (see
tests/bad_bundles/make.py for why).
"""

from __future__ import annotations

import errno
import io
from pathlib import Path

import pytest

from bundlekit.format.archive import ArchiveReader
from bundlekit.format.defects import Defect
from bundlekit.format.reader import BundleReader, open_bundle
from bundlekit.limits import DEFAULT_LIMITS
from bundlekit.verify import VerifyOptions, check_bundle
from tests import tarcraft as tc
from tests.bad_bundles.make import COMPANIONS, DEEP, GENERATED, HERE, build_all
from tests.golden.regen import ARCHIVE, SAMPLE_PUB
from tests.golden.regen import HERE as GOLDEN


class _FailingMedium(io.RawIOBase):
    """The golden archive on a medium that fails (EIO) after ``good`` bytes."""

    def __init__(self, data: bytes, good: int) -> None:
        self._data, self._good, self._pos = data, good, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._pos >= self._good:
            raise OSError(errno.EIO, "Input/output error")
        n = min(len(buffer), self._good - self._pos)
        buffer[:n] = self._data[self._pos : self._pos + n]
        self._pos += n
        return n


def _reader(code: Defect, tmp_path: Path) -> BundleReader:
    if code is Defect.LISTING:
        golden = tc.split((GOLDEN / ARCHIVE).read_bytes())
        empties = b"".join(tc.header(f"attachments/{i:06d}", 0) for i in range(100_000))
        path = tmp_path / "listing.bundle.tar"
        path.write_bytes(tc.archive(*(e.member() for e in golden[:2]), empties))
        return open_bundle(path)
    if code is Defect.UNREADABLE:
        data = (GOLDEN / ARCHIVE).read_bytes()
        # fails inside the first segment, after the head (manifest and envelope) was read
        head = sum(512 + len(e.data) + (-len(e.data) % 512) for e in tc.split(data)[:2])
        medium = io.BufferedReader(_FailingMedium(data, head + 512 + 100))
        return ArchiveReader.from_stream(medium, "<failing medium>", limits=DEFAULT_LIMITS)  # type: ignore[arg-type]
    archive = HERE / f"{code.value}.bundle.tar"
    return open_bundle(archive if archive.exists() else HERE / code.value)


@pytest.mark.parametrize("code", list(Defect), ids=lambda d: d.value)
def test_each_defect_has_a_bad_bundle_that_yields_exactly_it(code: Defect, tmp_path: Path) -> None:
    committed = (HERE / f"{code.value}.bundle.tar").exists() or (HERE / code.value).is_dir()
    assert committed != (code.value in GENERATED), f"no bad bundle for {code.value}"
    with _reader(code, tmp_path) as reader:
        options = VerifyOptions(keys=(SAMPLE_PUB,), deep=code.value in DEEP, workers=1)
        report = check_bundle(reader, options)
    codes = [f.code.value for f in report.failures]
    assert codes and codes[0] == code.value, codes
    assert set(codes) <= {code.value, *COMPANIONS.get(code.value, ())}, codes
    assert (
        report.exit_code
        == min((Defect(c).category for c in codes), key=list(type(code.category)).index).exit_code
    )
    if code.value not in COMPANIONS:
        assert report.exit_code == code.category.exit_code


def test_committed_bad_bundles_are_what_make_writes_and_nothing_else() -> None:
    made = build_all()
    assert set(made) == {d.value for d in Defect} - GENERATED
    for code, content in made.items():
        if isinstance(content, bytes):
            assert (HERE / f"{code}.bundle.tar").read_bytes() == content, code
        else:
            on_disk = {
                p.relative_to(HERE / code).as_posix(): p.read_bytes()
                for p in (HERE / code).rglob("*")
                if p.is_file()
            }
            assert on_disk == content, code
    names = {p.name for p in HERE.iterdir()} - {"__init__.py", "make.py", "__pycache__"}
    expected = {f"{c}.bundle.tar" if isinstance(v, bytes) else c for c, v in made.items()}
    assert names == expected
