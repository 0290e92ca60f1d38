"""The replay engine end to end on real signed bundles, with a fake exporter."""

from __future__ import annotations

import shutil
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from bundlekit.errors import EgressRefused, IntegrityError
from bundlekit.keys import GeneratedKey, KeyType, generate_key
from bundlekit.otlp.signals import Signal
from bundlekit.replay import (
    Filters,
    ReplayFailed,
    ReplayInterrupted,
    ReplayListener,
    ReplayReport,
    RetryPolicy,
    TrustOptions,
    replay_bundle,
)
from bundlekit.replay.interface import ExportResult, Outcome
from bundlekit.verify import VerificationFailed
from tests.replay.conftest import options_for
from tests.replay.fakes import FakeExporter, NoExporter
from tests.replay.otlpdata import Bundle, count, decode, flatten, make_bundle, markers, shift


class Recorder(ReplayListener):
    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []
        self.warnings: list[str] = []
        self.planned: dict[Signal, int] = {}

    def on_start(self, report: ReplayReport, planned_records: dict[Signal, int]) -> None:
        self.planned = planned_records

    def on_warning(self, message: str) -> None:
        self.warnings.append(message)

    def on_sent(self, signal: Signal, records: int) -> None:
        self.events.append(("sent", records))

    def on_acknowledged(self, signal: Signal, records: int, rejected: int) -> None:
        self.events.append(("ack", records))


def test_raw_replay_sends_the_stored_bytes_untouched(bundle: Bundle) -> None:
    fake = FakeExporter()
    opts = options_for(bundle, 1, marker=False, batch_bytes=0)
    report = replay_bundle(bundle.path, opts, exporter_factory=fake.factory())
    for signal in Signal:
        # Each stored request went out byte for byte, exactly once.
        assert Counter(fake.accepted[signal]) == Counter(bundle.requests[signal])
        stats = report.signals[signal]
        assert stats.records_acknowledged == stats.records_sent == bundle.records(signal)
        assert stats.requests_sent == len(bundle.requests[signal])
    assert report.completed and not report.verification_skipped and fake.closed


def test_small_requests_are_joined_by_concatenation_without_reencoding(bundle: Bundle) -> None:
    fake = FakeExporter()
    limit = 100_000
    replay_bundle(
        bundle.path,
        options_for(bundle, 1, marker=False, batch_bytes=limit, concurrency=1),
        exporter_factory=fake.factory(),
    )
    traces = fake.accepted[Signal.TRACES]
    assert len(traces) < len(bundle.requests[Signal.TRACES])
    assert all(len(body) <= limit for body in traces)
    # Concatenated stored bytes, in stored order: a valid request with the same records.
    assert b"".join(traces) == b"".join(bundle.requests[Signal.TRACES])
    assert flatten(Signal.TRACES, traces) == flatten(Signal.TRACES, bundle.requests[Signal.TRACES])


def test_marker_is_on_every_resource_and_data_is_otherwise_equal(bundle: Bundle) -> None:
    fake = FakeExporter()
    report = replay_bundle(bundle.path, options_for(bundle, 1), exporter_factory=fake.factory())
    for signal in Signal:
        assert markers(signal, fake.accepted[signal]) == {(bundle.bundle_id, report.replay_id)}
        assert flatten(signal, fake.accepted[signal]) == flatten(signal, bundle.requests[signal])


def test_rebase_now_moves_everything_by_one_delta(bundle: Bundle) -> None:
    fake = FakeExporter()
    before = time.time_ns()
    report = replay_bundle(
        bundle.path,
        options_for(bundle, 1, rebase="now", marker=False),
        exporter_factory=fake.factory(),
    )
    after = time.time_ns()
    earliest = min(min(t for t in _times(s, bundle.requests[s]) if t) for s in Signal)
    assert before <= earliest + report.rebase_delta_ns <= after
    for signal in Signal:
        expected = shift(signal, bundle.requests[signal], report.rebase_delta_ns)
        assert flatten(signal, fake.accepted[signal]) == flatten(signal, expected)


def _times(signal: Signal, bodies: list[bytes]) -> list[int]:
    out = []
    for body in bodies:
        for entry in getattr(decode(signal, body), signal.spec.resource_field):
            for scope in getattr(entry, signal.spec.scope_field):
                for record in getattr(scope, signal.spec.record_field):
                    if signal is Signal.TRACES:
                        out += [record.start_time_unix_nano, record.end_time_unix_nano]
                    elif signal is Signal.LOGS:
                        out += [record.time_unix_nano, record.observed_time_unix_nano]
                    else:
                        kind = record.WhichOneof("data")
                        out += [p.time_unix_nano for p in getattr(record, kind).data_points]
                        out += [p.start_time_unix_nano for p in getattr(record, kind).data_points]
    return out


def test_signal_and_service_filters(bundle: Bundle) -> None:
    fake = FakeExporter()
    filters = Filters(
        signals=frozenset({Signal.TRACES, Signal.LOGS}), services=frozenset({"payments"})
    )
    report = replay_bundle(
        bundle.path,
        options_for(bundle, 1, filters=filters, marker=False),
        exporter_factory=fake.factory(),
    )
    assert fake.accepted[Signal.METRICS] == []
    for signal in (Signal.TRACES, Signal.LOGS):
        wanted = Counter(
            {
                k: v
                for k, v in flatten(signal, bundle.requests[signal]).items()
                if b"payments" in k[0]
            }
        )
        assert wanted and flatten(signal, fake.accepted[signal]) == wanted
        stats = report.signals[signal]
        assert stats.records_filtered + stats.records_acknowledged == bundle.records(signal)


def test_time_window_filter(bundle: Bundle) -> None:
    times = sorted(t for t in _times(Signal.TRACES, bundle.requests[Signal.TRACES]) if t)
    since, until = times[len(times) // 4], times[len(times) // 2]
    fake = FakeExporter()
    replay_bundle(
        bundle.path,
        options_for(
            bundle,
            1,
            marker=False,
            filters=Filters(signals=frozenset({Signal.TRACES}), since_ns=since, until_ns=until),
        ),
        exporter_factory=fake.factory(),
    )
    got = [
        s.start_time_unix_nano
        for b in fake.accepted[Signal.TRACES]
        for rs in decode(Signal.TRACES, b).resource_spans
        for ss in rs.scope_spans
        for s in ss.spans
    ]
    expected = [
        s.start_time_unix_nano
        for b in bundle.requests[Signal.TRACES]
        for rs in decode(Signal.TRACES, b).resource_spans
        for ss in rs.scope_spans
        for s in ss.spans
        if since <= s.start_time_unix_nano < until
    ]
    assert got and sorted(got) == sorted(expected)


def test_partial_success_is_counted_not_retried(bundle: Bundle) -> None:
    fake = FakeExporter(
        lambda n, s, b: ExportResult(Outcome.ACCEPTED, rejected=3, detail="too old")
    )
    listener = Recorder()
    report = replay_bundle(
        bundle.path,
        options_for(bundle, 1, batch_bytes=0),
        listener,
        exporter_factory=fake.factory(),
    )
    traces = report.signals[Signal.TRACES]
    assert traces.records_rejected == 3 * len(bundle.requests[Signal.TRACES])
    assert traces.records_acknowledged == bundle.records(Signal.TRACES) - traces.records_rejected
    assert traces.retries == 0 and fake.calls == sum(len(v) for v in bundle.requests.values())
    assert len([w for w in listener.warnings if "partially" in w]) == 3  # once per signal
    assert "too old" in listener.warnings[0]


def test_non_retryable_answer_stops_with_a_clear_error(bundle: Bundle) -> None:
    fake = FakeExporter(
        lambda n, s, b: ExportResult(Outcome.FAILED, detail="HTTP 400 Bad Request: bad span")
    )
    with pytest.raises(ReplayFailed) as err:
        replay_bundle(
            bundle.path,
            options_for(bundle, 1, concurrency=2, batch_bytes=0),
            exporter_factory=fake.factory(),
        )
    assert err.value.exit_code == 6
    assert "refused traces data: HTTP 400 Bad Request: bad span" in err.value.message
    assert "not retryable" in (err.value.hint or "")
    assert fake.calls <= 3  # stopped right away, not after the whole bundle
    report = err.value.report
    assert report is not None and report.error and not report.completed


def test_retryable_failures_are_retried_then_delivered(bundle: Bundle) -> None:
    fake = FakeExporter(
        lambda n, s, b: (
            ExportResult(Outcome.RETRYABLE, detail="UNAVAILABLE")
            if n % 3
            else ExportResult(Outcome.ACCEPTED)
        )
    )
    opts = options_for(bundle, 1, concurrency=1, marker=False, batch_bytes=0)
    opts = replace(opts, retry=RetryPolicy(initial_backoff=0.005, max_backoff=0.01))
    report = replay_bundle(
        bundle.path,
        opts,
        exporter_factory=fake.factory(),
    )
    assert report.completed
    assert report.signals[Signal.TRACES].retries == 2 * len(bundle.requests[Signal.TRACES])
    assert Counter(fake.accepted[Signal.TRACES]) == Counter(bundle.requests[Signal.TRACES])


def test_tampered_segment_is_refused_before_any_of_it_is_sent(
    bundle: Bundle, tmp_path: Path
) -> None:
    """Replay reads each segment once and checks its digest before decoding or sending it."""
    copy = tmp_path / "tampered"
    shutil.copytree(bundle.path, copy)
    segment = copy / "otlp" / "traces" / "000001.binpb.zst"
    data = bytearray(segment.read_bytes())
    data[-1] ^= 1
    segment.write_bytes(bytes(data))
    fake = FakeExporter()
    with pytest.raises(
        IntegrityError, match=r"000001\.binpb\.zst differs from the manifest"
    ) as caught:
        replay_bundle(copy, options_for(bundle, 1), exporter_factory=fake.factory())
    assert caught.value.exit_code == 4
    assert fake.accepted[Signal.TRACES] == []  # not one request of the tampered segment


def test_tampered_container_is_refused_before_connecting(bundle: Bundle, tmp_path: Path) -> None:
    copy = tmp_path / "tampered"
    shutil.copytree(bundle.path, copy)
    (copy / "otlp" / "traces" / "999999.binpb.zst").write_bytes(b"unlisted")
    with pytest.raises(VerificationFailed) as caught:
        replay_bundle(copy, options_for(bundle, 1), exporter_factory=NoExporter())
    assert caught.value.exit_code == 4
    assert [f.code for f in caught.value.report.failures] == ["extra"]


def test_bundle_signed_by_an_untrusted_key_is_refused(bundle: Bundle, tmp_path: Path) -> None:
    stranger: GeneratedKey = generate_key(tmp_path / "stranger", KeyType.ED25519)
    opts = options_for(bundle, 1)
    opts = replace(opts, trust=TrustOptions(keys=(stranger.public_path,)))
    with pytest.raises(VerificationFailed) as caught:
        replay_bundle(bundle.path, opts, exporter_factory=NoExporter())
    assert caught.value.exit_code == 3


def test_no_verify_replays_but_warns_and_records_it(bundle: Bundle, tmp_path: Path) -> None:
    stranger = generate_key(tmp_path / "stranger", KeyType.ED25519)
    opts = options_for(bundle, 1)
    opts = replace(opts, trust=TrustOptions(keys=(stranger.public_path,), no_verify=True))
    listener, fake = Recorder(), FakeExporter()
    report = replay_bundle(bundle.path, opts, listener, exporter_factory=fake.factory())
    assert report.verification_skipped and report.to_json()["verification_skipped"] is True
    assert any("NOT" in w and "--no-verify" in w for w in listener.warnings)
    assert fake.accepted[Signal.TRACES]


def test_sealed_mode_refuses_before_reading_the_bundle(bundle: Bundle, tmp_path: Path) -> None:
    transport = options_for(bundle, 1).transport
    far = replace(transport, endpoint="http://10.20.30.40:4317")
    opts = options_for(bundle, 1, transport=far, sealed=True)
    with pytest.raises(EgressRefused, match=r"10\.20\.30\.40") as err:
        replay_bundle(tmp_path / "does-not-exist", opts, exporter_factory=NoExporter())
    assert err.value.exit_code == 2


def test_sealed_mode_from_the_environment(bundle: Bundle, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUNDLEKIT_SEALED", "1")
    transport = options_for(bundle, 1).transport
    far = replace(transport, endpoint="http://collector.example:4317")
    with pytest.raises(EgressRefused, match="BUNDLEKIT_SEALED"):
        replay_bundle(
            bundle.path, options_for(bundle, 1, transport=far), exporter_factory=NoExporter()
        )


def test_airgap_bundle_is_sealed_unless_the_host_is_allowed(
    tmp_path: Path, replay_key: GeneratedKey
) -> None:
    airgap = make_bundle(tmp_path, replay_key, spans=100, profile="airgap", signals=[Signal.TRACES])
    transport = options_for(airgap, 1).transport
    far = replace(transport, endpoint="http://collector.example:4317")
    with pytest.raises(EgressRefused, match="airgap bundle"):
        replay_bundle(
            airgap.path, options_for(airgap, 1, transport=far), exporter_factory=NoExporter()
        )
    fake = FakeExporter()
    allowed = options_for(airgap, 1, transport=far, allow_egress=("collector.example",))
    assert replay_bundle(airgap.path, allowed, exporter_factory=fake.factory()).completed
    loopback = FakeExporter()
    assert replay_bundle(
        airgap.path, options_for(airgap, 1), exporter_factory=loopback.factory()
    ).completed


def test_dry_run_connects_to_nothing_and_counts_what_would_be_sent(
    bundle: Bundle, tmp_path: Path
) -> None:
    checkpoint = tmp_path / "cp.json"
    report = replay_bundle(
        bundle.path,
        options_for(bundle, 1, dry_run=True, checkpoint=checkpoint),
        exporter_factory=NoExporter(),
    )
    assert report.dry_run and not checkpoint.exists()
    real = replay_bundle(
        bundle.path, options_for(bundle, 1), exporter_factory=FakeExporter().factory()
    )
    for signal in Signal:
        assert report.signals[signal].records_sent == real.signals[signal].records_sent
        assert report.signals[signal].requests_sent == real.signals[signal].requests_sent
        assert report.signals[signal].records_acknowledged == 0


def test_listener_sees_progress_and_plan(bundle: Bundle) -> None:
    listener = Recorder()
    replay_bundle(
        bundle.path, options_for(bundle, 1), listener, exporter_factory=FakeExporter().factory()
    )
    total = sum(bundle.records(s) for s in Signal)
    assert sum(listener.planned.values()) == total
    assert sum(n for kind, n in listener.events if kind == "ack") == total
    assert sum(n for kind, n in listener.events if kind == "sent") == total


def test_speed_paces_by_original_time_across_signals(bundle: Bundle) -> None:
    times = [t for s in Signal for t in _times(s, bundle.requests[s]) if t]
    window_s = (max(times) - min(times)) / 1e9
    fake = FakeExporter()
    started = time.monotonic()
    report = replay_bundle(
        bundle.path,
        options_for(bundle, 1, speed=window_s / 0.6, concurrency=1),
        exporter_factory=fake.factory(),
    )
    elapsed = time.monotonic() - started
    assert report.completed
    # The last request starts no earlier than its original offset / speed.
    assert elapsed >= 0.3
    # Signals are interleaved by original time: earliest times never go backwards.
    order = [min(t for t in _times(signal, [body]) if t) for signal, body in fake.order]
    assert order == sorted(order)
    assert fake.order[0][0] is not fake.order[-1][0] or len({s for s, _ in fake.order}) == 3


def test_rate_caps_records_per_second(bundle: Bundle) -> None:
    records = bundle.records(Signal.LOGS)
    rate = records / 0.5
    started = time.monotonic()
    replay_bundle(
        bundle.path,
        options_for(
            bundle, 1, rate=rate, batch_bytes=0, filters=Filters(signals=frozenset({Signal.LOGS}))
        ),
        exporter_factory=FakeExporter().factory(),
    )
    first = count(Signal.LOGS, bundle.requests[Signal.LOGS][0])
    assert time.monotonic() - started >= (records - first) / rate * 0.95


def test_ctrl_c_saves_progress_and_the_rerun_sends_the_rest(bundle: Bundle, tmp_path: Path) -> None:
    class Interrupt(ReplayListener):
        sends = 0

        def on_sent(self, signal: Signal, records: int) -> None:
            self.sends += 1
            if self.sends == 5:
                raise KeyboardInterrupt  # as Ctrl-C does, in the main thread

    checkpoint = tmp_path / "cp.json"
    opts = options_for(bundle, 1, checkpoint=checkpoint, batch_bytes=0, marker=False)
    first = FakeExporter()
    with pytest.raises(ReplayInterrupted) as err:
        replay_bundle(bundle.path, opts, Interrupt(), exporter_factory=first.factory())
    assert err.value.exit_code == 130
    assert str(checkpoint) in (err.value.hint or "")
    second = FakeExporter()
    replay_bundle(bundle.path, opts, exporter_factory=second.factory())
    for signal in Signal:
        assert Counter(first.accepted[signal] + second.accepted[signal]) == Counter(
            bundle.requests[signal]
        )


def test_requests_the_marker_pushes_over_the_limit_are_split_on_the_wire_path(
    bundle: Bundle,
) -> None:
    from bundlekit.limits import Limits

    largest = max(len(body) for s in Signal for body in bundle.requests[s])
    limit = largest + 16  # the marker adds more than 16 bytes to every resource
    fake = FakeExporter()
    opts = options_for(
        bundle, 1, rebase="+1h", batch_bytes=0, limits=Limits(max_request_bytes=limit)
    )
    report = replay_bundle(bundle.path, opts, exporter_factory=fake.factory())
    delta = 3600 * 10**9
    assert report.rebase_delta_ns == delta
    for signal in Signal:
        sent = fake.accepted[signal]
        assert all(len(body) <= limit for body in sent)
        expected = shift(signal, bundle.requests[signal], delta)
        assert flatten(signal, sent) == flatten(signal, expected)
        assert markers(signal, sent) == {(bundle.bundle_id, report.replay_id)}
        stats = report.signals[signal]
        assert stats.records_acknowledged == stats.records_sent == bundle.records(signal)
    traces = Signal.TRACES
    assert len(fake.accepted[traces]) > len(bundle.requests[traces])  # some were split
