"""Pre-built spans and log records for every step of every template.

Building a protobuf message field by field costs far more than copying a
finished one, so each distinct span and log record (per template, per step,
for ok and for failed traces) is built once here. Generators copy these and
stamp only ids, times and the odd per-trace value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from bundlekit.synth.catalog import (
    CONSUMER,
    DEBUG,
    ERROR,
    INFO,
    SERVER,
    TEMPLATES,
    WARN,
    Attr,
    LogSpec,
    Template,
    kvs,
)
from bundlekit.synth.timeline import Plan

_SEVERITY_TEXT = {DEBUG: "DEBUG", INFO: "INFO", WARN: "WARN", ERROR: "ERROR"}
#: W3C "sampled" plus OTLP's has-is-remote bit (0x100) and is-remote bit (0x200).
FLAGS_LOCAL, FLAGS_REMOTE = 0x101, 0x301


@dataclass(frozen=True)
class Variant:
    """A template ready to stamp, for either ok or failed traces."""

    spans: list[Span]
    #: Per step: index of the attribute formatted per trace, and its format.
    dynamic: list[tuple[int, str] | None]
    has_events: list[bool]
    logs: list[list[LogRecord]]
    #: Per step: body of its access-log line, if it writes one (see ACCESS_FIELDS).
    access: list[AnyValue | None]


def _merge(base: Sequence[Attr], override: Sequence[Attr]) -> list[Attr]:
    merged = dict(base)
    merged.update(dict(override))
    return list(merged.items())


def _span(t: Template, i: int, failed: bool) -> Span:
    step = t.steps[i]
    attrs = list(step.attrs)
    remote = step.kind in (SERVER, CONSUMER) and step.parent >= 0
    span = Span(name=step.name, kind=step.kind, flags=FLAGS_REMOTE if remote else FLAGS_LOCAL)
    if failed and step.fail_attrs:
        attrs = _merge(attrs, step.fail_attrs)
    if failed and step.fail_name:
        span.name = step.fail_name
    if failed and i in t.failing_path:
        code = step.fail_code
        if code is not None and any(k == "http.response.status_code" for k, _ in attrs):
            attrs = _merge(attrs, (("http.response.status_code", code),))
        if step.failure is not None:
            attrs.append(("error.type", step.failure.error_type))
            span.status.CopyFrom(
                Status(code=Status.STATUS_CODE_ERROR, message=step.failure.message)
            )
            span.events.add(
                name="exception",
                attributes=kvs(
                    (
                        ("exception.type", step.failure.error_type),
                        ("exception.message", step.failure.message),
                        (
                            "exception.stacktrace",
                            f"{step.failure.error_type}: {step.failure.message}\n"
                            f"\tat {step.service}.{step.scope}.execute(Client.java:212)\n"
                            f"\tat {step.service}.handler.handle(Handler.java:88)",
                        ),
                    )
                ),
            )
        else:
            attrs.append(("error.type", str(code)))
            span.status.CopyFrom(Status(code=Status.STATUS_CODE_ERROR, message=f"HTTP {code}"))
    elif step.event:
        span.events.add(name=step.event, attributes=kvs((("order.items", 3),)))
    span.attributes.extend(kvs(attrs))
    return span


def _log(t: Template, i: int, spec: LogSpec, failed: bool) -> LogRecord:
    step = t.steps[i]
    bad = failed and i in t.failing_path
    severity = spec.fail_severity if bad else spec.severity
    record = LogRecord(
        severity_number=severity,  # type: ignore[arg-type]
        severity_text=_SEVERITY_TEXT[severity],
        flags=1,
    )
    record.body.string_value = spec.fail_body if bad else spec.body
    java = step.service in ("auth", "payments")
    attrs: list[Attr] = [("thread.name", "http-nio-8443-exec-3" if java else "main")]
    if bad and step.failure is not None:
        attrs += [
            ("exception.type", step.failure.error_type),
            ("exception.message", step.failure.message),
        ]
    record.attributes.extend(kvs(attrs))
    return record


#: Keys of an access-log body, in order; the last four are set per record.
ACCESS_FIELDS = ("method", "status", "path", "duration_ms", "client_ip", "bytes_sent")


def _access_body(span: Span) -> AnyValue:
    attrs = {kv.key: kv.value for kv in span.attributes}
    values = {
        "method": attrs["http.request.method"],
        "status": attrs["http.response.status_code"],
        "path": attrs["url.path"],
        "duration_ms": AnyValue(double_value=0.0),
        "client_ip": AnyValue(string_value=""),
        "bytes_sent": AnyValue(int_value=0),
    }
    body = AnyValue()
    body.kvlist_value.values.extend(KeyValue(key=k, value=values[k]) for k in ACCESS_FIELDS)
    return body


def _variant(t: Template, failed: bool) -> Variant:
    spans = [_span(t, i, failed) for i in range(len(t.steps))]
    dynamic: list[tuple[int, str] | None] = []
    for step, span in zip(t.steps, spans, strict=True):
        if step.dynamic is None:
            dynamic.append(None)
        else:
            key, fmt = step.dynamic
            index = next(j for j, kv in enumerate(span.attributes) if kv.key == key)
            dynamic.append((index, fmt))
    return Variant(
        spans=spans,
        dynamic=dynamic,
        has_events=[len(span.events) > 0 for span in spans],
        logs=[[_log(t, i, spec, failed) for spec in s.logs] for i, s in enumerate(t.steps)],
        access=[
            _access_body(span) if any(spec.access for spec in step.logs) else None
            for step, span in zip(t.steps, spans, strict=True)
        ],
    )


#: VARIANTS[template][failed]
VARIANTS: tuple[tuple[Variant, Variant], ...] = tuple(
    (_variant(t, False), _variant(t, True)) for t in TEMPLATES
)


def variant(plan: Plan) -> Variant:
    return VARIANTS[plan.template][plan.failed]
