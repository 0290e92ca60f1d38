"""Packs generated records into Export*ServiceRequest messages of bounded size.

Generators only say which service and instrumentation scope a record belongs
to and how to fill it in; this module owns the resource/scope nesting and the
request size limits, which are the same for every signal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from bundlekit.synth.catalog import RESOURCES, SCHEMA_URL, scope

#: Requests never exceed the usual 4 MiB gRPC receive limit.
MAX_REQUEST_BYTES = 4 * 1024 * 1024
#: No synthetic record, with the resource and scope it may open, serializes to
#: more than this (tests hold it to half of that).
RECORD_BYTES_BOUND = 8 * 1024
#: Flush once a request is past this, leaving room for 64 more records.
_SOFT_REQUEST_BYTES = MAX_REQUEST_BYTES - 64 * RECORD_BYTES_BOUND

#: fill(scope message, per-request cache) adds one record to the scope.
Fill = Callable[[Any, dict[Any, Any]], None]
#: (service index, scope role, fill)
Record = tuple[int, str, Fill]


class Batcher:
    """Builds one request at a time, grouping records by resource, then scope.

    Resources and scopes appear in the order they are first used, which keeps
    the output deterministic.
    """

    def __init__(self, request_type: Any, resource_field: str, scope_field: str) -> None:
        self._type = request_type
        self._resource_field = resource_field
        self._scope_field = scope_field
        self._reset()

    def _reset(self) -> None:
        self.request = self._type()
        self.count = 0
        #: Free for fills to use; emptied with every new request.
        self.cache: dict[Any, Any] = {}
        self._scopes: dict[tuple[int, str], Any] = {}
        self._resources: dict[int, Any] = {}
        self._next_check = MAX_REQUEST_BYTES // RECORD_BYTES_BOUND

    def scope(self, service: int, role: str) -> Any:
        found = self._scopes.get((service, role))
        if found is not None:
            return found
        res = self._resources.get(service)
        if res is None:
            res = getattr(self.request, self._resource_field).add()
            res.resource.CopyFrom(RESOURCES[service])
            res.schema_url = SCHEMA_URL
            self._resources[service] = res
        new = getattr(res, self._scope_field).add()
        new.scope.CopyFrom(scope(service, role))
        new.schema_url = SCHEMA_URL
        self._scopes[(service, role)] = new
        return new

    def full(self, per_request: int) -> bool:
        """Whether to flush now. Measuring a request costs as much as serializing
        it, so measure only when enough records were added to possibly reach
        4 MiB since the last measurement; the gaps shrink as the request grows.
        """
        if self.count >= per_request:
            return True
        if self.count < self._next_check:
            return False
        size = self.request.ByteSize()
        if size > _SOFT_REQUEST_BYTES:
            return True
        self._next_check = self.count + (MAX_REQUEST_BYTES - size) // RECORD_BYTES_BOUND
        return False

    def take(self) -> bytes:
        data: bytes = self.request.SerializeToString()
        if len(data) > MAX_REQUEST_BYTES:  # pragma: no cover - guarded by the soft limit
            raise AssertionError(f"synthetic request of {len(data)} bytes exceeds 4 MiB")
        self._reset()
        return data


def batched(records: Iterator[Record], batcher: Batcher, per_request: int) -> Iterator[bytes]:
    """Serialized requests of at most ``per_request`` records each."""
    for service, role, fill in records:
        fill(batcher.scope(service, role), batcher.cache)
        batcher.count += 1
        if batcher.full(per_request):
            yield batcher.take()
    if batcher.count:
        yield batcher.take()
