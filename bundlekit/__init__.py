"""bundlekit: offline forensic bundles of OpenTelemetry data.

The public API is imported lazily so that ``bundlekit --version`` and other
cheap commands do not pay for protobuf, cryptography or gRPC start-up.
"""

from __future__ import annotations

import importlib
from typing import Any

from bundlekit._version import __version__

_EXPORTS = {
    "BundlekitError": "bundlekit.errors",
    "ExitCode": "bundlekit.errors",
    "Limits": "bundlekit.limits",
    "pack_bundle": "bundlekit.pack",
    "PackOptions": "bundlekit.pack",
    "sign_bundle": "bundlekit.sign",
    "check_bundle": "bundlekit.verify",
    "verify_bundle": "bundlekit.verify",
    "VerifyOptions": "bundlekit.verify",
    "inspect_bundle": "bundlekit.inspect",
    "generate_key": "bundlekit.keys",
    "replay_bundle": "bundlekit.replay",
    "ReplayOptions": "bundlekit.replay",
}

__all__ = [  # noqa: PLE0604 - names resolved lazily by __getattr__
    "__version__",
    *_EXPORTS,
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'bundlekit' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
