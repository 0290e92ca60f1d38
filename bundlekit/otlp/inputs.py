"""Reading OTLP input files: one request, or a length-delimited stream of them.

Two on-disk forms are accepted, told apart by the first byte:

* a single serialized ``Export*ServiceRequest`` always starts with ``0x0a``
  (field 1, length-delimited), because every request's first field is its
  repeated resource list;
* a length-delimited stream (4-byte big-endian length, then the request, as
  the Collector's file exporter writes with ``format: proto``) starts with the
  high byte of a length, which is ``0x00`` for any request under 16 MiB.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from bundlekit.errors import InputError, translate_os_errors
from bundlekit.fsutil import FileStamp, check_unchanged, open_regular, reopen_unchanged
from bundlekit.limits import Limits
from bundlekit.otlp.framing import FRAME_HEADER_BYTES, frame_length
from bundlekit.otlp.signals import SIGNALS, Signal

_SINGLE_REQUEST_TAG = 0x0A
#: Largest request accepted in an input file before splitting (bigger ones are refused).
MAX_INPUT_REQUEST_BYTES = 256 * 1024 * 1024
#: How many records are looked at to tell signals apart.
_DETECT_RECORDS = 64


def iter_input_requests(
    path: Path, limits: Limits, expect: FileStamp | None = None
) -> Iterator[bytes]:
    """Yield each request stored in ``path`` (either form), unsplit.

    The file is opened without blocking and refused unless it is a regular
    file (a FIFO or device would hang or never end).  When it has been read
    to the end, it must still be the file that was opened, unchanged (and,
    with ``expect``, the same file an earlier pass saw): a file still being
    written would otherwise be packed half old, half new.
    """
    if expect is not None:
        handle, stamp = reopen_unchanged(path, expect, "input file"), expect
    else:
        handle, stamp = open_regular(path, "input file")
    try:
        try:
            with translate_os_errors("read input file", path):
                yield from _requests(handle, path, stamp.size)
        except InputError:
            # A file cut short or garbled because it is being rewritten is the
            # environment's doing: say so rather than blame the content.
            check_unchanged(handle, stamp, path, "input file")
            raise
        check_unchanged(handle, stamp, path, "input file")
    finally:
        handle.close()


def _requests(handle: BinaryIO, path: Path, size: int) -> Iterator[bytes]:
    first = handle.read(1)
    if not first:
        raise InputError(f"{path} is empty", "pass a file of OTLP protobuf requests")
    handle.seek(0)
    if first[0] == _SINGLE_REQUEST_TAG:
        if size > MAX_INPUT_REQUEST_BYTES:
            raise InputError(
                f"{path} holds a single {size}-byte request, too large to read at once",
                "write it as a length-delimited stream of smaller requests",
            )
        yield handle.read(MAX_INPUT_REQUEST_BYTES + 1)
        return
    offset = 0
    while True:
        header = handle.read(FRAME_HEADER_BYTES)
        if not header:
            return
        if len(header) < FRAME_HEADER_BYTES:
            raise _truncated(path, offset)
        length = frame_length(header)
        if length > MAX_INPUT_REQUEST_BYTES:
            if offset == 0:
                raise _not_otlp(path)
            raise InputError(
                f"{path}: record at byte {offset} claims {length} bytes",
                "the file is corrupt from there on",
            )
        body = handle.read(length)
        if len(body) < length:
            raise _truncated(path, offset)
        offset += FRAME_HEADER_BYTES + length
        yield body


def _truncated(path: Path, offset: int) -> InputError:
    return InputError(
        f"{path} is truncated: the record at byte {offset} runs past the end of the file",
        "the file was cut short while being written or copied",
    )


def _not_otlp(path: Path) -> InputError:
    return InputError(
        f"{path} is not an OTLP protobuf file",
        "pass one serialized Export*ServiceRequest, or a length-delimited stream of them "
        "(the Collector file exporter's format: proto)",
    )


def detect_signal(path: Path, limits: Limits) -> Signal:
    """Tell which signal a file holds from its first non-empty request."""
    for data in iter_input_requests(path, limits):
        matches = [s for s in SIGNALS if _looks_like(s, data)]
        if len(matches) == 1:
            return matches[0]
        if matches:
            continue  # an empty or ambiguous request: look at the next
        raise InputError(
            f"{path} does not parse as OTLP traces, metrics or logs",
            "pass Export*ServiceRequest protobuf, or name the signal (--traces/--metrics/--logs)",
        )
    raise InputError(
        f"cannot tell which signal {path} holds (no records)",
        "name the signal with --traces, --metrics or --logs",
    )


def confirm_signal(path: Path, signal: Signal, limits: Limits) -> Signal:
    """Check that a file named as ``signal`` holds that signal (first non-empty request)."""
    for data in iter_input_requests(path, limits):
        if _looks_like(signal, data):
            return signal
        if any(_looks_like(other, data) for other in SIGNALS if other is not signal):
            raise InputError(
                f"{path} was given as {signal.value} but holds another signal",
                "check which option (--traces, --metrics, --logs) the file belongs to",
            )
    return signal


def _looks_like(signal: Signal, data: bytes) -> bool:
    from google.protobuf import unknown_fields

    spec = signal.spec
    request = spec.request_class()
    try:
        request.ParseFromString(data)
    except Exception:  # DecodeError: wire types do not fit this signal
        return False
    seen = 0
    for resource in getattr(request, spec.resource_field):
        for scope in getattr(resource, spec.scope_field):
            if len(unknown_fields.UnknownFieldSet(scope)):
                return False
            for record in getattr(scope, spec.record_field):
                if len(unknown_fields.UnknownFieldSet(record)):
                    return False
                seen += 1
                if seen >= _DETECT_RECORDS:
                    return True
    return seen > 0


def parse_request(signal: Signal, data: bytes, where: str) -> Any:
    """Decode ``data`` fully as ``signal``'s request; InputError naming ``where`` if it fails."""
    request = signal.spec.request_class()
    try:
        request.ParseFromString(data)
    except Exception as exc:
        raise InputError(
            f"{where}: not a valid {signal.value} request ({exc})",
            "check that the file holds this signal, or name the signal explicitly",
        ) from exc
    return request
