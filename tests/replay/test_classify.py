"""Which exporter answers count as success, retryable or fatal (OTLP spec rules)."""

from __future__ import annotations

import grpc
import pytest

from bundlekit.otlp.signals import Signal
from bundlekit.replay.grpc_exporter import classify_error
from bundlekit.replay.http_exporter import classify_response
from bundlekit.replay.interface import Outcome
from bundlekit.replay.partial import rejected_records
from bundlekit.replay.rpc_status import parse_status
from tests.replay.receivers import Reply, response_bytes, status_bytes


class FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str = "", trailing: tuple = ()) -> None:
        self._code, self._details, self._trailing = code, details, trailing

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> tuple:
        return self._trailing


RETRYABLE = [
    "UNAVAILABLE",
    "DEADLINE_EXCEEDED",
    "CANCELLED",
    "ABORTED",
    "OUT_OF_RANGE",
    "DATA_LOSS",
]


@pytest.mark.parametrize("name", [c.name for c in grpc.StatusCode if c is not grpc.StatusCode.OK])
def test_grpc_codes(name: str) -> None:
    result = classify_error(FakeRpcError(grpc.StatusCode[name], "boom"))
    expected = Outcome.RETRYABLE if name in RETRYABLE else Outcome.FAILED
    assert result.outcome is expected
    assert result.detail == f"{name}: boom"
    assert result.retry_after is None


def test_resource_exhausted_is_retryable_only_with_retry_info() -> None:
    details = status_bytes(8, "slow down", retry_delay=2.5)
    trailing = (("grpc-status-details-bin", details),)
    with_info = classify_error(FakeRpcError(grpc.StatusCode.RESOURCE_EXHAUSTED, "x", trailing))
    assert with_info.outcome is Outcome.RETRYABLE
    assert with_info.retry_after == pytest.approx(2.5)
    without = classify_error(FakeRpcError(grpc.StatusCode.RESOURCE_EXHAUSTED, "x"))
    assert without.outcome is Outcome.FAILED


def test_retry_info_delay_is_used_for_unavailable_too() -> None:
    trailing = (("grpc-status-details-bin", status_bytes(14, "", retry_delay=0.75)),)
    result = classify_error(FakeRpcError(grpc.StatusCode.UNAVAILABLE, "", trailing))
    assert result.outcome is Outcome.RETRYABLE and result.retry_after == pytest.approx(0.75)


def test_tls_handshake_failure_is_not_retried() -> None:
    result = classify_error(
        FakeRpcError(grpc.StatusCode.UNAVAILABLE, "failed to connect: Ssl handshake failed")
    )
    assert result.outcome is Outcome.FAILED


def test_status_parser_matches_googleapis_encoding() -> None:
    parsed = parse_status(status_bytes(14, "try later", retry_delay=1.25))
    assert parsed is not None
    assert (parsed.code, parsed.message, parsed.retry_delay) == (14, "try later", 1.25)
    plain = parse_status(status_bytes(3, "bad", retry_delay=None))
    assert plain is not None and plain.retry_delay is None
    assert parse_status(b"\xff\xff\xff") is None


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_http_retryable_statuses_honour_retry_after(status: int) -> None:
    result = classify_response(Signal.TRACES, status, "Busy", "3", b"")
    assert result.outcome is Outcome.RETRYABLE
    assert result.retry_after == 3.0
    assert result.detail.startswith(f"HTTP {status}")


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 415, 500, 501])
def test_http_other_errors_are_fatal_with_the_collector_message(status: int) -> None:
    body = status_bytes(3, "unknown field in span", None)
    result = classify_response(Signal.LOGS, status, "Nope", None, body)
    assert result.outcome is Outcome.FAILED
    assert result.detail == f"HTTP {status} Nope: unknown field in span"


def test_http_plain_text_error_body_is_shown() -> None:
    result = classify_response(Signal.LOGS, 400, "Bad Request", None, b"invalid protobuf")
    assert "invalid protobuf" in result.detail


@pytest.mark.parametrize("signal", list(Signal))
def test_partial_success_is_accepted_and_counted(signal: Signal) -> None:
    body = response_bytes(signal, Reply(rejected=7, message="dropped: too old"))
    assert rejected_records(signal, body) == (7, "dropped: too old")
    result = classify_response(signal, 200, "OK", None, body)
    assert result.outcome is Outcome.ACCEPTED
    assert result.rejected == 7
    assert classify_response(signal, 200, "OK", None, b"").rejected == 0
