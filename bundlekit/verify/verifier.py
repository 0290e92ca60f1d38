"""Offline verification of a bundle directory.

Order matters: the envelope and its signatures are checked first, and the
file checks use the *signed payload* as the manifest, so nothing in the
bundle is trusted before its signature is.  When the signatures fall short,
verification stops there: manifest.json is not read and no file is checked,
so a hostile manifest costs nothing however large it is.  Every failure is
recorded (up to ``Limits.max_findings``); the report says what passed and
what did not.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from bundlekit.errors import (
    BundlekitError,
    ExitCode,
    FormatError,
    IntegrityError,
    SignatureError,
)
from bundlekit.format import layout
from bundlekit.format.dsse import Envelope
from bundlekit.format.manifest import FileEntry, Manifest
from bundlekit.limits import DEFAULT_LIMITS, Limits
from bundlekit.textsafe import neutralize
from bundlekit.verify.hashing import ParallelHasher
from bundlekit.verify.report import Category, SignerInfo, VerificationReport
from bundlekit.verify.signatures import check_signatures
from bundlekit.verify.source import DirectorySource, Listing
from bundlekit.verify.trust import TrustStore

_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class VerifyOptions:
    trust_dir: Path | None = None
    keys: Sequence[Path] = ()
    threshold: int = 1
    deep: bool = False
    limits: Limits = DEFAULT_LIMITS
    #: Files hashed in parallel (hashlib releases the GIL): one per CPU, at most 8.
    workers: int = field(default_factory=lambda: min(8, os.cpu_count() or 2))
    #: Pre-loaded trust (overrides trust_dir/keys), for callers that hold keys already.
    trust: TrustStore | None = field(default=None, compare=False)


def check_bundle(path: Path, options: VerifyOptions) -> VerificationReport:
    """Verify ``path`` and return a full report; never raises for a bad bundle.

    Raises UsageError only for caller mistakes (no such path, no trusted keys,
    threshold below 1).  Files are hashed on background threads while the
    envelope and manifest are checked, but nothing is decoded or trusted until
    the manifest's signatures are.  Without enough trusted signatures the
    manifest is not read at all: its size, structure and file list are the
    attacker's to choose, and examining them would let untrusted bytes cost
    as much as trusted ones.
    """
    from bundlekit.errors import UsageError

    if options.threshold < 1:
        raise UsageError("--threshold must be at least 1")
    source = DirectorySource(path, options.limits)
    report = VerificationReport(
        str(path), options.threshold, options.deep, max_findings=options.limits.max_findings
    )
    try:
        listing = source.listing()
    except BundlekitError as exc:
        report.fail(Category.FORMAT, "listing", exc.message)
        return report
    payload = sorted(
        name
        for name in listing.files
        if name != layout.MANIFEST_NAME and not name.startswith(layout.SIGNATURES_DIR + "/")
    )
    # Hashing starts first and runs on threads (hashlib releases the GIL) while
    # keys load and the envelope and manifest are checked on this one.
    hasher = ParallelHasher(payload, source.open, options.workers)
    try:
        trust = options.trust or TrustStore.load(options.trust_dir, options.keys)
        if options.threshold > len(trust.keys):
            raise UsageError(
                f"threshold {options.threshold} is more than the {len(trust.keys)} trusted key(s)",
                "add trusted keys or lower --threshold",
            )
        envelope = _trusted_envelope(source, trust, options, report)
        if envelope is None:
            report.notes.append(UNTRUSTED_NOTE)
            if options.deep:
                report.notes.append(
                    "deep checks skipped: the manifest is not signed by enough trusted keys"
                )
            return report
        report.manifest_examined = True
        manifest = _check_manifest(source, envelope, options.limits, report)
        if manifest is not None:
            report.manifest = manifest
            _check_files(source, listing, manifest, hasher, options, report)
    finally:
        hasher.stop()
    return report


UNTRUSTED_NOTE = (
    "manifest not examined: no trusted signature vouches for it, so neither it nor "
    "the files it lists were read"
)


def _trusted_envelope(
    source: DirectorySource, trust: TrustStore, options: VerifyOptions, report: VerificationReport
) -> Envelope | None:
    """The envelope if enough trusted keys signed it; otherwise None, with findings saying why."""
    envelope = _read_envelope(source, options.limits, report)
    if envelope is None or not _check_envelope(envelope, trust, options.threshold, report):
        return None
    return envelope


def _read_envelope(
    source: DirectorySource, limits: Limits, report: VerificationReport
) -> Envelope | None:
    """The parsed envelope, or None with findings; its raw bytes are released on return."""
    try:
        envelope_raw = source.read_envelope()
    except BundlekitError as exc:
        report.fail(Category.FORMAT, "oversized", exc.message, layout.ENVELOPE_NAME)
        report.fail(Category.SIGNATURE, "unsigned", "no readable signatures", layout.ENVELOPE_NAME)
        return None
    if envelope_raw is None:
        report.fail(
            Category.SIGNATURE,
            "unsigned",
            "the bundle carries no signature envelope",
            layout.ENVELOPE_NAME,
        )
        return None
    try:
        return Envelope.from_bytes(envelope_raw, limits)
    except FormatError as exc:
        report.fail(Category.FORMAT, "envelope-malformed", exc.message, layout.ENVELOPE_NAME)
        report.fail(Category.SIGNATURE, "unsigned", "no readable signatures", layout.ENVELOPE_NAME)
        return None


def _check_manifest(
    source: DirectorySource, envelope: Envelope, limits: Limits, report: VerificationReport
) -> Manifest | None:
    """Parse the signed payload (the manifest of record); manifest.json must be its copy."""
    try:
        manifest_raw = source.read_manifest()
    except BundlekitError as exc:
        report.fail(Category.FORMAT, "oversized", exc.message, layout.MANIFEST_NAME)
    else:
        if manifest_raw is None:
            report.fail(
                Category.INTEGRITY,
                "manifest-missing",
                "manifest.json is missing",
                layout.MANIFEST_NAME,
            )
        elif manifest_raw != envelope.payload:
            report.fail(
                Category.INTEGRITY,
                "manifest-mismatch",
                "manifest.json differs from the signed payload in the envelope",
                layout.MANIFEST_NAME,
            )
    try:
        return Manifest.from_bytes(envelope.payload, limits)
    except FormatError as exc:
        report.fail(Category.FORMAT, "manifest-invalid", exc.message, layout.MANIFEST_NAME)
        return None


def _check_envelope(
    envelope: Envelope, trust: TrustStore, threshold: int, report: VerificationReport
) -> bool:
    """Record what the signatures say; True if ``threshold`` trusted keys signed."""
    from bundlekit.format.manifest import PAYLOAD_TYPE

    if envelope.payload_type != PAYLOAD_TYPE:
        report.fail(
            Category.FORMAT,
            "payload-type",
            f"payloadType is {envelope.payload_type!r}, expected {PAYLOAD_TYPE!r}",
            layout.ENVELOPE_NAME,
        )
    result = check_signatures(envelope, trust)
    report.signers = [SignerInfo(k.keyid, k.source) for k in result.accepted]
    for keyid in result.unmatched:
        report.notes.append(
            f"signature with key id {keyid[:16]}… is not by a trusted key or is invalid"
        )
    for keyid in result.duplicates:
        report.notes.append(f"key {keyid[:16]}… signed more than once; counted once")
    if not result.met(threshold):
        report.fail(
            Category.SIGNATURE,
            "threshold",
            f"{len(result.accepted)} valid signature(s) by trusted keys; {threshold} required",
            layout.ENVELOPE_NAME,
        )
        return False
    return True


def _check_files(
    source: DirectorySource,
    listing: Listing,
    manifest: Manifest,
    hasher: ParallelHasher,
    options: VerifyOptions,
    report: VerificationReport,
) -> None:
    for name in listing.unsafe:
        report.fail(Category.INTEGRITY, "unsafe-name", "file name is not allowed in a bundle", name)
    for name in listing.irregular:
        report.fail(
            Category.INTEGRITY, "not-regular", "a link or special file, not a regular file", name
        )
    expected = {f.name for f in manifest.files}
    for name in hasher.names:
        if name not in expected:
            report.fail(Category.INTEGRITY, "extra", "file is not listed in the manifest", name)
    for entry in manifest.files:
        size = listing.files.get(entry.name)
        if size is None:
            report.fail(
                Category.INTEGRITY, "missing", "file listed in the manifest is missing", entry.name
            )
            continue
        if size != entry.size:
            report.fail(
                Category.INTEGRITY,
                "size",
                f"file is {size} bytes, manifest says {entry.size}",
                entry.name,
            )
            continue
        digest = hasher.result(entry.name)
        report.files_checked += 1
        if isinstance(digest, Exception):
            why = digest.message if isinstance(digest, BundlekitError) else str(digest)
            report.fail(Category.INTEGRITY, "unreadable", f"cannot read file: {why}", entry.name)
            continue
        report.bytes_hashed += entry.size
        if digest != entry.sha256:
            report.fail(
                Category.INTEGRITY, "digest", "SHA-256 differs from the manifest", entry.name
            )
        elif options.deep and entry.signal is not None:
            _deep(source, entry, options, report)


def _deep(
    source: DirectorySource, entry: FileEntry, options: VerifyOptions, report: VerificationReport
) -> None:
    """Decode a segment whose digest matched a trusted manifest, re-hashing what is decoded."""
    from bundlekit.verify.deep import deep_check

    try:
        with source.open(entry.name) as stream:
            reader = _HashingReader(stream)
            problems, records = deep_check(entry, reader, options.limits)
            reader.drain()
    except FormatError as exc:
        report.fail(Category.FORMAT, "deep", f"cannot decode segment: {exc.message}", entry.name)
        return
    except OSError as exc:
        report.fail(Category.INTEGRITY, "unreadable", f"cannot read file: {exc}", entry.name)
        return
    if reader.digest.hexdigest() != entry.sha256:
        report.fail(
            Category.INTEGRITY, "digest", "file changed while it was being verified", entry.name
        )
    report.records_checked += records
    for problem in problems:
        report.fail(Category.INTEGRITY, "deep", problem, entry.name)


class _HashingReader:
    """Feeds every byte read through SHA-256, so decoded bytes are the hashed bytes."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.digest = hashlib.sha256()

    def read(self, size: int = -1, /) -> bytes:
        data = self._stream.read(size)
        self.digest.update(data)
        return data

    def drain(self) -> None:
        while self.read(_HASH_CHUNK):
            pass


def raise_for_report(report: VerificationReport) -> None:
    """The raising door: turn a failed report into the matching BundlekitError.

    The message is text for people, so every value from the bundle in it is
    neutralized (``str(finding)``); the exact values stay on ``error.report``.
    """
    if report.ok:
        return
    error_class: type[BundlekitError] = {
        ExitCode.SIGNATURE: SignatureError,
        ExitCode.INTEGRITY: IntegrityError,
        ExitCode.FORMAT: FormatError,
    }[report.exit_code]
    shown = [str(f) for f in report.failures]
    shown += [f"note: {neutralize(note)}" for note in report.all_notes]
    lines = "\n  ".join(shown)
    error = error_class(
        f"bundle {neutralize(report.bundle)} failed verification:\n  {lines}",
        "do not trust or replay this bundle; obtain a fresh copy from its producer",
    )
    error.report = report  # type: ignore[attr-defined]
    raise error
