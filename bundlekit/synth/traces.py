"""Spans: whole traces, in the order the shop served them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from bundlekit.synth.batch import Fill, Record
from bundlekit.synth.catalog import SERVICE_INDEX, TEMPLATES, kvs
from bundlekit.synth.timeline import Cycle, Plan, span_times
from bundlekit.synth.variants import FLAGS_REMOTE, Variant, variant

_LINK_ATTRS = kvs((("messaging.operation.type", "process"),))
#: (service index, scope role) of every step of every template.
_SCOPES = [[(SERVICE_INDEX[s.service], s.scope) for s in t.steps] for t in TEMPLATES]
_PARENTS = [[s.parent for s in t.steps] for t in TEMPLATES]


def span_records(records: int, cycle: Cycle) -> Iterator[Record]:
    """Exactly ``records`` spans; the last trace is cut short if it does not fit."""
    emitted = 0
    k = 0
    while emitted < records:
        plan = cycle.plan(k, records)
        v = variant(plan)
        take = min(len(v.spans), records - emitted)
        scopes = _SCOPES[plan.template]
        for i in range(take):
            service, role = scopes[i]
            yield service, role, _filler(plan, v, i)
        emitted += take
        k += 1


def _filler(plan: Plan, v: Variant, i: int) -> Fill:
    def fill(scope: Any, _cache: dict[Any, Any]) -> None:
        span = scope.spans.add()
        span.CopyFrom(v.spans[i])
        span.trace_id = plan.trace_id
        span.span_id = plan.ids[8 * i : 8 * i + 8]
        parent = _PARENTS[plan.template][i]
        if parent >= 0:
            span.parent_span_id = plan.ids[8 * parent : 8 * parent + 8]
        start, end = span_times(plan, i)
        span.start_time_unix_nano = start
        span.end_time_unix_nano = end
        if v.has_events[i]:
            for event in span.events:
                exception = event.name == "exception"
                event.time_unix_nano = end - 1_000 if exception else (start + end) // 2
        dynamic = v.dynamic[i]
        if dynamic is not None:
            value = span.attributes[dynamic[0]].value
            text = dynamic[1].format(n=plan.number % 100_000)
            if value.HasField("int_value"):
                value.int_value = int(text)
            else:
                value.string_value = text
        if i == 0 and plan.link is not None:
            span.links.add(
                trace_id=plan.link[0],
                span_id=plan.link[1],
                flags=FLAGS_REMOTE,
                attributes=_LINK_ATTRS,
            )

    return fill
