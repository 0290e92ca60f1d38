"""The seam between the replay engine and a transport, plus replay's errors.

An :class:`Exporter` makes exactly one attempt to deliver one serialized
``Export*ServiceRequest`` and says how it went.  It never sleeps and never
retries: the retry policy (``retry.py``) is shared by every transport, so gRPC
and HTTP honour the OTLP retry rules identically, and tests can plug a fake
exporter into the same seam the real ones use.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import Enum, StrEnum
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from bundlekit.errors import BundlekitError, ExitCode, ExportError, UsageError

if TYPE_CHECKING:
    from bundlekit.otlp.signals import Signal
    from bundlekit.replay.report import ReplayReport


class Protocol(StrEnum):
    """OTLP transport; the value is what ``--protocol`` accepts."""

    GRPC = "grpc"
    HTTP = "http"


class Compression(StrEnum):
    """Request body compression; the value is what ``--compression`` accepts."""

    NONE = "none"
    GZIP = "gzip"


@dataclass(frozen=True)
class TransportOptions:
    """Where and how to connect; shared by both exporters."""

    #: ``[http://|https://]host:port[/base]``; ``None`` means the protocol's loopback default.
    endpoint: str | None = None
    protocol: Protocol = Protocol.GRPC
    #: Plaintext even though the endpoint has no ``http://`` scheme.
    insecure: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    headers: tuple[tuple[str, str], ...] = ()
    compression: Compression = Compression.NONE
    #: Seconds one attempt may take before it counts as DEADLINE_EXCEEDED / a timeout.
    timeout: float = 10.0


class Outcome(Enum):
    """How one export attempt ended."""

    ACCEPTED = "accepted"
    RETRYABLE = "retryable"
    FAILED = "failed"


@dataclass(frozen=True)
class ExportResult:
    """The result of one attempt, already classified by the OTLP rules."""

    outcome: Outcome
    #: Records the collector refused through ``partial_success`` (never retried).
    rejected: int = 0
    #: Human-readable status, e.g. ``UNAVAILABLE: connection refused`` or ``HTTP 400 ...``.
    detail: str = ""
    #: Delay the server asked for (Retry-After / RetryInfo), in seconds.
    retry_after: float | None = None
    #: What the user can do about a failure that is not the collector refusing data
    #: (e.g. a plaintext collector behind a TLS endpoint); shown as the error's hint.
    hint: str | None = None


class Exporter(ABC):
    """Delivers serialized OTLP requests of any signal to one collector.

    ``export`` is called from several threads at once (one per request in
    flight) and must be thread-safe.  It reports transport failures through
    the returned :class:`ExportResult` instead of raising.
    """

    #: Shown in messages and the report, e.g. ``grpc://127.0.0.1:4317``.
    target: str = ""

    @abstractmethod
    def export(self, signal: Signal, body: bytes) -> ExportResult:
        """Make one attempt to deliver ``body``; never sleeps or retries."""

    @abstractmethod
    def close(self) -> None:
        """Release connections; further ``export`` calls are not allowed."""

    def __enter__(self) -> Exporter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class ReplayFailed(ExportError):
    """The collector refused data, or stayed unreachable past the retry budget.

    Carries the report of what was delivered before the failure, so the CLI
    can still print it (``--json``) and the user knows where a resume starts.
    """

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.report: ReplayReport | None = None


class ReplayInterrupted(BundlekitError):
    """The user interrupted the replay (Ctrl-C); acknowledged progress was saved."""

    exit_code = ExitCode.INTERRUPTED

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.report: ReplayReport | None = None


class CheckpointError(UsageError):
    """A checkpoint file is unreadable, or belongs to another bundle or other settings."""


class RebaseError(UsageError):
    """A ``--rebase`` value is malformed or would move a timestamp out of range."""
