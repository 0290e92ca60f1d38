"""Quick structure-aware fuzzing of every parser a hostile bundle reaches.

The promise under test: bad input only ever produces a ``BundlekitError``
(``check_bundle`` never raises at all: it returns a failed report), and no
mutation makes a tampered bundle pass. The long run is ``bench/fuzz.py``
(docs/performance.md, "Fuzzing"); this suite is its few-second, deterministic
cut for CI. A new parser (the archive reader) is one entry in ``PARSERS``.

The tests at the end pin the Unicode bugs the fuzzer found (a JSON-escaped lone
surrogate crashing the canonical check, DSSE's PAE and verify's text output).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bundlekit.errors import BundlekitError, ExitCode, FormatError
from bundlekit.format import canonical, layout, segment
from bundlekit.format.dsse import Envelope
from bundlekit.format.manifest import Custody, Manifest
from bundlekit.keys import GeneratedKey, KeyType, load_public_key
from bundlekit.limits import DEFAULT_LIMITS, Limits
from bundlekit.otlp import framing
from bundlekit.verify import TrustStore, VerificationReport, VerifyOptions, check_bundle
from tests import tarcraft
from tests.bundles import pack_small, write_envelope

ED = KeyType.ED25519
TRACES = "otlp/traces/000001.binpb.zst"

QUICK = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
E2E = settings(QUICK, max_examples=40)


# --------------------------------------------------------------------------- the bundle


@dataclass(frozen=True)
class Seeds:
    """A real packed bundle (every file role) and the bytes of its parts."""

    bundle: Path
    key: GeneratedKey
    manifest: bytes
    envelope: bytes
    segments: dict[str, bytes]

    @property
    def document(self) -> dict[str, Any]:
        return dict(json.loads(self.manifest))


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory, keys: dict[KeyType, GeneratedKey]) -> Seeds:
    root = tmp_path_factory.mktemp("fuzz-seed")
    samples = Path(__file__).resolve().parent.parent / "samples"
    pack_small(
        root / "in",
        root / "bundle",
        keys[ED],
        config=samples / "config/collector.yaml",
        dashboards=samples / "dashboards",
        custody=Custody("analyst", "CASE-1", "fuzz seeds"),
    )
    bundle = root / "bundle"
    return Seeds(
        bundle,
        keys[ED],
        (bundle / layout.MANIFEST_NAME).read_bytes(),
        (bundle / layout.ENVELOPE_NAME).read_bytes(),
        {p.relative_to(bundle).as_posix(): p.read_bytes() for p in bundle.glob("otlp/*/*")},
    )


@pytest.fixture(scope="module")
def scratch(seeds: Seeds, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the bundle that end-to-end examples overwrite (restored by each example)."""
    copy = tmp_path_factory.mktemp("fuzz-scratch") / "bundle"
    shutil.copytree(seeds.bundle, copy)
    return copy


@pytest.fixture(scope="module")
def trusted(seeds: Seeds) -> VerifyOptions:
    trust = TrustStore.of([load_public_key(seeds.key.public_path)])
    return VerifyOptions(trust=trust, deep=True, workers=1)


def restore(scratch: Path, seeds: Seeds) -> None:
    (scratch / layout.MANIFEST_NAME).write_bytes(seeds.manifest)
    (scratch / layout.ENVELOPE_NAME).write_bytes(seeds.envelope)
    for name, data in seeds.segments.items():
        (scratch / name).write_bytes(data)


# --------------------------------------------------------------------------- strategies

LONE_SURROGATES = ("\ud800", "\udbff", "\udc00", "\udfff", "a\ud800b")
WEIRD_TEXT = (
    "", "\x00", "\x1b[2J", "\u202e", "e\u0301", "../x", "/abs", "a//b", "C:\\x", "x" * 513,
    "a/" * 17 + "b", "manifest.json", "signatures/x", "otlp/traces/000002.binpb.zst",
    "2026-02-30T00:00:00Z", "0000-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z", "0" * 64,
)  # fmt: skip
HUGE_INTS = (-1, 2**31, 2**53 - 1, 2**53, 2**63, 2**64, -(2**63), 10**400, -(10**400))
KEYS = (
    "name", "role", "size", "uncompressedSize", "requests", "records", "window", "services",
    "title", "sha256", "subject", "files", "totals", "keyid", "sig", "payload", "extra",
)  # fmt: skip


def texts(surrogates: bool) -> st.SearchStrategy[str]:
    plain = st.one_of(st.sampled_from(WEIRD_TEXT), st.text(max_size=8))
    return st.one_of(st.sampled_from(LONE_SURROGATES), plain) if surrogates else plain


def nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


def json_values(surrogates: bool) -> st.SearchStrategy[Any]:
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.sampled_from(HUGE_INTS),
        texts(surrogates),
        st.sampled_from((20, 400, 990)).map(nested),
    )
    return st.recursive(
        leaves,
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=3)
        ),
        max_leaves=6,
    )


def containers(root: Any) -> list[Any]:
    """Every dict and list in ``root`` (shallow enough to be a real edit target)."""
    found, stack = [], [(root, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list) and depth < 12:
            found.append(node)
            stack.extend(
                (v, depth + 1) for v in (node.values() if isinstance(node, dict) else node)
            )
    return found


#: Built once: hypothesis computes properties of a recursive strategy each time one is made.
VALUES = json_values(False)


@st.composite
def json_edits(draw: st.DrawFn, seed: Any) -> Any:
    """Drop, add, retype or duplicate fields anywhere in a copy of ``seed``."""
    doc = json.loads(json.dumps(seed))
    for _ in range(draw(st.integers(1, 3))):
        nodes = containers(doc)
        node = nodes[draw(st.integers(0, len(nodes) - 1))]
        op = draw(st.sampled_from(["drop", "add", "retype", "bump", "duplicate"]))
        value = draw(VALUES)
        if isinstance(node, dict):
            keys = sorted(node)
            key = keys[draw(st.integers(0, len(keys) - 1))] if keys else "extra"
            if op == "drop" and keys:
                del node[key]
            elif op == "add":
                node[draw(st.sampled_from(KEYS))] = value
            elif op == "bump" and type(node.get(key)) is int:
                node[key] += draw(st.sampled_from((1, -1, 2**53, -(node[key] + 1))))
            else:
                node[key] = value
        elif node and op == "duplicate":
            node.append(node[draw(st.integers(0, len(node) - 1))])
        elif node and op == "drop":
            del node[draw(st.integers(0, len(node) - 1))]
        else:
            node.insert(draw(st.integers(0, len(node))), value)
    return doc


_SURROGATE = re.compile("[\ud800-\udfff]")
_KEY = re.compile(r'"([A-Za-z_]+)":')


@st.composite
def json_text(draw: st.DrawFn, doc: Any) -> bytes:
    """Serialize: canonical, spaced, unsorted, ASCII-escaped, or with a duplicate key.

    Lone surrogates are written as JSON escapes: valid JSON, invalid Unicode.
    """
    style = draw(st.sampled_from(["canonical", "canonical", "spaced", "unsorted", "ascii", "dup"]))
    text = json.dumps(
        doc,
        sort_keys=style != "unsorted",
        separators=(", ", ": ") if style == "spaced" else (",", ":"),
        ensure_ascii=style == "ascii",
    )
    text = _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    if style == "dup":
        keys = list(_KEY.finditer(text))
        m = keys[draw(st.integers(0, len(keys) - 1))]
        text = f'{text[: m.start()]}"{m.group(1)}":0,{text[m.start() :]}'
    return text.encode("utf-8")


@st.composite
def byte_edits(draw: st.DrawFn, seed: bytes) -> bytes:
    """Bit flips, byte sets, truncation, insertion and deletion on ``seed``."""
    buf = bytearray(seed)
    for _ in range(draw(st.integers(1, 4))):
        if not buf:
            break
        pos = draw(st.integers(0, len(buf) - 1))
        op = draw(st.sampled_from(["flip", "set", "truncate", "insert", "delete"]))
        if op == "flip":
            buf[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            buf[pos] = draw(st.sampled_from((0, 0x22, 0x5C, 0x7B, 0x7F, 0x80, 0xFF)))
        elif op == "truncate":
            del buf[pos:]
        elif op == "insert":
            buf[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        else:
            del buf[pos : pos + draw(st.integers(1, 64))]
    return bytes(buf)


def must_be_bundlekit_error(call: Callable[[], object]) -> BaseException | None:
    """Run ``call``; a BundlekitError is a fine answer to bad input, anything else fails."""
    try:
        call()
    except BundlekitError as exc:
        assert exc.message, "an error must say what is wrong"
        return exc
    return None


# --------------------------------------------------------------------------- parsers


def parse_manifest(data: bytes) -> None:
    Manifest.from_bytes(data, limits=DEFAULT_LIMITS)


def parse_envelope(data: bytes) -> None:
    Envelope.from_bytes(
        data, limits=DEFAULT_LIMITS
    ).pae()  # signature checks compute PAE over what was parsed


def parse_segment(data: bytes) -> None:
    for _ in segment.iter_records(
        io.BytesIO(data), compressed_size=len(data), limits=DEFAULT_LIMITS
    ):
        pass


def parse_path(data: bytes) -> None:
    layout.role_for_path(
        layout.check_relative_path(data.decode("utf-8", "surrogateescape"), limits=DEFAULT_LIMITS)
    )


#: Byte-level targets: parser and where its seed comes from. The archive reader goes here.
PARSERS: dict[str, tuple[Callable[[bytes], None], Callable[[Seeds], bytes]]] = {
    "manifest": (parse_manifest, lambda s: s.manifest),
    "envelope": (parse_envelope, lambda s: s.envelope),
    "segment": (parse_segment, lambda s: s.segments[TRACES]),
    "path": (parse_path, lambda s: TRACES.encode()),
    "archive": (tarcraft.parse_archive, lambda s: tarcraft.archive_of(s.bundle)),
}


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_byte_mutations_raise_only_bundlekit_errors(seeds: Seeds, name: str) -> None:
    parse, seed_of = PARSERS[name]

    @QUICK
    @given(data=byte_edits(seed_of(seeds)))
    def check(data: bytes) -> None:
        must_be_bundlekit_error(lambda: parse(data))

    check()


def test_manifest_json_mutations_raise_only_format_errors(seeds: Seeds) -> None:
    edits = json_edits(seeds.document)

    @QUICK
    @given(st.data())
    def check(data: st.DataObject) -> None:
        raw = data.draw(json_text(data.draw(edits)))
        error = must_be_bundlekit_error(lambda: Manifest.from_bytes(raw, limits=DEFAULT_LIMITS))
        if error is None:  # accepted: then it must be canonical and self-consistent
            assert canonical.dumps(json.loads(raw)) == raw
        else:
            assert isinstance(error, FormatError)

    check()


def test_manifest_nested_beyond_validator_recursion_is_format_error(seeds: Seeds) -> None:
    """A list nested 900 deep parses as JSON but used to crash the schema validator."""
    doc = seeds.document
    doc["predicate"]["services"] = [nested(900)]
    with pytest.raises(FormatError, match="nests too deeply"):
        Manifest.from_bytes(canonical.dumps(doc), limits=DEFAULT_LIMITS)
    doc["predicate"]["files"][0]["title"] = nested(950)  # and on jsonschema's listing path
    with pytest.raises(FormatError, match="manifest does not match"):
        Manifest.from_bytes(json.dumps(doc).encode(), limits=DEFAULT_LIMITS)


TOTALS_EDITS = {
    "uncompressed-size": ("totals", "uncompressedSize"),
    "signal-files": ("totals", "signals", "traces", "files"),
    "signal-requests": ("totals", "signals", "logs", "requests"),
    "signal-records": ("totals", "signals", "metrics", "records"),
}


@pytest.mark.parametrize("edit", sorted(TOTALS_EDITS))
def test_manifest_whose_totals_do_not_add_up_is_a_format_error(seeds: Seeds, edit: str) -> None:
    """Found by fuzzing: only totals.files and totals.size were checked against the files."""
    doc = seeds.document
    node = doc["predicate"]
    *path, last = TOTALS_EDITS[edit]
    for step in path:
        node = node[step]
    node[last] += 1
    with pytest.raises(FormatError, match="do not add up"):
        Manifest.from_bytes(canonical.dumps(doc), limits=DEFAULT_LIMITS)


def test_manifest_whose_services_are_not_the_files_union_is_a_format_error(seeds: Seeds) -> None:
    doc = seeds.document
    assert doc["predicate"]["services"]
    doc["predicate"]["services"] = doc["predicate"]["services"][1:]
    with pytest.raises(FormatError, match="services are not"):
        Manifest.from_bytes(canonical.dumps(doc), limits=DEFAULT_LIMITS)
    doc = seeds.document
    del doc["predicate"]["totals"]["signals"]["logs"]
    with pytest.raises(FormatError, match="logs totals"):
        Manifest.from_bytes(canonical.dumps(doc), limits=DEFAULT_LIMITS)
    assert Manifest.from_bytes(
        seeds.manifest, limits=DEFAULT_LIMITS
    ).files  # the packed manifest itself adds up


def test_large_invalid_manifest_is_refused_in_milliseconds_not_minutes(seeds: Seeds) -> None:
    """jsonschema's full listing took 18 s for a 4 MB manifest with one bad size at its end."""
    doc = seeds.document
    segment_entry = next(f for f in doc["predicate"]["files"] if f["name"] == TRACES)
    doc["predicate"]["files"] = [dict(segment_entry) for _ in range(10_000)]
    doc["predicate"]["files"][-1]["size"] = -1
    raw = json.dumps(doc).encode()
    assert len(raw) > 3_000_000
    started = time.perf_counter()
    with pytest.raises(FormatError, match=r"files\[9999\]\.size"):
        Manifest.from_bytes(raw, limits=DEFAULT_LIMITS)
    assert time.perf_counter() - started < 3.0  # ~0.1 s alone; the full listing took 18 s


def test_schema_violations_are_all_listed_up_to_the_listing_cap_only(seeds: Seeds) -> None:
    doc = seeds.document
    doc["predicate"]["files"][0]["size"] = -1
    doc["predicate"]["files"][1]["uncompressedSize"] = -2
    raw = canonical.dumps(doc)
    at_cap = Limits(max_schema_listing_bytes=len(raw))
    with pytest.raises(FormatError) as listed:
        Manifest.from_bytes(raw, at_cap)
    assert "-1 is less than" in listed.value.message and "-2 is less than" in listed.value.message
    one_over = Limits(max_schema_listing_bytes=len(raw) - 1)
    with pytest.raises(FormatError) as first_only:
        Manifest.from_bytes(raw, one_over)
    assert first_only.value.message.count("\n") == 1


signature_items = st.one_of(
    VALUES,
    st.fixed_dictionaries(
        {},
        optional={
            "keyid": st.one_of(st.text(max_size=70), VALUES),
            "sig": st.one_of(
                st.binary(max_size=128).map(lambda b: base64.b64encode(b).decode()),
                st.sampled_from(("", "=", "A", "AA=", "@@@@", "AAAA====")),
                VALUES,
            ),
            "extra": st.just(1),
        },
    ),
)


@st.composite
def odd_envelopes(draw: st.DrawFn, seed: bytes) -> bytes:
    doc = json.loads(seed)
    signatures = st.one_of(
        st.lists(signature_items, max_size=4),
        st.integers(60, 70).map(lambda n: doc["signatures"] * n),
        VALUES,
    )
    doc["signatures"] = draw(signatures)
    if draw(st.booleans()):
        doc["payload"] = draw(
            st.one_of(
                st.binary(max_size=64).map(lambda b: base64.b64encode(b).decode()),
                st.sampled_from(("", "A", "AA", "AAA=", "A A=", "-_-_", "AAAA\n")),
                VALUES,
            )
        )
    if draw(st.booleans()):
        doc["payloadType"] = draw(VALUES)
    return bytes(draw(json_text(doc)))


def test_envelope_with_odd_signature_arrays_raises_only_format_errors(seeds: Seeds) -> None:
    @QUICK
    @given(data=odd_envelopes(seeds.envelope))
    def check(data: bytes) -> None:
        error = must_be_bundlekit_error(lambda: parse_envelope(data))
        if error is None:
            envelope = Envelope.from_bytes(data, limits=DEFAULT_LIMITS)
            assert all(isinstance(s.sig, bytes) for s in envelope.signatures)
            assert len(envelope.signatures) <= 64
        else:
            assert isinstance(error, FormatError)

    check()


@st.composite
def framed_segments(draw: st.DrawFn) -> bytes:
    """Records whose length prefixes may lie, inside a valid checksummed zstd frame."""
    parts = []
    for payload in draw(st.lists(st.binary(max_size=40), max_size=5)):
        length = draw(
            st.one_of(
                st.just(len(payload)),
                st.sampled_from((0, len(payload) + 1, 2**32 - 1, 4 * 2**20, 4 * 2**20 + 1)),
            )
        )
        parts.append(length.to_bytes(4, "big") + payload)
    raw = b"".join(parts) + draw(st.sampled_from((b"", b"\x00", b"\x00\x00\x00\x09ab")))
    return raw


@QUICK
@given(raw=framed_segments())
def test_framing_inside_a_valid_frame_is_read_faithfully_or_refused(raw: bytes) -> None:
    blob = segment.compress_segment(raw)
    records: list[bytes] = []
    error = must_be_bundlekit_error(
        lambda: records.extend(
            segment.iter_records(io.BytesIO(blob), compressed_size=len(blob), limits=DEFAULT_LIMITS)
        )
    )
    if error is None:  # accepted: the records re-frame to exactly the stored bytes
        assert b"".join(framing.frame(r) for r in records) == raw
    else:
        assert isinstance(error, FormatError)


@st.composite
def corrupted_frames(draw: st.DrawFn, seed: bytes) -> bytes:
    head = bytearray(seed)
    pos = draw(st.integers(0, min(len(head), 18) - 1))  # frame header and first block header
    head[pos] = draw(st.integers(0, 255))
    return draw(
        st.sampled_from(
            (
                bytes(head),
                seed[: draw(st.integers(0, len(seed) - 1))],
                seed + draw(st.binary(min_size=1, max_size=8)),
                seed + seed,
            )
        )
    )


def test_corrupted_zstd_frames_raise_only_format_errors(seeds: Seeds) -> None:
    seed = seeds.segments[TRACES]
    accepted = []

    @QUICK
    @given(data=corrupted_frames(seed))
    def check(data: bytes) -> None:
        if must_be_bundlekit_error(lambda: parse_segment(data)) is None:
            accepted.append(data)

    check()
    # A frame cut short, with trailing bytes or a changed header byte is never read as good
    # unless the change was a no-op on the header (same content size, checksum flag, window).
    assert all(len(a) == len(seed) for a in accepted)


path_texts = st.lists(
    st.one_of(
        st.sampled_from(("/", "..", ".", "a", "otlp", "\\", "\x00", "\x7f", ":", "e\u0301")),
        st.sampled_from(LONE_SURROGATES),
        st.text(max_size=6),
    ),
    min_size=1,
    max_size=30,
).map("".join)


@QUICK
@given(name=path_texts)
def test_accepted_paths_are_relative_normalized_and_bounded(name: str) -> None:
    if (
        must_be_bundlekit_error(lambda: layout.check_relative_path(name, limits=DEFAULT_LIMITS))
        is not None
    ):
        return
    parts = name.split("/")
    assert not name.startswith("/")
    assert all(p not in ("", ".", "..") for p in parts)
    assert "\\" not in name and "\x00" not in name
    assert len(name.encode("utf-8", "surrogatepass")) <= 512 and len(parts) <= 16


# --------------------------------------------------------------------------- end to end


def signed_payloads(
    scratch: Path, seeds: Seeds, payload: bytes, key: GeneratedKey | None = None
) -> None:
    (scratch / layout.MANIFEST_NAME).write_bytes(payload)
    write_envelope(scratch, payload, key or seeds.key)


def accepted_manifest_matches_files(report: VerificationReport, scratch: Path) -> None:
    """A report that passes must describe exactly the files that are there."""
    assert report.manifest is not None
    on_disk = {
        p.relative_to(scratch).as_posix()
        for p in scratch.rglob("*")
        if p.is_file() and p.name != layout.MANIFEST_NAME and layout.SIGNATURES_DIR not in p.parts
    }
    assert {f.name for f in report.manifest.files} == on_disk
    for entry in report.manifest.files:
        assert hashlib.sha256((scratch / entry.name).read_bytes()).hexdigest() == entry.sha256


def test_resigned_mutated_manifests_give_a_report_never_an_exception(
    seeds: Seeds, scratch: Path, trusted: VerifyOptions
) -> None:
    edits = json_edits(seeds.document)

    @E2E
    @given(st.data())
    def check(data: st.DataObject) -> None:
        payload = data.draw(json_text(data.draw(edits)))
        signed_payloads(scratch, seeds, payload)
        try:
            report = check_bundle(scratch, trusted)
        finally:
            restore(scratch, seeds)
        if report.ok:
            accepted_manifest_matches_files(report, scratch)
        else:
            assert report.failures[0].message

    check()


@pytest.mark.parametrize("signature", ["untrusted-key", "none"])
def test_mutated_manifests_without_a_trusted_signature_never_pass(
    seeds: Seeds, scratch: Path, trusted: VerifyOptions, other_key: GeneratedKey, signature: str
) -> None:
    edits = json_edits(seeds.document)

    @E2E
    @given(st.data())
    def check(data: st.DataObject) -> None:
        payload = data.draw(json_text(data.draw(edits)))
        if signature == "none":
            (scratch / layout.MANIFEST_NAME).write_bytes(payload)
            (scratch / layout.ENVELOPE_NAME).unlink()
        else:
            signed_payloads(scratch, seeds, payload, other_key)
        try:
            report = check_bundle(scratch, trusted)
        finally:
            restore(scratch, seeds)
        code = "unsigned" if signature == "none" else "threshold"
        assert any(f.code == code for f in report.failures)

    check()


def test_mutated_envelopes_never_pass_unless_the_signed_payload_is_unchanged(
    seeds: Seeds, scratch: Path, trusted: VerifyOptions
) -> None:
    @E2E
    @given(data=st.one_of(byte_edits(seeds.envelope), odd_envelopes(seeds.envelope)))
    def check(data: bytes) -> None:
        (scratch / layout.ENVELOPE_NAME).write_bytes(data)
        try:
            report = check_bundle(scratch, trusted)
        finally:
            restore(scratch, seeds)
        if report.ok:
            assert Envelope.from_bytes(data, limits=DEFAULT_LIMITS).payload == seeds.manifest

    check()


def test_resigned_mutated_segments_give_a_report_never_an_exception(
    seeds: Seeds, scratch: Path, trusted: VerifyOptions
) -> None:
    original = seeds.segments[TRACES]
    segment_raw = b"".join(
        framing.frame(r) for r in segment.iter_records(io.BytesIO(original), limits=DEFAULT_LIMITS)
    )
    assert segment_raw

    @E2E
    @given(
        data=st.one_of(
            byte_edits(original),
            corrupted_frames(original),
            byte_edits(segment_raw).map(segment.compress_segment),
        )
    )
    def check(data: bytes) -> None:
        doc = seeds.document
        item = next(f for f in doc["predicate"]["files"] if f["name"] == TRACES)
        doc["predicate"]["totals"]["size"] += len(data) - item["size"]
        item["size"] = len(data)
        subject = next(s for s in doc["subject"] if s["name"] == TRACES)
        subject["digest"]["sha256"] = hashlib.sha256(data).hexdigest()
        (scratch / TRACES).write_bytes(data)
        signed_payloads(scratch, seeds, canonical.dumps(doc))
        try:
            report = check_bundle(scratch, trusted)
        finally:
            restore(scratch, seeds)
        if report.ok:  # deep checks passed: the records are the ones the manifest counts
            records = list(segment.iter_records(io.BytesIO(data), limits=DEFAULT_LIMITS))
            assert len(records) == item["requests"]
        else:
            assert {f.code for f in report.failures} <= {"deep", "undecodable"}

    check()


# --------------------------------------------------------------------------- known bugs

#: Free-text fields of a manifest: any string the schema's length bounds admit.
FREE_TEXT: tuple[tuple[str, ...], ...] = (
    ("predicate", "custody", "operator"),
    ("predicate", "custody", "reason"),
    ("predicate", "producer", "platform"),
    ("predicate", "services", 0),
)
ANY_TEXT = st.one_of(st.sampled_from(LONE_SURROGATES), st.text(min_size=1, max_size=20))


def escaped_json(doc: Any) -> bytes:
    """Canonical-looking JSON where lone surrogates are JSON escapes (``\\ud800``)."""
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text).encode("utf-8")


@QUICK
@given(where=st.sampled_from(FREE_TEXT), text=ANY_TEXT)
def test_any_text_in_a_free_text_manifest_field_is_accepted_or_a_format_error(
    seeds: Seeds, where: tuple[str, ...], text: str
) -> None:
    doc = seeds.document
    node: Any = doc
    for step in where[:-1]:
        node = node[step]
    node[where[-1]] = text
    if (
        must_be_bundlekit_error(
            lambda: Manifest.from_bytes(escaped_json(doc), limits=DEFAULT_LIMITS)
        )
        is None
    ):
        text.encode("utf-8")  # accepted text is valid Unicode


@QUICK
@given(payload_type=ANY_TEXT, keyid=ANY_TEXT)
def test_any_text_as_payload_type_or_keyid_is_accepted_or_a_format_error(
    seeds: Seeds, payload_type: str, keyid: str
) -> None:
    doc = json.loads(seeds.envelope)
    doc["payloadType"] = payload_type
    doc["signatures"][0]["keyid"] = keyid
    must_be_bundlekit_error(lambda: parse_envelope(escaped_json(doc)))


LONE_SURROGATE_OPERATOR = "\\ud800"  # JSON escape of a lone surrogate: valid JSON, not Unicode


def manifest_with_escaped_surrogate(seeds: Seeds) -> bytes:
    doc = seeds.document
    doc["predicate"]["custody"]["operator"] = "@OPERATOR@"
    return canonical.dumps(doc).replace(b"@OPERATOR@", LONE_SURROGATE_OPERATOR.encode())


def test_manifest_with_escaped_lone_surrogate_is_a_format_error(seeds: Seeds) -> None:
    with pytest.raises(FormatError):
        Manifest.from_bytes(manifest_with_escaped_surrogate(seeds), limits=DEFAULT_LIMITS)


def test_signed_manifest_with_escaped_lone_surrogate_gives_a_report(
    seeds: Seeds, scratch: Path, trusted: VerifyOptions
) -> None:
    signed_payloads(scratch, seeds, manifest_with_escaped_surrogate(seeds))
    try:
        report = check_bundle(scratch, trusted)
    finally:
        restore(scratch, seeds)
    assert report.exit_code is ExitCode.FORMAT, report.failures


def test_unsigned_manifest_with_escaped_lone_surrogate_gives_a_report(
    seeds: Seeds, scratch: Path, trusted: VerifyOptions
) -> None:
    (scratch / layout.MANIFEST_NAME).write_bytes(manifest_with_escaped_surrogate(seeds))
    (scratch / layout.ENVELOPE_NAME).unlink()
    try:
        report = check_bundle(scratch, trusted)
    finally:
        restore(scratch, seeds)
    assert report.exit_code in (ExitCode.SIGNATURE, ExitCode.FORMAT), report.failures


def test_envelope_with_lone_surrogate_payload_type_is_a_format_error() -> None:
    data = b'{"payload":"","payloadType":"\\ud800","signatures":[]}'
    with pytest.raises(FormatError):
        Envelope.from_bytes(data, limits=DEFAULT_LIMITS).pae()


def test_verify_text_output_survives_a_lone_surrogate_key_id(seeds: Seeds, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(seeds.bundle, bundle)
    envelope = json.loads(seeds.envelope)
    envelope["signatures"].append({"keyid": "@KEYID@", "sig": "AAAA"})
    text = json.dumps(envelope).replace("@KEYID@", "\\ud800\\u001b[31m")
    (bundle / layout.ENVELOPE_NAME).write_text(text)
    result = subprocess.run(
        [sys.executable, "-m", "bundlekit", "verify", str(bundle), "--key", seeds.key.public_path],
        capture_output=True,
        text=True,
        timeout=120,
    )
    # Accepted with the odd signature ignored, or the envelope refused as not Unicode (which
    # leaves no readable signature: exit 3 takes precedence over 5).
    assert result.returncode in (ExitCode.OK, ExitCode.SIGNATURE, ExitCode.FORMAT), result.stderr
    assert "internal error" not in result.stderr
    assert "\x1b" not in result.stdout
