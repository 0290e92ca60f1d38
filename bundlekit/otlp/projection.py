"""Wire-compatible "projection" schemas that make manifest statistics cheap.

Walking a million decoded spans in Python costs about a second; parsing is
done in C.  So instead of decoding requests with the real OTLP schema, we parse
the same bytes with two reduced schemas that declare only what the manifest
needs, shaped so the C parser does the aggregation:

* the *count* view declares each record as an empty message, so ``len()`` of
  the repeated field counts records without materializing them, and keeps the
  real ``Resource`` message for service names;
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
_RESOURCE_FILE = "opentelemetry/proto/resource/v1/resource.proto"
_RESOURCE_TYPE = ".opentelemetry.proto.resource.v1.Resource"

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
    from opentelemetry.proto.resource.v1 import resource_pb2

    field = descriptor_pb2.FieldDescriptorProto
    repeated, optional = field.LABEL_REPEATED, field.LABEL_OPTIONAL
    fdp = descriptor_pb2.FileDescriptorProto(
        name="bundlekit/projection.proto",
        package=_PACKAGE,
        syntax="proto3",
        dependency=[_RESOURCE_FILE],
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

    message("Stub")
    # Count views: real resource, one empty stub per record.
    for prefix in ("Traces", "Logs"):
        message(f"{prefix}Scope", sub("records", 2, "Stub", repeated))
        message(
            f"{prefix}Resource",
            sub("resource", 1, _RESOURCE_TYPE),
            sub("scope", 2, f"{prefix}Scope"),
        )
        message(f"{prefix}Count", sub("resources", 1, f"{prefix}Resource", repeated))
    message("MetricData", sub("points", 1, "Stub", repeated))
    message("MetricKinds", *(sub(f"k{n}", n, "MetricData") for n in METRIC_DATA_FIELDS))
    message("MetricsScope", sub("metric", 2, "MetricKinds"))
    message("MetricsResource", sub("resource", 1, _RESOURCE_TYPE), sub("scope", 2, "MetricsScope"))
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

    # A private pool: the resource file after its dependencies, then ours.
    pool = descriptor_pool.DescriptorPool()
    for dep in resource_pb2.DESCRIPTOR.dependencies:
        pool.AddSerializedFile(dep.serialized_pb)
    pool.AddSerializedFile(resource_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(fdp)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.{name}"))
        for name in names
    }
