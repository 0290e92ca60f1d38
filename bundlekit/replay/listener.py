"""Progress events: the library never prints, it tells a listener.

The CLI attaches a rich progress bar; tests attach recorders; the default
does nothing.  The engine serializes calls, so a listener needs no locking of
its own even though sends complete on worker threads.
"""

from __future__ import annotations

from bundlekit.otlp.signals import Signal
from bundlekit.replay.report import ReplayReport


class ReplayListener:
    """Override what you need; every method defaults to doing nothing."""

    def on_start(self, report: ReplayReport, planned_records: dict[Signal, int]) -> None:
        """Verification passed; ``planned_records`` estimates what will be sent per signal."""

    def on_warning(self, message: str) -> None:
        """Something the user should know (``--no-verify``, partial success, …)."""

    def on_sent(self, signal: Signal, records: int) -> None:
        """A request left for the collector (first attempt)."""

    def on_acknowledged(self, signal: Signal, records: int, rejected: int) -> None:
        """The collector accepted a request (``rejected`` of its records via partial_success)."""

    def on_skipped(self, signal: Signal, records: int) -> None:
        """Records not sent: filtered out, or acknowledged by an earlier run."""

    def on_retry(self, signal: Signal, detail: str, delay: float, attempt: int) -> None:
        """A retryable failure; the next attempt follows after ``delay`` seconds."""

    def on_finish(self, report: ReplayReport) -> None:
        """The replay ended (completed, failed or interrupted)."""
