"""Shifting every timestamp of a request by one delta.

One delta for the whole replay keeps order and durations exactly: span
lengths, gaps between log lines and metric intervals are unchanged.  Every
timestamp kind OTLP has is moved: span start/end and span events, log time
and observed time, metric data point start/time and exemplars.  Zero means
"unset" in OTLP and stays zero.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from bundlekit.format.timefmt import format_ns, parse_ns
from bundlekit.otlp.signals import Signal
from bundlekit.replay.interface import RebaseError

_NS = 1_000_000_000
_MAX_FIXED64 = 2**64 - 1
_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": _NS,
    "m": 60 * _NS,
    "h": 3600 * _NS,
    "d": 86_400 * _NS,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d)")


class RebaseKind(StrEnum):
    NONE = "none"
    NOW = "now"
    AT = "at"  # an RFC 3339 time the bundle's earliest record moves to
    SHIFT = "shift"  # a signed duration added to every timestamp


@dataclass(frozen=True)
class RebaseSpec:
    """A parsed ``--rebase`` value (``target_ns`` for AT, ``shift_ns`` for SHIFT)."""

    kind: RebaseKind
    target_ns: int = 0
    shift_ns: int = 0

    def canonical(self) -> str:
        """Stable text recorded in checkpoints, so equal settings compare equal."""
        if self.kind is RebaseKind.AT:
            return str(format_ns(self.target_ns))
        if self.kind is RebaseKind.SHIFT:
            return f"{self.shift_ns:+d}ns"
        return self.kind.value


def parse_rebase(text: str) -> RebaseSpec:
    """``none`` | ``now`` | RFC 3339 time | ``+DURATION`` / ``-DURATION`` (e.g. ``-1h30m``)."""
    value = text.strip()
    lowered = value.lower()
    if lowered in ("", "none"):
        return RebaseSpec(RebaseKind.NONE)
    if lowered == "now":
        return RebaseSpec(RebaseKind.NOW)
    if value[0] in "+-":
        return RebaseSpec(RebaseKind.SHIFT, shift_ns=parse_signed_duration(value))
    try:
        return RebaseSpec(RebaseKind.AT, target_ns=parse_ns(value))
    except ValueError:
        raise RebaseError(
            f"invalid --rebase value {text!r}",
            "use none, now, an RFC 3339 time (2026-01-02T03:04:05Z) or a signed "
            "duration (+2h, -1d12h, +90s)",
        ) from None


def parse_signed_duration(text: str) -> int:
    """``+1h30m`` → nanoseconds; units ns, us, ms, s, m, h, d; fractions allowed."""
    sign = -1 if text.startswith("-") else 1
    body = text[1:]
    pos, total = 0, 0
    for match in _DURATION_PART.finditer(body):
        if match.start() != pos:
            break
        number, unit = match.groups()
        whole, _, frac = number.partition(".")
        scale = _UNITS[unit]
        total += int(whole) * scale
        if frac:
            total += int(frac) * scale // 10 ** len(frac)
        pos = match.end()
    if not body or pos != len(body):
        raise RebaseError(
            f"invalid duration {text!r}",
            "write a signed duration such as +2h, -1d12h, +90s or -250ms",
        )
    return sign * total


def resolve_delta(spec: RebaseSpec, earliest_ns: int | None, now_ns: int) -> int:
    """The nanoseconds added to every timestamp (target - bundle earliest for now/AT)."""
    if spec.kind is RebaseKind.NONE:
        return 0
    if spec.kind is RebaseKind.SHIFT:
        return spec.shift_ns
    if earliest_ns is None:
        raise RebaseError(
            "the bundle records no timestamps to rebase from",
            "use a signed duration instead, e.g. --rebase +24h",
        )
    target = now_ns if spec.kind is RebaseKind.NOW else spec.target_ns
    return target - earliest_ns


class Rebaser:
    """Adds a fixed delta to every timestamp of decoded requests, in place."""

    def __init__(self, delta_ns: int) -> None:
        self.delta = delta_ns
        # Any v in [low, high] stays a valid fixed64 after the shift (and non-zero).
        self._low = max(1, 1 - delta_ns)
        self._high = min(_MAX_FIXED64, _MAX_FIXED64 - delta_ns)

    def apply(self, signal: Signal, request: Any) -> None:
        if not self.delta:
            return
        if signal is Signal.TRACES:
            self._traces(request)
        elif signal is Signal.LOGS:
            self._logs(request)
        else:
            self._metrics(request)

    def _out_of_range(self, value: int) -> RebaseError:
        return RebaseError(
            f"--rebase would move the timestamp {value} ns outside 1970..2554",
            "choose a rebase target closer to the data's own time",
        )

    def _traces(self, request: Any) -> None:
        d, low, high = self.delta, self._low, self._high
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    start = span.start_time_unix_nano
                    end = span.end_time_unix_nano
                    if start:
                        if not low <= start <= high:
                            raise self._out_of_range(start)
                        span.start_time_unix_nano = start + d
                    if end:
                        if not low <= end <= high:
                            raise self._out_of_range(end)
                        span.end_time_unix_nano = end + d
                    events = span.events
                    if events:
                        self._shift(events, "time_unix_nano")

    def _logs(self, request: Any) -> None:
        for resource_logs in request.resource_logs:
            for scope_logs in resource_logs.scope_logs:
                records = scope_logs.log_records
                self._shift(records, "time_unix_nano")
                self._shift(records, "observed_time_unix_nano")

    def _metrics(self, request: Any) -> None:
        for resource_metrics in request.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    kind = metric.WhichOneof("data")
                    if kind is None:
                        continue
                    points = getattr(metric, kind).data_points
                    self._shift(points, "start_time_unix_nano")
                    self._shift(points, "time_unix_nano")
                    if kind != "summary":
                        for point in points:
                            exemplars = point.exemplars
                            if exemplars:
                                self._shift(exemplars, "time_unix_nano")

    def _shift(self, items: Any, name: str) -> None:
        d, low, high = self.delta, self._low, self._high
        for item in items:
            value = getattr(item, name)
            if value:
                if not low <= value <= high:
                    raise self._out_of_range(value)
                setattr(item, name, value + d)
