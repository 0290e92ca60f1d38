"""Resource attributes that tell replayed data apart from live data.

Every resource sent carries ``bundlekit.bundle.id`` (which bundle the data
came from) and ``bundlekit.replay.id`` (which replay run sent it), so a
collector or a query can route, drop or label replayed telemetry.  Existing
values of the same keys (a bundle packed from replayed data) are replaced, not
duplicated.
"""

from __future__ import annotations

from typing import Any

from bundlekit.otlp.signals import Signal

BUNDLE_ID_KEY = "bundlekit.bundle.id"
REPLAY_ID_KEY = "bundlekit.replay.id"
MARKER_KEYS = frozenset({BUNDLE_ID_KEY, REPLAY_ID_KEY})


def apply_marker(signal: Signal, request: Any, bundle_id: str, replay_id: str) -> None:
    """Set both marker attributes on every resource of ``request``, in place."""
    for entry in getattr(request, signal.spec.resource_field):
        attributes = entry.resource.attributes
        if any(kv.key in MARKER_KEYS for kv in attributes):
            kept = [kv for kv in attributes if kv.key not in MARKER_KEYS]
            del attributes[:]
            attributes.extend(kept)
        for key, value in ((BUNDLE_ID_KEY, bundle_id), (REPLAY_ID_KEY, replay_id)):
            kv = attributes.add()
            kv.key = key
            kv.value.string_value = value
