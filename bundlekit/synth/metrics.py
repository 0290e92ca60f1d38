"""Metric data points of all five OTLP types, consistent with the traces.

Request rates, latencies and error rates are derived from the trace templates
(traffic weights, span durations, failure rates), so the metrics tell the
same story as the traces: payments latency and 5xx counts climb during the
incident. Every series is cumulative from the start of the window, except
the gauges, and collected at a fixed interval.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2 as mpb

from bundlekit.synth.batch import Fill, Record
from bundlekit.synth.catalog import CLIENT, SERVER, SERVICES, TEMPLATES, kvs
from bundlekit.synth.timeline import (
    EPOCH_NS,
    TIMING,
    TRACE_WINDOW_NS,
    WINDOW_NS,
    Cycle,
    in_incident,
    span_times,
)

#: Traffic of the shop in traces per second (about 2.8 M spans per hour).
TRACES_PER_SECOND = 150.0
#: Explicit bucket bounds recommended by the HTTP semantic conventions.
_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
_EXP_SCALE = 3
_EXP_BASE = 2.0 ** (2.0**-_EXP_SCALE)
#: Quantiles reported by the GC pause summary, with their standard normal scores.
_QUANTILES = ((0.0, -2.6), (0.25, -0.67), (0.5, 0.0), (0.75, 0.67), (1.0, 2.6))
_CUMULATIVE = mpb.AGGREGATION_TEMPORALITY_CUMULATIVE
_DATA_FIELD = {
    "gauge": "gauge",
    "updown": "sum",
    "counter": "sum",
    "histogram": "histogram",
    "exponential": "exponential_histogram",
    "summary": "summary",
}


@dataclass
class Series:
    """One metric time series and its cumulative state."""

    service: int
    role: str
    kind: str  # gauge | counter | updown | histogram | exponential | summary
    name: str
    unit: str
    description: str
    attrs: list[KeyValue]
    rate: float = 0.0  # observations per second
    median: float = 0.0  # seconds, outside the incident
    sigma: float = 0.6  # log-normal spread
    incident: float = 1.0  # multiplier of median / level during the incident
    errors: bool = False  # a counter of failed rather than successful requests
    error_rate: float = 0.0
    incident_error_rate: float = 0.0
    level: float = 0.0  # gauge / up-down counter baseline
    exemplar_template: int | None = None  # roots of these traces serve as exemplars
    #: Series of one route share their per-interval traffic, so counts agree.
    group: str = ""
    count: int = 0
    total: float = 0.0
    low: float = math.inf
    high: float = 0.0
    offset: int = 0
    buckets: list[int] = field(default_factory=list)
    #: Bucket probabilities outside and during the incident.
    probs: tuple[list[float], ...] = ()


def _lognormal_cdf(x: float, median: float, sigma: float) -> float:
    if x <= 0.0:
        return 0.0
    if math.isinf(x):
        return 1.0
    return 0.5 * (1.0 + math.erf(math.log(x / median) / (sigma * math.sqrt(2.0))))


def _bucket_probs(s: Series) -> None:
    medians = (s.median, s.median * s.incident)

    def mass(lo: float, hi: float, m: float) -> float:
        return _lognormal_cdf(hi, m, s.sigma) - _lognormal_cdf(lo, m, s.sigma)

    if s.kind == "histogram":
        edges = (0.0, *_BOUNDS, math.inf)
        s.probs = tuple(
            [mass(edges[j], edges[j + 1], m) for j in range(len(edges) - 1)] for m in medians
        )
    else:
        first = math.floor(math.log(medians[0] * math.exp(-3 * s.sigma), _EXP_BASE))
        last = math.ceil(math.log(max(medians) * math.exp(3 * s.sigma), _EXP_BASE))
        s.offset = first
        s.probs = tuple(
            [mass(_EXP_BASE**j, _EXP_BASE ** (j + 1), m) for j in range(first, last)]
            for m in medians
        )
    s.buckets = [0] * len(s.probs[0])


@dataclass
class _Traffic:
    """Calls seen by one server route or one outgoing dependency of a service."""

    rate: float = 0.0
    latency: float = 0.0
    errors: float = 0.0
    incident_errors: float = 0.0
    slowdown: float = 1.0
    root_of: int | None = None
    #: Instrumentation scope role of the spans, reused for their metrics.
    role: str = ""


def _traffic() -> dict[tuple[str, str, str], _Traffic]:
    """Per (service, "server" | "client" | "db", route or peer): rates and latencies."""
    weights = sum(t.weight for t in TEMPLATES)
    out: dict[tuple[str, str, str], _Traffic] = {}
    for ti, t in enumerate(TEMPLATES):
        rate = TRACES_PER_SECOND * t.weight / weights
        timing = TIMING[ti][False]
        for i, step in enumerate(t.steps):
            a = dict(step.attrs)
            if step.kind == SERVER:
                key = (step.service, "server", f"{a['http.request.method']} {a['http.route']}")
            elif step.kind == CLIENT and "db.system" in a:
                key = (step.service, "db", str(a["db.system"]))
            elif step.kind == CLIENT:
                key = (step.service, "client", str(a["server.address"]))
            else:
                continue
            tr = out.setdefault(key, _Traffic(role=step.scope))
            tr.latency = (tr.latency * tr.rate + timing[i][1] / 1e6 * rate) / (tr.rate + rate)
            tr.rate += rate
            failing = i in t.failing_path
            tr.errors += rate * t.fail_rate * failing
            tr.incident_errors += rate * (t.incident_fail_rate or t.fail_rate) * failing
            if failing and t.incident_slowdown > 1:
                tr.slowdown = max(tr.slowdown, t.incident_slowdown * (4 if step.failure else 1))
            if i == 0:
                tr.root_of = ti
    for tr in out.values():
        tr.errors /= tr.rate
        tr.incident_errors /= tr.rate
    return out


def catalog() -> list[Series]:
    """Every series the shop exports, in the order they are collected."""
    traffic = _traffic()
    series: list[Series] = []
    for si, svc in enumerate(SERVICES):
        hot = svc.name in ("payments", "checkout")
        series.append(
            Series(
                si,
                "runtime",
                "gauge",
                "system.cpu.utilization",
                "1",
                "Fraction of CPU time in use.",
                [],
                level=0.22 + 0.05 * si,
                incident=2.6 if hot else 1.1,
            )
        )
        mine = sorted((k, v) for k, v in traffic.items() if k[0] == svc.name)
        for (_, kind, target), tr in mine:
            if kind == "server":
                series += _server_series(si, target, tr)
            else:
                db = kind == "db"
                series.append(
                    Series(
                        si,
                        tr.role,
                        "exponential",
                        "db.client.operation.duration" if db else "http.client.request.duration",
                        "s",
                        "Duration of outgoing calls.",
                        kvs([("db.system" if db else "server.address", target)]),
                        rate=tr.rate,
                        median=tr.latency,
                        sigma=0.5,
                        incident=tr.slowdown,
                    )
                )
        if any(kind == "db" for (_, kind, _t), _v in mine):
            for state, level in (("used", 6.0), ("idle", 14.0)):
                series.append(
                    Series(
                        si,
                        "db",
                        "updown",
                        "db.client.connection.count",
                        "{connection}",
                        "Connections in the pool, by state.",
                        kvs(
                            [
                                ("db.client.connection.state", state),
                                ("db.client.connection.pool.name", f"{svc.name}-pool"),
                            ]
                        ),
                        level=level,
                        incident=3.0 if hot and state == "used" else 1.0,
                    )
                )
        series.append(
            Series(
                si,
                "runtime",
                "summary",
                "runtime.gc.pause.duration",
                "s",
                "Stop-the-world garbage collection pauses.",
                [],
                rate=2.0,
                median=0.0008 * (1 + si % 3),
                sigma=0.7,
                incident=2.0 if hot else 1.0,
            )
        )
    for s in series:
        if s.kind in ("histogram", "exponential"):
            _bucket_probs(s)
    return series


def _server_series(service: int, target: str, tr: _Traffic) -> list[Series]:
    method, route = target.split(" ", 1)
    base = [("http.request.method", method), ("http.route", route)]
    group = f"{service} {target}"
    out = [
        Series(
            service,
            "http",
            "counter",
            "http.server.request.count",
            "{request}",
            "HTTP requests served.",
            kvs([*base, ("http.response.status_code", code)]),
            rate=tr.rate,
            errors=code >= 500,
            error_rate=tr.errors,
            incident_error_rate=tr.incident_errors,
            group=group,
        )
        for code in (200, 500)
    ]
    out.append(
        Series(
            service,
            "http",
            "histogram",
            "http.server.request.duration",
            "s",
            "Duration of HTTP server requests.",
            kvs(base),
            rate=tr.rate,
            median=tr.latency,
            incident=tr.slowdown,
            group=group,
            exemplar_template=tr.root_of if SERVICES[service].name == "gateway" else None,
        )
    )
    return out


def metric_records(records: int, seed: int, spans_total: int) -> Iterator[Record]:
    """Exactly ``records`` data points: every series once per collection tick."""
    series = catalog()
    rng = random.Random(seed * 7919 + 17)  # noqa: S311 - noise, not secrets
    cycle = Cycle(seed)
    ticks = max(1, math.ceil(records / len(series)))
    interval = WINDOW_NS // ticks
    emitted = 0
    for tick in range(ticks):
        now = EPOCH_NS + (tick + 1) * interval
        incident = in_incident((tick + 0.5) / ticks)
        noise: dict[str, float] = {}
        for s in series:
            if emitted >= records:
                return
            if not s.group or s.group not in noise:
                noise[s.group] = 0.85 + 0.3 * rng.random()
            point = _advance(s, noise[s.group], interval / 1e9, incident)
            exemplar = None
            if s.exemplar_template is not None:
                exemplar = _exemplar(s.exemplar_template, cycle, now, spans_total)
            yield s.service, s.role, _filler(s, point, now, interval, exemplar)
            emitted += 1


def _advance(s: Series, noise: float, seconds: float, incident: bool) -> list[float]:
    """Move the series on by one interval; returns the point's own values, if any."""
    factor = s.incident if incident else 1.0
    if s.kind == "gauge":
        return [min(0.98, s.level * factor * noise)]
    if s.kind == "updown":
        return [round(s.level * factor * noise)]
    n = round(s.rate * seconds * noise)
    if s.kind == "counter":
        failed = round(n * (s.incident_error_rate if incident else s.error_rate))
        s.count += failed if s.errors else n - failed
        return [s.count]
    median = s.median * factor
    mean = median * math.exp(s.sigma**2 / 2)
    if s.kind == "summary":
        s.count += n
        s.total += n * mean
        return [median * math.exp(s.sigma * z) * noise for _, z in _QUANTILES]
    below = 0  # round the cumulative distribution, so the buckets add up to n
    mass = 0.0
    for j, p in enumerate(s.probs[incident]):
        mass += p
        upto = n if j == len(s.buckets) - 1 else round(n * mass)
        s.buckets[j] += upto - below
        below = upto
    s.count += n
    s.total += n * mean * noise
    s.low = min(s.low, median * math.exp(-2.5 * s.sigma) * noise)
    s.high = max(s.high, median * math.exp(2.5 * s.sigma) * noise)
    return []


def _exemplar(
    template: int,
    cycle: Cycle,
    now: int,
    spans_total: int,
) -> tuple[int, float, bytes, bytes] | None:
    """The root span of a trace of ``template`` that ended shortly before ``now``."""
    span_index = (now - EPOCH_NS - 5 * 10**9) * spans_total // TRACE_WINDOW_NS
    if span_index < 0:
        return None
    k = cycle.trace_at(min(span_index, max(spans_total - 1, 0)))
    while k >= 0 and cycle.template(k) != template:
        k -= 1
    if k < 0:
        return None
    plan = cycle.plan(k, spans_total)
    start, end = span_times(plan, 0)
    if end > now:
        return None
    return end, (end - start) / 1e9, plan.trace_id, plan.span_id(0)


def _filler(
    s: Series,
    values: list[float],
    now: int,
    interval: int,
    exemplar: tuple[int, float, bytes, bytes] | None,
) -> Fill:
    count, total, buckets, low, high = s.count, s.total, list(s.buckets), s.low, s.high

    def fill(scope: Any, cache: dict[Any, Any]) -> None:
        data = _data(scope, cache, s)
        dp = data.data_points.add()
        dp.attributes.extend(s.attrs)
        dp.start_time_unix_nano = now - interval if s.kind == "gauge" else EPOCH_NS
        dp.time_unix_nano = now
        if s.kind == "gauge":
            dp.as_double = values[0]
        elif s.kind in ("counter", "updown"):
            dp.as_int = int(values[0])
        elif s.kind == "summary":
            dp.count = count
            dp.sum = total
            for (q, _), v in zip(_QUANTILES, values, strict=True):
                dp.quantile_values.add(quantile=q, value=v)
        else:
            dp.count = count
            dp.sum = total
            dp.min = low
            dp.max = high
            if s.kind == "histogram":
                dp.explicit_bounds.extend(_BOUNDS)
                dp.bucket_counts.extend(buckets)
            else:
                dp.scale = _EXP_SCALE
                dp.zero_count = 0
                dp.positive.offset = s.offset
                dp.positive.bucket_counts.extend(buckets)
            if exemplar is not None:
                dp.exemplars.add(
                    time_unix_nano=exemplar[0],
                    as_double=exemplar[1],
                    trace_id=exemplar[2],
                    span_id=exemplar[3],
                )

    return fill


def _data(scope: Any, cache: dict[Any, Any], s: Series) -> Any:
    """The Gauge/Sum/... of this series' metric in this scope, created on first use."""
    key = (s.service, s.role, s.name)
    data = cache.get(key)
    if data is None:
        metric = scope.metrics.add(name=s.name, unit=s.unit, description=s.description)
        data = getattr(metric, _DATA_FIELD[s.kind])
        if s.kind in ("counter", "updown"):
            data.is_monotonic = s.kind == "counter"
        if s.kind not in ("gauge", "summary"):
            data.aggregation_temporality = _CUMULATIVE
        cache[key] = data
    return data
