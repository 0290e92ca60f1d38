"""Co-signing: add a signature to a bundle's envelope without touching the manifest."""

from __future__ import annotations

from pathlib import Path

from bundlekit.convert import replace_envelope
from bundlekit.errors import FormatError, UsageError
from bundlekit.format.dsse import Envelope, Signature
from bundlekit.format.manifest import PAYLOAD_TYPE, Manifest
from bundlekit.format.reader import open_bundle
from bundlekit.keys import Signer
from bundlekit.limits import DEFAULT_LIMITS, Limits
from bundlekit.verify.verifier import VerifyOptions


def sign_bundle(path: Path, signer: Signer, limits: Limits = DEFAULT_LIMITS) -> Envelope:
    """Append ``signer``'s signature over manifest.json to the bundle's envelope.

    manifest.json is never rewritten.  An existing envelope must carry exactly
    the current manifest.json as payload, or signing is refused: adding a
    signature to a mismatched envelope would endorse something else.  A
    directory gets a new envelope file; an archive is rewritten with it (its
    files copied and checked against the manifest on the way), atomically.
    """
    with open_bundle(path, limits) as reader:
        head = reader.head()
    raw = head.manifest
    if raw is None:
        raise FormatError(
            f"{path} has no manifest.json", "sign a bundle written by `bundlekit pack`"
        )
    Manifest.from_bytes(raw, limits)  # refuse to sign something that is not a valid manifest
    if head.envelope is None:
        envelope = Envelope(PAYLOAD_TYPE, raw)
    else:
        envelope = Envelope.from_bytes(head.envelope, limits)
        if envelope.payload != raw or envelope.payload_type != PAYLOAD_TYPE:
            raise FormatError(
                "the signature envelope does not carry this bundle's manifest.json",
                "the bundle was modified after signing; run `bundlekit verify` to see what changed",
            )
        if any(s.keyid == signer.keyid for s in envelope.signatures):
            raise UsageError(
                f"the bundle is already signed by key {signer.keyid[:16]}…",
                "a key counts once toward a threshold; co-sign with a different key",
            )
    envelope = envelope.with_signature(Signature(signer.keyid, signer.sign(envelope.pae())))
    replace_envelope(path, envelope.to_bytes(), VerifyOptions(limits=limits, require_trust=False))
    return envelope
