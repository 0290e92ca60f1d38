"""The OTLP retry policy: which failures to retry, how long to wait, when to give up.

Pure logic with an injected clock, sleep and random source, so every rule is
unit-tested without real time passing.  Exporters classify each attempt
(retryable or not, and any delay the server asked for); this module decides
the waits: the server's delay when it gave one (HTTP ``Retry-After``, gRPC
``RetryInfo``), otherwise exponential backoff with jitter, and never beyond
the maximum elapsed time.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import Enum

from bundlekit.replay.interface import ExportResult, Outcome

#: Retry-After values above this are treated as this (a day), to keep arithmetic sane.
_MAX_RETRY_AFTER = 86_400.0


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter and a budget, as the OTLP exporter spec asks."""

    initial_backoff: float = 0.5
    max_backoff: float = 30.0
    multiplier: float = 2.0
    #: Each wait is drawn from ``[d * (1 - jitter), d * (1 + jitter)]``.
    jitter: float = 0.5
    #: Give up on a request once this many seconds passed since its first attempt.
    max_elapsed: float = 300.0


def backoff_delays(policy: RetryPolicy, rng: random.Random) -> Iterator[float]:
    """The waits between attempts when the server did not say how long to wait."""
    base = policy.initial_backoff
    while True:
        low, high = base * (1 - policy.jitter), base * (1 + policy.jitter)
        yield min(policy.max_backoff, rng.uniform(low, high))
        base = min(policy.max_backoff, base * policy.multiplier)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from an HTTP ``Retry-After`` header (delay-seconds or HTTP-date).

    Returns ``None`` when absent or unparseable, so the caller falls back to
    its own backoff; a date in the past means "now" (0).
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isdigit():
        return min(float(text), _MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now or datetime.now(UTC)
    return min(max(0.0, (when - current).total_seconds()), _MAX_RETRY_AFTER)


def _plain_sleep(seconds: float) -> bool:
    time.sleep(seconds)
    return True


class Status(Enum):
    """How delivering one request ended after all attempts."""

    ACCEPTED = "accepted"
    FAILED = "failed"  # a non-retryable answer
    EXHAUSTED = "exhausted"  # still failing when the retry budget ran out
    STOPPED = "stopped"  # the replay is stopping; no further attempt was made


@dataclass(frozen=True)
class Delivery:
    """The final result of delivering one request, with the retries it took."""

    status: Status
    last: ExportResult
    retries: int
    elapsed: float


@dataclass
class Retrier:
    """Runs attempts of one request until accepted, refused, out of budget or stopped.

    ``sleep(seconds)`` returns ``False`` when the replay is stopping (it is
    normally ``threading.Event.wait`` negated), which ends the loop at once.
    """

    policy: RetryPolicy = field(default_factory=RetryPolicy)
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], bool] = field(default=_plain_sleep)
    rng: random.Random = field(default_factory=random.Random)

    def deliver(
        self,
        attempt: Callable[[], ExportResult],
        on_retry: Callable[[ExportResult, float, int], None] | None = None,
    ) -> Delivery:
        start = self.clock()
        delays = backoff_delays(self.policy, self.rng)
        retries = 0
        while True:
            result = attempt()
            elapsed = self.clock() - start
            if result.outcome is Outcome.ACCEPTED:
                return Delivery(Status.ACCEPTED, result, retries, elapsed)
            if result.outcome is Outcome.FAILED:
                return Delivery(Status.FAILED, result, retries, elapsed)
            delay = result.retry_after if result.retry_after is not None else next(delays)
            if elapsed + delay > self.policy.max_elapsed:
                return Delivery(Status.EXHAUSTED, result, retries, elapsed)
            retries += 1
            if on_retry is not None:
                on_retry(result, delay, retries)
            if not self.sleep(delay):
                return Delivery(Status.STOPPED, result, retries, self.clock() - start)
