"""Deterministic synthetic OTLP data for tests, samples and benchmarks.

Real incident data cannot be shipped, but bundlekit needs large, realistic
OTLP streams to test against and to benchmark with. This package fabricates
an hour of telemetry from a small web shop (gateway, auth, checkout, payments,
inventory) during which the payment provider starts timing out: traces of
real call trees, metrics of all five OTLP types, and logs that point at the
spans that wrote them.

Output is a pure function of the arguments: the same ``(signal, records,
seed, ...)`` gives byte-identical bytes on every machine, so tests can pin
hashes and benchmark data can be regenerated instead of stored.

Modules: ``catalog`` (the shop), ``timeline`` (when each trace happens and
its ids), ``variants`` (pre-built messages), ``traces`` / ``logs`` /
``metrics`` (record generators), ``batch`` (request packing), ``stream``
(the API below), ``__main__`` (command line).
"""

from __future__ import annotations

from bundlekit.synth.batch import MAX_REQUEST_BYTES
from bundlekit.synth.stream import (
    SIGNALS,
    companion_counts,
    iter_requests,
    read_stream,
    write_stream,
)
from bundlekit.synth.timeline import EPOCH_NS, INCIDENT, WINDOW_NS

__all__ = [
    "EPOCH_NS",
    "INCIDENT",
    "MAX_REQUEST_BYTES",
    "SIGNALS",
    "WINDOW_NS",
    "companion_counts",
    "iter_requests",
    "read_stream",
    "write_stream",
]
