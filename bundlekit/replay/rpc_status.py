"""Reading ``google.rpc.Status`` and ``google.rpc.RetryInfo`` without googleapis protos.

Collectors put a ``google.rpc.Status`` in gRPC's ``grpc-status-details-bin``
trailer and in OTLP/HTTP error bodies; a ``RetryInfo`` detail inside it says
how long to wait before retrying.  Two tiny messages do not justify a runtime
dependency, so they are declared here in a private descriptor pool (which
cannot clash with googleapis-common-protos if that is also imported).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

RETRY_INFO_TYPE = "type.googleapis.com/google.rpc.RetryInfo"
_PACKAGE = "google.rpc"


@dataclass(frozen=True)
class RpcStatus:
    """The parts of a ``google.rpc.Status`` replay acts on."""

    code: int
    message: str
    #: ``RetryInfo.retry_delay`` in seconds, when the status carries one.
    retry_delay: float | None


def parse_status(data: bytes) -> RpcStatus | None:
    """Decode a serialized Status; ``None`` if ``data`` is not one."""
    classes = _classes()
    status = classes["Status"]()
    try:
        status.ParseFromString(data)
    except Exception:  # protobuf raises DecodeError, a plain Exception
        return None
    delay: float | None = None
    for detail in status.details:
        if detail.type_url != RETRY_INFO_TYPE:
            continue
        info = classes["RetryInfo"]()
        try:
            info.ParseFromString(detail.value)
        except Exception:  # protobuf raises DecodeError; a broken detail is ignored
            info.Clear()
        if info.HasField("retry_delay"):
            seconds = info.retry_delay.seconds + info.retry_delay.nanos / 1e9
            delay = max(0.0, seconds)
    return RpcStatus(code=int(status.code), message=str(status.message), retry_delay=delay)


@cache
def _classes() -> dict[str, Any]:
    from google.protobuf import (
        any_pb2,
        descriptor_pb2,
        descriptor_pool,
        duration_pb2,
        message_factory,
    )

    field = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(
        name="bundlekit/google_rpc_subset.proto",
        package=_PACKAGE,
        syntax="proto3",
        dependency=["google/protobuf/any.proto", "google/protobuf/duration.proto"],
    )
    status = fdp.message_type.add(name="Status")
    status.field.add(name="code", number=1, type=field.TYPE_INT32, label=field.LABEL_OPTIONAL)
    status.field.add(name="message", number=2, type=field.TYPE_STRING, label=field.LABEL_OPTIONAL)
    status.field.add(
        name="details",
        number=3,
        type=field.TYPE_MESSAGE,
        label=field.LABEL_REPEATED,
        type_name=".google.protobuf.Any",
    )
    retry = fdp.message_type.add(name="RetryInfo")
    retry.field.add(
        name="retry_delay",
        number=1,
        type=field.TYPE_MESSAGE,
        label=field.LABEL_OPTIONAL,
        type_name=".google.protobuf.Duration",
    )
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(any_pb2.DESCRIPTOR.serialized_pb)
    pool.AddSerializedFile(duration_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(fdp)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.{name}"))
        for name in ("Status", "RetryInfo")
    }
