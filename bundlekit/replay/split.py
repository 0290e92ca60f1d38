"""Keeping every request sent at or under the size limit.

Rebasing does not change a request's size, but the marker adds attributes to
every resource, so a stored request near the 4 MiB limit can grow past it.
Such a request is split on resource, then scope, then record boundaries;
every piece is still a complete, valid request of the same signal.
"""

from __future__ import annotations

from typing import Any

from bundlekit.errors import LimitExceeded
from bundlekit.otlp.signals import Signal

#: Bytes a length-delimited field adds around its payload (tag + up to 5-byte length).
_FRAMING = 6


def split_request(signal: Signal, request: Any, max_bytes: int) -> list[bytes]:
    """Serialize ``request`` as one or more requests each ≤ ``max_bytes``."""
    data: bytes = request.SerializeToString()
    if len(data) <= max_bytes:
        return [data]
    spec = signal.spec
    pieces: list[bytes] = []
    current = spec.request_class()
    size = 0
    for entry in getattr(request, spec.resource_field):
        for piece in _split_resource(signal, entry, max_bytes - _FRAMING):
            cost = piece.ByteSize() + _FRAMING
            if size and size + cost > max_bytes:
                pieces.append(current.SerializeToString())
                current, size = spec.request_class(), 0
            getattr(current, spec.resource_field).add().CopyFrom(piece)
            size += cost
    if size:
        pieces.append(current.SerializeToString())
    return pieces


def _split_resource(signal: Signal, entry: Any, budget: int) -> list[Any]:
    """``entry`` itself, or copies of it each holding a share of its scopes/records."""
    if entry.ByteSize() <= budget:
        return [entry]
    spec = signal.spec
    shell = type(entry)()
    shell.CopyFrom(entry)
    del getattr(shell, spec.scope_field)[:]
    overhead = shell.ByteSize()
    out: list[Any] = []
    for scope in getattr(entry, spec.scope_field):
        for part in _split_scope(signal, scope, budget - overhead - _FRAMING):
            piece = type(entry)()
            piece.CopyFrom(shell)
            getattr(piece, spec.scope_field).add().CopyFrom(part)
            out.append(piece)
    return _merge(out, spec.scope_field, budget)


def _split_scope(signal: Signal, scope: Any, budget: int) -> list[Any]:
    if scope.ByteSize() <= budget:
        return [scope]
    field = signal.spec.record_field
    shell = type(scope)()
    shell.CopyFrom(scope)
    del getattr(shell, field)[:]
    overhead = shell.ByteSize()
    out: list[Any] = []
    current, size = None, overhead
    for record in getattr(scope, field):
        cost = record.ByteSize() + _FRAMING
        if overhead + cost > budget:
            raise LimitExceeded(
                f"one {signal.value} record of {record.ByteSize()} bytes cannot fit in a request",
                "raise the request size limit of the collector and of bundlekit",
            )
        if current is None or size + cost > budget:
            current = type(scope)()
            current.CopyFrom(shell)
            out.append(current)
            size = overhead
        getattr(current, field).add().CopyFrom(record)
        size += cost
    return out


def _merge(pieces: list[Any], field: str, budget: int) -> list[Any]:
    """Put consecutive single-scope pieces back together while they fit."""
    merged: list[Any] = []
    for piece in pieces:
        if merged and merged[-1].ByteSize() + piece.ByteSize() <= budget:
            getattr(merged[-1], field).extend(getattr(piece, field))
        else:
            merged.append(piece)
    return merged
