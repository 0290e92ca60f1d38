"""pytest plugin for bench/mutate.py: which test runs which line of the mutated module.

Loaded with ``-p _mutate_trace`` (bench/ on the path) for one run per module.
It traces only frames whose code lives in the target file, so the rest of the
suite runs at near full speed, and writes ``{context: [lines]}`` as JSON, where
the context is ``call <nodeid>``, ``setup <nodeid>`` (fixtures, which may be
shared by every test of the file) or ``<import>`` (module-level code, which
every test depends on).  The driver then runs each mutant against only the
tests that execute its lines.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Generator
from types import FrameType
from typing import Any

import pytest

_TARGET = os.path.realpath(os.environ.get("BUNDLEKIT_MUTATE_TRACE", ""))
_OUT = os.environ.get("BUNDLEKIT_MUTATE_TRACE_OUT", "")
_context = ["<import>"]
_hits: dict[str, set[int]] = {}
_files: dict[str, bool] = {}


def _ours(filename: str) -> bool:
    known = _files.get(filename)
    if known is None:
        known = _files[filename] = os.path.realpath(filename) == _TARGET
    return known


def _local(frame: FrameType, event: str, arg: Any) -> Any:
    if event == "line":
        _hits.setdefault(_context[0], set()).add(frame.f_lineno)
    return _local


def _global(frame: FrameType, event: str, arg: Any) -> Any:
    if _ours(frame.f_code.co_filename):
        _hits.setdefault(_context[0], set()).add(frame.f_lineno)
        return _local
    return None


if _TARGET and _OUT:
    sys.settrace(_global)
    threading.settrace(_global)


def _retrace() -> None:
    """Put the tracer back: a test may replace it (hypothesis does, for its explain phase).

    Without this every test after the first hypothesis test would look as if it
    ran no line of the target, and its mutants would go untested by it.
    """
    if _TARGET and _OUT and sys.gettrace() is not _global:
        sys.settrace(_global)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    _retrace()
    _context[0] = f"setup {item.nodeid}"
    yield
    _context[0] = "<between>"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    _retrace()
    _context[0] = f"call {item.nodeid}"
    yield
    _context[0] = "<between>"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    _context[0] = f"setup {item.nodeid}"
    yield
    _context[0] = "<between>"


def pytest_collection_finish(session: pytest.Session) -> None:
    _hits.setdefault("<order>", set())
    _order.extend(item.nodeid for item in session.items)


_order: list[str] = []


def pytest_sessionfinish(session: pytest.Session) -> None:
    sys.settrace(None)
    threading.settrace(None)
    if _OUT:
        _hits.pop("<order>", None)
        doc = {"order": _order, "lines": {k: sorted(v) for k, v in _hits.items()}}
        with open(_OUT, "w", encoding="utf-8") as handle:
            json.dump(doc, handle)
