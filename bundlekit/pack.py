"""Pack OTLP files, collector config, dashboards and attachments into a bundle.

One streaming pass per input: requests are framed into segments of bounded
size while their statistics are gathered, by the one bundle builder
(``bundlekit.build``) that every writer shares; it compresses each full segment
on a background thread while the next one fills, so memory holds at most two
segments however large the input, and publishes the directory or archive only
when it is complete.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bundlekit.build.builder import BuildOptions, BundleBuilder, BundleInfo
from bundlekit.build.segments import DEFAULT_SEGMENT_TARGET
from bundlekit.errors import FormatError, InputError, UsageError
from bundlekit.format import layout
from bundlekit.format.layout import Role
from bundlekit.format.manifest import PROFILES, Custody, Manifest
from bundlekit.format.timefmt import created_ns_default
from bundlekit.fsutil import FileStamp, open_regular
from bundlekit.inputs_config import read_collector_config, read_dashboards
from bundlekit.keys import Signer
from bundlekit.limits import DEFAULT_LIMITS, Limits
from bundlekit.otlp.inputs import confirm_signal, detect_signal, iter_input_requests
from bundlekit.otlp.signals import SIGNALS, Signal
from bundlekit.otlp.split import split_input
from bundlekit.retention import resolve_retention


@dataclass(frozen=True)
class PackInput:
    """An OTLP input file; ``signal`` None means detect it from the content."""

    path: Path
    signal: Signal | None = None


@dataclass(frozen=True)
class PackOptions:
    config: Path | None = None
    dashboards: Path | None = None
    attachments: Sequence[Path] = ()
    profile: str = "default"
    custody: Custody = field(default_factory=Custody)
    #: "N" or "Nd" days from creation, or a date "YYYY-MM-DD"; None uses the profile.
    retention: str | None = None
    bundle_id: str | None = None
    #: Creation time in Unix nanoseconds; None uses $SOURCE_DATE_EPOCH or now.
    created_ns: int | None = None
    compression_level: int = 3
    #: Uncompressed size at which a new segment starts (capped by limits.max_segment_bytes).
    segment_target: int = DEFAULT_SEGMENT_TARGET
    #: zstd worker threads per segment (0 = compress on the background thread only,
    #: which overlaps best with parsing on two cores).
    compression_threads: int = 0
    #: Write a single-file ``.bundle.tar`` instead of a directory.
    archive: bool = False
    #: The manifest's producer record; None: this bundlekit on this host (see BundleInfo).
    producer: dict[str, str] | None = None
    limits: Limits = DEFAULT_LIMITS

    @property
    def build(self) -> BuildOptions:
        return BuildOptions(
            archive=self.archive,
            compression_level=self.compression_level,
            segment_target=self.segment_target,
            compression_threads=self.compression_threads,
            limits=self.limits,
        )


@dataclass(frozen=True)
class PackResult:
    path: Path
    manifest: Manifest
    signed_by: tuple[str, ...]
    #: Staging directories of killed packs found beside ``path`` and removed.
    removed_staging: tuple[Path, ...] = ()


#: Called with (bytes of input consumed so far, total input bytes).
ProgressCallback = Callable[[int, int], None]


def pack_bundle(
    inputs: Sequence[PackInput | Path],
    out: Path,
    options: PackOptions = PackOptions(),
    signers: Sequence[Signer] = (),
    progress: ProgressCallback | None = None,
) -> PackResult:
    """Write a bundle at ``out`` (a directory, or with ``options.archive`` a
    ``.bundle.tar``) and return its manifest.

    Raises a UsageError/InputError subclass of BundlekitError on bad input;
    nothing is left at ``out`` unless the whole bundle was written.  An
    environment failure (disk full, read-only, permission denied, an input
    that changed or vanished while read) is an :class:`IOFailure`.
    """
    check_custody(options.custody, options.limits)
    if options.profile not in PROFILES:
        raise UsageError(
            f"unknown profile {options.profile!r}", f"choose one of {', '.join(PROFILES)}"
        )
    specs = [i if isinstance(i, PackInput) else PackInput(Path(i)) for i in inputs]
    if not specs:
        raise UsageError("nothing to pack", "pass at least one OTLP input file")
    stamps = [_stamp(spec.path) for spec in specs]  # before the first read: see _pack_otlp
    resolved = [
        (
            spec.path,
            confirm_signal(spec.path, spec.signal, options.limits)
            if spec.signal
            else detect_signal(spec.path, options.limits),
            stamp,
        )
        for spec, stamp in zip(specs, stamps, strict=True)
    ]
    config = read_collector_config(options.config, options.limits) if options.config else None
    dashboards = read_dashboards(options.dashboards, options.limits) if options.dashboards else []
    attachments = _attachment_names(options.attachments, options.limits)
    created_ns = options.created_ns if options.created_ns is not None else created_ns_default()
    retain_until, basis = resolve_retention(options.retention, options.profile, created_ns)
    bundle_id = options.bundle_id or str(uuid.uuid4())

    info = BundleInfo(
        bundle_id=bundle_id,
        created_ns=created_ns,
        profile=options.profile,
        retain_until=retain_until,
        retention_basis=basis,
        custody=options.custody,
        producer=options.producer,
    )
    with BundleBuilder(out, options.build) as builder:
        _pack_otlp(builder, resolved, options.limits, progress)
        if config is not None:
            builder.add_bytes(layout.CONFIG_NAME, Role.COLLECTOR_CONFIG, config)
        for dashboard in dashboards:
            name = f"{layout.DASHBOARDS_DIR}/{dashboard.filename}"
            builder.add_bytes(name, Role.DASHBOARD, dashboard.data, dashboard.title)
        for name, source, stamp in attachments:
            builder.add_file(name, Role.ATTACHMENT, source, stamp)
        manifest = builder.finish(info, tuple(signers))
    return PackResult(out, manifest, tuple(s.keyid for s in signers), builder.removed_staging)


#: Custody fields as the CLI names them, with their cap in Limits (the schema's maxLength).
_CUSTODY_FIELDS = (
    ("operator", "--operator", "max_operator_chars", False),
    ("case_id", "--case-id", "max_case_id_chars", False),
    ("reason", "--reason", "max_reason_chars", True),
)


def check_custody(custody: Custody, limits: Limits) -> None:
    """Refuse custody values the manifest could not carry, naming the option and its limit.

    Checked before any input is read, so a typo costs nothing, and so the user
    sees "--reason is 5000 characters; the limit is 4096" rather than a schema
    failure of the manifest it would have produced.  Refused: values that are
    not valid UTF-8 (undecodable argv bytes arrive as lone surrogates), longer
    than the cap, or holding control characters.  Controls are refused rather
    than kept and neutralised on output: custody fields are evidence signed
    into the manifest, and an escape sequence there is never meant.  ``--reason``
    may span lines, so newline and tab are allowed in it only.
    """
    for attr, option, cap_name, multiline in _CUSTODY_FIELDS:
        value = getattr(custody, attr)
        if value is None:
            continue
        cap = getattr(limits, cap_name)
        if any(0xD800 <= ord(ch) <= 0xDFFF for ch in value):
            raise UsageError(
                f"{option} is not valid UTF-8 text",
                f"pass {option} as UTF-8 (check the terminal's or script's encoding)",
            )
        if len(value) > cap:
            raise UsageError(
                f"{option} is {len(value)} characters; the limit is {cap}",
                f"shorten {option} to at most {cap} characters",
            )
        if not value.strip():
            raise UsageError(f"{option} is empty", f"give {option} a value or leave it out")
        allowed = "\n\t" if multiline else ""
        for ch in value:
            if (ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0) and ch not in allowed:
                raise UsageError(
                    f"{option} holds the control character U+{ord(ch):04X}",
                    f"remove control characters from {option}"
                    + (" (newlines and tabs are allowed)" if multiline else ""),
                )


def _stamp(path: Path) -> FileStamp | None:
    """The input's identity before it is first read; None if it cannot be stat'ed yet
    (the reader then reports why, as a usage error)."""
    try:
        return FileStamp.of(os.stat(path))
    except OSError:
        return None


def _pack_otlp(
    builder: BundleBuilder,
    inputs: list[tuple[Path, Signal, FileStamp | None]],
    limits: Limits,
    progress: ProgressCallback | None,
) -> None:
    """Feed every input's requests to the writer, signal by signal, splitting oversized ones.

    Each input is read a second time here (the first read told its signal);
    it must still be the same, unchanged file, or the bundle would mix two
    versions of it.
    """
    total = sum(stamp.size for _, _, stamp in inputs if stamp is not None)
    consumed = 0
    for signal in SIGNALS:
        for path, file_signal, stamp in inputs:
            if file_signal is not signal:
                continue
            for data in iter_input_requests(path, limits, expect=stamp):
                consumed += len(data) + 4
                parts = split_input(signal, data, limits.max_request_bytes, str(path))
                for part in parts:
                    try:
                        builder.add_request(signal, part)
                    except FormatError as exc:
                        raise InputError(
                            f"{path}: a request is not valid {signal.value} data ({exc.message})",
                            "check the file holds this signal, or name it with "
                            "--traces/--metrics/--logs",
                        ) from exc
                if progress:
                    progress(consumed, total)
        builder.flush(signal)


def _attachment_names(paths: Sequence[Path], limits: Limits) -> list[tuple[str, Path, FileStamp]]:
    """Bundle names for the attachments, each checked and stamped before any work starts.

    The stamp is compared when the attachment is copied, at the end of the
    pack: evidence replaced or modified meanwhile is refused, not packed.
    """
    names: dict[str, tuple[Path, FileStamp]] = {}
    for path in paths:
        handle, stamp = open_regular(path, "attachment")  # refuses FIFOs, devices, sockets at once
        handle.close()
        name = f"{layout.ATTACHMENTS_DIR}/{path.name}"
        try:
            layout.check_relative_path(name, limits)
        except Exception as exc:
            raise InputError(f"attachment name {path.name!r} is not allowed in a bundle") from exc
        if name in names:
            raise InputError(
                f"two attachments are both called {path.name!r}",
                "rename one of them; attachments are stored by file name",
            )
        names[name] = (path, stamp)
    return [(name, path, stamp) for name, (path, stamp) in names.items()]
