"""What replay reads: a verified bundle's segments, as a small protocol.

The engine depends on this protocol, not on the verifier, so that trust is
decided in exactly one place (``open_source``) and tests can replay from an
in-memory source through the same seam.  Segment bytes come from
``VerifiedBundle.read_segment``, which re-checks each file's digest as it
reads it, so nothing unverified is ever sent.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from bundlekit.limits import DEFAULT_LIMITS, Limits
from bundlekit.otlp.signals import Signal


class SegmentInfo(Protocol):
    """The manifest facts replay uses about one segment (a ``FileEntry``)."""

    @property
    def name(self) -> str: ...
    @property
    def size(self) -> int:
        """Stored (compressed) bytes."""
        ...

    @property
    def requests(self) -> int | None: ...
    @property
    def records(self) -> int | None: ...
    @property
    def earliest_ns(self) -> int | None: ...
    @property
    def latest_ns(self) -> int | None: ...
    @property
    def services(self) -> tuple[str, ...]: ...


class ReplaySource(Protocol):
    """A bundle, ready to replay."""

    @property
    def bundle_id(self) -> str: ...
    @property
    def profile(self) -> str: ...
    @property
    def verification_skipped(self) -> bool: ...

    def segments(self, signal: Signal) -> Sequence[SegmentInfo]:
        """Segments of ``signal`` in replay order."""
        ...

    def requests(self, signal: Signal, segment: SegmentInfo) -> Iterator[bytes]:
        """Each stored request's bytes, in stored order."""
        ...


@dataclass
class BundleSource:
    """Adapts a (verified or explicitly unverified) bundle to :class:`ReplaySource`."""

    bundle: Any
    verification_skipped: bool
    limits: Limits = DEFAULT_LIMITS

    @property
    def bundle_id(self) -> str:
        return str(self.bundle.manifest.bundle_id)

    @property
    def profile(self) -> str:
        return str(self.bundle.manifest.profile)

    def segments(self, signal: Signal) -> Sequence[SegmentInfo]:
        return list(self.bundle.manifest.segments(signal))

    def requests(self, signal: Signal, segment: SegmentInfo) -> Iterator[bytes]:
        """Decode through the one bounded reader (``iter_records``).

        The compressed segment is held to re-check its digest before use; its
        size is bounded first, since with ``--no-verify`` the manifest that
        gives it is not trusted.  Decompressed data is never held whole: one
        request and one bounded output chunk at a time.
        """
        from bundlekit.format.segment import check_stored_size, iter_records

        check_stored_size(segment.name, segment.size, self.limits)
        data = self.bundle.read_segment(segment)
        return iter_records(io.BytesIO(data), self.limits, compressed_size=len(data))


@dataclass(frozen=True)
class TrustOptions:
    """The same trust options ``bundlekit verify`` takes."""

    trust_dir: Path | None = None
    keys: tuple[Path, ...] = ()
    threshold: int = 1
    no_verify: bool = False


def open_source(path: Path, trust: TrustOptions, limits: Limits) -> BundleSource:
    """Verify the bundle as ``bundlekit verify`` would (segments as they are read); raise if
    it fails.  A stream cannot be replayed: replay reads segments in time order."""
    if str(path) == "-":
        from bundlekit.errors import UsageError

        raise UsageError(
            "replay cannot read a bundle from standard input",
            "save it to a file first (replay reads segments in time order, not stored order)",
        )
    if trust.no_verify:
        from bundlekit.verify import open_unverified

        return BundleSource(open_unverified(path), verification_skipped=True, limits=limits)
    from bundlekit.verify import VerifyOptions, verify_bundle

    # Segments are checked as each is read for sending (``read_segment``): every
    # byte is read once, and nothing is sent before its digest has matched.
    options = VerifyOptions(
        trust_dir=trust.trust_dir,
        keys=trust.keys,
        threshold=trust.threshold,
        limits=limits,
        defer_segments=True,
    )
    return BundleSource(verify_bundle(path, options), verification_skipped=False, limits=limits)
