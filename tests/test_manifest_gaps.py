"""Manifest building and parsing defects that mutation testing found unguarded.

Each test is named after the behaviour change it would catch (see
docs/mutation.md): defaults that fill in absent counts, windows built from
half-known timestamps, creation time rounding, profile retention, and
windows that start and end on the same nanosecond.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bundlekit.errors import FormatError
from bundlekit.format import canonical
from bundlekit.format.layout import MEDIA_TYPES, Role, segment_name
from bundlekit.format.manifest import (
    PROFILES,
    Custody,
    FileEntry,
    Manifest,
    build_manifest,
)
from bundlekit.format.timefmt import format_ns
from bundlekit.limits import DEFAULT_LIMITS
from bundlekit.otlp.signals import Signal
from tests.bundles import FIXED_CREATED_NS, FIXED_ID, pack_small

SHA = "ab" * 32
T0 = FIXED_CREATED_NS - 3_600_000_000_000


def _segment(
    index: int = 1,
    *,
    requests: int | None = None,
    records: int | None = None,
    earliest: int | None = None,
    latest: int | None = None,
) -> FileEntry:
    return FileEntry(
        name=segment_name(Signal.TRACES, index),
        role=Role.TRACES,
        media_type=MEDIA_TYPES[Role.TRACES],
        sha256=SHA,
        size=10,
        uncompressed_size=20,
        requests=requests,
        records=records,
        earliest_ns=earliest,
        latest_ns=latest,
    )


def _build(*entries: FileEntry, created_ns: int = FIXED_CREATED_NS) -> Manifest:
    return build_manifest(
        entries,
        bundle_id=FIXED_ID,
        created_ns=created_ns,
        producer={"tool": "bundlekit", "version": "0.0", "python": "3.11", "platform": "test"},
        profile="default",
        custody=Custody(),
        retain_until="2030-01-01",
        retention_basis="option",
        limits=DEFAULT_LIMITS,
    )


@pytest.mark.parametrize(
    ("profile", "expected"),
    [("default", "2026-12-01"), ("forensic", "2027-04-30"), ("airgap", "2027-04-30")],
)
def test_each_profile_keeps_a_bundle_for_its_documented_days(
    tmp_path: Path, profile: str, expected: str
) -> None:
    result = pack_small(tmp_path / "in", tmp_path / "b", profile=profile)
    assert result.manifest.retain_until == expected
    assert result.manifest.document["predicate"]["retention"]["basis"] == "profile"
    assert profile in PROFILES


def test_segment_without_counts_is_written_with_zero_not_one() -> None:
    doc = _segment().to_json()
    assert (doc["requests"], doc["records"], doc["services"]) == (0, 0, [])
    manifest = _build(_segment(), _segment(2, requests=3, records=7))
    totals = manifest.signal_totals()["traces"]
    assert (totals["files"], totals["requests"], totals["records"]) == (2, 3, 7)


def test_half_known_window_is_left_out_not_written_or_crashed_on() -> None:
    only_start = _segment(earliest=T0)
    only_end = _segment(2, latest=T0)
    assert "window" not in only_start.to_json()
    assert "window" not in only_end.to_json()
    for entries in ((only_start,), (only_end,), (only_start, _segment(3))):
        predicate = _build(*entries).document["predicate"]
        assert "window" not in predicate
        assert "window" not in predicate["totals"]["signals"]["traces"]


def test_window_of_one_instant_is_valid() -> None:
    manifest = _build(_segment(earliest=T0, latest=T0))
    (entry,) = manifest.files
    assert (entry.earliest_ns, entry.latest_ns) == (T0, T0)
    assert manifest.document["predicate"]["window"] == {
        "earliest": format_ns(T0),
        "latest": format_ns(T0),
    }
    assert Manifest.from_bytes(manifest.raw, limits=DEFAULT_LIMITS).files == manifest.files


def test_windows_are_combined_from_the_earliest_start_and_latest_end() -> None:
    manifest = _build(
        _segment(1, earliest=T0 + 5, latest=T0 + 10), _segment(2, earliest=T0, latest=T0 + 7)
    )
    assert manifest.document["predicate"]["window"] == {
        "earliest": format_ns(T0),
        "latest": format_ns(T0 + 10),
    }


def test_creation_time_is_cut_to_the_millisecond_not_rounded_up() -> None:
    manifest = _build(_segment(), created_ns=FIXED_CREATED_NS + 123_456_789)
    assert manifest.created == format_ns(FIXED_CREATED_NS + 123_000_000)
    assert manifest.created.endswith(".123Z")


@pytest.mark.parametrize(
    ("name", "role"),
    [
        ("otlp/traces/000001.binpb.zst", Role.TRACES),
        ("otlp/logs/123456.binpb.zst", Role.LOGS),
        ("otlp/logs/1.binpb.zst", None),
        ("otlp/spans/000001.binpb.zst", None),
        ("config/collector.yaml", Role.COLLECTOR_CONFIG),
        ("config/dashboards/overview.json", Role.DASHBOARD),
        ("config/dashboards/nested/overview.json", None),
        ("config/dashboards/overview.yaml", None),
        ("config/other.json", None),
        ("attachments/notes.json", Role.ATTACHMENT),
        ("attachments/deep/er/file.txt", Role.ATTACHMENT),
        ("attachments", None),
        ("notes.json", None),
    ],
)
def test_role_for_path_gives_each_place_its_one_role(name: str, role: Role | None) -> None:
    from bundlekit.format.layout import role_for_path

    assert role_for_path(name) is role


def test_signed_manifest_listing_a_json_attachment_is_consistent(tmp_path: Path) -> None:
    entry = FileEntry(
        name="attachments/notes.json",
        role=Role.ATTACHMENT,
        media_type=MEDIA_TYPES[Role.ATTACHMENT],
        sha256=SHA,
        size=3,
        uncompressed_size=3,
    )
    manifest = _build(_segment(), entry)
    assert [f.role for f in manifest.files] == [Role.ATTACHMENT, Role.TRACES]


def _one_metrics_file_document() -> dict[str, Any]:
    """A valid manifest document with metrics only: no traces and no logs file."""
    entry = FileEntry(
        name=segment_name(Signal.METRICS, 1),
        role=Role.METRICS,
        media_type=MEDIA_TYPES[Role.METRICS],
        sha256=SHA,
        size=100,
        uncompressed_size=400,
        requests=2,
        records=10,
        earliest_ns=1_000_000_000,
        latest_ns=2_000_000_000,
        services=("svc",),
    )
    manifest = build_manifest(
        [entry],
        bundle_id=FIXED_ID,
        created_ns=FIXED_CREATED_NS,
        producer={"tool": "bundlekit", "version": "0", "python": "3", "platform": "x"},
        profile="default",
        custody=Custody(),
        retain_until="2027-01-01",
        retention_basis="profile",
        limits=DEFAULT_LIMITS,
    )
    document: dict[str, Any] = json.loads(manifest.raw)
    return document


def test_totals_for_a_signal_without_files_are_refused() -> None:
    document = _one_metrics_file_document()
    document["predicate"]["totals"]["signals"]["logs"] = {"files": 0, "requests": 0, "records": 0}
    with pytest.raises(FormatError, match="totals list logs but no logs file"):
        Manifest.from_bytes(canonical.dumps(document), limits=DEFAULT_LIMITS)


def test_totals_of_a_later_signal_are_checked_after_a_signal_without_files() -> None:
    """Traces come first and have no file here; metrics' wrong totals must still be caught."""
    document = _one_metrics_file_document()
    assert Manifest.from_bytes(
        canonical.dumps(document), limits=DEFAULT_LIMITS
    ).files  # as built, it adds up
    document["predicate"]["totals"]["signals"]["metrics"]["records"] += 1
    with pytest.raises(FormatError, match="metrics totals do not add up"):
        Manifest.from_bytes(canonical.dumps(document), limits=DEFAULT_LIMITS)
