"""Every way a bundle can fail verification, as one enum.

Each defect has a stable code (what ``--json`` reports and scripts match on),
a category (which decides the exit code) and a description.  docs/cli.md's
table of codes is checked against this enum by a test, so the documentation
cannot drift from the code; ``tests/bad_bundles/`` holds one committed bundle
per code, named after it.
"""

from __future__ import annotations

from enum import StrEnum

from bundlekit.errors import ExitCode


class Category(StrEnum):
    """Kinds of failure, in the order that decides the exit code."""

    SIGNATURE = "signature"
    INTEGRITY = "integrity"
    FORMAT = "format"

    @property
    def exit_code(self) -> ExitCode:
        return {
            Category.SIGNATURE: ExitCode.SIGNATURE,
            Category.INTEGRITY: ExitCode.INTEGRITY,
            Category.FORMAT: ExitCode.FORMAT,
        }[self]


class Defect(StrEnum):
    """A verification finding's code; see :data:`DESCRIPTIONS` for what each means."""

    # signatures
    UNSIGNED = "unsigned"
    THRESHOLD = "threshold"
    # the envelope and manifest
    ENVELOPE_MALFORMED = "envelope-malformed"
    PAYLOAD_TYPE = "payload-type"
    MANIFEST_MISSING = "manifest-missing"
    MANIFEST_MISMATCH = "manifest-mismatch"
    MANIFEST_INVALID = "manifest-invalid"
    OVERSIZED = "oversized"
    # the container: directory or archive
    LISTING = "listing"
    ARCHIVE_MALFORMED = "archive-malformed"
    NOT_REGULAR = "not-regular"
    UNSAFE_NAME = "unsafe-name"
    DUPLICATE = "duplicate"
    COLLISION = "collision"
    ORDER = "order"
    # the files the manifest lists
    MISSING = "missing"
    EXTRA = "extra"
    SIZE = "size"
    UNREADABLE = "unreadable"
    DIGEST = "digest"
    # --deep
    UNDECODABLE = "undecodable"
    DEEP = "deep"

    @property
    def category(self) -> Category:
        return _CATEGORIES[self]

    @property
    def description(self) -> str:
        return DESCRIPTIONS[self]


_S, _I, _F = Category.SIGNATURE, Category.INTEGRITY, Category.FORMAT

_CATEGORIES: dict[Defect, Category] = {
    Defect.UNSIGNED: _S,
    Defect.THRESHOLD: _S,
    Defect.ENVELOPE_MALFORMED: _F,
    Defect.PAYLOAD_TYPE: _F,
    Defect.MANIFEST_MISSING: _I,
    Defect.MANIFEST_MISMATCH: _I,
    Defect.MANIFEST_INVALID: _F,
    Defect.OVERSIZED: _F,
    Defect.LISTING: _F,
    Defect.ARCHIVE_MALFORMED: _F,
    Defect.NOT_REGULAR: _I,
    Defect.UNSAFE_NAME: _I,
    Defect.DUPLICATE: _F,
    Defect.COLLISION: _F,
    Defect.ORDER: _F,
    Defect.MISSING: _I,
    Defect.EXTRA: _I,
    Defect.SIZE: _I,
    Defect.UNREADABLE: _I,
    Defect.DIGEST: _I,
    Defect.UNDECODABLE: _F,
    Defect.DEEP: _I,
}

DESCRIPTIONS: dict[Defect, str] = {
    Defect.UNSIGNED: "the bundle carries no signature envelope, or none that can be read",
    Defect.THRESHOLD: "fewer distinct trusted keys signed the manifest than --threshold requires",
    Defect.ENVELOPE_MALFORMED: "the signature envelope is not a valid DSSE envelope",
    Defect.PAYLOAD_TYPE: "the envelope's payloadType is not the bundlekit manifest's",
    Defect.MANIFEST_MISSING: "manifest.json is absent (the signed payload is still checked)",
    Defect.MANIFEST_MISMATCH: "manifest.json differs from the signed payload in the envelope",
    Defect.MANIFEST_INVALID: "the signed manifest is not canonical JSON, fails the schema, "
    "or its totals disagree with its files",
    Defect.OVERSIZED: "the manifest, the envelope or an archive header is over its size cap",
    Defect.LISTING: "the bundle cannot be listed: too many entries, or not a bundle at all",
    Defect.ARCHIVE_MALFORMED: "the archive is not a well-formed POSIX tar "
    "(bad header checksum, magic or number, cut short, unsupported PAX record)",
    Defect.NOT_REGULAR: "an entry is a link, directory, device or FIFO, not a regular file",
    Defect.UNSAFE_NAME: "an entry's name is absolute, holds '..', control characters, "
    "is not NFC-normalized or is too long or deep",
    Defect.DUPLICATE: "two archive members have the same name",
    Defect.COLLISION: "two names differ only by Unicode normalization or case, "
    "so they would collide when extracted",
    Defect.ORDER: "archive members are not in the normative order "
    "(manifest.json, then signatures/, then the files in manifest order)",
    Defect.MISSING: "a file the manifest lists is not in the bundle",
    Defect.EXTRA: "a file in the bundle is not listed in the manifest",
    Defect.SIZE: "a file's size differs from the manifest's",
    Defect.UNREADABLE: "a file could not be read",
    Defect.DIGEST: "a file's SHA-256 differs from the manifest's",
    Defect.UNDECODABLE: "--deep: a segment cannot be decompressed or decoded",
    Defect.DEEP: "--deep: a segment's requests, records, window or services "
    "differ from the manifest's",
}
