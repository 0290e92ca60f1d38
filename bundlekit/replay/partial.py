"""Reading ``partial_success`` from an Export*ServiceResponse.

A collector that accepts a request but drops some records says so here; the
OTLP specification says such a response must not be retried, so replay
counts the rejected records and reports them instead.
"""

from __future__ import annotations

from bundlekit.otlp.signals import Signal

_REJECTED_FIELD = {
    Signal.TRACES: "rejected_spans",
    Signal.METRICS: "rejected_data_points",
    Signal.LOGS: "rejected_log_records",
}


def rejected_records(signal: Signal, response: bytes) -> tuple[int, str]:
    """``(rejected record count, collector message)``; ``(0, "")`` for an empty or odd body."""
    if not response:
        return 0, ""
    message = signal.spec.response_class()
    try:
        message.ParseFromString(response)
    except Exception:  # protobuf raises DecodeError; a garbled success is still success
        return 0, ""
    if not message.HasField("partial_success"):
        return 0, ""
    partial = message.partial_success
    return int(getattr(partial, _REJECTED_FIELD[signal])), str(partial.error_message)
