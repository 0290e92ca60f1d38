"""When to send: ``--speed`` (replay at N times the original pace) and ``--rate`` (records/s cap).

Pacing is computed against a virtual schedule rather than by sleeping a fixed
amount after each send, so time spent encoding and sending is not added on
top and the schedule does not drift.  The clock and sleep are injected, so the
arithmetic is tested without waiting.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

_NS = 1_000_000_000


def _plain_sleep(seconds: float) -> bool:
    time.sleep(seconds)
    return True


@dataclass
class Pacer:
    """Holds each send back until both the speed and the rate limit allow it.

    ``speed`` ``None`` means as fast as possible; otherwise a request whose
    original earliest time is ``t`` is sent ``(t - t_first) / speed`` seconds
    after the first.  ``rate`` caps records per second on average.
    ``sleep(seconds)`` returns False when the replay is stopping.
    """

    speed: float | None = None
    rate: float | None = None
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], bool] = field(default=_plain_sleep)
    _origin: tuple[float, int] | None = None
    _next_free: float | None = None

    @property
    def active(self) -> bool:
        return self.speed is not None or self.rate is not None

    def wait(self, original_ns: int | None, records: int) -> bool:
        """Sleep until this send is due; False if the replay stopped meanwhile."""
        now = self.clock()
        due = now
        if self.speed is not None and original_ns is not None:
            if self._origin is None:
                self._origin = (now, original_ns)
            wall0, t0 = self._origin
            due = max(due, wall0 + (original_ns - t0) / _NS / self.speed)
        if self.rate is not None:
            if self._next_free is not None:
                due = max(due, self._next_free)
            self._next_free = due + records / self.rate
        if due > now:
            return self.sleep(due - now)
        return True
