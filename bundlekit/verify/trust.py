"""The set of public keys a verifier trusts.

A trust store is a directory of PEM public keys (``*.pub`` or ``*.pem``), one
key per file, plus any keys named one by one.  A key is identified by its key
id, so the same key listed twice counts once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bundlekit.errors import UsageError, translate_os_errors
from bundlekit.keys import PublicKey, load_public_key

TRUST_SUFFIXES = (".pub", ".pem")


@dataclass(frozen=True)
class TrustStore:
    keys: tuple[PublicKey, ...]

    @classmethod
    def load(cls, trust_dir: Path | None = None, key_files: Sequence[Path] = ()) -> TrustStore:
        paths: list[Path] = list(key_files)
        if trust_dir is not None:
            if not trust_dir.is_dir():
                raise UsageError(
                    f"trust directory not found: {trust_dir}",
                    "--trust takes a directory of PEM public keys (see docs/keys.md)",
                )
            # Every *.pub/*.pem entry is loaded, whatever its type: a FIFO, device or
            # socket among them is refused by the key reader (before it is read, so
            # it cannot hang the verifier), not skipped silently.
            with translate_os_errors("list trust directory", trust_dir):
                found = sorted(p for p in trust_dir.iterdir() if p.suffix in TRUST_SUFFIXES)
            if not found:
                raise UsageError(f"no *.pub or *.pem public keys in {trust_dir}")
            paths.extend(found)
        if not paths:
            raise UsageError(
                "no trusted keys given", "pass --trust DIR or --key PUBLIC_KEY (repeatable)"
            )
        return cls.of(load_public_key(p) for p in paths)

    @classmethod
    def of(cls, keys: Iterable[PublicKey]) -> TrustStore:
        unique: dict[str, PublicKey] = {}
        for key in keys:
            unique.setdefault(key.keyid, key)
        return cls(tuple(unique.values()))

    def candidates(self, keyid_hint: str) -> list[PublicKey]:
        """Keys to try for a signature: the hinted one first, then the rest."""
        hinted = [k for k in self.keys if k.keyid == keyid_hint]
        return hinted + [k for k in self.keys if k.keyid != keyid_hint]
