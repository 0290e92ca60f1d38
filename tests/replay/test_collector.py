"""Replaying into a real collector (rotel) that forwards to a receiver run by the test.

rotel re-batches what it forwards, so data is compared canonically (see
``otlpdata.flatten``): the multiset of (resource, scope, record) tuples must be
exactly what was packed — nothing missing and, with Counter equality, nothing
twice.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from bundlekit.otlp.signals import Signal
from bundlekit.replay import ReplayFailed, ReplayReport, replay_bundle
from bundlekit.replay.interface import Protocol
from tests.replay.conftest import options_for
from tests.replay.otlpdata import Bundle, flatten, markers, shift
from tests.replay.receivers import Recorder
from tests.replay.rotel import Rotel, needs_rotel

pytestmark = [
    pytest.mark.collector,
    needs_rotel,
]


def assert_delivered_exactly(receiver: Recorder, expected: dict[Signal, list[bytes]]) -> None:
    for signal in Signal:
        want = flatten(signal, expected[signal])
        receiver.wait_for(signal, sum(want.values()))
        time.sleep(0.2)  # anything extra (a duplicate) would arrive by now
        assert flatten(signal, receiver.accepted[signal]) == want, signal


@pytest.mark.parametrize("protocol", [Protocol.GRPC, Protocol.HTTP])
def test_what_arrives_equals_what_was_packed(
    bundle: Bundle, pipeline: tuple[Rotel, Recorder], protocol: Protocol
) -> None:
    rotel, receiver = pipeline
    port = rotel.grpc_port if protocol is Protocol.GRPC else rotel.http_port
    report = replay_bundle(bundle.path, options_for(bundle, port, protocol))
    assert report.completed
    assert_delivered_exactly(receiver, bundle.requests)
    for signal in Signal:
        assert markers(signal, receiver.accepted[signal]) == {(bundle.bundle_id, report.replay_id)}


def test_replay_of_the_archive_delivers_exactly_what_was_packed(
    bundle: Bundle, pipeline: tuple[Rotel, Recorder], tmp_path: Path
) -> None:
    """pack -> archive -> replay into rotel: the single-file form carries the same data."""
    from dataclasses import replace

    from bundlekit.convert import archive_bundle
    from bundlekit.verify import VerifyOptions

    archive = tmp_path / "incident.bundle.tar"
    archive_bundle(bundle.path, archive, VerifyOptions(keys=[bundle.key.public_path]))
    rotel, receiver = pipeline
    report = replay_bundle(archive, options_for(replace(bundle, path=archive), rotel.grpc_port))
    assert report.completed
    assert_delivered_exactly(receiver, bundle.requests)


def test_rebase_moves_every_timestamp_by_exactly_the_delta(
    bundle: Bundle, pipeline: tuple[Rotel, Recorder]
) -> None:
    rotel, receiver = pipeline
    report = replay_bundle(
        bundle.path, options_for(bundle, rotel.grpc_port, rebase="2030-01-01T00:00:00Z")
    )
    delta = report.rebase_delta_ns
    assert delta > 0
    expected = {s: shift(s, bundle.requests[s], delta) for s in Signal}
    assert_delivered_exactly(receiver, expected)


def _replay_in_background(
    bundle: Bundle, port: int, **kwargs: object
) -> tuple[threading.Thread, dict[str, object]]:
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["report"] = replay_bundle(bundle.path, options_for(bundle, port, **kwargs))
        except Exception as exc:  # reported to the test below
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def test_collector_restarted_mid_replay_everything_arrives(
    bundle: Bundle, pipeline: tuple[Rotel, Recorder]
) -> None:
    rotel, receiver = pipeline
    total = sum(bundle.records(s) for s in Signal)
    # ~2.5 s of replay at a capped rate, so the restart lands in the middle.
    thread, outcome = _replay_in_background(
        bundle, rotel.grpc_port, rate=total / 2.5, batch_bytes=0, concurrency=2, max_elapsed=30.0
    )
    time.sleep(0.8)
    rotel.stop()
    time.sleep(1.0)  # the collector is down; replay keeps retrying
    rotel.start()
    thread.join(60)
    assert not thread.is_alive()
    assert "error" not in outcome, outcome.get("error")
    report = outcome["report"]
    assert isinstance(report, ReplayReport) and report.completed
    assert sum(r.retries for r in report.signals.values()) > 0  # the outage was noticed
    assert_delivered_exactly(receiver, bundle.requests)


def test_outage_longer_than_the_budget_resumes_from_checkpoint_without_duplicates(
    bundle: Bundle, pipeline: tuple[Rotel, Recorder], tmp_path: Path
) -> None:
    rotel, receiver = pipeline
    checkpoint = tmp_path / "replay.checkpoint"
    total = sum(bundle.records(s) for s in Signal)
    settings = dict(checkpoint=checkpoint, batch_bytes=0, concurrency=4)
    thread, outcome = _replay_in_background(
        bundle, rotel.grpc_port, rate=total / 2.0, max_elapsed=1.0, **settings
    )
    time.sleep(0.7)
    rotel.stop()  # down for longer than the 1 s retry budget
    thread.join(30)
    error = outcome.get("error")
    assert isinstance(error, ReplayFailed), outcome
    assert "retry budget" in error.message and str(checkpoint) in (error.hint or "")
    assert error.report is not None
    delivered_first = sum(r.records_acknowledged for r in error.report.signals.values())
    assert 0 < delivered_first < total

    rotel.start()
    report = replay_bundle(bundle.path, options_for(bundle, rotel.grpc_port, **settings))
    assert report.resumed and report.completed
    skipped = sum(r.records_already_acknowledged for r in report.signals.values())
    assert skipped == delivered_first  # only what was not acknowledged was sent again
    assert_delivered_exactly(receiver, bundle.requests)
