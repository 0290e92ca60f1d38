"""The head of a bundle: its signatures and its manifest, checked before any payload.

What each signature, the threshold and the signed manifest say is recorded in
the report; the payload checks (``verifier``) use only a manifest returned from
here, which is the *signed payload*, never manifest.json.  The signature and
manifest code (cryptography, the schema validator) is imported on first use,
so a verifier can start hashing before it has loaded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bundlekit.errors import FormatError
from bundlekit.format import layout
from bundlekit.format.defects import Defect
from bundlekit.format.reader import Head
from bundlekit.limits import Limits
from bundlekit.verify.report import SignerInfo, VerificationReport

if TYPE_CHECKING:
    from bundlekit.format.dsse import Envelope
    from bundlekit.format.manifest import Manifest
    from bundlekit.verify.trust import TrustStore


def untrusted_manifest(head: Head, limits: Limits, report: VerificationReport) -> Manifest | None:
    """``--no-verify``: the signed payload if there is one, else manifest.json; unchecked."""
    report.notes.append("signatures NOT checked (--no-verify): origin unknown")
    raw = head.manifest
    if head.envelope is not None:
        envelope = read_envelope(head, limits, report)
        if envelope is None:
            return None
        raw = envelope.payload
    if raw is None:
        report.fail(Defect.MANIFEST_MISSING, "manifest.json is missing", layout.MANIFEST_NAME)
        return None
    try:
        from bundlekit.format.manifest import Manifest

        return Manifest.from_bytes(raw, limits)
    except FormatError as exc:
        report.fail(Defect.MANIFEST_INVALID, exc.message, layout.MANIFEST_NAME)
        return None


def trusted_envelope(
    head: Head, trust: TrustStore, threshold: int, limits: Limits, report: VerificationReport
) -> Envelope | None:
    """The envelope if enough trusted keys signed it; otherwise None, with findings."""
    envelope = read_envelope(head, limits, report)
    if envelope is None or not check_envelope(envelope, trust, threshold, report):
        return None
    return envelope


def read_envelope(head: Head, limits: Limits, report: VerificationReport) -> Envelope | None:
    """The parsed envelope, or None with findings saying why."""
    if head.envelope_problem is not None:
        report.fail(Defect.OVERSIZED, head.envelope_problem, layout.ENVELOPE_NAME)
        report.fail(Defect.UNSIGNED, "no readable signatures", layout.ENVELOPE_NAME)
        return None
    if head.envelope is None:
        report.fail(
            Defect.UNSIGNED, "the bundle carries no signature envelope", layout.ENVELOPE_NAME
        )
        return None
    try:
        from bundlekit.format.dsse import Envelope

        return Envelope.from_bytes(head.envelope, limits)
    except FormatError as exc:
        report.fail(Defect.ENVELOPE_MALFORMED, exc.message, layout.ENVELOPE_NAME)
        report.fail(Defect.UNSIGNED, "no readable signatures", layout.ENVELOPE_NAME)
        return None


def check_envelope(
    envelope: Envelope, trust: TrustStore, threshold: int, report: VerificationReport
) -> bool:
    """Record what the signatures say; True if ``threshold`` trusted keys signed."""
    from bundlekit.format.manifest import PAYLOAD_TYPE

    if envelope.payload_type != PAYLOAD_TYPE:
        report.fail(
            Defect.PAYLOAD_TYPE,
            f"payloadType is {envelope.payload_type!r}, expected {PAYLOAD_TYPE!r}",
            layout.ENVELOPE_NAME,
        )
    from bundlekit.verify.signatures import check_signatures

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
            Defect.THRESHOLD,
            f"{len(result.accepted)} valid signature(s) by trusted keys; {threshold} required",
            layout.ENVELOPE_NAME,
        )
        return False
    return True


def check_manifest(
    head: Head, envelope: Envelope, limits: Limits, report: VerificationReport
) -> Manifest | None:
    """Parse the signed payload (the manifest of record); manifest.json must be its copy."""
    if head.manifest_problem is not None:
        report.fail(Defect.OVERSIZED, head.manifest_problem, layout.MANIFEST_NAME)
    elif head.manifest is None:
        report.fail(Defect.MANIFEST_MISSING, "manifest.json is missing", layout.MANIFEST_NAME)
    elif head.manifest != envelope.payload:
        report.fail(
            Defect.MANIFEST_MISMATCH,
            "manifest.json differs from the signed payload in the envelope",
            layout.MANIFEST_NAME,
        )
    try:
        from bundlekit.format.manifest import Manifest

        return Manifest.from_bytes(envelope.payload, limits)
    except FormatError as exc:
        report.fail(Defect.MANIFEST_INVALID, exc.message, layout.MANIFEST_NAME)
        return None
