"""Hard bounds for reading and writing bundles, kept in one place.

Every bundle is hostile until verified: these limits cap how much a bundle can
make bundlekit read, decompress or hold in memory before it has been trusted.
"""

from __future__ import annotations

from dataclasses import dataclass

KiB = 1024
MiB = 1024 * KiB

#: Defaults that other defaults are derived from (see ``max_envelope_bytes``).
_MAX_MANIFEST_BYTES = 32 * MiB
_MAX_SIGNATURES = 64
#: Room for one signature in an envelope: a key id hint (64 hex digits from
#: bundlekit, other DSSE tools' hints are longer), a signature in base64 (684
#: characters for RSA-4096) and the JSON around them, with a wide margin.
SIGNATURE_ENTRY_BYTES = 2 * KiB


def envelope_bytes_for(manifest_bytes: int, signatures: int) -> int:
    """The largest envelope that can carry a ``manifest_bytes`` manifest and ``signatures``.

    The envelope holds the manifest base64-encoded (4 bytes for every 3),
    ``signatures`` signature entries and a few fields around them.
    """
    return 4 * -(-manifest_bytes // 3) + signatures * SIGNATURE_ENTRY_BYTES + 4 * KiB


@dataclass(frozen=True)
class Limits:
    """Bounds applied by pack, verify, inspect and replay."""

    #: Largest single Export*ServiceRequest (the usual gRPC receive limit).
    max_request_bytes: int = 4 * MiB
    #: Largest uncompressed segment; pack rolls to a new segment before this.
    max_segment_bytes: int = 64 * MiB
    #: Largest manifest.json we agree to read and parse.
    max_manifest_bytes: int = _MAX_MANIFEST_BYTES
    #: Largest signature envelope we agree to read.  It follows from the manifest
    #: cap: the envelope carries the manifest in base64 plus its signatures, so a
    #: smaller cap (it was 8 MiB, under the 43 MiB that base64 of a 32 MiB manifest
    #: takes) would refuse the signatures over a manifest that is itself within
    #: bounds.  Only the manifest cap decides what a bundle may hold.  Reading an
    #: envelope this large costs little before trust: its structure is counted
    #: before it is parsed (format/dsse.py), and an untrusted payload is never parsed.
    max_envelope_bytes: int = envelope_bytes_for(_MAX_MANIFEST_BYTES, _MAX_SIGNATURES)
    #: Largest config or dashboard file packed or read back.
    max_config_bytes: int = 16 * MiB
    #: Most files a bundle may hold, and most signatures one envelope may carry.
    max_files: int = 100_000
    max_signatures: int = _MAX_SIGNATURES
    #: Longest relative path and deepest nesting accepted inside a bundle.
    max_path_length: int = 512
    max_path_depth: int = 16
    #: Largest compressed-to-uncompressed ratio tolerated when decompressing.
    max_compression_ratio: int = 2_000
    #: Most failures one verification report lists; past it the report counts the
    #: rest in one "N more not shown" note, so a bundle with a million missing
    #: files cannot make the report (or the terminal) that long.
    max_findings: int = 1_000
    #: Deepest nesting of arrays/objects in a config, dashboard or other user JSON/YAML
    #: (checked without recursion; Python's parsers would hit RecursionError far below 10k).
    max_nesting_depth: int = 128
    #: Largest key file (PEM) read; real keys are a few KB.
    max_key_bytes: int = 1 * MiB
    #: Custody fields, in characters (the manifest schema's maxLength for each).
    max_operator_chars: int = 256
    max_case_id_chars: int = 256
    max_reason_chars: int = 4_096
    #: Largest zstd window a segment's frame may ask for: what a decoder allocates
    #: besides its output.  bundlekit's writer (levels 1-19) never asks for more
    #: than 8 MiB, at any segment size.
    max_window_bytes: int = 8 * MiB
    #: Largest manifest whose schema violations are all listed (by jsonschema, ~2 µs a byte);
    #: a larger invalid manifest is refused with the first violation only, in milliseconds.
    max_schema_listing_bytes: int = 64 * 1024
    #: Largest pax extended header in a bundle archive.  bundlekit writes one only for a
    #: name that does not fit the ustar header (at most ``max_path_length`` bytes), so
    #: anything near this is not ours; tarfile itself would read any size into memory.
    max_pax_header_bytes: int = 8 * 1024

    @property
    def max_stored_segment_bytes(self) -> int:
        """Largest compressed segment file: zstd's worst case for ``max_segment_bytes``.

        Derived, not a separate cap: zstd guarantees no frame of that much content
        is larger (``ZSTD_compressBound``, header and checksum included), so a
        reader may refuse a bigger file before reading it.
        """
        size = self.max_segment_bytes
        small = (128 * 1024 - size) >> 11 if size < 128 * 1024 else 0
        return size + (size >> 8) + small


DEFAULT_LIMITS = Limits()
