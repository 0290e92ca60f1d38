"""Offline verification: two doors to the same checks.

* :func:`check_bundle` returns a :class:`VerificationReport` listing every
  failure and never raises for a bad bundle (good for reports);
* :func:`verify_bundle` raises the matching :class:`BundlekitError` on any
  failure and otherwise returns a :class:`VerifiedBundle` (good for gates,
  such as replay).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bundlekit.errors import FormatError, IntegrityError, UsageError
from bundlekit.format.defects import Category, Defect
from bundlekit.format.reader import BundleReader, Extent, open_bundle
from bundlekit.limits import DEFAULT_LIMITS, Limits
from bundlekit.verify.report import Finding, VerificationFailed, VerificationReport
from bundlekit.verify.verifier import VerifyOptions, check_bundle
from bundlekit.verify.verifier import verify_bundle as _verify

if TYPE_CHECKING:
    from bundlekit.format.manifest import FileEntry, Manifest
    from bundlekit.verify.trust import TrustStore


def __getattr__(name: str) -> Any:
    """``TrustStore`` loads cryptography: imported on first use, not with this package,
    so ``verify`` can start hashing before the signature code has loaded."""
    if name == "TrustStore":
        from bundlekit.verify.trust import TrustStore

        return TrustStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Category",
    "Defect",
    "Finding",
    "TrustStore",
    "VerificationFailed",
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

    location: str
    manifest: Manifest
    verified: bool
    report: VerificationReport | None
    limits: Limits = DEFAULT_LIMITS
    #: Where each file lies; empty for a bundle read from a stream.
    extents: dict[str, Extent] = field(default_factory=dict)

    def read_segment(self, entry: FileEntry) -> bytes:
        """The file's bytes, after checking size and SHA-256 against the manifest.

        Read into memory (the manifest's size, capped by the limits) and
        checked before use, so each byte is read once and nothing unchecked
        is ever used: bytes that changed since verification are refused.
        """
        extent = self.extents.get(entry.name)
        if extent is None:
            raise UsageError(
                f"{entry.name} cannot be read again from {self.location}",
                "this needs a bundle directory or archive file, not a stream",
            )
        with extent.open() as stream:
            data = stream.read(entry.size + 1)
        if len(data) != entry.size or hashlib.sha256(data).hexdigest() != entry.sha256:
            raise IntegrityError(
                f"{entry.name} differs from the manifest (size or SHA-256)",
                "the bundle is corrupt or is being modified; verify a stable copy",
            )
        return data


def verify_bundle(
    location: str | os.PathLike[str] | BundleReader, options: VerifyOptions
) -> VerifiedBundle:
    """Verify or raise :class:`VerificationFailed` (which carries the report)."""
    report, extents = _verify(location, options)
    assert report.manifest is not None
    return VerifiedBundle(report.bundle, report.manifest, True, report, options.limits, extents)


def open_unverified(
    location: str | os.PathLike[str], limits: Limits = DEFAULT_LIMITS
) -> VerifiedBundle:
    """Open a bundle without checking signatures (``--no-verify``).

    The manifest is still parsed and schema-checked, and reads are still
    checked against it; only trust is skipped.  The signed payload is
    preferred over manifest.json when an envelope is present.
    """
    from bundlekit.format.dsse import Envelope
    from bundlekit.format.manifest import Manifest

    with open_bundle(location, limits) as reader:
        head = reader.head()
        raw = head.manifest
        if head.envelope is not None:
            raw = Envelope.from_bytes(head.envelope, limits).payload
        if raw is None:
            raise FormatError(
                f"{reader.location} has no manifest.json", "this is not a bundlekit bundle"
            )
        manifest = Manifest.from_bytes(raw, limits)
        extents = {}
        if reader.random_access:
            extents = {m.name: m.extent for m in reader.members() if m.extent is not None}
        return VerifiedBundle(reader.location, manifest, False, None, limits, extents)
