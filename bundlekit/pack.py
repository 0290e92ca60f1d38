"""Pack OTLP files, collector config, dashboards and attachments into a bundle.

One streaming pass per input: requests are framed into segments of bounded
size while their statistics are gathered; each full segment is compressed,
hashed and written by a background thread while the next one fills, so memory
holds at most two segments however large the input.  Everything is written
into a temporary sibling directory that is renamed into place only at the end.
"""

from __future__ import annotations

import hashlib
import os
import platform
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bundlekit._version import __version__
from bundlekit.errors import FormatError, InputError, UsageError, translate_os_errors
from bundlekit.format import layout
from bundlekit.format.dsse import Envelope, Signature
from bundlekit.format.layout import Role
from bundlekit.format.manifest import (
    PAYLOAD_TYPE,
    PROFILES,
    Custody,
    FileEntry,
    Manifest,
    build_manifest,
)
from bundlekit.format.timefmt import created_ns_default
from bundlekit.format.writer import DEFAULT_SEGMENT_TARGET, SegmentWriter
from bundlekit.fsutil import (
    FileStamp,
    changed_while_read,
    check_unchanged,
    clean_stale_staging,
    open_regular,
    reopen_unchanged,
    staged_directory,
    write_file_synced,
)
from bundlekit.inputs_config import Dashboard, read_collector_config, read_dashboards
from bundlekit.keys import Signer
from bundlekit.limits import DEFAULT_LIMITS, Limits
from bundlekit.otlp.inputs import confirm_signal, detect_signal, iter_input_requests
from bundlekit.otlp.signals import SIGNALS, Signal
from bundlekit.otlp.split import split_input
from bundlekit.retention import resolve_retention

_COPY_CHUNK = 1 << 20


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
    limits: Limits = DEFAULT_LIMITS


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
    """Write a bundle directory at ``out`` and return its manifest.

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
    attachments = _attachment_names(options.attachments)
    created_ns = options.created_ns if options.created_ns is not None else created_ns_default()
    retain_until, basis = resolve_retention(options.retention, options.profile, created_ns)
    bundle_id = options.bundle_id or str(uuid.uuid4())

    with translate_os_errors("write bundle", out):
        removed = tuple(clean_stale_staging(out.parent))
        manifest = _write_bundle(
            out,
            resolved,
            config,
            dashboards,
            attachments,
            options,
            signers,
            progress,
            bundle_id=bundle_id,
            created_ns=created_ns,
            retain_until=retain_until,
            basis=basis,
        )
    return PackResult(out, manifest, tuple(s.keyid for s in signers), removed)


def _write_bundle(
    out: Path,
    resolved: list[tuple[Path, Signal, FileStamp | None]],
    config: bytes | None,
    dashboards: list[Dashboard],
    attachments: list[tuple[str, Path, FileStamp]],
    options: PackOptions,
    signers: Sequence[Signer],
    progress: ProgressCallback | None,
    *,
    bundle_id: str,
    created_ns: int,
    retain_until: str,
    basis: str,
) -> Manifest:
    with staged_directory(out) as staging:
        writer = SegmentWriter(
            staging,
            options.limits,
            options.compression_level,
            options.compression_threads,
            options.segment_target,
        )
        try:
            _pack_otlp(writer, resolved, options.limits, progress)
        except BaseException:
            writer.abort()
            raise
        entries = writer.close()
        if config is not None:
            entries.append(_write_small(staging, layout.CONFIG_NAME, config, Role.COLLECTOR_CONFIG))
        for dashboard in dashboards:
            entries.append(_write_dashboard(staging, dashboard))
        for name, source, stamp in attachments:
            entries.append(_copy_attachment(staging, name, source, stamp))
        manifest = build_manifest(
            entries,
            bundle_id=bundle_id,
            created_ns=created_ns,
            producer={
                "tool": "bundlekit",
                "version": __version__,
                "python": platform.python_version(),
                "platform": platform.platform(),
            },
            profile=options.profile,
            custody=options.custody,
            retain_until=retain_until,
            retention_basis=basis,
            limits=options.limits,
        )
        write_file_synced(staging / layout.MANIFEST_NAME, manifest.raw)
        if signers:
            envelope = Envelope(PAYLOAD_TYPE, manifest.raw)
            for signer in signers:
                envelope = envelope.with_signature(
                    Signature(signer.keyid, signer.sign(envelope.pae()))
                )
            write_file_synced(staging / layout.ENVELOPE_NAME, envelope.to_bytes())
    return manifest


#: Custody fields as the CLI names them, with their cap in Limits (the schema's maxLength).
_CUSTODY_FIELDS = (
    ("operator", "--operator", "max_operator_chars", False),
    ("case_id", "--case-id", "max_case_id_chars", False),
    ("reason", "--reason", "max_reason_chars", True),
)


def check_custody(custody: Custody, limits: Limits = DEFAULT_LIMITS) -> None:
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
    writer: SegmentWriter,
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
                        writer.add(signal, part)
                    except FormatError as exc:
                        raise InputError(
                            f"{path}: a request is not valid {signal.value} data ({exc.message})",
                            "check the file holds this signal, or name it with "
                            "--traces/--metrics/--logs",
                        ) from exc
                if progress:
                    progress(consumed, total)
        writer.finish_signal()


def _write_small(
    root: Path, name: str, data: bytes, role: Role, title: str | None = None
) -> FileEntry:
    write_file_synced(root / name, data)
    return FileEntry(
        name=name,
        role=role,
        media_type=layout.MEDIA_TYPES[role],
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        uncompressed_size=len(data),
        title=title,
    )


def _write_dashboard(root: Path, dashboard: Dashboard) -> FileEntry:
    name = f"{layout.DASHBOARDS_DIR}/{dashboard.filename}"
    return _write_small(root, name, dashboard.data, Role.DASHBOARD, dashboard.title)


def _attachment_names(paths: Sequence[Path]) -> list[tuple[str, Path, FileStamp]]:
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
            layout.check_relative_path(name)
        except Exception as exc:
            raise InputError(f"attachment name {path.name!r} is not allowed in a bundle") from exc
        if name in names:
            raise InputError(
                f"two attachments are both called {path.name!r}",
                "rename one of them; attachments are stored by file name",
            )
        names[name] = (path, stamp)
    return [(name, path, stamp) for name, (path, stamp) in names.items()]


def _copy_attachment(root: Path, name: str, source: Path, expect: FileStamp) -> FileEntry:
    digest = hashlib.sha256()
    target = root / name
    target.parent.mkdir(parents=True, exist_ok=True)
    size = 0
    with reopen_unchanged(source, expect, "attachment") as src, open(target, "xb") as dst:
        while True:
            with translate_os_errors("read attachment", source):
                chunk = src.read(_COPY_CHUNK)
            if not chunk:
                break
            digest.update(chunk)
            dst.write(chunk)
            size += len(chunk)
        if size != expect.size:
            raise changed_while_read(source, "attachment")
        check_unchanged(src, expect, source, "attachment")
        dst.flush()
        os.fsync(dst.fileno())
    return FileEntry(
        name=name,
        role=Role.ATTACHMENT,
        media_type=layout.MEDIA_TYPES[Role.ATTACHMENT],
        sha256=digest.hexdigest(),
        size=size,
        uncompressed_size=size,
    )
