"""When trace number ``k`` happens, which request it is, its ids and whether it fails.

The fate of every trace is a pure function of ``(seed, k)`` and of the size of
the traces stream, computable in O(1) without generating earlier traces. That
is what lets the logs and the metric exemplars point at the exact trace ids,
span ids and times of a traces stream they are generated apart from.
"""

from __future__ import annotations

import bisect
import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass

from bundlekit.synth.catalog import CHECKOUT, MAX_STEPS, PRODUCER_STEP, TEMPLATES, Step

#: Start of the synthetic incident window: 2026-11-01T00:00:00Z.
EPOCH_NS = 1_793_491_200 * 1_000_000_000
#: Length of the window; every time stamp lies in [EPOCH_NS, EPOCH_NS + WINDOW_NS].
WINDOW_NS = 3600 * 1_000_000_000
#: Traces start no later than this, so the slowest trace still ends in the window.
TRACE_WINDOW_NS = WINDOW_NS - 60 * 1_000_000_000
#: Fraction of the window during which the payment provider times out.
INCIDENT = (0.35, 0.60)

_RANDOM_BYTES = 16 + 8 * MAX_STEPS + 16
#: Gap between two sibling calls, in microseconds.
_GAP_US = 40
#: A consumer picks an order message up this long after it was published.
_QUEUE_DELAY_NS = 25_000_000


def in_incident(frac: float) -> bool:
    return INCIDENT[0] <= frac < INCIDENT[1]


@dataclass(frozen=True)
class Plan:
    """The fate of one trace."""

    k: int
    template: int
    trace_id: bytes
    #: Span ids, 8 bytes per step of the template.
    ids: bytes
    failed: bool
    #: Duration scale in per-mille (700 = 30 % faster than the template).
    scale: int
    start: int
    #: A per-trace number used for order ids, users, product ids.
    number: int
    #: (trace id, span id) of the message a consumer trace processes.
    link: tuple[bytes, bytes] | None = None

    def span_id(self, step: int) -> bytes:
        return self.ids[8 * step : 8 * step + 8]


class Cycle:
    """A seeded, repeating order of request templates.

    Because the order repeats, the index of the first span of trace ``k`` is
    O(1) to compute, and so is the trace holding span ``i``. Trace start
    times are proportional to that index, so a stream of any size covers the
    whole window with the traffic mix of the shop.
    """

    def __init__(self, seed: int) -> None:
        order = [i for i, t in enumerate(TEMPLATES) for _ in range(t.weight)]
        random.Random(seed).shuffle(order)  # noqa: S311 - a traffic mix, not secrets
        self.order = order
        self.prefix = [0]
        for tpl in order:
            self.prefix.append(self.prefix[-1] + len(TEMPLATES[tpl].steps))
        self._back = [self._previous_checkout(p) for p in range(len(order))]
        self._seed = seed.to_bytes(8, "little", signed=True)

    def _previous_checkout(self, pos: int) -> int:
        n = len(self.order)
        return next(d for d in range(1, n + 1) if self.order[(pos - d) % n] == CHECKOUT)

    def template(self, k: int) -> int:
        return self.order[k % len(self.order)]

    def first_span(self, k: int) -> int:
        full, pos = divmod(k, len(self.order))
        return full * self.prefix[-1] + self.prefix[pos]

    def trace_at(self, span_index: int) -> int:
        full, rem = divmod(span_index, self.prefix[-1])
        return full * len(self.order) + bisect.bisect_right(self.prefix, rem) - 1

    def plan(self, k: int, spans_total: int) -> Plan:
        """Trace ``k`` of a traces stream holding ``spans_total`` spans."""
        h = hashlib.shake_256(b"bundlekit.synth" + self._seed + k.to_bytes(8, "little"))
        raw = h.digest(_RANDOM_BYTES)
        tpl = self.template(k)
        t = TEMPLATES[tpl]
        offset = min(self.first_span(k) * TRACE_WINDOW_NS // max(spans_total, 1), TRACE_WINDOW_NS)
        incident = in_incident(offset / WINDOW_NS)
        tail = raw[16 + 8 * MAX_STEPS :]
        draw = int.from_bytes(tail[0:2], "little") / 65536.0
        rate = t.incident_fail_rate if incident and t.incident_fail_rate else t.fail_rate
        failed = draw < rate
        if failed:  # time-outs take their configured time, give or take 5 %
            scale = 950 + tail[2] * 100 // 255
        else:
            scale = 700 + tail[2] * 900 // 255
            if incident:
                scale = int(scale * t.incident_slowdown)
        start = EPOCH_NS + offset
        link = None
        src = k - self._back[k % len(self.order)]
        if t.links_to_producer and src >= 0:
            # Consume the order message of the latest checkout, after it was sent.
            producer = self.plan(src, spans_total)
            link = producer.trace_id, producer.span_id(PRODUCER_STEP)
            start = max(start, span_times(producer, PRODUCER_STEP)[1] + _QUEUE_DELAY_NS)
        return Plan(
            k,
            tpl,
            raw[:16],
            raw[16 : 16 + 8 * MAX_STEPS],
            failed,
            scale,
            start,
            int.from_bytes(tail[4:8], "little"),
            link,
        )


def _layout(steps: Sequence[Step], failed: bool) -> list[tuple[int, int]]:
    """Run children one after another inside their parent, so every child lies
    within its parent and ancestors of a slow span are slow too."""
    children: list[list[int]] = [[] for _ in steps]
    for i, s in enumerate(steps):
        if s.parent >= 0:
            children[s.parent].append(i)
    timing = [(0, 0)] * len(steps)

    def place(i: int, start: int) -> int:
        before, after = steps[i].own_us
        failure = steps[i].failure
        if failed and failure is not None:
            before += failure.extra_us
        cursor = start + before
        for c in children[i]:
            cursor = place(c, cursor) + _GAP_US
        end = cursor + after
        timing[i] = (start, end - start)
        return end

    place(0, 0)
    return timing


#: TIMING[template][failed][step] = (offset from trace start, duration) in microseconds.
TIMING: tuple[tuple[list[tuple[int, int]], list[tuple[int, int]]], ...] = tuple(
    (_layout(t.steps, False), _layout(t.steps, True)) for t in TEMPLATES
)


def span_times(plan: Plan, step: int) -> tuple[int, int]:
    """Start and end (Unix ns) of one span of a planned trace."""
    off, dur = TIMING[plan.template][plan.failed][step]
    start = plan.start + off * plan.scale  # microseconds times per-mille = ns
    return start, start + dur * plan.scale
