"""Regenerate the golden bundles: ``python -m tests.golden.regen [FOLDER]``.

Both forms of one small bundle, made with the SAMPLE key (keys/, public on
purpose), a fixed creation time and bundle id, deterministic input
(tests/otlpgen via tests/bundles.small_inputs) and a pinned producer record
(the real one names this host's Python and kernel), so the bytes are the same
on any machine with the same bundlekit and zstandard:

* ``bundle/``: the directory form;
* ``bundle.bundle.tar``: the archive form (``pack --archive``).

tests/test_golden.py regenerates them into a temporary folder and compares
every byte; a change to the format (or to the compressor) shows up there and
is then a decision, made by running this script and committing the result.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from bundlekit.keys import load_private_key
from bundlekit.pack import PackOptions, pack_bundle
from tests.bundles import FIXED_CREATED_NS, FIXED_ID, small_inputs

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SAMPLE_KEY = ROOT / "keys" / "sample-do-not-use.key"
SAMPLE_PUB = ROOT / "keys" / "sample-do-not-use.pub"
DIRECTORY = "bundle"
ARCHIVE = "bundle.bundle.tar"
PRODUCER = {"tool": "bundlekit", "version": "golden", "python": "golden", "platform": "golden"}


def regenerate(folder: Path) -> None:
    """Write ``folder/bundle`` and ``folder/bundle.bundle.tar`` (neither may exist)."""
    signer = load_private_key(SAMPLE_KEY)
    with tempfile.TemporaryDirectory() as scratch:
        inputs = small_inputs(Path(scratch))
        for name, archive in ((DIRECTORY, False), (ARCHIVE, True)):
            options = PackOptions(
                created_ns=FIXED_CREATED_NS,
                bundle_id=FIXED_ID,
                producer=PRODUCER,
                archive=archive,
            )
            pack_bundle(inputs, folder / name, options, [signer])


def main(argv: list[str]) -> int:
    import shutil

    folder = Path(argv[0]) if argv else HERE
    for name in (DIRECTORY, ARCHIVE):
        target = folder / name
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)
    regenerate(folder)
    print(f"golden bundles written to {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
