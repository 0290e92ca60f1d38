"""``bundlekit replay``: flags in, :func:`bundlekit.replay.replay_bundle` out.

Only argument parsing and rendering live here; every decision (trust, sealed
mode, retries, checkpoints) is made by the library, so it behaves the same
when driven from Python.  Heavy modules are imported inside the command.
"""

from __future__ import annotations

import os
import re
import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

# Light modules (no protobuf, gRPC or urllib3): safe to import at start-up.
from bundlekit.replay.listener import ReplayListener
from bundlekit.textsafe import neutralize

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

    from bundlekit.otlp.signals import Signal
    from bundlekit.replay.report import ReplayReport

_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


class ProtocolChoice(StrEnum):
    grpc = "grpc"
    http = "http"


class CompressionChoice(StrEnum):
    none = "none"
    gzip = "gzip"


class SignalChoice(StrEnum):
    traces = "traces"
    metrics = "metrics"
    logs = "logs"


def register(app: typer.Typer) -> None:
    """Add the ``replay`` command to the bundlekit app."""
    app.command("replay")(replay)


def replay(
    bundle: Annotated[Path, typer.Argument(help="Bundle directory.")],
    endpoint: Annotated[
        Optional[str],  # noqa: UP045 - typer needs Optional on 3.11
        typer.Option(
            help="Collector: [http://|https://]HOST:PORT[/PATH]. Default: plaintext "
            "127.0.0.1:4317 (grpc) or 127.0.0.1:4318 (http). No scheme means TLS.",
        ),
    ] = None,
    protocol: Annotated[ProtocolChoice, typer.Option(help="OTLP transport.")] = ProtocolChoice.grpc,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="Plaintext even without an http:// scheme.")
    ] = False,
    ca_file: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--ca-file", help="CA certificates (PEM) to verify the collector with."),
    ] = None,
    client_cert: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--client-cert", help="Client certificate (PEM) for mutual TLS."),
    ] = None,
    client_key: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--client-key", help="Client private key (PEM) for mutual TLS."),
    ] = None,
    header: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--header", help="Extra header KEY=VALUE (repeatable)."),
    ] = None,
    header_env: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--header-env",
            help="Header KEY=ENVVAR whose value is read from $ENVVAR, to keep secrets out of "
            "the command line (repeatable).",
        ),
    ] = None,
    compression: Annotated[
        CompressionChoice, typer.Option(help="Request compression.")
    ] = CompressionChoice.none,
    timeout: Annotated[float, typer.Option(help="Seconds one export attempt may take.")] = 10.0,
    retry_max_elapsed: Annotated[
        float, typer.Option(help="Give up on a request after retrying this many seconds.")
    ] = 300.0,
    retry_initial: Annotated[float, typer.Option(help="First backoff delay (seconds).")] = 0.5,
    retry_max_backoff: Annotated[
        float, typer.Option(help="Longest backoff delay (seconds).")
    ] = 30.0,
    trust: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--trust", help="Directory of trusted PEM public keys (*.pub, *.pem)."),
    ] = None,
    key: Annotated[
        Optional[list[Path]],  # noqa: UP045
        typer.Option("--key", help="A trusted public key file (repeatable)."),
    ] = None,
    threshold: Annotated[int, typer.Option(help="Distinct trusted signers required.", min=1)] = 1,
    no_verify: Annotated[
        bool,
        typer.Option(
            "--no-verify", help="Replay WITHOUT verifying the bundle (recorded in the report)."
        ),
    ] = False,
    rebase: Annotated[
        str,
        typer.Option(
            help="Shift all timestamps: none | now | RFC 3339 time | +/-DURATION (e.g. -2h)."
        ),
    ] = "none",
    speed: Annotated[
        str, typer.Option(help="max, or N to replay at N times the original pace.")
    ] = "max",
    rate: Annotated[
        Optional[float],  # noqa: UP045
        typer.Option(help="Cap on records per second."),
    ] = None,
    signal: Annotated[
        Optional[list[SignalChoice]],  # noqa: UP045
        typer.Option("--signal", help="Only this signal (repeatable)."),
    ] = None,
    service: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--service", help="Only resources with this service.name (repeatable)."),
    ] = None,
    since: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="Only records at or after this original time (RFC 3339)."),
    ] = None,
    until: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="Only records before this original time (RFC 3339)."),
    ] = None,
    no_marker: Annotated[
        bool,
        typer.Option("--no-marker", help="Do not add bundlekit.bundle.id / bundlekit.replay.id."),
    ] = False,
    concurrency: Annotated[int, typer.Option(help="Requests in flight.", min=1, max=256)] = 8,
    batch_bytes: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(help="Join small stored requests up to this size (0 = never)."),
    ] = None,
    checkpoint: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(help="Record acknowledged progress here; rerun with it to resume."),
    ] = None,
    sealed: Annotated[
        bool,
        typer.Option(
            "--sealed",
            help="Send only to loopback: no other host, no proxy, no name lookup "
            "(also BUNDLEKIT_SEALED=1).",
        ),
    ] = False,
    allow_egress: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--allow-egress",
            help="In sealed mode, allow this collector or proxy host (repeatable).",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Verify and report what would be sent; send nothing.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the final report as JSON.")
    ] = False,
) -> None:
    """Replay a verified bundle into an OTLP collector (gRPC or HTTP)."""
    from bundlekit.errors import UsageError
    from bundlekit.format.timefmt import parse_ns
    from bundlekit.otlp.signals import Signal
    from bundlekit.replay import (
        Compression,
        Filters,
        Protocol,
        ReplayFailed,
        ReplayInterrupted,
        ReplayOptions,
        RetryPolicy,
        TransportOptions,
        TrustOptions,
        replay_bundle,
    )
    from bundlekit.replay.options import DEFAULT_BATCH_BYTES

    def timestamp(flag: str, value: str | None) -> int | None:
        if value is None:
            return None
        try:
            return int(parse_ns(value))
        except ValueError:
            raise UsageError(
                f"{flag} {value!r} is not an RFC 3339 time", "e.g. 2026-11-01T12:00:00Z"
            ) from None

    options = ReplayOptions(
        transport=TransportOptions(
            endpoint=endpoint,
            protocol=Protocol(protocol.value),
            insecure=insecure,
            ca_file=ca_file,
            cert_file=client_cert,
            key_file=client_key,
            headers=_headers(header or [], header_env or []),
            compression=Compression(compression.value),
            timeout=timeout,
        ),
        trust=TrustOptions(
            trust_dir=trust, keys=tuple(key or ()), threshold=threshold, no_verify=no_verify
        ),
        filters=Filters(
            signals=frozenset(Signal(s.value) for s in signal or ()),
            services=frozenset(service or ()),
            since_ns=timestamp("--since", since),
            until_ns=timestamp("--until", until),
        ),
        rebase=rebase,
        speed=_speed(speed),
        rate=rate,
        marker=not no_marker,
        concurrency=concurrency,
        batch_bytes=DEFAULT_BATCH_BYTES if batch_bytes is None else batch_bytes,
        retry=RetryPolicy(
            initial_backoff=retry_initial,
            max_backoff=retry_max_backoff,
            max_elapsed=retry_max_elapsed,
        ),
        checkpoint=checkpoint,
        sealed=sealed,
        allow_egress=tuple(allow_egress or ()),
        dry_run=dry_run,
    )
    listener = _CliListener(show_progress=not as_json and sys.stderr.isatty())
    try:
        report = replay_bundle(bundle, options, listener)
    except (ReplayFailed, ReplayInterrupted) as exc:
        if exc.report is not None:
            _render(exc.report, as_json)
        raise
    _render(report, as_json)


def _speed(text: str) -> float | None:
    from bundlekit.errors import UsageError

    if text.strip().lower() == "max":
        return None
    try:
        value = float(text.rstrip("xX"))
    except ValueError:
        raise UsageError(f"--speed {text!r} is not 'max' or a number", "e.g. --speed 10") from None
    if value <= 0:
        raise UsageError("--speed must be positive")
    return value


def _headers(pairs: list[str], env_pairs: list[str]) -> tuple[tuple[str, str], ...]:
    """``--header K=V`` and ``--header-env K=ENVVAR`` as (name, value) pairs."""
    from bundlekit.errors import UsageError

    out: list[tuple[str, str]] = []
    for flag, items in (("--header", pairs), ("--header-env", env_pairs)):
        for item in items:
            name, sep, value = item.partition("=")
            name = name.strip()
            if not sep or not _HEADER_NAME.match(name):
                raise UsageError(
                    f"{flag} {name or item!r} is not NAME=VALUE with a valid header name",
                    f"e.g. {flag} authorization="
                    + ("API_TOKEN" if flag.endswith("env") else "..."),
                )
            if flag == "--header-env":
                variable = value.strip()
                if variable not in os.environ:
                    raise UsageError(
                        f"--header-env {name}: environment variable {variable!r} is not set",
                        "export it before running replay",
                    )
                value = os.environ[variable]
            if "\n" in value or "\r" in value:
                raise UsageError(f"header {name} has a line break in its value")
            out.append((name, value))
    return tuple(out)


def _console(stderr: bool) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def _render(report: ReplayReport, as_json: bool) -> None:
    if as_json:
        from bundlekit.cli.render import emit_json

        emit_json(report.to_json())
        return
    con = _console(stderr=False)
    verb = "would send" if report.dry_run else "sent"
    status = "dry run" if report.dry_run else ("complete" if report.completed else "INCOMPLETE")
    con.print(
        f"replay {neutralize(report.replay_id)} of bundle {neutralize(report.bundle_id)} "
        f"to {neutralize(report.endpoint)}: {status}",
        markup=False,
    )
    con.print(
        f"  route: {'would go ' if report.dry_run else ''}{neutralize(report.route)}", markup=False
    )
    if report.verification_skipped:
        con.print("  verification: SKIPPED (--no-verify)")
    if report.rebase_delta_ns:
        con.print(f"  timestamps shifted by {report.rebase_delta_ns / 1e9:+.3f} s")
    if report.resumed:
        con.print("  resumed from checkpoint")
    for sig, stats in report.signals.items():
        if not (stats.records_sent or stats.records_already_acknowledged or stats.records_filtered):
            continue
        line = (
            f"  {sig.value:8} {verb} {stats.records_sent:,} records "
            f"in {stats.requests_sent:,} requests"
        )
        if not report.dry_run:
            line += f", acknowledged {stats.records_acknowledged:,}"
            if stats.records_rejected:
                line += f", REJECTED {stats.records_rejected:,}"
            if stats.retries:
                line += f", {stats.retries:,} retries"
        if stats.records_already_acknowledged:
            line += f", {stats.records_already_acknowledged:,} already delivered"
        if stats.records_filtered:
            line += f", {stats.records_filtered:,} filtered out"
        con.print(line)
    if not report.dry_run:
        con.print(
            f"  {report.duration_s:.2f} s, {report.records_per_second:,.0f} records/s acknowledged"
        )


class _CliListener(ReplayListener):
    """A progress bar (on a terminal) and warnings, both on stderr."""

    def __init__(self, show_progress: bool) -> None:
        self.console = _console(stderr=True)
        self.show_progress = show_progress
        self.progress: Progress | None = None
        self.task: TaskID | None = None
        self.last_retry_note = 0.0

    def on_start(self, report: ReplayReport, planned_records: dict[Signal, int]) -> None:
        if not self.show_progress:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        self.progress = Progress(
            "[bold]replaying",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self.progress.start()
        self.task = self.progress.add_task("replay", total=sum(planned_records.values()))

    def on_warning(self, message: str) -> None:
        # Warnings can quote the collector (partial-success messages): untrusted text.
        loud = "--no-verify" in message
        self.console.print(
            f"WARNING: {neutralize(message)}", style="bold red" if loud else "yellow", markup=False
        )

    def on_acknowledged(self, signal: Signal, records: int, rejected: int) -> None:
        self._advance(records)

    def on_skipped(self, signal: Signal, records: int) -> None:
        self._advance(records)

    def on_retry(self, signal: Signal, detail: str, delay: float, attempt: int) -> None:
        now = time.monotonic()
        if now - self.last_retry_note >= 1.0:  # at most one line a second
            self.last_retry_note = now
            self.console.print(
                f"retrying {signal.value} in {delay:.1f} s (retry {attempt}): {neutralize(detail)}",
                style="yellow",
                markup=False,
            )

    def on_finish(self, report: ReplayReport) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def _advance(self, records: int) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.advance(self.task, records)
