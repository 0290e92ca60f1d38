"""Signing keys: generation, loading, key ids, signing and verification.

Three key types: Ed25519 (default), ECDSA P-256 with SHA-256 (DER signatures)
and RSA-PSS 3072 with SHA-256 (MGF1-SHA256, salt = digest length).  These are
exactly the schemes securesystemslib and cosign verify, so bundles can be
checked by tools other than bundlekit.

A key id is the hex SHA-256 of the public key's SubjectPublicKeyInfo DER.  It
is only a hint for finding the key: verification always tries the signature
against the trusted key itself.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from bundlekit.errors import IOFailure, KeyError_, UsageError
from bundlekit.limits import DEFAULT_LIMITS

PASSPHRASE_ENV = "BUNDLEKIT_PASSPHRASE"  # noqa: S105 - the variable name, not a secret
PRIVATE_SUFFIX = ".key"
PUBLIC_SUFFIX = ".pub"


class KeyType(StrEnum):
    ED25519 = "ed25519"
    ECDSA_P256 = "ecdsa-p256"
    RSA_PSS_3072 = "rsa-pss-3072"


class Signer(Protocol):
    """Anything that can sign the DSSE PAE bytes (local key, Sigstore, HSM...)."""

    @property
    def keyid(self) -> str: ...

    def sign(self, data: bytes) -> bytes: ...


@dataclass(frozen=True)
class PublicKey:
    key: Any
    keyid: str
    key_type: KeyType
    source: str = ""

    def verify(self, signature: bytes, data: bytes) -> bool:
        """True if ``signature`` is this key's over ``data``; never raises on a bad signature."""
        from cryptography.exceptions import InvalidSignature

        try:
            if self.key_type is KeyType.ED25519:
                self.key.verify(signature, data)
                return True
            from cryptography.hazmat.primitives import hashes
            from cryptography.hazmat.primitives.asymmetric import ec, padding

            if self.key_type is KeyType.ECDSA_P256:
                self.key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
            else:
                self.key.verify(
                    signature,
                    data,
                    padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO),
                    hashes.SHA256(),
                )
        except (InvalidSignature, ValueError):
            return False
        return True

    def pem(self) -> bytes:
        from cryptography.hazmat.primitives import serialization

        return bytes(
            self.key.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )


@dataclass(frozen=True)
class PrivateKey:
    """A local private key; satisfies :class:`Signer`."""

    key: Any
    public: PublicKey

    @property
    def keyid(self) -> str:
        return self.public.keyid

    def sign(self, data: bytes) -> bytes:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, padding

        kind = self.public.key_type
        if kind is KeyType.ED25519:
            return bytes(self.key.sign(data))
        if kind is KeyType.ECDSA_P256:
            return bytes(self.key.sign(data, ec.ECDSA(hashes.SHA256())))
        return bytes(
            self.key.sign(
                data,
                padding.PSS(
                    mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH
                ),
                hashes.SHA256(),
            )
        )


def keyid_of(public_key: Any) -> str:
    from cryptography.hazmat.primitives import serialization

    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def _key_type(public_key: Any, source: str) -> KeyType:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return KeyType.ED25519
    if isinstance(public_key, ec.EllipticCurvePublicKey) and isinstance(
        public_key.curve, ec.SECP256R1
    ):
        return KeyType.ECDSA_P256
    if isinstance(public_key, rsa.RSAPublicKey) and public_key.key_size >= 3072:
        return KeyType.RSA_PSS_3072
    raise KeyError_(
        f"{source}: unsupported key type {type(public_key).__name__}",
        "bundlekit uses Ed25519, ECDSA P-256 or RSA (3072 bits or more); run `bundlekit keygen`",
    )


#: DER SubjectPublicKeyInfo of an Ed25519 key is this prefix and the 32-byte key (RFC 8410).
_ED25519_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")
_PEM_PUBLIC = re.compile(
    rb"-----BEGIN PUBLIC KEY-----\s*([A-Za-z0-9+/=\s]+?)-----END PUBLIC KEY-----"
)


def _ed25519_from_pem(data: bytes, source: str) -> PublicKey | None:
    """Fast path for the default key type: no need to load cryptography's PEM machinery."""
    match = _PEM_PUBLIC.search(data)
    if match is None:
        return None
    try:
        der = base64.b64decode(b"".join(match.group(1).split()), validate=True)
    except ValueError:
        return None
    if len(der) != len(_ED25519_SPKI_PREFIX) + 32 or not der.startswith(_ED25519_SPKI_PREFIX):
        return None
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    key = Ed25519PublicKey.from_public_bytes(der[len(_ED25519_SPKI_PREFIX) :])
    return PublicKey(key, hashlib.sha256(der).hexdigest(), KeyType.ED25519, source)


#: The start of any PEM block (key, certificate, parameters...).
_PEM_BEGIN = re.compile(rb"-----BEGIN [A-Z0-9 ]+-----")


def _one_pem_block(data: bytes, source: str) -> None:
    """Refuse a file holding several PEM blocks.

    Loaders take the first block and ignore the rest, so a file with two keys
    would silently trust (or sign with) only one of them, and which one would
    depend on their order: ambiguous, so refused.
    """
    count = len(_PEM_BEGIN.findall(data))
    if count > 1:
        raise KeyError_(
            f"{source} holds {count} PEM blocks; a key file must hold exactly one key",
            "split it into one file per key (a trust directory takes many *.pub files)",
        )


def public_key_from_pem(data: bytes, source: str = "<memory>") -> PublicKey:
    _one_pem_block(data, source)
    fast = _ed25519_from_pem(data, source)
    if fast is not None:
        return fast
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise KeyError_(
            f"{source} is not a PEM public key ({exc})",
            "pass the .pub file written by `bundlekit keygen`",
        ) from exc
    return PublicKey(key, keyid_of(key), _key_type(key, source), source)


def load_public_key(path: Path) -> PublicKey:
    return public_key_from_pem(_read_key_file(path), str(path))


def load_private_key(path: Path, passphrase: bytes | None = None) -> PrivateKey:
    """Load a PKCS#8 PEM private key; ``passphrase`` defaults to $BUNDLEKIT_PASSPHRASE."""
    from cryptography.hazmat.primitives import serialization

    data = _read_key_file(path)
    _one_pem_block(data, str(path))
    if passphrase is None and os.environ.get(PASSPHRASE_ENV):
        passphrase = os.environ[PASSPHRASE_ENV].encode("utf-8")
    try:
        key = serialization.load_pem_private_key(data, password=passphrase)
    except TypeError as exc:
        if passphrase is None:
            raise KeyError_(
                f"{path} is encrypted and no passphrase was given",
                f"set {PASSPHRASE_ENV} or run interactively to be prompted",
            ) from exc
        raise KeyError_(f"{path} is not encrypted but a passphrase was given") from exc
    except ValueError as exc:
        raise KeyError_(
            f"cannot load private key {path}: wrong passphrase or not a PEM private key",
            f"check {PASSPHRASE_ENV}, or pass the .key file written by `bundlekit keygen`",
        ) from exc
    public = key.public_key()
    return PrivateKey(
        key, PublicKey(public, keyid_of(public), _key_type(public, str(path)), str(path))
    )


def is_encrypted(path: Path) -> bool:
    return b"ENCRYPTED" in _read_key_file(path)[:64]


def _read_key_file(path: Path) -> bytes:
    """The bytes of a key file: a regular file (never a FIFO or device), bounded."""
    from bundlekit.fsutil import read_regular

    return read_regular(path, "key file", DEFAULT_LIMITS.max_key_bytes)


@dataclass(frozen=True)
class GeneratedKey:
    private_path: Path
    public_path: Path
    keyid: str
    key_type: KeyType
    encrypted: bool


def generate_key(
    prefix: Path, key_type: KeyType = KeyType.ED25519, passphrase: bytes | None = None
) -> GeneratedKey:
    """Write ``PREFIX.key`` (PKCS#8 PEM, mode 0600) and ``PREFIX.pub``.

    The private key is encrypted with ``passphrase``; ``None`` writes it
    unencrypted (the CLI only allows that with an explicit flag).  Never
    replaces anything at either path, a dangling symlink included, even when
    another process creates it meanwhile: each file is linked into place with
    link(2), which refuses an existing name atomically.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    private_path = prefix.with_name(prefix.name + PRIVATE_SUFFIX)
    public_path = prefix.with_name(prefix.name + PUBLIC_SUFFIX)
    for path in (private_path, public_path):
        if os.path.lexists(path):
            raise _exists(path)
    if not prefix.parent.is_dir():
        raise UsageError(f"directory {prefix.parent} does not exist")
    key: Any
    if key_type is KeyType.ED25519:
        key = ed25519.Ed25519PrivateKey.generate()
    elif key_type is KeyType.ECDSA_P256:
        key = ec.generate_private_key(ec.SECP256R1())
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    encryption: Any = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    public = key.public_key()
    public_pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _write_key(private_path, private_pem, 0o600)
    try:
        _write_key(public_path, public_pem, 0o644)
    except BaseException:
        private_path.unlink(missing_ok=True)  # ours: just linked, and a pair is all or nothing
        raise
    return GeneratedKey(private_path, public_path, keyid_of(public), key_type, bool(passphrase))


def _exists(path: Path) -> UsageError:
    return UsageError(f"{path} already exists", "choose another --out or remove it first")


def _write_key(path: Path, data: bytes, mode: int) -> None:
    from bundlekit.fsutil import write_new_file

    try:
        write_new_file(path, data, mode)
    except FileExistsError as exc:
        if exc.filename is None or os.fsdecode(exc.filename2 or exc.filename) == str(path):
            raise _exists(path) from exc
        raise IOFailure.from_oserror(exc, "write key file", path) from exc
    except OSError as exc:
        raise IOFailure.from_oserror(exc, "write key file", path) from exc
