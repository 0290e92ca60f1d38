"""Hard bounds for reading and writing bundles, kept in one place.

Every bundle is hostile until verified: these limits cap how much a bundle can
make bundlekit read, decompress or hold in memory before it has been trusted.
"""

from __future__ import annotations

from dataclasses import dataclass

MiB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """Bounds applied by pack, verify, inspect and replay."""

    #: Largest single Export*ServiceRequest (the usual gRPC receive limit).
    max_request_bytes: int = 4 * MiB
    #: Largest uncompressed segment; pack rolls to a new segment before this.
    max_segment_bytes: int = 64 * MiB
    #: Largest manifest.json / envelope we agree to read and parse.
    max_manifest_bytes: int = 32 * MiB
    max_envelope_bytes: int = 8 * MiB
    #: Largest config or dashboard file packed or read back.
    max_config_bytes: int = 16 * MiB
    #: Most files a bundle may hold, and most signatures one envelope may carry.
    max_files: int = 100_000
    max_signatures: int = 64
    #: Longest relative path and deepest nesting accepted inside a bundle.
    max_path_length: int = 512
    max_path_depth: int = 16
    #: Largest compressed-to-uncompressed ratio tolerated when decompressing.
    max_compression_ratio: int = 2_000
    #: Largest manifest whose schema violations are all listed (by jsonschema, ~2 µs a byte);
    #: a larger invalid manifest is refused with the first violation only, in milliseconds.
    max_schema_listing_bytes: int = 64 * 1024


DEFAULT_LIMITS = Limits()
