"""Offline verification: two doors to the same checks.

* :func:`check_bundle` returns a :class:`VerificationReport` listing every
  failure and never raises for a bad bundle (good for reports);
* :func:`verify_bundle` raises the matching :class:`BundlekitError` on any
  failure and otherwise returns a :class:`VerifiedBundle` (good for gates,
  such as replay).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from bundlekit.errors import FormatError, IntegrityError
from bundlekit.format.dsse import Envelope
from bundlekit.format.manifest import FileEntry, Manifest
from bundlekit.limits import DEFAULT_LIMITS, Limits
from bundlekit.verify.report import Category, Finding, VerificationReport
from bundlekit.verify.source import DirectorySource
from bundlekit.verify.trust import TrustStore
from bundlekit.verify.verifier import VerifyOptions, check_bundle, raise_for_report

__all__ = [
    "Category",
    "Finding",
    "TrustStore",
    "VerificationReport",
    "VerifiedBundle",
    "VerifyOptions",
    "check_bundle",
    "open_unverified",
    "verify_bundle",
]


@dataclass(frozen=True)
class VerifiedBundle:
    """A bundle and its manifest; file reads are re-checked against the manifest.

    ``verified`` is False only for bundles opened with :func:`open_unverified`.
    """

    path: Path
    manifest: Manifest
    verified: bool
    report: VerificationReport | None
    limits: Limits = DEFAULT_LIMITS

    def read_segment(self, entry: FileEntry) -> bytes:
        """The file's bytes, after checking size and SHA-256 against the manifest.

        Reading into memory and checking before use closes the gap between
        verification and use: bytes that changed since verify are refused.
        """
        source = DirectorySource(self.path, self.limits)
        with source.open(entry.name) as stream:
            data = stream.read(entry.size + 1)
        if len(data) != entry.size or hashlib.sha256(data).hexdigest() != entry.sha256:
            raise IntegrityError(
                f"{entry.name} changed since the bundle was verified",
                "the bundle is being modified; verify a stable copy",
            )
        return data


def verify_bundle(path: Path, options: VerifyOptions) -> VerifiedBundle:
    """Verify or raise SignatureError / IntegrityError / FormatError."""
    report = check_bundle(path, options)
    raise_for_report(report)
    assert report.manifest is not None
    return VerifiedBundle(path, report.manifest, True, report, options.limits)


def open_unverified(path: Path, limits: Limits = DEFAULT_LIMITS) -> VerifiedBundle:
    """Open a bundle without checking signatures (``--no-verify``).

    The manifest is still parsed and schema-checked, and reads are still
    checked against it; only trust is skipped.  The signed payload is
    preferred over manifest.json when an envelope is present.
    """
    source = DirectorySource(path, limits)
    raw = source.read_manifest()
    envelope_raw = source.read_envelope()
    if envelope_raw is not None:
        raw = Envelope.from_bytes(envelope_raw, limits).payload
    if raw is None:
        raise FormatError(f"{path} has no manifest.json", "this is not a bundlekit bundle")
    return VerifiedBundle(path, Manifest.from_bytes(raw, limits), False, None, limits)
