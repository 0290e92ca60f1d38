"""Golden bundles: regenerating them gives the same bytes, and they keep verifying.

The format's compatibility is a test: tests/golden/ holds a bundle in both
forms, made with the SAMPLE key, a fixed time and id and a pinned producer
(tests/golden/regen.py).  Also here: archiving is reproducible (the same
bundle archived twice, or converted from its directory form, gives the same
bytes), and so is ``pack --archive`` with SOURCE_DATE_EPOCH and a fixed id.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bundlekit.convert import archive_bundle
from bundlekit.pack import PackOptions, pack_bundle
from bundlekit.verify import VerifyOptions, check_bundle
from tests.bundles import FIXED_ID, small_inputs
from tests.golden.regen import ARCHIVE, DIRECTORY, HERE, SAMPLE_KEY, SAMPLE_PUB, regenerate

SAMPLE = VerifyOptions(keys=(SAMPLE_PUB,))


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_regenerating_the_golden_bundles_gives_the_same_bytes(tmp_path: Path) -> None:
    regenerate(tmp_path)
    assert (tmp_path / ARCHIVE).read_bytes() == (HERE / ARCHIVE).read_bytes()
    assert _files(tmp_path / DIRECTORY) == _files(HERE / DIRECTORY)


@pytest.mark.parametrize("form", [DIRECTORY, ARCHIVE])
@pytest.mark.parametrize("deep", [False, True])
def test_golden_bundles_verify_with_the_sample_key(form: str, deep: bool) -> None:
    report = check_bundle(HERE / form, VerifyOptions(keys=(SAMPLE_PUB,), deep=deep))
    assert report.ok, report.failures
    assert report.files_checked == 3


def test_golden_bundles_are_small_and_signed_by_the_sample_key() -> None:
    total = sum(len(d) for d in _files(HERE / DIRECTORY).values())
    total += (HERE / ARCHIVE).stat().st_size
    assert total < 200 * 1024
    assert SAMPLE_KEY.name.startswith("sample-do-not-use")


def test_archiving_the_same_bundle_twice_gives_identical_bytes(tmp_path: Path) -> None:
    for name in ("a.bundle.tar", "b.bundle.tar"):
        archive_bundle(HERE / DIRECTORY, tmp_path / name, SAMPLE)
    first = (tmp_path / "a.bundle.tar").read_bytes()
    assert first == (tmp_path / "b.bundle.tar").read_bytes()
    # and converting the directory form gives what pack --archive wrote
    assert first == (HERE / ARCHIVE).read_bytes()


def test_pack_archive_twice_with_source_date_epoch_gives_identical_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1793491200")
    inputs = small_inputs(tmp_path / "in")
    outs = []
    for name in ("one.bundle.tar", "two.bundle.tar"):
        from bundlekit.keys import load_private_key

        options = PackOptions(bundle_id=FIXED_ID, archive=True)
        pack_bundle(inputs, tmp_path / name, options, [load_private_key(SAMPLE_KEY)])
        outs.append((tmp_path / name).read_bytes())
    assert outs[0] == outs[1]
    assert check_bundle(tmp_path / "one.bundle.tar", SAMPLE).ok
