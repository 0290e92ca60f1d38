"""Replaying a bundle: verify, select, transform, pace, send, acknowledge.

The main thread walks the bundle lazily (one segment in memory at a time),
prepares each stored request and hands it to a pool of ``concurrency``
workers; each worker delivers one request with the shared retry policy.
Acknowledgements update the report and the checkpoint as they arrive.  The
first non-retryable failure (or exhausted retry budget) stops new sends; what
was acknowledged stays recorded, so a rerun with the same checkpoint resumes
exactly after it.

When nothing needs changing (no rebase, no marker, no per-record filter) the
stored bytes are sent untouched; consecutive small requests are joined by
concatenation, which protobuf defines as merging their repeated resource
lists, so even that needs no decoding.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from bundlekit.errors import translate_os_errors
from bundlekit.otlp.rewrite import ResourceMarker, Rewriter
from bundlekit.otlp.signals import SIGNALS, Signal
from bundlekit.otlp.split import split_request
from bundlekit.otlp.stats import RecordCounter, count_decoded
from bundlekit.replay.checkpoint import Tracker, open_tracker, segment_key
from bundlekit.replay.egress import sealed_from_env
from bundlekit.replay.endpoint import Endpoint, parse_endpoint
from bundlekit.replay.exporters import create_exporter
from bundlekit.replay.interface import (
    Exporter,
    ExportResult,
    Outcome,
    ReplayFailed,
    ReplayInterrupted,
    TransportOptions,
)
from bundlekit.replay.listener import ReplayListener
from bundlekit.replay.marker import apply_marker
from bundlekit.replay.options import ReplayOptions
from bundlekit.replay.pacing import Pacer
from bundlekit.replay.rebase import Rebaser, parse_rebase, resolve_delta
from bundlekit.replay.report import ReplayReport
from bundlekit.replay.retry import Delivery, Retrier, Status
from bundlekit.replay.route import Route, plan_route
from bundlekit.replay.source import ReplaySource, open_source
from bundlekit.textsafe import neutralize

ExporterFactory = Callable[[Route, TransportOptions, int], Exporter]
#: (segment key, request index, part, number of parts)
AckKey = tuple[str, int, int, int]


def replay_bundle(
    path: Path,
    options: ReplayOptions,
    listener: ReplayListener | None = None,
    *,
    exporter_factory: ExporterFactory = create_exporter,
) -> ReplayReport:
    """Verify the bundle at ``path`` and replay it; see :class:`ReplayOptions`.

    Raises a :class:`~bundlekit.errors.BundlekitError`: the verification
    error for a bundle that fails it, :class:`EgressRefused` in sealed mode,
    :class:`ReplayFailed` when the collector refuses data or stays down past
    the retry budget, :class:`ReplayInterrupted` on Ctrl-C.
    """
    # Refuse a forbidden destination (or an unusable proxy) before even reading the bundle;
    # replay_source plans again once the bundle's profile (airgap) is known.
    _plan_route(parse_endpoint(options.transport), options, profile=None)
    source = open_source(path, options.trust, options.limits)
    return replay_source(source, options, listener, exporter_factory=exporter_factory)


def replay_source(
    source: ReplaySource,
    options: ReplayOptions,
    listener: ReplayListener | None = None,
    *,
    exporter_factory: ExporterFactory = create_exporter,
) -> ReplayReport:
    """Replay an already opened (verified) source; the engine behind :func:`replay_bundle`."""
    endpoint = parse_endpoint(options.transport)
    route = _plan_route(endpoint, options, profile=source.profile)
    return _Run(source, options, listener or ReplayListener(), route, exporter_factory).execute()


def _plan_route(endpoint: Endpoint, options: ReplayOptions, profile: str | None) -> Route:
    """The route to the collector; in sealed mode, only loopback or what is allowed."""
    reasons = []
    if options.sealed:
        reasons.append("--sealed")
    if sealed_from_env():
        reasons.append("BUNDLEKIT_SEALED")
    if profile == "airgap":
        reasons.append("airgap bundle")
    sealed = ", ".join(reasons) if reasons else None
    return plan_route(endpoint, options.transport.protocol, sealed, options.allow_egress)


def resource_marker(signal: Signal, bundle_id: str, replay_id: str) -> ResourceMarker:
    """Marks one serialized Resource with the full path's own :func:`apply_marker`."""
    request_class = signal.spec.request_class

    def mark(resource: bytes) -> bytes:
        request = request_class()
        entry = getattr(request, signal.spec.resource_field).add()
        entry.resource.ParseFromString(resource)
        apply_marker(signal, request, bundle_id, replay_id)
        marked: bytes = entry.resource.SerializeToString()
        return marked

    return mark


def full_rebase(signal: Signal, rebaser: Rebaser) -> Callable[[bytes], None]:
    """Rebase a fully decoded copy of a request: raises the RebaseError naming the value."""

    def rebase(data: bytes) -> None:
        rebaser.apply(signal, signal.spec.request_class.FromString(data))

    return rebase


@dataclass
class _Unit:
    """One stored request (or one part of a split one), ready to send."""

    signal: Signal
    key: AckKey
    body: bytes
    records: int
    original_ns: int | None


@dataclass
class _Batch:
    signal: Signal
    parts: list[bytes] = field(default_factory=list)
    keys: list[AckKey] = field(default_factory=list)
    size: int = 0
    records: int = 0
    original_ns: int | None = None

    def add(self, unit: _Unit) -> None:
        self.parts.append(unit.body)
        self.keys.append(unit.key)
        self.size += len(unit.body)
        self.records += unit.records
        if self.original_ns is None:
            self.original_ns = unit.original_ns


class _SyncListener(ReplayListener):
    """Serializes listener calls, which also come from worker threads."""

    def __init__(self, inner: ReplayListener) -> None:
        self._inner = inner
        self._lock = threading.Lock()

    def on_start(self, report: ReplayReport, planned_records: dict[Signal, int]) -> None:
        with self._lock:
            self._inner.on_start(report, planned_records)

    def on_warning(self, message: str) -> None:
        with self._lock:
            self._inner.on_warning(message)

    def on_sent(self, signal: Signal, records: int) -> None:
        with self._lock:
            self._inner.on_sent(signal, records)

    def on_acknowledged(self, signal: Signal, records: int, rejected: int) -> None:
        with self._lock:
            self._inner.on_acknowledged(signal, records, rejected)

    def on_skipped(self, signal: Signal, records: int) -> None:
        with self._lock:
            self._inner.on_skipped(signal, records)

    def on_retry(self, signal: Signal, detail: str, delay: float, attempt: int) -> None:
        with self._lock:
            self._inner.on_retry(signal, detail, delay, attempt)

    def on_finish(self, report: ReplayReport) -> None:
        with self._lock:
            self._inner.on_finish(report)


class _Run:
    """State of one replay run."""

    def __init__(
        self,
        source: ReplaySource,
        options: ReplayOptions,
        listener: ReplayListener,
        route: Route,
        exporter_factory: ExporterFactory,
    ) -> None:
        self.source = source
        self.options = options
        self.listener = _SyncListener(listener)
        self.route = route
        self.exporter_factory = exporter_factory
        self.filters = options.filters
        self.signals = self.filters.selected_signals
        self.segments = {s: list(source.segments(s)) for s in SIGNALS}
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.failure: tuple[_Batch, Delivery] | None = None
        self.warned_partial: set[Signal] = set()

        spec = parse_rebase(options.rebase)
        earliest = min(
            (
                e.earliest_ns
                for seg in self.segments.values()
                for e in seg
                if e.earliest_ns is not None
            ),
            default=None,
        )
        settings = {
            **self.filters.fingerprint(),
            "rebase": spec.canonical(),
            "marker": options.marker,
            "max_request_bytes": options.limits.max_request_bytes,
        }
        self.tracker: Tracker = open_tracker(
            options.checkpoint,
            source.bundle_id,
            settings,
            options.replay_id or str(uuid.uuid4()),
            resolve_delta(spec, earliest, time.time_ns()),
        )
        if options.dry_run:
            self.tracker.path = None  # a dry run reads a checkpoint but never writes one
        state = self.tracker.state
        self.rebaser = Rebaser(state.delta_ns)
        self.transform = bool(state.delta_ns) or options.marker or self.filters.per_record
        self.paced_by_time = options.speed is not None
        self.pacer = Pacer(options.speed, options.rate, sleep=self._sleep)
        self.counters = {s: RecordCounter(s) for s in SIGNALS}
        # Only a transforming replay needs them (building the views costs a few ms).
        self.rewriters = (
            {s: self._rewriter(s) for s in self.signals}
            if self.transform and not self.filters.per_record
            else {}
        )
        self.report = ReplayReport(
            bundle_id=source.bundle_id,
            replay_id=state.replay_id,
            endpoint=route.endpoint.describe(options.transport.protocol),
            protocol=options.transport.protocol.value,
            route=route.describe(),
            sealed=route.sealed is not None,
            verification_skipped=source.verification_skipped,
            dry_run=options.dry_run,
            rebase_delta_ns=state.delta_ns,
            marker=options.marker,
            resumed=self.tracker.resumed,
        )

    # -- top level -------------------------------------------------------------
    def execute(self) -> ReplayReport:
        started = time.monotonic()
        if self.source.verification_skipped:
            self.listener.on_warning(
                "verification skipped (--no-verify): the bundle's integrity and origin were NOT "
                "checked, and the data sent may have been tampered with"
            )
        planned = {
            s: sum(e.records or 0 for e in self.segments[s] if self.filters.wants_segment(e))
            for s in self.signals
        }
        self.listener.on_start(self.report, planned)
        try:
            with translate_os_errors("write checkpoint", self.tracker.path):
                self.tracker.start()
            if self.options.dry_run:
                self._dry_run()
            else:
                self._send_all()
        except KeyboardInterrupt:
            self.report.error = "interrupted"
            interrupted = ReplayInterrupted(
                "replay interrupted; every acknowledged request is recorded",
                self._resume_hint(),
            )
            interrupted.report = self._finish(started)
            raise interrupted from None
        except BaseException as exc:
            self.report.error = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            self._finish(started)
            raise
        if self.failure is not None:
            error, raw = self._failure_error(*self.failure)
            self.report.error = raw
            error.report = self._finish(started)
            raise error
        self.report.completed = True
        return self._finish(started)

    def _finish(self, started: float) -> ReplayReport:
        self.stop.set()
        try:
            with translate_os_errors("write checkpoint", self.tracker.path):
                self.tracker.close()
        finally:
            self.report.duration_s = time.monotonic() - started
            self.listener.on_finish(self.report)
        return self.report

    def _sleep(self, seconds: float) -> bool:
        return not self.stop.wait(seconds)

    # -- producing what to send ---------------------------------------------------
    def _rewriter(self, signal: Signal) -> Rewriter:
        """Rebase and marker on the wire (see ``otlp.rewrite``); the full path reports errors."""
        marker = None
        if self.options.marker:
            marker = resource_marker(signal, self.source.bundle_id, self.tracker.state.replay_id)
        return Rewriter(signal, self.rebaser.delta, marker, full_rebase(signal, self.rebaser))

    def _units(self, signal: Signal) -> Iterator[_Unit]:
        stats = self.report.signals[signal]
        for entry in self.segments[signal]:
            if not self.filters.wants_segment(entry):
                stats.records_filtered += entry.records or 0
                self.listener.on_skipped(signal, entry.records or 0)
                continue
            key = segment_key(signal.value, entry.name)
            progress = self.tracker.segment(key)
            if progress.complete:
                stats.records_already_acknowledged += entry.records or 0
                self.listener.on_skipped(signal, entry.records or 0)
                continue
            total = 0
            for index, body in enumerate(self.source.requests(signal, entry)):
                total = index + 1
                if progress.acked(index):
                    records = self.counters[signal].count(body)
                    stats.records_already_acknowledged += records
                    self.listener.on_skipped(signal, records)
                    continue
                yield from self._prepare(signal, key, index, body, progress.part_acked)
            self.tracker.set_total(key, total)

    def _prepare(
        self,
        signal: Signal,
        key: str,
        index: int,
        body: bytes,
        part_acked: Callable[[int, int], bool],
    ) -> Iterator[_Unit]:
        counter = self.counters[signal]
        original = counter.earliest_ns(body) if self.paced_by_time else None
        if not self.transform:
            yield _Unit(signal, (key, index, 0, 1), body, counter.count(body), original)
            return
        if not self.filters.per_record:
            # Nothing to drop: rebase and marker are applied without a full decode.
            data, kept = self.rewriters[signal].rewrite(body)
            limit = self.options.limits.max_request_bytes
            if len(data) <= limit:
                if not part_acked(index, 0):
                    yield _Unit(signal, (key, index, 0, 1), data, kept, original)
                return
            parts = split_request(signal, signal.spec.request_class.FromString(data), limit)
            for part, piece in enumerate(parts):
                if not part_acked(index, part):
                    records = counter.count(piece)
                    yield _Unit(signal, (key, index, part, len(parts)), piece, records, original)
            return
        request = signal.spec.request_class.FromString(body)
        before = count_decoded(signal, request)
        kept = before
        if self.filters.per_record:
            self.filters.apply(signal, request)
            kept = count_decoded(signal, request)
            if kept < before:
                self.report.signals[signal].records_filtered += before - kept
                self.listener.on_skipped(signal, before - kept)
            if not kept:
                # Nothing of this request is wanted: it counts as done.
                self.tracker.ack([(key, index, 0, 1)])
                return
        self.rebaser.apply(signal, request)
        if self.options.marker:
            apply_marker(signal, request, self.source.bundle_id, self.tracker.state.replay_id)
        parts = split_request(signal, request, self.options.limits.max_request_bytes)
        for part, data in enumerate(parts):
            if part_acked(index, part):
                continue
            records = kept if len(parts) == 1 else counter.count(data)
            yield _Unit(signal, (key, index, part, len(parts)), data, records, original)

    def _all_units(self) -> Iterable[_Unit]:
        streams = [self._units(s) for s in self.signals]
        if self.paced_by_time:
            # Interleave signals by original time so --speed keeps their relative timing.
            return heapq.merge(*streams, key=lambda u: u.original_ns or 0)
        return itertools.chain(*streams)

    def _batches(self) -> Iterator[_Batch]:
        target = 0 if self.paced_by_time else self.options.batch_bytes
        current: _Batch | None = None
        for unit in self._all_units():
            if (
                current is not None
                and current.signal is unit.signal
                and current.size + len(unit.body) <= target
            ):
                current.add(unit)
                continue
            if current is not None:
                yield current
            current = _Batch(unit.signal)
            current.add(unit)
        if current is not None:
            yield current

    # -- sending -----------------------------------------------------------------------
    def _dry_run(self) -> None:
        for batch in self._batches():
            stats = self.report.signals[batch.signal]
            stats.requests_sent += 1
            stats.records_sent += batch.records
            self.listener.on_sent(batch.signal, batch.records)

    def _send_all(self) -> None:
        concurrency = self.options.concurrency
        exporter = self.exporter_factory(self.route, self.options.transport, concurrency)
        self.report.endpoint = exporter.target or self.report.endpoint
        slots = threading.Semaphore(concurrency)
        pool = ThreadPoolExecutor(concurrency, thread_name_prefix="bundlekit-replay")
        try:
            for batch in self._batches():
                if self.stop.is_set() or not self.pacer.wait(batch.original_ns, batch.records):
                    break
                slots.acquire()
                if self.stop.is_set():
                    slots.release()
                    break
                stats = self.report.signals[batch.signal]
                with self.lock:
                    stats.requests_sent += 1
                    stats.records_sent += batch.records
                self.listener.on_sent(batch.signal, batch.records)
                future = pool.submit(self._deliver, exporter, batch)
                future.add_done_callback(self._on_done(batch, slots))
        except BaseException:
            # Ctrl-C or a broken bundle: stop retrying, let in-flight calls finish.
            self.stop.set()
            raise
        finally:
            pool.shutdown(wait=True)
            exporter.close()

    def _deliver(self, exporter: Exporter, batch: _Batch) -> Delivery:
        body = batch.parts[0] if len(batch.parts) == 1 else b"".join(batch.parts)
        signal = batch.signal

        def attempt() -> ExportResult:
            return exporter.export(signal, body)

        def on_retry(result: ExportResult, delay: float, attempt_no: int) -> None:
            with self.lock:
                self.report.signals[signal].retries += 1
            self.listener.on_retry(signal, result.detail, delay, attempt_no)

        retrier = Retrier(self.options.retry, sleep=self._sleep)
        return retrier.deliver(attempt, on_retry)

    def _on_done(
        self, batch: _Batch, slots: threading.Semaphore
    ) -> Callable[[Future[Delivery]], None]:
        def done(future: Future[Delivery]) -> None:
            try:
                self._record(batch, future)
            finally:
                slots.release()

        return done

    def _record(self, batch: _Batch, future: Future[Delivery]) -> None:
        try:
            delivery = future.result()
        except Exception as exc:  # a bug in an exporter must not hang the replay
            result = ExportResult(Outcome.FAILED, detail=f"internal error: {exc!r}")
            delivery = Delivery(Status.FAILED, result, 0, 0.0)
        signal = batch.signal
        if delivery.status is Status.ACCEPTED:
            self.tracker.ack(batch.keys)
            rejected = min(delivery.last.rejected, batch.records)
            with self.lock:
                stats = self.report.signals[signal]
                stats.requests_acknowledged += 1
                stats.records_acknowledged += batch.records - rejected
                stats.records_rejected += rejected
                noteworthy = bool(rejected or delivery.last.detail)
                first_warning = noteworthy and signal not in self.warned_partial
                if first_warning:
                    self.warned_partial.add(signal)
            self.listener.on_acknowledged(signal, batch.records, rejected)
            if first_warning:
                self.listener.on_warning(
                    f"the collector accepted {signal.value} only partially: {rejected} "
                    f"{signal.spec.record_noun} rejected"
                    + (f" ({delivery.last.detail})" if delivery.last.detail else "")
                    + "; rejected records are counted in the report and not retried"
                )
        elif delivery.status in (Status.FAILED, Status.EXHAUSTED):
            with self.lock:
                if self.failure is None:
                    self.failure = (batch, delivery)
            self.stop.set()

    # -- messages ----------------------------------------------------------------------
    def _resume_hint(self) -> str:
        if self.tracker.path is not None:
            return (
                f"run the same command again (with --checkpoint {self.tracker.path}) "
                "to send only the rest"
            )
        return (
            "nothing recorded what was acknowledged; use --checkpoint FILE to make a "
            "replay resumable"
        )

    def _failure_error(self, batch: _Batch, delivery: Delivery) -> tuple[ReplayFailed, str]:
        """The error to raise, and its message with the collector's words exactly as sent.

        The collector's details are untrusted text: the exception (printed on a
        terminal) carries them neutralized, the report (JSON) keeps them exact.
        """
        target = self.report.endpoint
        last = delivery.last

        def compose(detail: str) -> str:
            if last.hint is not None:
                return f"cannot send {batch.signal.value} data to {target}: {detail}"
            if delivery.status is Status.EXHAUSTED:
                return (
                    f"the collector at {target} did not accept {batch.signal.value} data within "
                    f"the retry budget ({delivery.elapsed:.1f} s of "
                    f"{self.options.retry.max_elapsed:g} s, {delivery.retries} retries; "
                    f"last error: {detail})"
                )
            return f"the collector at {target} refused {batch.signal.value} data: {detail}"

        if last.hint is not None:
            hint = last.hint
        elif delivery.status is Status.EXHAUSTED:
            hint = "check that the collector is running and reachable; " + self._resume_hint()
        else:
            hint = (
                "this error is not retryable (OTLP specification); fix the cause, then "
                + self._resume_hint()
            )
        error = ReplayFailed(compose(neutralize(last.detail)), hint)
        return error, compose(last.detail)
