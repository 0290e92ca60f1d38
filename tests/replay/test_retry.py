"""The retry policy, with a fake clock: no test here waits for real time."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from bundlekit.replay.interface import ExportResult, Outcome
from bundlekit.replay.retry import (
    Retrier,
    RetryPolicy,
    Status,
    backoff_delays,
    parse_retry_after,
)

RETRY = ExportResult(Outcome.RETRYABLE, detail="UNAVAILABLE")
OK = ExportResult(Outcome.ACCEPTED)


class FakeTime:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> bool:
        self.sleeps.append(seconds)
        self.now += seconds
        return True


def scripted(*results: ExportResult) -> tuple[list[int], object]:
    calls = [0]
    queue = list(results)

    def attempt() -> ExportResult:
        calls[0] += 1
        return queue.pop(0) if queue else OK

    return calls, attempt


def test_backoff_grows_exponentially_within_jitter_and_is_capped() -> None:
    policy = RetryPolicy(initial_backoff=1.0, max_backoff=8.0, multiplier=2.0, jitter=0.5)
    delays = backoff_delays(policy, random.Random(7))
    got = [next(delays) for _ in range(8)]
    bases = [1, 2, 4, 8, 8, 8, 8, 8]
    for delay, base in zip(got, bases, strict=True):
        assert base * 0.5 <= delay <= min(8.0, base * 1.5)
    assert max(got) <= 8.0
    # Jitter: two retriers do not wait in lockstep.
    other = backoff_delays(policy, random.Random(8))
    assert [next(other) for _ in range(8)] != got


def test_backoff_without_jitter_is_exact() -> None:
    delays = backoff_delays(
        RetryPolicy(initial_backoff=0.5, jitter=0.0, max_backoff=3), random.Random()
    )
    assert [next(delays) for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("0", 0.0),
        ("7", 7.0),
        (" 120 ", 120.0),
        ("", None),
        (None, None),
        ("soon", None),
        ("-5", None),
        ("1.5", None),
        ("99999999", 86400.0),
    ],
)
def test_retry_after_seconds(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header) == expected


def test_retry_after_http_date() -> None:
    now = datetime(2026, 11, 1, 12, 0, 0, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=42), usegmt=True)
    assert later.endswith("GMT")
    assert parse_retry_after(later, now) == pytest.approx(42.0)
    earlier = format_datetime(now - timedelta(minutes=5), usegmt=True)
    assert parse_retry_after(earlier, now) == 0.0
    assert parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now) == 0.0


def test_retries_until_accepted_with_backoff() -> None:
    fake = FakeTime()
    calls, attempt = scripted(RETRY, RETRY, RETRY)
    policy = RetryPolicy(initial_backoff=1.0, jitter=0.0, max_elapsed=60)
    seen: list[tuple[float, int]] = []
    result = Retrier(policy, fake.clock, fake.sleep).deliver(
        attempt,
        lambda r, d, n: seen.append((d, n)),  # type: ignore[arg-type]
    )
    assert result.status is Status.ACCEPTED
    assert result.retries == 3 and calls[0] == 4
    assert fake.sleeps == [1.0, 2.0, 4.0]
    assert seen == [(1.0, 1), (2.0, 2), (4.0, 3)]


def test_server_requested_delay_is_honoured_exactly() -> None:
    fake = FakeTime()
    _, attempt = scripted(ExportResult(Outcome.RETRYABLE, retry_after=3.25), RETRY)
    policy = RetryPolicy(initial_backoff=0.1, jitter=0.0)
    result = Retrier(policy, fake.clock, fake.sleep).deliver(attempt)  # type: ignore[arg-type]
    assert result.status is Status.ACCEPTED
    # The server's delay is used as is; our own backoff sequence starts after it.
    assert fake.sleeps == [3.25, 0.1]


def test_non_retryable_failure_stops_at_once() -> None:
    fake = FakeTime()
    calls, attempt = scripted(RETRY, ExportResult(Outcome.FAILED, detail="HTTP 400"))
    result = Retrier(RetryPolicy(jitter=0.0), fake.clock, fake.sleep).deliver(attempt)  # type: ignore[arg-type]
    assert result.status is Status.FAILED
    assert result.last.detail == "HTTP 400"
    assert calls[0] == 2 and len(fake.sleeps) == 1


def test_gives_up_when_the_next_wait_would_pass_max_elapsed() -> None:
    fake = FakeTime()
    calls, attempt = scripted(*[RETRY] * 100)
    policy = RetryPolicy(initial_backoff=1.0, multiplier=2.0, jitter=0.0, max_elapsed=10.0)
    result = Retrier(policy, fake.clock, fake.sleep).deliver(attempt)  # type: ignore[arg-type]
    assert result.status is Status.EXHAUSTED
    # Waits 1 + 2 + 4 = 7 s; the next (8 s) would end at 15 s > 10 s, so it stops.
    assert fake.sleeps == [1.0, 2.0, 4.0]
    assert calls[0] == 4
    assert sum(fake.sleeps) <= policy.max_elapsed


def test_server_delay_beyond_the_budget_gives_up_without_waiting() -> None:
    fake = FakeTime()
    _, attempt = scripted(ExportResult(Outcome.RETRYABLE, retry_after=3600))
    result = Retrier(RetryPolicy(max_elapsed=300), fake.clock, fake.sleep).deliver(attempt)  # type: ignore[arg-type]
    assert result.status is Status.EXHAUSTED
    assert fake.sleeps == []


def test_stopping_interrupts_the_wait() -> None:
    fake = FakeTime()
    calls, attempt = scripted(RETRY, RETRY)
    result = Retrier(RetryPolicy(), fake.clock, lambda s: False).deliver(attempt)  # type: ignore[arg-type]
    assert result.status is Status.STOPPED
    assert calls[0] == 1
