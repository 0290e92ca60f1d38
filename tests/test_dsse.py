"""DSSE envelopes: PAE as the spec defines it, strict parsing, independent verification."""

from __future__ import annotations

import base64
import json

import pytest
from securesystemslib import dsse as ssl_dsse
from securesystemslib.signer import SSlibKey

from bundlekit.errors import FormatError
from bundlekit.format.dsse import Envelope, Signature, pae
from bundlekit.keys import GeneratedKey, KeyType, load_private_key, load_public_key
from bundlekit.limits import DEFAULT_LIMITS

SSLIB_SCHEMES = {
    KeyType.ED25519: "ed25519",
    KeyType.ECDSA_P256: "ecdsa-sha2-nistp256",
    KeyType.RSA_PSS_3072: "rsassa-pss-sha256",
}


def test_pae_matches_the_dsse_spec_example() -> None:
    # protocol.md: PAE("http://example.com/HelloWorld", "hello world")
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_pae_counts_bytes_not_characters() -> None:
    assert pae("t", "é".encode()) == b"DSSEv1 1 t 2 \xc3\xa9"


def _signed(key: GeneratedKey, payload: bytes = b'{"a":1}') -> Envelope:
    signer = load_private_key(key.private_path)
    envelope = Envelope("application/vnd.in-toto+json", payload)
    return envelope.with_signature(Signature(signer.keyid, signer.sign(envelope.pae())))


@pytest.mark.parametrize("kind", list(KeyType))
def test_securesystemslib_accepts_our_envelope(
    keys: dict[KeyType, GeneratedKey], kind: KeyType
) -> None:
    envelope = _signed(keys[kind])
    public = load_public_key(keys[kind].public_path)
    sslib_key = SSlibKey.from_crypto(public.key, keyid=public.keyid, scheme=SSLIB_SCHEMES[kind])
    theirs = ssl_dsse.Envelope.from_dict(json.loads(envelope.to_bytes()))
    accepted = theirs.verify([sslib_key], 1)
    assert list(accepted) == [public.keyid]
    assert theirs.pae() == envelope.pae()


@pytest.mark.parametrize("kind", list(KeyType))
def test_securesystemslib_rejects_a_tampered_payload(
    keys: dict[KeyType, GeneratedKey], kind: KeyType
) -> None:
    doc = json.loads(_signed(keys[kind]).to_bytes())
    doc["payload"] = base64.b64encode(b'{"a":2}').decode()
    public = load_public_key(keys[kind].public_path)
    sslib_key = SSlibKey.from_crypto(public.key, keyid=public.keyid, scheme=SSLIB_SCHEMES[kind])
    from securesystemslib.exceptions import VerificationError

    with pytest.raises(VerificationError):
        ssl_dsse.Envelope.from_dict(doc).verify([sslib_key], 1)


def test_envelope_round_trips(keys: dict[KeyType, GeneratedKey]) -> None:
    envelope = _signed(keys[KeyType.ED25519])
    assert Envelope.from_bytes(envelope.to_bytes(), limits=DEFAULT_LIMITS) == envelope


MALFORMED = {
    "not_json": b"{not json",
    "not_an_object": b"[1,2]",
    "payload_not_base64": b'{"payloadType":"t","payload":"***","signatures":[]}',
    "payload_unpadded_base64": b'{"payloadType":"t","payload":"YQ","signatures":[]}',
    "missing_payload_type": b'{"payload":"YQ==","signatures":[]}',
    "signatures_not_a_list": b'{"payloadType":"t","payload":"YQ==","signatures":{}}',
    "signature_not_base64": (
        b'{"payloadType":"t","payload":"YQ==","signatures":[{"keyid":"k","sig":"!!"}]}'
    ),
    "unexpected_field": b'{"payloadType":"t","payload":"YQ==","signatures":[],"x":1}',
    "duplicate_key": b'{"payloadType":"t","payloadType":"u","payload":"YQ==","signatures":[]}',
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_envelope_is_a_format_error(name: str) -> None:
    with pytest.raises(FormatError):
        Envelope.from_bytes(MALFORMED[name], limits=DEFAULT_LIMITS)
