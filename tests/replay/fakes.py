"""A fake exporter that plugs into the engine through the same seam as the real ones."""

from __future__ import annotations

import threading
from collections.abc import Callable

from bundlekit.otlp.signals import Signal
from bundlekit.replay.interface import Exporter, ExportResult, Outcome, TransportOptions
from bundlekit.replay.route import Route


class FakeExporter(Exporter):
    """Accepts everything unless ``decide`` says otherwise; records accepted bodies."""

    def __init__(self, decide: Callable[[int, Signal, bytes], ExportResult] | None = None) -> None:
        self.target = "fake://collector"
        self.decide = decide
        self.calls = 0
        self.accepted: dict[Signal, list[bytes]] = {s: [] for s in Signal}
        self.order: list[tuple[Signal, bytes]] = []
        self.lock = threading.Lock()
        self.closed = False

    def export(self, signal: Signal, body: bytes) -> ExportResult:
        with self.lock:
            self.calls += 1
            number = self.calls
        result = (
            self.decide(number, signal, body) if self.decide else ExportResult(Outcome.ACCEPTED)
        )
        if result.outcome is Outcome.ACCEPTED:
            with self.lock:
                self.accepted[signal].append(body)
                self.order.append((signal, body))
        return result

    def close(self) -> None:
        self.closed = True

    def factory(self) -> Callable[[Route, TransportOptions, int], Exporter]:
        return lambda endpoint, options, concurrency: self


class NoExporter:
    """A factory that fails the test if the engine tries to connect at all."""

    def __call__(self, route: Route, options: TransportOptions, concurrency: int) -> Exporter:
        raise AssertionError("the engine created an exporter although it must not connect")
