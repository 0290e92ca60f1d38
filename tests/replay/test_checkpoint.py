"""Checkpoints: atomic saves, refusing the wrong resume, and exact resumption."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from bundlekit.otlp.signals import Signal
from bundlekit.replay import ReplayFailed, replay_bundle
from bundlekit.replay.checkpoint import (
    CheckpointState,
    SegmentProgress,
    Tracker,
    open_tracker,
)
from bundlekit.replay.filters import Filters
from bundlekit.replay.interface import CheckpointError, ExportResult, Outcome
from tests.replay.conftest import options_for
from tests.replay.fakes import FakeExporter, NoExporter
from tests.replay.otlpdata import Bundle, flatten, markers


def test_prefix_advances_only_over_contiguous_acks() -> None:
    progress = SegmentProgress()
    for index in (2, 3, 5):
        progress.ack(index)
    assert progress.prefix == 0 and progress.done == {2, 3, 5}
    assert not progress.acked(0) and progress.acked(3) and not progress.acked(4)
    progress.ack(0)
    progress.ack(1)
    assert progress.prefix == 4 and progress.done == {5}
    progress.ack(4)
    assert progress.prefix == 6 and progress.done == set()


def test_split_request_counts_only_when_every_part_is_acked() -> None:
    progress = SegmentProgress()
    progress.ack(0, part=1, nparts=3)
    progress.ack(0, part=0, nparts=3)
    assert not progress.acked(0)
    assert progress.part_acked(0, 0) and progress.part_acked(0, 1) and not progress.part_acked(0, 2)
    progress.ack(0, part=2, nparts=3)
    assert progress.acked(0) and progress.prefix == 1 and not progress.parts


def test_state_round_trips_through_json() -> None:
    progress = SegmentProgress(prefix=4, done={6, 9}, parts={7: (2, {1})}, total=12)
    state = CheckpointState("b-1", {"marker": True}, "r-1", -5, {"traces:x": progress})
    again = CheckpointState.from_json(json.loads(json.dumps(state.to_json())))
    assert again == state


def test_complete_only_when_the_prefix_reaches_the_total() -> None:
    progress = SegmentProgress(prefix=3)
    assert not progress.complete
    progress.total = 4
    assert not progress.complete
    progress.ack(3)
    assert progress.complete


def test_tracker_refuses_other_bundles_and_other_settings(tmp_path: Path) -> None:
    path = tmp_path / "cp.json"
    tracker = Tracker(CheckpointState("bundle-A", {"rebase": "none"}, "r", 0), path)
    tracker.start()
    tracker.close()
    with pytest.raises(CheckpointError, match="belongs to bundle bundle-A"):
        open_tracker(path, "bundle-B", {"rebase": "none"}, "r2", 0)
    with pytest.raises(CheckpointError, match=r"different replay settings \(rebase\)"):
        open_tracker(path, "bundle-A", {"rebase": "now"}, "r2", 0)
    resumed = open_tracker(path, "bundle-A", {"rebase": "none"}, "r2", 99)
    assert resumed.resumed and resumed.state.replay_id == "r" and resumed.state.delta_ns == 0


def test_garbage_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "cp.json"
    path.write_text("not json")
    with pytest.raises(CheckpointError, match="cannot use checkpoint"):
        open_tracker(path, "b", {}, "r", 0)


# -- end to end through the engine, with a fake exporter -----------------------------------


def fail_after(accepted: int) -> FakeExporter:
    """Accept the first ``accepted`` calls, then answer UNAVAILABLE for ever."""
    return FakeExporter(
        lambda n, s, b: (
            ExportResult(Outcome.ACCEPTED)
            if n <= accepted
            else ExportResult(Outcome.RETRYABLE, detail="UNAVAILABLE: collector down")
        )
    )


@pytest.mark.parametrize("marker", [False, True], ids=["raw", "marked"])
def test_interrupted_replay_resumes_with_nothing_lost_and_nothing_twice(
    bundle: Bundle, tmp_path: Path, marker: bool
) -> None:
    checkpoint = tmp_path / "cp.json"
    opts = options_for(
        bundle,
        1,
        checkpoint=checkpoint,
        marker=marker,
        concurrency=4,
        batch_bytes=0,
        max_elapsed=0.3,
    )
    first = fail_after(9)
    with pytest.raises(ReplayFailed, match="retry budget") as err:
        replay_bundle(bundle.path, opts, exporter_factory=first.factory())
    assert err.value.report is not None and not err.value.report.completed
    saved = json.loads(checkpoint.read_text())
    assert saved["bundle_id"] == bundle.bundle_id

    second = FakeExporter()
    report = replay_bundle(bundle.path, opts, exporter_factory=second.factory())
    assert report.resumed and report.completed
    for signal in Signal:
        delivered = flatten(signal, first.accepted[signal] + second.accepted[signal])
        assert delivered == flatten(signal, bundle.requests[signal]), signal  # exact multiset
        assert report.signals[signal].records_acknowledged == sum(
            flatten(signal, second.accepted[signal]).values()
        )
    assert report.signals[Signal.TRACES].records_already_acknowledged == sum(
        flatten(Signal.TRACES, first.accepted[Signal.TRACES]).values()
    )
    if marker:  # the resumed half carries the same replay id as the first half
        ids = markers(Signal.TRACES, first.accepted[Signal.TRACES] + second.accepted[Signal.TRACES])
        assert len(ids) == 1

    third = FakeExporter()
    again = replay_bundle(bundle.path, opts, exporter_factory=third.factory())
    assert third.calls == 0 and again.completed  # a finished checkpoint sends nothing


def test_resume_with_other_filters_is_refused_before_connecting(
    bundle: Bundle, tmp_path: Path
) -> None:
    checkpoint = tmp_path / "cp.json"
    first = fail_after(2)
    with pytest.raises(ReplayFailed):
        replay_bundle(
            bundle.path,
            options_for(bundle, 1, checkpoint=checkpoint, max_elapsed=0.2),
            exporter_factory=first.factory(),
        )
    other = options_for(
        bundle, 1, checkpoint=checkpoint, filters=Filters(services=frozenset({"auth"}))
    )
    with pytest.raises(CheckpointError, match="different replay settings"):
        replay_bundle(bundle.path, other, exporter_factory=NoExporter())
    rebased = options_for(bundle, 1, checkpoint=checkpoint, rebase="+1h")
    with pytest.raises(CheckpointError, match="rebase"):
        replay_bundle(bundle.path, rebased, exporter_factory=NoExporter())


def test_resume_keeps_the_rebase_delta_of_the_first_run(bundle: Bundle, tmp_path: Path) -> None:
    checkpoint = tmp_path / "cp.json"
    opts = options_for(
        bundle,
        1,
        checkpoint=checkpoint,
        rebase="now",
        batch_bytes=0,
        concurrency=1,
        max_elapsed=0.2,
    )
    first = fail_after(5)
    with pytest.raises(ReplayFailed) as err:
        replay_bundle(bundle.path, opts, exporter_factory=first.factory())
    assert err.value.report is not None
    delta = err.value.report.rebase_delta_ns
    second = FakeExporter()
    report = replay_bundle(bundle.path, opts, exporter_factory=second.factory())
    assert report.rebase_delta_ns == delta  # "now" was not re-evaluated
    from tests.replay.otlpdata import shift

    for signal in Signal:
        got = flatten(signal, first.accepted[signal] + second.accepted[signal])
        assert got == flatten(signal, shift(signal, bundle.requests[signal], delta))


def test_unknown_checkpoint_directory_is_a_usage_error(bundle: Bundle, tmp_path: Path) -> None:
    opts = options_for(bundle, 1, checkpoint=tmp_path / "missing" / "cp.json")
    with pytest.raises(CheckpointError, match="does not exist"):
        replay_bundle(bundle.path, opts, exporter_factory=NoExporter())


def test_out_of_order_acks_are_never_skipped(bundle: Bundle, tmp_path: Path) -> None:
    """With requests in flight, later ones can be acknowledged before earlier ones fail."""
    checkpoint = tmp_path / "cp.json"
    # The third stored request fails for good; others already in flight succeed.
    third = bundle.requests[Signal.TRACES][2]
    first = FakeExporter(
        lambda n, s, b: (
            ExportResult(Outcome.FAILED, detail="HTTP 400")
            if b == third
            else ExportResult(Outcome.ACCEPTED)
        )
    )
    opts = options_for(bundle, 1, checkpoint=checkpoint, concurrency=8, batch_bytes=0, marker=False)
    with pytest.raises(ReplayFailed, match="HTTP 400"):
        replay_bundle(bundle.path, opts, exporter_factory=first.factory())
    saved = json.loads(checkpoint.read_text())
    traces = saved["segments"]["traces:otlp/traces/000001.binpb.zst"]
    assert traces["prefix"] == 2  # the failed third request stops the prefix
    second = FakeExporter()
    replay_bundle(bundle.path, opts, exporter_factory=second.factory())
    combined = Counter(first.accepted[Signal.TRACES] + second.accepted[Signal.TRACES])
    assert combined == Counter(bundle.requests[Signal.TRACES])  # raw bytes: each exactly once


def test_checkpoint_on_a_read_only_filesystem_is_an_io_error(bundle: Bundle) -> None:
    """The environment, not the user's options, is at fault: exit 7, and nothing is sent."""
    from bundlekit.errors import ExitCode, IOFailure
    from tests.test_environment_failures import remount_ro, tmpfs

    with tmpfs("256k") as disk:
        remount_ro(disk)
        opts = options_for(bundle, 1, checkpoint=disk / "cp.json")
        with pytest.raises(IOFailure) as err:
            replay_bundle(bundle.path, opts, exporter_factory=NoExporter())
    assert err.value.exit_code is ExitCode.IO
    assert "cannot write checkpoint" in err.value.message and "EROFS" in err.value.message
    assert err.value.hint is not None and "read-only" in err.value.hint


def test_checkpoint_that_cannot_be_saved_at_the_end_is_an_io_error(
    bundle: Bundle, tmp_path: Path
) -> None:
    """A disk that fills during the replay: the final save fails with exit 7, not a traceback."""
    from bundlekit.errors import IOFailure
    from tests.test_environment_failures import fill, tmpfs

    with tmpfs("256k") as disk:
        opts = options_for(bundle, 1, checkpoint=disk / "cp.json", batch_bytes=0, concurrency=1)

        def decide(number: int, signal: Signal, body: bytes) -> ExportResult:
            if number == 1:
                fill(disk)
            return ExportResult(Outcome.ACCEPTED)

        exporter = FakeExporter(decide)
        with pytest.raises(IOFailure, match="ENOSPC"):
            replay_bundle(bundle.path, opts, exporter_factory=exporter.factory())
