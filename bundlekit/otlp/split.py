"""Splitting one oversized OTLP request into requests under a size bound.

The one splitter: ``pack`` uses it for input requests over the request limit,
``replay`` for requests the marker pushed over it.  A request is split on
resource, then scope, then record boundaries, packing greedily in one pass:
every piece is a complete, valid request of the same signal (each record keeps
its resource and scope), records keep their order, and nothing is serialized
more than a few times.  A record that cannot fit in a request on its own,
with its resource and scope, is refused: no collector would take it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bundlekit.errors import InputError, LimitExceeded
from bundlekit.otlp.signals import Signal

#: Bytes a length-delimited field may add around its payload (tag + up to 5-byte length).
_FRAMING = 6


def split_request(signal: Signal, request: Any, max_bytes: int, where: str = "") -> list[bytes]:
    """Serialize decoded ``request`` as one or more requests each of at most ``max_bytes``.

    Raises LimitExceeded naming the record's size and the bound when one
    record cannot fit; ``where`` (a file, a segment) prefixes the message.
    """
    data: bytes = request.SerializeToString()
    if len(data) <= max_bytes:
        return [data]
    spec = signal.spec
    parts = (
        piece
        for entry in getattr(request, spec.resource_field)
        for piece in _split_resource(signal, entry, max_bytes - _FRAMING, max_bytes, where)
    )
    packed = _pack(spec.request_class(), spec.resource_field, 0, max_bytes, parts)
    return [piece.SerializeToString() for piece, _size in packed]


def split_input(signal: Signal, data: bytes, max_bytes: int, where: str) -> list[bytes]:
    """``data`` itself if it fits, else its pieces; for ``pack``'s input files.

    Errors are input errors naming ``where``: the request does not decode as
    ``signal``, or holds a record too large for any request.
    """
    if len(data) <= max_bytes:
        return [data]
    from bundlekit.otlp.inputs import parse_request

    request = parse_request(signal, data, where)
    try:
        return split_request(signal, request, max_bytes, where)
    except LimitExceeded as exc:
        raise InputError(
            exc.message, "such a record cannot be replayed through a standard OTLP receiver"
        ) from exc


def _split_resource(
    signal: Signal, entry: Any, budget: int, bound: int, where: str
) -> list[tuple[Any, int]]:
    """``entry`` itself, or copies of it each holding a share of its scopes; with sizes."""
    whole = entry.ByteSize()
    if whole <= budget:
        return [(entry, whole)]
    shell, overhead = _shell(entry, signal.spec.scope_field)
    parts = (
        part
        for scope in getattr(entry, signal.spec.scope_field)
        for part in _split_scope(signal, scope, budget - overhead - _FRAMING, bound, where)
    )
    return _pack(shell, signal.spec.scope_field, overhead, budget, parts)


def _split_scope(
    signal: Signal, scope: Any, budget: int, bound: int, where: str
) -> list[tuple[Any, int]]:
    """``scope`` itself, or copies of it each holding a run of its records; with sizes."""
    whole = scope.ByteSize()
    if whole <= budget:
        return [(scope, whole)]
    shell, overhead = _shell(scope, signal.spec.record_field)
    return _pack(
        shell,
        signal.spec.record_field,
        overhead,
        budget,
        (
            _fitting(signal, record, overhead, budget, bound, where)
            for record in getattr(scope, signal.spec.record_field)
        ),
    )


def _fitting(
    signal: Signal, record: Any, overhead: int, budget: int, bound: int, where: str
) -> tuple[Any, int]:
    """``record`` and its size, or LimitExceeded if it cannot fit even alone."""
    record_size = record.ByteSize()
    if overhead + record_size + _FRAMING > budget:
        prefix = f"{where}: " if where else ""
        raise LimitExceeded(
            f"{prefix}one {signal.value} record is {record_size} bytes; with its resource "
            f"and scope it cannot fit in a request of at most {bound} bytes",
            "raise the request size limit of the collector and of bundlekit",
        )
    return record, record_size


def _shell(message: Any, field: str) -> tuple[Any, int]:
    """A copy of ``message`` without its ``field`` children, and that copy's size."""
    shell = type(message)()
    shell.CopyFrom(message)
    shell.ClearField(field)
    return shell, shell.ByteSize()


def _pack(
    shell: Any, field: str, overhead: int, budget: int, parts: Iterable[tuple[Any, int]]
) -> list[tuple[Any, int]]:
    """Copies of ``shell``, each holding the next run of ``parts`` that fits in ``budget``.

    Greedy and in order: a part goes into the current copy if it fits, else a
    new copy starts.  ``parts`` carry their serialized sizes, so nothing is
    re-serialized to measure; each copy is returned with its size.
    """
    out: list[tuple[Any, int]] = []
    current: Any = None
    size = overhead
    for part, part_size in parts:
        cost = part_size + _FRAMING
        if current is None or size + cost > budget:
            if current is not None:
                out.append((current, size))
            current = type(shell)()
            current.CopyFrom(shell)
            size = overhead
        getattr(current, field).add().CopyFrom(part)
        size += cost
    if current is not None:
        out.append((current, size))
    return out
