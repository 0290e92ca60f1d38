"""The manifest: an in-toto Statement v1 whose predicate describes the bundle.

"Parse, don't validate": a :class:`Manifest` is only ever built by
:meth:`Manifest.from_bytes`, which checks the schema and the cross-field rules,
so code holding a Manifest never re-checks its structure.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from bundlekit.errors import FormatError, LimitExceeded
from bundlekit.format import canonical, schema
from bundlekit.format.layout import Role, check_relative_path, role_for_path
from bundlekit.format.timefmt import format_ns, parse_ns
from bundlekit.limits import Limits
from bundlekit.otlp.signals import SIGNALS, Signal

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://bundlekit.dev/telemetry-bundle/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"


class Profile(StrEnum):
    """Collector profiles from the telemetry design: they set default retention."""

    DEFAULT = "default"
    FORENSIC = "forensic"
    AIRGAP = "airgap"


PROFILES = tuple(p.value for p in Profile)
#: Days a bundle is kept when ``--retention`` is not given.
PROFILE_RETENTION_DAYS = {"default": 30, "forensic": 180, "airgap": 180}


@dataclass(frozen=True)
class FileEntry:
    """One bundled file as the manifest describes it."""

    name: str
    role: Role
    media_type: str
    sha256: str
    size: int
    uncompressed_size: int
    requests: int | None = None
    records: int | None = None
    earliest_ns: int | None = None
    latest_ns: int | None = None
    services: tuple[str, ...] = ()
    title: str | None = None

    @property
    def signal(self) -> Signal | None:
        return self.role.signal

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "name": self.name,
            "role": self.role.value,
            "mediaType": self.media_type,
            "size": self.size,
            "uncompressedSize": self.uncompressed_size,
        }
        if self.signal is not None:
            doc["requests"] = self.requests or 0
            doc["records"] = self.records or 0
            doc["services"] = sorted(self.services)
            if self.earliest_ns is not None and self.latest_ns is not None:
                doc["window"] = _window(self.earliest_ns, self.latest_ns)
        if self.title is not None:
            doc["title"] = self.title
        return doc


@dataclass(frozen=True)
class Custody:
    """Who made the bundle, for which case, and why."""

    operator: str | None = None
    case_id: str | None = None
    reason: str | None = None

    def to_json(self) -> dict[str, str]:
        pairs = (("operator", self.operator), ("caseId", self.case_id), ("reason", self.reason))
        return {k: v for k, v in pairs if v}


@dataclass(frozen=True)
class Manifest:
    """A parsed, schema-valid, self-consistent manifest and its exact bytes."""

    raw: bytes
    document: dict[str, Any] = field(repr=False)
    bundle_id: str
    created: str
    profile: str
    custody: Custody
    retain_until: str
    files: tuple[FileEntry, ...]

    @classmethod
    def from_bytes(cls, raw: bytes, limits: Limits) -> Manifest:
        """Parse and check a manifest; raise FormatError listing what is wrong."""
        if len(raw) > limits.max_manifest_bytes:
            raise LimitExceeded(
                f"manifest is {len(raw)} bytes, over the limit of {limits.max_manifest_bytes}"
            )
        document = canonical.loads(raw, "manifest")
        schema.validate(document, list_all=len(raw) <= limits.max_schema_listing_bytes)
        if not canonical.is_canonical_schema_valid(document, raw):
            raise FormatError(
                "manifest is not in canonical JSON form (RFC 8785)",
                "bundlekit always writes canonical manifests; this one was re-serialized or edited",
            )
        digests = {s["name"]: s["digest"]["sha256"] for s in document["subject"]}
        try:
            files = tuple(
                _file_from_json(item, digests.get(item["name"], ""), limits)
                for item in document["predicate"]["files"]
            )
        except ValueError as exc:  # a timestamp the schema's pattern admits but no calendar has
            raise FormatError(
                f"manifest holds an impossible timestamp ({exc})",
                "the manifest was edited or written by an incompatible tool",
            ) from exc
        _check_consistency(document, files)
        predicate = document["predicate"]
        custody = predicate["custody"]
        return cls(
            raw=raw,
            document=document,
            bundle_id=predicate["bundleId"],
            created=predicate["created"],
            profile=predicate["profile"],
            custody=Custody(custody.get("operator"), custody.get("caseId"), custody.get("reason")),
            retain_until=predicate["retention"]["retainUntil"],
            files=files,
        )

    def segments(self, signal: Signal) -> list[FileEntry]:
        """The signal's segments in stored (and replay) order."""
        return sorted((f for f in self.files if f.signal is signal), key=lambda f: f.name)

    @property
    def services(self) -> list[str]:
        return list(self.document["predicate"]["services"])

    @property
    def created_ns(self) -> int:
        """Creation time in Unix nanoseconds (millisecond precision, as recorded)."""
        from bundlekit.format.timefmt import parse_ns

        return parse_ns(self.created)

    def signal_totals(self) -> dict[str, dict[str, Any]]:
        return dict(self.document["predicate"]["totals"]["signals"])


def build_manifest(
    files: Iterable[FileEntry],
    *,
    bundle_id: str,
    created_ns: int,
    producer: dict[str, str],
    profile: str,
    custody: Custody,
    retain_until: str,
    retention_basis: str,
    limits: Limits,
) -> Manifest:
    """Assemble, canonicalize and re-parse a manifest (so it passes its own checks)."""
    entries = sorted(files, key=lambda f: f.name)
    signals: dict[str, Any] = {}
    for signal in SIGNALS:
        mine = [f for f in entries if f.signal is signal]
        if mine:
            totals: dict[str, Any] = {
                "files": len(mine),
                "requests": sum(f.requests or 0 for f in mine),
                "records": sum(f.records or 0 for f in mine),
            }
            window = _span(mine)
            if window:
                totals["window"] = _window(*window)
            signals[signal.value] = totals
    predicate: dict[str, Any] = {
        "bundleId": bundle_id,
        "created": format_ns(created_ns - created_ns % 1_000_000),
        "producer": producer,
        "profile": profile,
        "custody": custody.to_json(),
        "retention": {"retainUntil": retain_until, "basis": retention_basis},
        "files": [f.to_json() for f in entries],
        "totals": {
            "files": len(entries),
            "size": sum(f.size for f in entries),
            "uncompressedSize": sum(f.uncompressed_size for f in entries),
            "signals": signals,
        },
        "services": sorted({s for f in entries for s in f.services}),
    }
    overall = _span([f for f in entries if f.signal is not None])
    if overall:
        predicate["window"] = _window(*overall)
    document = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": f.name, "digest": {"sha256": f.sha256}} for f in entries],
        "predicateType": PREDICATE_TYPE,
        "predicate": predicate,
    }
    return Manifest.from_bytes(canonical.dumps(document), limits)


def _window(earliest_ns: int, latest_ns: int) -> dict[str, str]:
    return {"earliest": format_ns(earliest_ns), "latest": format_ns(latest_ns)}


def _span(entries: list[FileEntry]) -> tuple[int, int] | None:
    lows = [f.earliest_ns for f in entries if f.earliest_ns is not None]
    highs = [f.latest_ns for f in entries if f.latest_ns is not None]
    if not lows or not highs:
        return None
    return min(lows), max(highs)


def _file_from_json(item: dict[str, Any], sha256: str, limits: Limits) -> FileEntry:
    window = item.get("window")
    return FileEntry(
        name=check_relative_path(item["name"], limits),
        role=Role(item["role"]),
        media_type=item["mediaType"],
        sha256=sha256,
        size=item["size"],
        uncompressed_size=item["uncompressedSize"],
        requests=item.get("requests"),
        records=item.get("records"),
        earliest_ns=parse_ns(window["earliest"]) if window else None,
        latest_ns=parse_ns(window["latest"]) if window else None,
        services=tuple(item.get("services", ())),
        title=item.get("title"),
    )


def _check_consistency(document: dict[str, Any], files: tuple[FileEntry, ...]) -> None:
    """Rules JSON Schema cannot express: subjects match files, totals add up."""
    problems: list[str] = []
    subjects = document["subject"]
    names = [s["name"] for s in subjects]
    if len(set(names)) != len(names):
        problems.append("subject lists a file more than once")
    if names != [f.name for f in files]:
        problems.append("subject and predicate.files do not list the same files in the same order")
    if names != sorted(names):
        problems.append("subject is not sorted by name")
    for entry in files:
        expected = role_for_path(entry.name)
        if expected is not entry.role:
            problems.append(f"{entry.name}: role {entry.role.value} does not fit its path")
        if entry.name.startswith("signatures/"):
            problems.append(f"{entry.name}: files under signatures/ are never subjects")
        if (
            entry.earliest_ns is not None
            and entry.latest_ns is not None
            and (entry.earliest_ns > entry.latest_ns)
        ):
            problems.append(f"{entry.name}: window ends before it starts")
    predicate = document["predicate"]
    totals = predicate["totals"]
    if (
        totals["files"] != len(files)
        or totals["size"] != sum(f.size for f in files)
        or totals["uncompressedSize"] != sum(f.uncompressed_size for f in files)
    ):
        problems.append("totals do not add up to the listed files")
    problems.extend(_signal_total_problems(totals["signals"], files))
    if predicate["services"] != sorted({s for f in files for s in f.services}):
        problems.append("services are not the sorted union of the files' services")
    if problems:
        raise FormatError(
            "manifest is inconsistent:\n  " + "\n  ".join(problems),
            "the manifest was edited or written by an incompatible tool",
        )


def _signal_total_problems(signals: dict[str, Any], files: tuple[FileEntry, ...]) -> list[str]:
    """Per-signal totals must count exactly that signal's files (inspect shows them as is)."""
    problems = []
    for signal in SIGNALS:
        mine = [f for f in files if f.signal is signal]
        stated = signals.get(signal.value)
        if not mine:
            if stated is not None:
                problems.append(f"totals list {signal.value} but no {signal.value} file")
            continue
        counted = (len(mine), sum(f.requests or 0 for f in mine), sum(f.records or 0 for f in mine))
        if stated is None or (stated["files"], stated["requests"], stated["records"]) != counted:
            problems.append(f"{signal.value} totals do not add up to its files")
    return problems
