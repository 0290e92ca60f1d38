"""Every archive is hostile until verified: one hostile archive per class, each refused.

Each archive is built here from a real signed archive (``pack --archive``),
with raw tar headers (tests/tarcraft.py) where tarfile would refuse to write
the lie.  For every class: ``check_bundle`` on the file and on a stream names
the expected :class:`Defect` and its exit code; ``bundlekit verify`` on the
file and ``verify -`` from a real pipe exit with that code and no traceback;
``bundlekit unpack`` (file and pipe) fails with it and leaves nothing at DEST
and nothing anywhere else under the test's directory, though decoys sit
where a traversal would land.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import zstandard

from bundlekit.format import canonical
from bundlekit.format.archive import ArchiveReader
from bundlekit.format.defects import Defect
from bundlekit.format.dsse import Envelope, Signature
from bundlekit.format.manifest import PAYLOAD_TYPE
from bundlekit.keys import GeneratedKey, KeyType, load_private_key
from bundlekit.limits import Limits
from bundlekit.verify import VerifyOptions, check_bundle
from tests import tarcraft as tc
from tests import zstdframes as zf
from tests.bundles import pack_small
from tests.conftest import ROOT

LOGS = "otlp/logs/000001.binpb.zst"
METRICS = "otlp/metrics/000001.binpb.zst"
TRACES = "otlp/traces/000001.binpb.zst"
MiB = 1 << 20


@dataclass(frozen=True)
class Parts:
    """A good signed archive, taken apart: manifest, envelope, payload members in order."""

    manifest: tc.Entry
    envelope: tc.Entry
    payload: tuple[tc.Entry, ...]
    key: GeneratedKey
    #: Where a traversal would land, relative to the test directory (see ``site``).
    decoy: str = "site/decoy.txt"

    def members(self, *names: str) -> list[bytes]:
        by_name = {e.name: e for e in self.payload}
        return [by_name[n].member() for n in (names or [e.name for e in self.payload])]

    def head(self) -> list[bytes]:
        return [self.manifest.member(), self.envelope.member()]

    def good(self, *extra: bytes, after: bool = True) -> bytes:
        """The honest archive, with ``extra`` members after (or before) the payload."""
        if after:
            return tc.archive(*self.head(), *self.members(), *extra)
        return tc.archive(*self.head(), *extra, *self.members())

    def planted(self, name: str, blob: bytes) -> bytes:
        """``name`` replaced by ``blob`` under a re-signed manifest that matches it exactly."""
        declared = zstandard.get_frame_parameters(blob).content_size
        doc = json.loads(self.manifest.data)
        tc.replant(doc, name, blob, declared)
        raw = canonical.dumps(doc)
        signer = load_private_key(self.key.private_path)
        envelope = Envelope(PAYLOAD_TYPE, raw)
        envelope = envelope.with_signature(Signature(signer.keyid, signer.sign(envelope.pae())))
        payload = [tc.Entry(e.name, blob if e.name == name else e.data) for e in self.payload]
        return tc.archive(
            tc.member("manifest.json", raw),
            tc.member("signatures/manifest.dsse.json", envelope.to_bytes()),
            *(e.member() for e in payload),
        )


@pytest.fixture(scope="session")
def parts(tmp_path_factory: pytest.TempPathFactory, keys: dict[KeyType, GeneratedKey]) -> Parts:
    root = tmp_path_factory.mktemp("hostile-source")
    key = keys[KeyType.ED25519]
    pack_small(root / "in", root / "good.bundle.tar", key, archive=True)
    entries = tc.split((root / "good.bundle.tar").read_bytes())
    assert [e.name for e in entries] == [
        "manifest.json",
        "signatures/manifest.dsse.json",
        LOGS,
        METRICS,
        TRACES,
    ]
    return Parts(entries[0], entries[1], tuple(entries[2:]), key)


@dataclass(frozen=True)
class Case:
    build: Callable[[Parts], bytes]
    defect: Defect
    #: What a stream can tell, where it can tell less than a file (see the case).
    stream_defect: Defect | None = None
    #: Smaller caps, so the case needs no huge archive (CLI runs use the defaults: skipped).
    limits: Limits | None = None
    #: Refused only when segments are decoded (``--deep``, replay).
    deep: bool = False


def _traversal(p: Parts, name: str) -> bytes:
    return p.good(tc.member(name, b"pwned"), after=False)


def _node(kind: bytes, linkname: str = "") -> Callable[[Parts], bytes]:
    def build(p: Parts) -> bytes:
        node = tc.header("attachments/node", 0, kind=kind, linkname=linkname)
        return p.good(node, after=False)

    return build


def _oversized_head(which: str) -> Callable[[Parts], bytes]:
    def build(p: Parts) -> bytes:
        # A header that declares more than the cap; the bytes never follow.
        if which == "manifest":
            return tc.archive(tc.header("manifest.json", 40 * MiB), terminate=False)
        return tc.archive(
            p.manifest.member(),
            tc.header("signatures/manifest.dsse.json", 60 * MiB),
            terminate=False,
        )

    return build


def _resized(delta: int) -> Callable[[Parts], bytes]:
    def build(p: Parts) -> bytes:
        logs = p.payload[0]
        data = logs.data + b"\0" * delta if delta > 0 else logs.data[:delta]
        return tc.archive(*p.head(), tc.member(LOGS, data), *p.members(METRICS, TRACES))

    return build


CASES: dict[str, Case] = {
    # names that point outside the destination
    "absolute-path": Case(
        lambda p: _traversal(p, "/tmp/bundlekit-escaped.txt"), Defect.UNSAFE_NAME
    ),
    "dotdot": Case(lambda p: _traversal(p, "../decoy.txt"), Defect.UNSAFE_NAME),
    "dotdot-inside": Case(
        lambda p: _traversal(p, "attachments/../../../escaped.txt"), Defect.UNSAFE_NAME
    ),
    "dotdot-in-ustar-prefix": Case(
        lambda p: p.good(tc.member("escaped.txt", b"x", prefix="../.."), after=False),
        Defect.UNSAFE_NAME,
    ),
    "dotdot-in-pax-path": Case(
        lambda p: p.good(
            tc.pax([("path", "../../escaped.txt")]), tc.member("attachments/a", b"x"), after=False
        ),
        Defect.UNSAFE_NAME,
    ),
    "backslash": Case(
        lambda p: _traversal(p, "attachments\\..\\..\\escaped.txt"), Defect.UNSAFE_NAME
    ),
    "control-character": Case(lambda p: _traversal(p, "attachments/a\nb"), Defect.UNSAFE_NAME),
    "not-nfc": Case(lambda p: _traversal(p, "attachments/cafe\u0301"), Defect.UNSAFE_NAME),
    # entries that are not regular files
    "symlink": Case(_node(tc.SYMLINK, "../decoy.txt"), Defect.NOT_REGULAR),
    "hardlink": Case(_node(tc.HARDLINK, "manifest.json"), Defect.NOT_REGULAR),
    "char-device": Case(_node(tc.CHARDEV), Defect.NOT_REGULAR),
    "block-device": Case(_node(tc.BLOCKDEV), Defect.NOT_REGULAR),
    "fifo": Case(_node(tc.FIFO), Defect.NOT_REGULAR),
    "directory": Case(_node(tc.DIRECTORY), Defect.NOT_REGULAR),
    "symlink-as-manifest": Case(
        lambda p: tc.archive(
            tc.header("manifest.json", 0, kind=tc.SYMLINK, linkname="/etc/passwd")
        ),
        Defect.NOT_REGULAR,
    ),
    # names seen twice
    "duplicate": Case(lambda p: p.good(*p.members(TRACES)), Defect.DUPLICATE),
    "duplicate-via-pax-path": Case(
        lambda p: p.good(tc.pax([("path", TRACES)]), tc.member("otlp/zz", b"x")),
        Defect.DUPLICATE,
    ),
    "duplicate-manifest": Case(
        lambda p: tc.archive(*p.head(), p.manifest.member(), *p.members()), Defect.DUPLICATE
    ),
    "collision-case": Case(
        lambda p: p.good(tc.member(LOGS.upper(), b"x"), after=True), Defect.COLLISION
    ),
    # U+017F LATIN SMALL LETTER LONG S is NFC-stable and case-folds to "s"
    "collision-casefold": Case(
        lambda p: tc.archive(
            *p.head(), *p.members(LOGS), tc.member("otlp/log\u017f/000001.binpb.zst", b"x")
        ),
        Defect.COLLISION,
    ),
    # members the manifest does not list
    "extra-member": Case(
        lambda p: p.good(tc.member("otlp/zz/000001.binpb.zst", b"x")), Defect.EXTRA
    ),
    "extra-attachment": Case(
        lambda p: p.good(tc.member("attachments/zz", b"x"), after=False), Defect.EXTRA
    ),
    # order
    "payload-first": Case(
        lambda p: tc.archive(*p.members(LOGS), *p.head(), *p.members(METRICS, TRACES)),
        Defect.ORDER,
    ),
    "envelope-before-manifest": Case(
        lambda p: tc.archive(p.envelope.member(), p.manifest.member(), *p.members()), Defect.ORDER
    ),
    # A stream cannot know an envelope is still to come: at the first payload member
    # the head is over and the archive is unsigned (exit 3), which refuses it as well.
    "envelope-after-payload": Case(
        lambda p: tc.archive(p.manifest.member(), *p.members(), p.envelope.member()),
        Defect.ORDER,
        stream_defect=Defect.UNSIGNED,
    ),
    "payload-out-of-order": Case(
        lambda p: tc.archive(*p.head(), *p.members(TRACES, LOGS, METRICS)), Defect.ORDER
    ),
    # headers and pax records
    "pax-header-over-cap": Case(
        lambda p: p.good(tc.pax([("comment", "x" * 9000)]), tc.member("attachments/a", b"x")),
        Defect.OVERSIZED,
    ),
    "pax-header-declares-huge": Case(
        lambda p: p.good(tc.pax(b"", declared=1 << 33), after=False), Defect.OVERSIZED
    ),
    "pax-record-length-lies": Case(
        lambda p: p.good(tc.pax(b"999 path=a\n"), tc.member("attachments/a", b"x")),
        Defect.ARCHIVE_MALFORMED,
    ),
    "pax-record-without-length": Case(
        lambda p: p.good(tc.pax(b"path=a\n"), tc.member("attachments/a", b"x")),
        Defect.ARCHIVE_MALFORMED,
    ),
    "pax-linkpath": Case(
        lambda p: p.good(tc.pax([("linkpath", "/etc/passwd")]), tc.member("attachments/a", b"x")),
        Defect.ARCHIVE_MALFORMED,
    ),
    "pax-sparse": Case(
        lambda p: p.good(tc.pax([("GNU.sparse.map", "0,1")]), tc.member("attachments/a", b"x")),
        Defect.ARCHIVE_MALFORMED,
    ),
    "pax-size-not-a-number": Case(
        lambda p: p.good(tc.pax([("size", "-1")]), tc.member("attachments/a", b"x")),
        Defect.ARCHIVE_MALFORMED,
    ),
    "pax-without-member": Case(
        lambda p: p.good(tc.pax([("comment", "x")])), Defect.ARCHIVE_MALFORMED
    ),
    "two-pax-headers": Case(
        lambda p: p.good(
            tc.pax([("comment", "a")]), tc.pax([("comment", "b")]), tc.member("a", b"")
        ),
        Defect.ARCHIVE_MALFORMED,
    ),
    "gnu-longname": Case(
        lambda p: p.good(tc.member("././@LongLink", b"../../escaped.txt\0", kind=tc.GNU_LONGNAME)),
        Defect.ARCHIVE_MALFORMED,
    ),
    "name-over-long": Case(
        lambda p: p.good(tc.pax([("path", "attachments/" + "a" * 600)]), tc.member("x", b"x")),
        Defect.UNSAFE_NAME,
    ),
    "name-too-deep": Case(
        lambda p: _traversal(p, "attachments/" + "d/" * 20 + "f"), Defect.UNSAFE_NAME
    ),
    "bad-checksum": Case(
        lambda p: p.good(tc.member("attachments/a", b"x", checksum=1)), Defect.ARCHIVE_MALFORMED
    ),
    "not-ustar": Case(
        lambda p: p.good(tc.member("attachments/a", b"x", magic=b"ustar  \0")),
        Defect.ARCHIVE_MALFORMED,
    ),
    "base-256-size": Case(
        lambda p: p.good(tc.member("attachments/a", b"", size_field=b"\x80" + bytes(11))),
        Defect.ARCHIVE_MALFORMED,
    ),
    "cut-short": Case(lambda p: p.good()[: 3 * 512 + 100], Defect.ARCHIVE_MALFORMED),
    "no-end-marker": Case(
        lambda p: tc.archive(*p.head(), *p.members(), terminate=False), Defect.ARCHIVE_MALFORMED
    ),
    "empty": Case(lambda p: tc.archive(), Defect.ARCHIVE_MALFORMED),
    # caps
    "manifest-over-cap": Case(_oversized_head("manifest"), Defect.OVERSIZED),
    "envelope-over-cap": Case(_oversized_head("envelope"), Defect.OVERSIZED),
    "more-members-than-cap": Case(lambda p: p.good(), Defect.LISTING, limits=Limits(max_files=3)),
    "member-larger-than-manifest": Case(_resized(+1), Defect.SIZE),
    "member-smaller-than-manifest": Case(_resized(-1), Defect.SIZE),
    # segments a trusted key signed, whose frame asks for too much: refused when decoded
    "zstd-window-over-cap": Case(
        lambda p: p.planted(
            TRACES, zf.header(1 << 20, window_log=30) + zf.zero_runs(1 << 20) + b"\0" * 4
        ),
        Defect.UNDECODABLE,
        deep=True,
    ),
    "zstd-size-over-cap": Case(
        lambda p: p.planted(
            TRACES, zf.header((64 << 20) + 1, window_log=17) + zf.zero_runs(1 << 17) + b"\0" * 4
        ),
        Defect.UNDECODABLE,
        deep=True,
    ),
}


def _options(p: Parts, case: Case) -> VerifyOptions:
    options = VerifyOptions(keys=(p.key.public_path,), deep=case.deep, workers=1)
    return replace(options, limits=case.limits) if case.limits else options


@pytest.mark.parametrize("name", sorted(CASES))
def test_check_bundle_names_the_defect_on_a_file_and_on_a_stream(
    parts: Parts, tmp_path: Path, name: str
) -> None:
    case = CASES[name]
    data = case.build(parts)
    path = tmp_path / f"{name}.bundle.tar"
    path.write_bytes(data)
    options = _options(parts, case)
    expected = {
        "file": case.defect,
        "stream": case.stream_defect or case.defect,
    }
    reports = {
        "file": check_bundle(path, options),
        "stream": check_bundle(
            ArchiveReader.from_stream(io.BytesIO(data), "<pipe>", options.limits), options
        ),
    }
    for how, report in reports.items():
        codes = {f.code for f in report.failures}
        assert codes == {expected[how]}, (how, report.failures)
        assert report.exit_code == expected[how].category.exit_code, how


# -- through the CLI -------------------------------------------------------------------

CLI_CASES = sorted(n for n, c in CASES.items() if c.limits is None)


def snapshot(root: Path) -> dict[str, str]:
    """Every entry under ``root`` (links not followed): kind and content digest or target."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                out[rel] = "link:" + os.readlink(path)
            elif path.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = "file:" + hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """tmp_path/site: where DEST goes, with decoys where traversals would land."""
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "decoy.txt").write_text("decoy: must not change\n")
    (tmp_path / "escaped.txt").write_text("decoy: must not change\n")
    return folder


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / f"{name}.bundle.tar"
    path.write_bytes(data)
    return path


def _no_traceback(*texts: str) -> None:
    for text in texts:
        assert "Traceback" not in text, text


def _cli(*args: str | Path, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """bundlekit in a child, reading ``stdin`` from a real pipe."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "bundlekit", *map(str, args)],
        input=stdin,
        capture_output=True,
        env=env,
        timeout=120,
        check=False,
    )


def _expected_exit(case: Case, stream: bool) -> int:
    defect = (case.stream_defect or case.defect) if stream else case.defect
    return int(defect.category.exit_code)


@pytest.mark.parametrize("name", CLI_CASES)
def test_cli_verify_file_and_pipe_exit_with_the_documented_code(
    parts: Parts,
    tmp_path: Path,
    run_cli: Callable[..., tuple[int, str, str]],
    name: str,
) -> None:
    case = CASES[name]
    data = case.build(parts)
    path = _write(tmp_path, name, data)
    deep = ["--deep"] if case.deep else []
    code, out, err = run_cli("verify", path, "--key", parts.key.public_path, "--json", *deep)
    assert code == _expected_exit(case, stream=False), (out, err)
    assert case.defect.value in {f["code"] for f in json.loads(out)["failures"]}
    _no_traceback(out, err)

    piped = _cli("verify", "-", "--key", parts.key.public_path, "--json", *deep, stdin=data)
    assert piped.returncode == _expected_exit(case, stream=True), piped.stderr
    report = json.loads(piped.stdout)
    assert (case.stream_defect or case.defect).value in {f["code"] for f in report["failures"]}
    _no_traceback(piped.stdout.decode(), piped.stderr.decode())


@pytest.mark.parametrize("name", [n for n in CLI_CASES if not CASES[n].deep])
def test_unpack_fails_and_writes_nothing_anywhere(
    parts: Parts,
    tmp_path: Path,
    site: Path,
    run_cli: Callable[..., tuple[int, str, str]],
    name: str,
) -> None:
    case = CASES[name]
    data = case.build(parts)
    path = _write(tmp_path, name, data)
    before = snapshot(tmp_path)

    dest = site / "dest"
    code, out, err = run_cli("unpack", path, "--out", dest, "--key", parts.key.public_path)
    assert code == _expected_exit(case, stream=False), (out, err)
    _no_traceback(out, err)
    assert not os.path.lexists(dest)
    assert snapshot(tmp_path) == before

    # unpack reads the file as verify does (listed first); from a pipe, as verify - does
    piped = _cli("unpack", "-", "--out", dest, "--key", parts.key.public_path, stdin=data)
    assert piped.returncode == _expected_exit(case, stream=True), piped.stderr
    _no_traceback(piped.stdout.decode(), piped.stderr.decode())
    assert not os.path.lexists(dest)
    assert snapshot(tmp_path) == before
    assert not Path("/tmp/bundlekit-escaped.txt").exists()


def test_segments_whose_frames_ask_too_much_pass_a_hash_only_check(
    parts: Parts, tmp_path: Path
) -> None:
    """The zstd cases are refused when decoded, not before: a trusted key vouched for
    the bytes, and verify without --deep (and unpack, which copies) only hashes them
    (as tests/test_hostile_segments.py pins for directories)."""
    for name in ("zstd-window-over-cap", "zstd-size-over-cap"):
        path = _write(tmp_path, name, CASES[name].build(parts))
        assert check_bundle(path, VerifyOptions(keys=(parts.key.public_path,))).ok


def test_more_members_than_the_default_cap_is_refused_by_the_cli(
    parts: Parts, tmp_path: Path, site: Path, run_cli: Callable[..., tuple[int, str, str]]
) -> None:
    """100,001 empty members: refused at the cap while listing, before any is read."""
    limit = Limits().max_files
    empties = b"".join(tc.header(f"attachments/{i:06d}", 0) for i in range(limit))
    path = _write(tmp_path, "many", tc.archive(*parts.head(), empties, *parts.members()))
    before = snapshot(tmp_path)
    code, out, err = run_cli("verify", path, "--key", parts.key.public_path, "--json")
    assert code == 5, err
    assert [f["code"] for f in json.loads(out)["failures"]] == ["listing"]
    code, out, err = run_cli("unpack", path, "--out", site / "dest", "--key", parts.key.public_path)
    assert code == 5, err
    assert snapshot(tmp_path) == before


# -- extraction into a hostile neighbourhood -------------------------------------------


def test_unpack_of_a_good_archive_writes_only_under_dest_despite_symlinks_beside_it(
    parts: Parts, tmp_path: Path, site: Path, run_cli: Callable[..., tuple[int, str, str]]
) -> None:
    """DEST's parent holds links named like the bundle's directories and files, pointing
    outside; the trusted archive lists only safe names.  Everything lands under DEST."""
    outside = tmp_path / "outside"
    outside.mkdir()
    for name in ("otlp", "signatures", "attachments", "config", "manifest.json", "logs", "traces"):
        (site / name).symlink_to(outside / name if name.endswith(".json") else outside)
    (site / "dest.partial").symlink_to(outside)
    path = _write(tmp_path, "good", parts.good())
    before_outside = snapshot(outside)

    dest = site / "dest"
    code, out, err = run_cli("unpack", path, "--out", dest, "--key", parts.key.public_path)
    assert code == 0, (out, err)
    assert snapshot(outside) == before_outside == {}
    assert not dest.is_symlink()
    files = {k: v for k, v in snapshot(dest).items() if v.startswith("file:")}
    assert sorted(files) == sorted(
        ["manifest.json", "signatures/manifest.dsse.json", LOGS, METRICS, TRACES]
    )
    for entry in (parts.manifest, parts.envelope, *parts.payload):
        assert (dest / entry.name).read_bytes() == entry.data
    # nothing else appeared in the site but DEST
    assert sorted(os.listdir(site)) == sorted(
        [
            "decoy.txt",
            "dest",
            "dest.partial",
            "otlp",
            "signatures",
            "attachments",
            "config",
            "manifest.json",
            "logs",
            "traces",
        ]
    )


def test_unpack_refuses_a_dest_that_is_a_symlink(
    parts: Parts, tmp_path: Path, site: Path, run_cli: Callable[..., tuple[int, str, str]]
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (site / "dest").symlink_to(outside)
    (site / "dangling").symlink_to(tmp_path / "nowhere")
    path = _write(tmp_path, "good", parts.good())
    before = snapshot(tmp_path)
    for dest in (site / "dest", site / "dangling"):
        code, out, err = run_cli("unpack", path, "--out", dest, "--key", parts.key.public_path)
        assert code == 2, (out, err)
        _no_traceback(out, err)
        assert snapshot(tmp_path) == before
