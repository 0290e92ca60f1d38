"""The replay report: what was sent, acknowledged, rejected and retried, per signal.

``--json`` prints :meth:`ReplayReport.to_json`; the same object is attached to
a :class:`~bundlekit.replay.interface.ReplayFailed` so a failed replay still
says how far it got.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bundlekit.otlp.signals import SIGNALS, Signal


@dataclass
class SignalReport:
    """Counters for one signal. "Requests" are export calls (after batching)."""

    records_sent: int = 0
    requests_sent: int = 0
    records_acknowledged: int = 0
    requests_acknowledged: int = 0
    #: Records the collector refused via partial_success (acknowledged, not retried).
    records_rejected: int = 0
    #: Extra attempts made because of retryable failures.
    retries: int = 0
    #: Records skipped because an earlier run with the same checkpoint delivered them.
    records_already_acknowledged: int = 0
    #: Records left out by --service/--since/--until.
    records_filtered: int = 0

    def to_json(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class ReplayReport:
    bundle_id: str
    replay_id: str
    endpoint: str
    protocol: str
    verification_skipped: bool
    #: How the data left: ``direct to ADDRESS:PORT (...)`` or ``via proxy URL (...)``.
    route: str = ""
    #: Sealed mode was on (``--sealed``, ``BUNDLEKIT_SEALED`` or an airgap bundle).
    sealed: bool = False
    dry_run: bool = False
    rebase_delta_ns: int = 0
    marker: bool = True
    resumed: bool = False
    completed: bool = False
    error: str | None = None
    duration_s: float = 0.0
    signals: dict[Signal, SignalReport] = field(
        default_factory=lambda: {s: SignalReport() for s in SIGNALS}
    )

    @property
    def records_acknowledged(self) -> int:
        return sum(r.records_acknowledged for r in self.signals.values())

    @property
    def records_per_second(self) -> float:
        return self.records_acknowledged / self.duration_s if self.duration_s > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "bundle_id": self.bundle_id,
            "replay_id": self.replay_id,
            "endpoint": self.endpoint,
            "protocol": self.protocol,
            "route": self.route,
            "sealed": self.sealed,
            "verification_skipped": self.verification_skipped,
            "dry_run": self.dry_run,
            "rebase_delta_ns": self.rebase_delta_ns,
            "marker": self.marker,
            "resumed": self.resumed,
            "completed": self.completed,
            "error": self.error,
            "duration_s": round(self.duration_s, 6),
            "records_per_second": round(self.records_per_second, 1),
            "signals": {s.value: r.to_json() for s, r in self.signals.items()},
        }
