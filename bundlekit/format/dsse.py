"""DSSE v1 envelopes over the manifest.

The envelope's payload is the exact manifest.json bytes; each signature is
over the Pre-Authentication Encoding (PAE) of payload type and payload, so a
signature can never be replayed under another payload type.
Spec: https://github.com/secure-systems-lab/dsse/blob/master/protocol.md
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from bundlekit.errors import FormatError, LimitExceeded
from bundlekit.format import canonical
from bundlekit.limits import Limits


def pae(payload_type: str, payload: bytes) -> bytes:
    """``DSSEv1 SP LEN(type) SP type SP LEN(body) SP body`` with byte lengths."""
    encoded_type = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(encoded_type), encoded_type, len(payload), payload)


@dataclass(frozen=True)
class Signature:
    keyid: str
    sig: bytes


@dataclass(frozen=True)
class Envelope:
    payload_type: str
    payload: bytes
    signatures: tuple[Signature, ...] = ()

    def pae(self) -> bytes:
        return pae(self.payload_type, self.payload)

    def with_signature(self, signature: Signature) -> Envelope:
        return Envelope(self.payload_type, self.payload, (*self.signatures, signature))

    def to_json(self) -> dict[str, Any]:
        return {
            "payloadType": self.payload_type,
            "payload": base64.b64encode(self.payload).decode("ascii"),
            "signatures": [
                {"keyid": s.keyid, "sig": base64.b64encode(s.sig).decode("ascii")}
                for s in self.signatures
            ],
        }

    def to_bytes(self) -> bytes:
        return canonical.dumps(self.to_json())

    @classmethod
    def from_bytes(cls, data: bytes, limits: Limits) -> Envelope:
        """Strictly parse an envelope; raise FormatError saying what is malformed."""
        if len(data) > limits.max_envelope_bytes:
            raise LimitExceeded(
                f"signature envelope is {len(data)} bytes, over the limit of "
                f"{limits.max_envelope_bytes}"
            )
        _check_structure(data, limits)
        doc = canonical.loads(data, "signature envelope")
        if not isinstance(doc, dict):
            raise _malformed("it is not a JSON object")
        extra = set(doc) - {"payloadType", "payload", "signatures"}
        if extra:
            raise _malformed(f"unexpected fields {sorted(extra)}")
        payload_type = doc.get("payloadType")
        if not isinstance(payload_type, str) or not payload_type:
            raise _malformed("payloadType is missing or not a string")
        payload = _b64(doc.get("payload"), "payload")
        raw_sigs = doc.get("signatures")
        if not isinstance(raw_sigs, list):
            raise _malformed("signatures is missing or not a list")
        if len(raw_sigs) > limits.max_signatures:
            raise LimitExceeded(
                f"envelope carries {len(raw_sigs)} signatures, over the limit of "
                f"{limits.max_signatures}"
            )
        signatures = []
        for index, item in enumerate(raw_sigs):
            if not isinstance(item, dict) or set(item) - {"keyid", "sig"}:
                raise _malformed(f"signature {index} is not an object of keyid and sig")
            keyid = item.get("keyid", "")
            if not isinstance(keyid, str):
                raise _malformed(f"signature {index} has a keyid that is not a string")
            signatures.append(Signature(keyid, _b64(item.get("sig"), f"signature {index}")))
        return cls(payload_type, payload, tuple(signatures))


#: JSON punctuation one envelope needs: "{", "[" and two "," at the top, and per
#: signature one "{" and two "," (between its fields, and before the next one).
_TOP_STRUCTURE = 4
_PER_SIGNATURE = 3


def _check_structure(data: bytes, limits: Limits) -> None:
    """Refuse, before parsing, an envelope with more JSON structure than its signatures need.

    An envelope is one object of three fields whose payload is a single base64
    string; only its signature list can grow.  Counting braces, brackets and
    commas costs a byte scan, while parsing megabytes of junk signatures or of
    deeply nested arrays builds millions of Python objects first.  Separators
    inside strings count too, so the budget keeps a margin for a few in key ids.
    """
    budget = 2 * (_TOP_STRUCTURE + _PER_SIGNATURE * limits.max_signatures)
    found = data.count(b"{") + data.count(b"[") + data.count(b",")
    if found > budget:
        raise LimitExceeded(
            f"signature envelope holds {found} JSON objects, arrays and separators, more than "
            f"the {budget} allowed for up to {limits.max_signatures} signatures",
            "this is not an envelope bundlekit or another DSSE tool wrote; "
            "it may have been crafted to exhaust the verifier",
        )


def _b64(value: Any, what: str) -> bytes:
    """Standard padded base64, strictly: one C pass with no copy or regex over the input."""
    if not isinstance(value, str):
        raise _malformed(f"{what} is missing or not a string")
    try:
        return binascii.a2b_base64(value, strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise _malformed(f"{what} is not standard padded base64 ({exc})") from exc


def _malformed(why: str) -> FormatError:
    return FormatError(
        f"signature envelope is malformed: {why}",
        "signatures/manifest.dsse.json must be a DSSE v1 envelope written by bundlekit sign",
    )
