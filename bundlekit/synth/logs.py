"""Log records written while serving the traces, carrying their trace and span ids."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from bundlekit.synth.batch import Fill, Record
from bundlekit.synth.catalog import SERVICE_INDEX, TEMPLATES
from bundlekit.synth.timeline import Cycle, Plan, span_times
from bundlekit.synth.variants import ACCESS_FIELDS, Variant, variant

#: Logs written by each step of each template (the same for ok and failed traces).
_PER_STEP = [[len(s.logs) for s in t.steps] for t in TEMPLATES]
_SERVICES = [[SERVICE_INDEX[s.service] for s in t.steps] for t in TEMPLATES]
#: The collector sees a record 1 ms to 2 s after it was written.
_MAX_LAG_NS = 2_000_000_000
_PATH, _DURATION, _CLIENT, _BYTES = (
    ACCESS_FIELDS.index(k) for k in ("path", "duration_ms", "client_ip", "bytes_sent")
)


def log_records(records: int, cycle: Cycle, spans_total: int) -> Iterator[Record]:
    """Exactly ``records`` log records, trace after trace of a ``spans_total`` stream."""
    emitted = 0
    k = 0
    while emitted < records:
        plan = cycle.plan(k, spans_total)
        v = variant(plan)
        services = _SERVICES[plan.template]
        for i, templates in enumerate(v.logs):
            for template in templates:
                if emitted >= records:
                    return
                yield services[i], "log", _filler(plan, v, i, template)
                emitted += 1
        k += 1


def logs_for_spans(spans: int, cycle: Cycle) -> int:
    """How many log records the traces of a ``spans``-span stream write."""
    if spans <= 0:
        return 0
    per_trace = [sum(_PER_STEP[t]) for t in cycle.order]
    per_cycle = sum(per_trace)
    last = cycle.trace_at(spans - 1)
    full, pos = divmod(last, len(cycle.order))
    before = full * per_cycle + sum(per_trace[:pos])
    kept = spans - cycle.first_span(last)
    return before + sum(_PER_STEP[cycle.template(last)][:kept])


def spans_for_logs(records: int, cycle: Cycle) -> int:
    """The smallest traces stream whose traces write ``records`` log records."""
    lo, hi = 0, max(1, records)
    while logs_for_spans(hi, cycle) < records:
        hi *= 2
    while lo < hi:
        mid = (lo + hi) // 2
        if logs_for_spans(mid, cycle) >= records:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _filler(plan: Plan, v: Variant, i: int, template: LogRecord) -> Fill:
    def fill(scope: Any, _cache: dict[Any, Any]) -> None:
        record = scope.log_records.add()
        record.CopyFrom(template)
        start, end = span_times(plan, i)
        at = end - min(20_000, (end - start) // 2)
        record.time_unix_nano = at
        record.observed_time_unix_nano = at + 1_000_000 + (plan.number >> 8) % _MAX_LAG_NS
        record.trace_id = plan.trace_id
        record.span_id = plan.span_id(i)
        access = v.access[i]
        if access is not None:
            record.body.CopyFrom(access)
            fields = record.body.kvlist_value.values
            n = plan.number
            dynamic = v.dynamic[i]
            if dynamic is not None:  # the same url.path as the span's
                fields[_PATH].value.string_value = dynamic[1].format(n=n % 100_000)
            fields[_DURATION].value.double_value = (end - start) / 1e6
            fields[_CLIENT].value.string_value = f"198.51.100.{n % 250 + 1}"
            fields[_BYTES].value.int_value = 512 + n % 40_000
        else:
            n = plan.number
            record.body.string_value = record.body.string_value.format(
                o=f"ord-{n % 16**8:08x}", u=f"user-{n % 50_000:05d}", n=n % 9 + 1
            )

    return fill
