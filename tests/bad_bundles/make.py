"""Write one bad bundle per finding code: ``python -m tests.bad_bundles.make [FOLDER]``.

Each is the golden archive (tests/golden) with one thing wrong, named after
the :class:`~bundlekit.format.defects.Defect` it must yield when verified with
the SAMPLE public key (``--deep`` for the decoding codes): ``<code>.bundle.tar``,
or ``<code>/`` where only a directory can show it (a missing manifest.json:
an archive without one is refused for its order).  Where the bundle is
re-signed, it is with the SAMPLE key, so trust holds and the later checks run.

Two codes have no committed bundle, and tests/test_bad_bundles.py makes them
at test time: ``listing`` (more than 100,000 members is 51 MB of headers) and
``unreadable`` (a medium that fails mid-read, not bytes at rest).
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from bundlekit.format import canonical
from bundlekit.format.dsse import Envelope, Signature
from bundlekit.format.manifest import PAYLOAD_TYPE
from bundlekit.keys import load_private_key
from tests import tarcraft as tc
from tests import zstdframes as zf
from tests.golden.regen import ARCHIVE, SAMPLE_KEY
from tests.golden.regen import HERE as GOLDEN

HERE = Path(__file__).resolve().parent
MANIFEST, ENVELOPE = "manifest.json", "signatures/manifest.dsse.json"
LOGS, TRACES = "otlp/logs/000001.binpb.zst", "otlp/traces/000001.binpb.zst"
#: Made at test time, not committed (see the module's docstring).
GENERATED = frozenset({"listing", "unreadable"})
#: Companions: a finding that always comes with another.
COMPANIONS = {
    "envelope-malformed": {"unsigned"},
    # the signatures are over the PAE, which holds the payload type: none can count
    "payload-type": {"threshold"},
}
#: Codes that need --deep.
DEEP = frozenset({"undecodable", "deep"})


def _entries() -> dict[str, bytes]:
    return {e.name: e.data for e in tc.split((GOLDEN / ARCHIVE).read_bytes())}


def _envelope(raw: bytes, payload_type: str = PAYLOAD_TYPE) -> bytes:
    signer = load_private_key(SAMPLE_KEY)
    envelope = Envelope(payload_type, raw)
    envelope = envelope.with_signature(Signature(signer.keyid, signer.sign(envelope.pae())))
    return envelope.to_bytes()


def _tar(files: dict[str, bytes], *extra: bytes, before: bytes = b"") -> bytes:
    return tc.archive(before, *(tc.member(n, d) for n, d in files.items()), *extra)


def _resigned(files: dict[str, bytes], edit: Callable[[dict], None]) -> dict[str, bytes]:  # type: ignore[type-arg]
    doc = json.loads(files[MANIFEST])
    edit(doc)
    raw = canonical.dumps(doc)
    return {**files, MANIFEST: raw, ENVELOPE: _envelope(raw)}


def _planted(files: dict[str, bytes], name: str, blob: bytes, declared: int) -> dict[str, bytes]:
    def edit(doc: dict) -> None:  # type: ignore[type-arg]
        tc.replant(doc, name, blob, declared)

    return {**_resigned(files, edit), name: blob}


def _other_services(doc: dict) -> None:  # type: ignore[type-arg]
    """The logs segment's service renamed in the manifest only: consistent, but not the data's."""

    def walk(node: object) -> object:
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            items = [walk(v) for v in node]
            if all(isinstance(v, str) for v in items):
                return sorted(set(items))  # type: ignore[type-var]
            return items
        return "auth" if node == "payments" else node

    doc["predicate"] = walk(doc["predicate"])


def build_all() -> dict[str, bytes | dict[str, bytes]]:
    """Code -> archive bytes, or (directory form) relative name -> bytes."""
    good = _entries()
    payload = {n: d for n, d in good.items() if n not in (MANIFEST, ENVELOPE)}
    env = json.loads(good[ENVELOPE])
    env["signatures"][0]["sig"] = "A" + env["signatures"][0]["sig"][1:]
    forged = {**good, ENVELOPE: json.dumps(env).encode()}
    pretty = json.dumps(json.loads(good[MANIFEST]), indent=1).encode()
    window = zf.header(1 << 20, window_log=30) + zf.zero_runs(1 << 20) + b"\0" * 4
    segments = sorted(payload)
    return {
        "unsigned": _tar({MANIFEST: good[MANIFEST], **payload}),
        "threshold": _tar(forged),
        "envelope-malformed": _tar({**good, ENVELOPE: b'{"payloadType": '}),
        "payload-type": _tar(
            {**good, ENVELOPE: _envelope(good[MANIFEST], "application/vnd.other+json")}
        ),
        "manifest-missing": {n: d for n, d in good.items() if n != MANIFEST},
        "manifest-mismatch": _tar(
            {**good, MANIFEST: good[MANIFEST].replace(b"payments", b"paymentz")}
        ),
        "manifest-invalid": _tar({**good, MANIFEST: pretty, ENVELOPE: _envelope(pretty)}),
        "oversized": tc.archive(tc.header(MANIFEST, 40 << 20), terminate=False),
        "archive-malformed": _tar(good, tc.member("attachments/a", b"x", checksum=1)),
        "not-regular": _tar(
            good, before=tc.header("attachments/a", 0, kind=tc.SYMLINK, linkname="/etc/passwd")
        ),
        "unsafe-name": _tar(good, tc.member("../escaped.txt", b"x")),
        "duplicate": _tar(good, tc.member(segments[-1], payload[segments[-1]])),
        "collision": _tar(good, tc.member(segments[-1].upper(), b"x")),
        "order": _tar(
            {MANIFEST: good[MANIFEST], ENVELOPE: good[ENVELOPE], **dict(reversed(payload.items()))}
        ),
        "missing": _tar({n: d for n, d in good.items() if n != LOGS}),
        "extra": _tar(good, tc.member("otlp/zz/000001.binpb.zst", b"x")),
        "size": _tar({**good, LOGS: good[LOGS] + b"\0"}),
        "digest": _tar({**good, LOGS: good[LOGS][:-1] + bytes([good[LOGS][-1] ^ 1])}),
        "undecodable": _tar(_planted(good, TRACES, window, 1 << 20)),
        "deep": _tar(_resigned(good, _other_services)),
    }


def write_all(folder: Path) -> None:
    for code, made in build_all().items():
        for stale in (folder / f"{code}.bundle.tar", folder / code):
            if stale.is_dir():
                shutil.rmtree(stale)
            else:
                stale.unlink(missing_ok=True)
        if isinstance(made, bytes):
            (folder / f"{code}.bundle.tar").write_bytes(made)
        else:
            for name, data in made.items():
                path = folder / code / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)


if __name__ == "__main__":
    write_all(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
    print("bad bundles written")
