"""Checking a DSSE envelope against trusted keys, on bytes only (no I/O).

The key id in a signature is only a hint: every signature is tried against
the trusted keys, and each trusted key counts at most once toward the
threshold however many signatures it made.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bundlekit.format.dsse import Envelope
from bundlekit.format.manifest import PAYLOAD_TYPE
from bundlekit.keys import PublicKey
from bundlekit.verify.trust import TrustStore


@dataclass
class SignatureResult:
    accepted: list[PublicKey] = field(default_factory=list)
    #: Signatures that no trusted key made (key id hints, for the report).
    unmatched: list[str] = field(default_factory=list)
    #: Trusted keys that signed more than once (counted once).
    duplicates: list[str] = field(default_factory=list)

    def met(self, threshold: int) -> bool:
        return len(self.accepted) >= threshold


def check_signatures(envelope: Envelope, trust: TrustStore) -> SignatureResult:
    result = SignatureResult()
    if envelope.payload_type != PAYLOAD_TYPE:
        # Signatures over another payload type are not signatures over a manifest.
        result.unmatched = [s.keyid for s in envelope.signatures]
        return result
    message = envelope.pae()
    accepted: dict[str, PublicKey] = {}
    for signature in envelope.signatures:
        key = next(
            (k for k in trust.candidates(signature.keyid) if k.verify(signature.sig, message)), None
        )
        if key is None:
            result.unmatched.append(signature.keyid or "(no keyid)")
        elif key.keyid in accepted:
            result.duplicates.append(key.keyid)
        else:
            accepted[key.keyid] = key
    result.accepted = list(accepted.values())
    return result
