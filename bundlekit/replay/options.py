"""Everything a replay can be told, in one validated object.

Each CLI flag maps onto one field here, so the library can be driven without
the CLI and the CLI stays a thin translation layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bundlekit.errors import UsageError
from bundlekit.limits import DEFAULT_LIMITS, Limits
from bundlekit.replay.filters import Filters
from bundlekit.replay.interface import TransportOptions
from bundlekit.replay.retry import RetryPolicy
from bundlekit.replay.source import TrustOptions

#: Stored requests are concatenated (a valid protobuf merge, no decoding) up to this size.
DEFAULT_BATCH_BYTES = 256 * 1024


@dataclass(frozen=True)
class ReplayOptions:
    transport: TransportOptions = field(default_factory=TransportOptions)
    trust: TrustOptions = field(default_factory=TrustOptions)
    filters: Filters = field(default_factory=Filters)
    #: ``none`` | ``now`` | RFC 3339 time | signed duration (see ``rebase.py``).
    rebase: str = "none"
    #: Replay at this multiple of the original pace; ``None`` = as fast as possible.
    speed: float | None = None
    #: Cap on records per second; ``None`` = no cap.
    rate: float | None = None
    #: Add ``bundlekit.bundle.id`` / ``bundlekit.replay.id`` to every resource.
    marker: bool = True
    #: Requests in flight at once.
    concurrency: int = 8
    #: Target size when joining small stored requests into one export call (0 = never join).
    batch_bytes: int = DEFAULT_BATCH_BYTES
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    checkpoint: Path | None = None
    sealed: bool = False
    allow_egress: tuple[str, ...] = ()
    dry_run: bool = False
    #: Fixed id for the marker (normally a fresh UUID per replay, kept across resumes).
    replay_id: str | None = None
    limits: Limits = DEFAULT_LIMITS

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise UsageError("--concurrency must be at least 1")
        if self.speed is not None and self.speed <= 0:
            raise UsageError("--speed must be 'max' or a positive number")
        if self.rate is not None and self.rate <= 0:
            raise UsageError("--rate must be a positive number of records per second")
        if not 0 <= self.batch_bytes <= self.limits.max_request_bytes:
            raise UsageError(f"--batch-bytes must be between 0 and {self.limits.max_request_bytes}")
        if self.retry.max_elapsed < 0 or self.transport.timeout <= 0:
            raise UsageError("timeouts must be positive")
        if self.trust.threshold < 1:
            raise UsageError("--threshold must be at least 1")
