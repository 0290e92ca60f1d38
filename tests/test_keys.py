"""Key generation, storage and loading."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from bundlekit.errors import KeyError_, UsageError
from bundlekit.keys import KeyType, generate_key, load_private_key, load_public_key


@pytest.mark.parametrize("kind", list(KeyType))
def test_encrypted_key_round_trip(tmp_path: Path, kind: KeyType) -> None:
    generated = generate_key(tmp_path / "k", kind, b"correct horse")
    assert stat.S_IMODE(generated.private_path.stat().st_mode) == 0o600
    assert b"ENCRYPTED PRIVATE KEY" in generated.private_path.read_bytes()
    private = load_private_key(generated.private_path, b"correct horse")
    public = load_public_key(generated.public_path)
    assert private.keyid == public.keyid == generated.keyid
    assert public.verify(private.sign(b"message"), b"message")
    assert not public.verify(private.sign(b"message"), b"other message")


def test_keyid_is_sha256_of_subject_public_key_info(keys: dict) -> None:
    public = load_public_key(keys[KeyType.ED25519].public_path)
    der = public.key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert public.keyid == hashlib.sha256(der).hexdigest()


def test_wrong_passphrase_is_a_clear_error(tmp_path: Path) -> None:
    generated = generate_key(tmp_path / "k", KeyType.ED25519, b"right")
    with pytest.raises(KeyError_, match="wrong passphrase"):
        load_private_key(generated.private_path, b"wrong")


def test_missing_passphrase_says_how_to_give_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BUNDLEKIT_PASSPHRASE", raising=False)
    generated = generate_key(tmp_path / "k", KeyType.ED25519, b"right")
    with pytest.raises(KeyError_) as caught:
        load_private_key(generated.private_path)
    assert "BUNDLEKIT_PASSPHRASE" in caught.value.diagnostics()


def test_passphrase_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    generated = generate_key(tmp_path / "k", KeyType.ECDSA_P256, b"from-env")
    monkeypatch.setenv("BUNDLEKIT_PASSPHRASE", "from-env")
    assert load_private_key(generated.private_path).keyid == generated.keyid


def test_keygen_never_overwrites(tmp_path: Path) -> None:
    generate_key(tmp_path / "k", KeyType.ED25519)
    before = (tmp_path / "k.key").read_bytes()
    with pytest.raises(UsageError, match="already exists"):
        generate_key(tmp_path / "k", KeyType.ED25519)
    assert (tmp_path / "k.key").read_bytes() == before


def test_public_key_file_that_is_not_a_key(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.pub"
    bogus.write_text("hello")
    with pytest.raises(KeyError_, match="not a PEM public key"):
        load_public_key(bogus)


@pytest.mark.parametrize("kind", list(KeyType))
def test_public_key_fast_path_agrees_with_cryptography(keys: dict, kind: KeyType) -> None:
    from bundlekit.keys import keyid_of, public_key_from_pem

    pem = keys[kind].public_path.read_bytes()
    parsed = public_key_from_pem(b"a comment line\n" + pem)
    reference = serialization.load_pem_public_key(pem)
    assert parsed.keyid == keyid_of(reference) == keys[kind].keyid
    assert parsed.key_type is kind
    assert parsed.pem() == pem
