"""Wire-compatible "projection" schemas that make manifest statistics cheap.

Walking a million decoded spans in Python costs about a second; parsing is
done in C.  So instead of decoding requests with the real OTLP schema, we parse
the same bytes with two reduced schemas that declare only what the manifest
needs, shaped so the C parser does the aggregation:

* the *count* view declares each record as ``bytes`` (the same wire type as
  a message), so the parser only notes where each record lies and ``len()``
  of the repeated field counts them; resources stay undecoded bytes too, so
  their service names can be looked up in a cache (resources repeat);
* the *times* view declares the request→resource→scope→record chain as
  *singular* message fields.  Protobuf merges repeated occurrences of a
  singular message field, and appends repeated scalars, so every record's
  timestamps land in one repeated ``fixed64`` per request.

Both views are valid readings of the OTLP wire format (field numbers and wire
types match the real schema); fields they do not declare are skipped.  A
test cross-checks them against a full decode.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from bundlekit.otlp.signals import Signal

_PACKAGE = "bundlekit.projection.v1"

#: Field numbers of the five metric data kinds (gauge, sum, histogram,
#: exponential_histogram, summary); each holds ``data_points = 1``.
METRIC_DATA_FIELDS = (5, 7, 9, 10, 11)
#: Per-record timestamp fields (all fixed64) in the real schema.
TIME_FIELDS: dict[Signal, tuple[int, ...]] = {
    Signal.TRACES: (7, 8),  # Span.start_time_unix_nano, end_time_unix_nano
    Signal.METRICS: (2, 3),  # *DataPoint.start_time_unix_nano, time_unix_nano
    Signal.LOGS: (1, 11),  # LogRecord.time_unix_nano, observed_time_unix_nano
}


@dataclass(frozen=True)
class Views:
    """The two message classes used to read one signal's requests."""

    count: Any
    times: Any


def views(signal: Signal) -> Views:
    """Projection classes for ``signal``, built once per process."""
    classes = _build()
    prefix = signal.value.capitalize()
    return Views(count=classes[f"{prefix}Count"], times=classes[f"{prefix}Times"])


@cache
def _build() -> dict[str, Any]:
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    field = descriptor_pb2.FieldDescriptorProto
    repeated, optional = field.LABEL_REPEATED, field.LABEL_OPTIONAL
    fdp = descriptor_pb2.FileDescriptorProto(
        name="bundlekit/projection.proto",
        package=_PACKAGE,
        syntax="proto3",
    )
    names: list[str] = []

    def message(name: str, *fields: tuple[str, int, int, Any, str | None]) -> None:
        names.append(name)
        proto = fdp.message_type.add(name=name)
        for fname, number, ftype, label, type_name in fields:
            entry = proto.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                entry.type_name = (
                    type_name if type_name.startswith(".") else f".{_PACKAGE}.{type_name}"
                )

    def sub(
        name: str, number: int, type_name: str, label: Any = optional
    ) -> tuple[str, int, int, Any, str]:
        return (name, number, field.TYPE_MESSAGE, label, type_name)

    def times(*numbers: int) -> list[tuple[str, int, int, Any, None]]:
        return [(f"t{n}", n, field.TYPE_FIXED64, repeated, None) for n in numbers]

    def raw(name: str, number: int) -> tuple[str, int, int, Any, None]:
        return (name, number, field.TYPE_BYTES, repeated, None)

    def raw1(name: str, number: int) -> tuple[str, int, int, Any, None]:
        return (name, number, field.TYPE_BYTES, optional, None)

    # Count views: real resource, each record left undecoded as bytes.
    for prefix in ("Traces", "Logs"):
        message(f"{prefix}Scope", raw("records", 2))
        message(
            f"{prefix}Resource",
            raw1("resource", 1),
            sub("scope", 2, f"{prefix}Scope"),
        )
        message(f"{prefix}Count", sub("resources", 1, f"{prefix}Resource", repeated))
    message("MetricData", raw("points", 1))
    message("MetricKinds", *(sub(f"k{n}", n, "MetricData") for n in METRIC_DATA_FIELDS))
    message("MetricsScope", sub("metric", 2, "MetricKinds"))
    message("MetricsResource", raw1("resource", 1), sub("scope", 2, "MetricsScope"))
    message("MetricsCount", sub("resources", 1, "MetricsResource", repeated))
    # Times views: everything singular, so the parser merges all records.
    for prefix, signal in (("Traces", Signal.TRACES), ("Logs", Signal.LOGS)):
        message(f"{prefix}TRecord", *times(*TIME_FIELDS[signal]))
        message(f"{prefix}TScope", sub("record", 2, f"{prefix}TRecord"))
        message(f"{prefix}TResource", sub("scope", 2, f"{prefix}TScope"))
        message(f"{prefix}Times", sub("resource", 1, f"{prefix}TResource"))
    message("MetricTPoint", *times(*TIME_FIELDS[Signal.METRICS]))
    message("MetricTData", sub("point", 1, "MetricTPoint"))
    message("MetricTKinds", *(sub(f"k{n}", n, "MetricTData") for n in METRIC_DATA_FIELDS))
    message("MetricsTScope", sub("metric", 2, "MetricTKinds"))
    message("MetricsTResource", sub("scope", 2, "MetricsTScope"))
    message("MetricsTimes", sub("resource", 1, "MetricsTResource"))

    pool = descriptor_pool.DescriptorPool()  # private: nothing to clash with
    pool.Add(fdp)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.{name}"))
        for name in names
    }
