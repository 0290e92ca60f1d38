"""Key generation, storage and loading."""

from __future__ import annotations

import hashlib
import os
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


@pytest.mark.parametrize("suffix", [".key", ".pub"])
def test_keygen_never_replaces_a_dangling_symlink(tmp_path: Path, suffix: str) -> None:
    """A dangling link at PREFIX.key would otherwise redirect the key to wherever it points."""
    target = tmp_path / "elsewhere" / "stolen"
    (tmp_path / "elsewhere").mkdir()
    link = tmp_path / f"k{suffix}"
    link.symlink_to(target)
    with pytest.raises(UsageError, match=f"k{suffix} already exists"):
        generate_key(tmp_path / "k", KeyType.ED25519)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert not target.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", f"k{suffix}"]


def test_keygen_refuses_when_only_the_public_half_exists(tmp_path: Path) -> None:
    (tmp_path / "k.pub").write_bytes(b"someone's key")
    with pytest.raises(UsageError, match="already exists"):
        generate_key(tmp_path / "k", KeyType.ED25519)
    assert (tmp_path / "k.pub").read_bytes() == b"someone's key"
    assert not (tmp_path / "k.key").exists()


def test_no_clobber_write_loses_a_race_safely(tmp_path: Path) -> None:
    """The final step itself refuses an existing name: a file made after any check survives."""
    from bundlekit.fsutil import write_new_file

    target = tmp_path / "k.key"
    target.write_bytes(b"created by another process a moment ago")
    with pytest.raises(FileExistsError):
        write_new_file(target, b"new key", 0o600)
    assert target.read_bytes() == b"created by another process a moment ago"
    assert [p.name for p in tmp_path.iterdir()] == ["k.key"]  # no temporary left
    dangling = tmp_path / "d.key"
    dangling.symlink_to(tmp_path / "nowhere")
    with pytest.raises(FileExistsError):
        write_new_file(dangling, b"new key", 0o600)
    assert not (tmp_path / "nowhere").exists()


def test_keygen_race_on_the_public_half_removes_its_private_half(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If PREFIX.pub appears between the check and the write, no half pair is left."""
    import bundlekit.fsutil

    real = bundlekit.fsutil.write_new_file

    def racing(path: Path, data: bytes, mode: int = 0o644) -> None:
        if path.suffix == ".pub":
            path.write_bytes(b"raced in")
        real(path, data, mode)

    monkeypatch.setattr(bundlekit.fsutil, "write_new_file", racing)
    with pytest.raises(UsageError, match=r"k\.pub already exists"):
        generate_key(tmp_path / "k", KeyType.ED25519)
    assert (tmp_path / "k.pub").read_bytes() == b"raced in"
    assert not (tmp_path / "k.key").exists()


def test_keygen_cli_refuses_dangling_symlink(tmp_path: Path, run_cli: object) -> None:
    (tmp_path / "k.key").symlink_to(tmp_path / "gone")
    code, _, err = run_cli("keygen", "--out", tmp_path / "k", "--no-passphrase")  # type: ignore[operator]
    assert code == 2, err
    assert "already exists" in err
    assert not (tmp_path / "gone").exists()


@pytest.mark.parametrize("kind", list(KeyType))
def test_pem_with_two_public_keys_is_refused(tmp_path: Path, kind: KeyType) -> None:
    first = generate_key(tmp_path / "a", kind)
    second = generate_key(tmp_path / "b", kind)
    both = tmp_path / "both.pub"
    both.write_bytes(first.public_path.read_bytes() + second.public_path.read_bytes())
    with pytest.raises(KeyError_, match="holds 2 PEM blocks; a key file must hold exactly one"):
        load_public_key(both)
    load_public_key(first.public_path)  # one key per file still loads


def test_pem_with_two_private_keys_is_refused(tmp_path: Path) -> None:
    first = generate_key(tmp_path / "a", KeyType.ED25519)
    second = generate_key(tmp_path / "b", KeyType.ED25519)
    both = tmp_path / "both.key"
    both.write_bytes(first.private_path.read_bytes() + second.private_path.read_bytes())
    with pytest.raises(KeyError_, match="holds 2 PEM blocks"):
        load_private_key(both)
    load_private_key(first.private_path)


def test_pem_with_a_key_and_something_else_is_refused(tmp_path: Path, keys: dict) -> None:
    pub = keys[KeyType.ED25519].public_path.read_bytes()
    extra = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    mixed = tmp_path / "mixed.pub"
    mixed.write_bytes(extra + pub)
    with pytest.raises(KeyError_, match="holds 2 PEM blocks"):
        load_public_key(mixed)


def test_verify_with_a_two_key_pem_is_a_usage_error(
    tmp_path: Path, keys: dict, other_key: object, run_cli: object
) -> None:
    from tests.bundles import pack_small

    pack_small(tmp_path / "in", tmp_path / "b", keys[KeyType.ED25519])
    both = tmp_path / "both.pub"
    both.write_bytes(
        other_key.public_path.read_bytes()  # type: ignore[attr-defined]
        + keys[KeyType.ED25519].public_path.read_bytes()
    )
    code, _, err = run_cli("verify", tmp_path / "b", "--key", both)  # type: ignore[operator]
    assert code == 2, err
    assert "holds 2 PEM blocks" in err
