"""Packing: contents, statistics, determinism, and failing without leaving debris."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bundlekit.errors import InputError, UsageError
from bundlekit.format.manifest import Custody, Manifest
from bundlekit.format.segment import iter_records
from bundlekit.limits import DEFAULT_LIMITS, Limits
from bundlekit.otlp.inputs import detect_signal, iter_input_requests
from bundlekit.otlp.signals import Signal
from bundlekit.pack import PackInput, PackOptions, pack_bundle
from tests import otlpgen
from tests.bundles import FIXED_ID, pack_small, small_inputs
from tests.conftest import SAMPLE_OTLP, SAMPLES
from tests.oracle import oracle_stats


def _segments_requests(bundle: Path, manifest: Manifest, signal: Signal) -> list[bytes]:
    out: list[bytes] = []
    for entry in manifest.segments(signal):
        with open(bundle / entry.name, "rb") as handle:
            out.extend(iter_records(handle, limits=DEFAULT_LIMITS))
    return out


def test_pack_samples_records_everything_the_inputs_hold(tmp_path: Path) -> None:
    assert len(SAMPLE_OTLP) == 3, "samples/otlp should hold traces, metrics and logs"
    result = pack_bundle(
        SAMPLE_OTLP,
        tmp_path / "b",
        PackOptions(
            config=SAMPLES / "config" / "collector.yaml",
            dashboards=SAMPLES / "dashboards",
            attachments=(SAMPLES / "README.md",),
        ),
    )
    manifest = result.manifest
    for path in SAMPLE_OTLP:
        signal = detect_signal(path, limits=DEFAULT_LIMITS)
        original = list(iter_input_requests(path, limits=DEFAULT_LIMITS))
        stored = _segments_requests(tmp_path / "b", manifest, signal)
        assert stored == original  # byte for byte, in order
        expected = oracle_stats(signal, original)
        totals = manifest.signal_totals()[signal.value]
        assert (totals["requests"], totals["records"]) == (expected.requests, expected.records)
        assert set(manifest.services) >= expected.services
    roles = {f.role.value for f in manifest.files}
    assert roles == {"traces", "metrics", "logs", "collector-config", "dashboard", "attachment"}
    assert (tmp_path / "b" / "config" / "collector.yaml").read_bytes() == (
        SAMPLES / "config" / "collector.yaml"
    ).read_bytes()


def test_same_input_and_metadata_give_identical_manifest(tmp_path: Path) -> None:
    first = pack_small(tmp_path / "in", tmp_path / "b1")
    second = pack_small(tmp_path / "in2", tmp_path / "b2")
    assert first.manifest.raw == second.manifest.raw
    assert (tmp_path / "b1" / "manifest.json").read_bytes() == first.manifest.raw


def test_manifest_shape(tmp_path: Path) -> None:
    result = pack_small(tmp_path / "in", tmp_path / "b", custody=Custody("alice", "INC-7", "audit"))
    doc = json.loads((tmp_path / "b" / "manifest.json").read_bytes())
    assert doc["_type"] == "https://in-toto.io/Statement/v1"
    assert doc["predicateType"] == "https://bundlekit.dev/telemetry-bundle/v1"
    predicate = doc["predicate"]
    assert predicate["bundleId"] == FIXED_ID
    assert predicate["created"] == "2026-11-01T00:00:00Z"
    assert predicate["custody"] == {"operator": "alice", "caseId": "INC-7", "reason": "audit"}
    assert predicate["retention"] == {"retainUntil": "2026-12-01", "basis": "profile"}
    assert predicate["totals"]["signals"]["traces"]["records"] == 80
    assert predicate["totals"]["signals"]["logs"]["window"] == {
        "earliest": "2026-11-01T00:00:00Z",
        "latest": "2026-11-01T00:00:00.000000069Z",
    }
    assert sorted(predicate["services"]) == ["auth", "checkout", "inventory", "payments"]
    assert [s["name"] for s in doc["subject"]] == [f["name"] for f in predicate["files"]]
    assert result.manifest.files[0].name == "otlp/logs/000001.binpb.zst"


@pytest.mark.parametrize(
    ("profile", "retention", "expected"),
    [
        ("forensic", None, "2027-04-30"),
        ("default", "90d", "2027-01-30"),
        ("default", "2030-01-01", "2030-01-01"),
    ],
)
def test_retention(tmp_path: Path, profile: str, retention: str | None, expected: str) -> None:
    result = pack_small(tmp_path / "in", tmp_path / "b", profile=profile, retention=retention)
    assert result.manifest.retain_until == expected


def test_segments_roll_over_at_the_size_limit(tmp_path: Path) -> None:
    requests = [otlpgen.traces(20, start=otlpgen.BASE_NS + i) for i in range(30)]
    path = tmp_path / "t.binpb"
    path.write_bytes(otlpgen.stream(*requests))
    limit = 5 * (len(requests[0]) + 4)
    result = pack_bundle(
        [path], tmp_path / "b", PackOptions(limits=Limits(max_segment_bytes=limit))
    )
    segments = result.manifest.segments(Signal.TRACES)
    assert len(segments) == 6
    assert all(s.uncompressed_size <= limit for s in segments)
    assert _segments_requests(tmp_path / "b", result.manifest, Signal.TRACES) == requests


def test_oversized_request_is_split_keeping_every_record(tmp_path: Path) -> None:
    big = otlpgen.traces(400)
    path = tmp_path / "big.binpb"
    path.write_bytes(big)  # the single-request form
    limit = len(big) // 3
    result = pack_bundle(
        [path], tmp_path / "b", PackOptions(limits=Limits(max_request_bytes=limit))
    )
    stored = _segments_requests(tmp_path / "b", result.manifest, Signal.TRACES)
    assert len(stored) >= 3 and all(len(r) <= limit for r in stored)
    before, after = oracle_stats(Signal.TRACES, [big]), oracle_stats(Signal.TRACES, stored)
    assert (after.records, after.earliest_ns, after.latest_ns, after.services) == (
        before.records,
        before.earliest_ns,
        before.latest_ns,
        before.services,
    )
    spans = [
        span.SerializeToString()
        for data in stored
        for span in Signal.TRACES.spec.request_class.FromString(data)
        .resource_spans[0]
        .scope_spans[0]
        .spans
    ]
    original = (
        Signal.TRACES.spec.request_class.FromString(big).resource_spans[0].scope_spans[0].spans
    )
    assert spans == [span.SerializeToString() for span in original]


def test_single_request_and_stream_forms_are_both_detected(tmp_path: Path) -> None:
    (tmp_path / "one.pb").write_bytes(otlpgen.logs(3))
    (tmp_path / "many.pb").write_bytes(otlpgen.stream(otlpgen.metrics(2), otlpgen.metrics(2)))
    assert detect_signal(tmp_path / "one.pb", limits=DEFAULT_LIMITS) is Signal.LOGS
    assert detect_signal(tmp_path / "many.pb", limits=DEFAULT_LIMITS) is Signal.METRICS


def _no_debris(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".b"))


BAD_PACKS = {
    "dashboard_without_title": ("dashboards", b'{"panels": []}', "no title"),
    "dashboard_not_json": ("dashboards", b"{oops", "not valid JSON"),
    "config_not_yaml": ("config", b"receivers: [unclosed", "not valid YAML"),
    "config_not_mapping": ("config", b"- just\n- a list\n", "not a YAML mapping"),
    "otlp_garbage": ("otlp", b"\x0a\xff\xff\xff\xff garbage", "does not parse"),
    "otlp_truncated_stream": ("otlp", otlpgen.stream(otlpgen.logs(5))[:-10], "truncated"),
    "otlp_empty": ("otlp", b"", "is empty"),
}


@pytest.mark.parametrize("name", sorted(BAD_PACKS))
def test_bad_input_fails_clearly_and_leaves_nothing(tmp_path: Path, name: str) -> None:
    kind, data, words = BAD_PACKS[name]
    inputs = small_inputs(tmp_path / "in")
    options = PackOptions()
    if kind == "dashboards":
        (tmp_path / "dash").mkdir()
        (tmp_path / "dash" / "bad.json").write_bytes(data)
        options = PackOptions(dashboards=tmp_path / "dash")
    elif kind == "config":
        (tmp_path / "c.yaml").write_bytes(data)
        options = PackOptions(config=tmp_path / "c.yaml")
    else:
        (tmp_path / "bad.binpb").write_bytes(data)
        inputs.append(PackInput(tmp_path / "bad.binpb"))
    out = tmp_path / "out"
    with pytest.raises(InputError, match=words):
        pack_bundle(inputs, out, options)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_failure_mid_pack_removes_the_partial_bundle(tmp_path: Path) -> None:
    good = otlpgen.stream(*[otlpgen.traces(10) for _ in range(5)])
    bad = tmp_path / "late.binpb"
    bad.write_bytes(good + b"\x00\x00\x01\x00" + b"short")  # a record cut short at the end
    out = tmp_path / "out"
    with pytest.raises(InputError, match="truncated"):
        pack_bundle([PackInput(bad, Signal.TRACES)], out)
    assert not out.exists()
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_refuses_to_overwrite_an_existing_bundle(tmp_path: Path) -> None:
    pack_small(tmp_path / "in", tmp_path / "b")
    before = (tmp_path / "b" / "manifest.json").read_bytes()
    with pytest.raises(UsageError, match="already exists"):
        pack_small(tmp_path / "in", tmp_path / "b")
    assert (tmp_path / "b" / "manifest.json").read_bytes() == before


def test_wrong_explicit_signal_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "logs.binpb"
    path.write_bytes(otlpgen.stream(otlpgen.logs(5)))
    with pytest.raises(InputError):
        pack_bundle([PackInput(path, Signal.TRACES)], tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_text_file_is_not_otlp(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello, this is not telemetry\n")
    with pytest.raises(InputError, match="is not an OTLP protobuf file"):
        pack_bundle([path], tmp_path / "b")


def test_fifo_input_is_refused_without_blocking(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="not a regular file"):
        pack_bundle([fifo], tmp_path / "b")
