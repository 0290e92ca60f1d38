"""Where things live inside a bundle, and which relative paths are acceptable.

A bundle is hostile until verified, so every path read from a manifest or found
on disk is checked here before it is joined to a directory.
"""

from __future__ import annotations

import re
import unicodedata
from enum import StrEnum

from bundlekit.errors import FormatError
from bundlekit.limits import Limits
from bundlekit.otlp.signals import Signal

MANIFEST_NAME = "manifest.json"
SIGNATURES_DIR = "signatures"
ENVELOPE_NAME = f"{SIGNATURES_DIR}/manifest.dsse.json"
OTLP_DIR = "otlp"
CONFIG_NAME = "config/collector.yaml"
DASHBOARDS_DIR = "config/dashboards"
ATTACHMENTS_DIR = "attachments"
SEGMENT_SUFFIX = ".binpb.zst"


class Role(StrEnum):
    """What a bundled file is for; recorded per file in the manifest."""

    TRACES = "traces"
    METRICS = "metrics"
    LOGS = "logs"
    COLLECTOR_CONFIG = "collector-config"
    DASHBOARD = "dashboard"
    ATTACHMENT = "attachment"

    @property
    def signal(self) -> Signal | None:
        try:
            return Signal(self.value)
        except ValueError:
            return None


def segment_media_type(signal: Signal) -> str:
    return f"application/vnd.bundlekit.otlp.{signal.value}.v1+zstd"


MEDIA_TYPES: dict[Role, str] = {
    Role.TRACES: segment_media_type(Signal.TRACES),
    Role.METRICS: segment_media_type(Signal.METRICS),
    Role.LOGS: segment_media_type(Signal.LOGS),
    Role.COLLECTOR_CONFIG: "application/yaml",
    Role.DASHBOARD: "application/json",
    Role.ATTACHMENT: "application/octet-stream",
}


def segment_name(signal: Signal, index: int) -> str:
    """The path of the ``index``-th segment (counting from 1) of a signal."""
    return f"{OTLP_DIR}/{signal.value}/{index:06d}{SEGMENT_SUFFIX}"


_SEGMENT_RE = re.compile(r"^otlp/(traces|metrics|logs)/[0-9]{6}\.binpb\.zst$")
_FORBIDDEN_CHARS = re.compile(r"[\x00-\x1f\x7f\\:*?\"<>|]")


def role_for_path(name: str) -> Role | None:
    """The role a path must have given where it sits; None if it fits nowhere."""
    match = _SEGMENT_RE.match(name)
    if match:
        return Role(match.group(1))
    if name == CONFIG_NAME:
        return Role.COLLECTOR_CONFIG
    if name.startswith(DASHBOARDS_DIR + "/") and name.endswith(".json") and name.count("/") == 2:
        return Role.DASHBOARD
    if name.startswith(ATTACHMENTS_DIR + "/"):
        return Role.ATTACHMENT
    return None


def check_relative_path(name: str, limits: Limits) -> str:
    """Return ``name`` if it is a safe, normalized, relative POSIX path.

    Rejects absolute paths, ``..`` and ``.`` components, empty components,
    backslashes, drive letters, control characters, paths that are not NFC
    normalized (two spellings of one name), and paths over the length or depth
    bounds.  Raises FormatError otherwise.
    """
    problem = _path_problem(name, limits)
    if problem:
        raise FormatError(
            f"unsafe path in bundle: {name!r} ({problem})",
            "a bundle may only hold normalized relative paths; it may have been tampered with",
        )
    return name


def _path_problem(name: str, limits: Limits) -> str | None:
    if not name:
        return "empty"
    if len(name.encode("utf-8", "surrogatepass")) > limits.max_path_length:
        return f"longer than {limits.max_path_length} bytes"
    if name.startswith("/"):
        return "absolute"
    if _FORBIDDEN_CHARS.search(name):
        return "control or reserved character"
    if unicodedata.normalize("NFC", name) != name:
        return "not NFC-normalized"
    parts = name.split("/")
    if len(parts) > limits.max_path_depth:
        return f"deeper than {limits.max_path_depth} levels"
    if any(part in ("", ".", "..") for part in parts):
        return "empty, '.' or '..' component"
    return None
