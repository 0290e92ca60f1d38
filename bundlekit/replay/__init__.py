"""``bundlekit replay``: send a verified bundle's telemetry to an OTLP collector.

Imports are lazy so that ``import bundlekit.replay`` (and the CLI's start-up)
does not pay for gRPC, urllib3 and protobuf until a replay actually runs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bundlekit.replay.engine import replay_bundle, replay_source
    from bundlekit.replay.filters import Filters
    from bundlekit.replay.interface import (
        Compression,
        Exporter,
        ExportResult,
        Protocol,
        ReplayFailed,
        ReplayInterrupted,
        TransportOptions,
    )
    from bundlekit.replay.listener import ReplayListener
    from bundlekit.replay.options import ReplayOptions
    from bundlekit.replay.report import ReplayReport, SignalReport
    from bundlekit.replay.retry import RetryPolicy
    from bundlekit.replay.source import TrustOptions

_EXPORTS = {
    "replay_bundle": "bundlekit.replay.engine",
    "replay_source": "bundlekit.replay.engine",
    "Filters": "bundlekit.replay.filters",
    "Compression": "bundlekit.replay.interface",
    "Exporter": "bundlekit.replay.interface",
    "ExportResult": "bundlekit.replay.interface",
    "Protocol": "bundlekit.replay.interface",
    "ReplayFailed": "bundlekit.replay.interface",
    "ReplayInterrupted": "bundlekit.replay.interface",
    "TransportOptions": "bundlekit.replay.interface",
    "ReplayListener": "bundlekit.replay.listener",
    "ReplayOptions": "bundlekit.replay.options",
    "ReplayReport": "bundlekit.replay.report",
    "SignalReport": "bundlekit.replay.report",
    "RetryPolicy": "bundlekit.replay.retry",
    "TrustOptions": "bundlekit.replay.source",
}

__all__ = [
    "Compression",
    "ExportResult",
    "Exporter",
    "Filters",
    "Protocol",
    "ReplayFailed",
    "ReplayInterrupted",
    "ReplayListener",
    "ReplayOptions",
    "ReplayReport",
    "RetryPolicy",
    "SignalReport",
    "TransportOptions",
    "TrustOptions",
    "replay_bundle",
    "replay_source",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'bundlekit.replay' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
