"""Collector config and Grafana dashboards: checked before they are packed.

A bundle whose dashboard does not open or whose collector config does not
parse is useless to an auditor, so pack refuses them with a clear error
instead of carrying them along.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from bundlekit.errors import InputError, translate_os_errors
from bundlekit.fsutil import read_regular
from bundlekit.limits import Limits
from bundlekit.nesting import check_json_depth, check_yaml_depth

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.json$")


@dataclass(frozen=True)
class Dashboard:
    filename: str
    title: str
    data: bytes


def _read_bounded(path: Path, limits: Limits, what: str) -> bytes:
    return read_regular(path, what, limits.max_config_bytes)


def read_collector_config(path: Path, limits: Limits) -> bytes:
    """The config bytes, after checking they are a YAML mapping."""
    import yaml

    data = _read_bounded(path, limits, "collector config")
    check_yaml_depth(data, limits.max_nesting_depth, path, "collector config")
    try:
        document = yaml.safe_load(data)
    except RecursionError as exc:  # the depth check should stop this first; belt and braces
        raise InputError(f"collector config {path} nests too deep to load") from exc
    except yaml.YAMLError as exc:
        raise InputError(
            f"collector config {path} is not valid YAML: {exc}",
            "fix the YAML, or leave out --config",
        ) from exc
    if not isinstance(document, dict):
        raise InputError(
            f"collector config {path} is not a YAML mapping",
            "an OpenTelemetry Collector config has top-level receivers/exporters/service keys",
        )
    return data


def read_dashboards(directory: Path, limits: Limits) -> list[Dashboard]:
    """Every ``*.json`` in ``directory``; each must parse and carry a title."""
    if not directory.is_dir():
        raise InputError(f"dashboards directory not found: {directory}")
    with translate_os_errors("list dashboards directory", directory):
        found = sorted(p for p in directory.iterdir() if p.suffix == ".json")
    if not found:
        raise InputError(f"no *.json dashboards in {directory}")
    return [_read_dashboard(path, limits) for path in found]


def _read_dashboard(path: Path, limits: Limits) -> Dashboard:
    if not _SAFE_NAME.match(path.name):
        raise InputError(
            f"dashboard file name {path.name!r} is not allowed in a bundle",
            "use letters, digits, '.', '_' and '-' only",
        )
    data = _read_bounded(path, limits, "dashboard")
    check_json_depth(data, limits.max_nesting_depth, path, "dashboard")
    try:
        document = json.loads(data)
    except RecursionError as exc:  # the depth check should stop this first; belt and braces
        raise InputError(f"dashboard {path} nests too deep to load") from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"dashboard {path} is not valid JSON: {exc}") from exc
    inner = document.get("dashboard") if isinstance(document, dict) else None
    holder = inner if isinstance(inner, dict) else document
    title = holder.get("title") if isinstance(holder, dict) else None
    if not isinstance(title, str) or not title.strip():
        raise InputError(
            f"dashboard {path} has no title",
            'a Grafana dashboard JSON has a non-empty top-level "title"',
        )
    return Dashboard(path.name, title, data)
