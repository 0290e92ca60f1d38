"""The one builder every bundle writer shares: pack today, live capture next.

A :class:`BundleBuilder` owns one bundle being written.  Requests of any
signal go in as they come (from any thread); config, dashboards and
attachments are added as files; :meth:`~BundleBuilder.finish` writes the
manifest, signs it and publishes the bundle, as a directory or as a
``.bundle.tar``; :meth:`~BundleBuilder.abort` (or any exception inside a
``with`` block) leaves nothing at the final path.

Everything is written into a staging directory beside the final path first.
An archive must start with the manifest, which is known only at the end, so
for an archive the staged files are copied into it at finish (with
``copy_file_range``, in the kernel) and the staging is removed.
"""

from __future__ import annotations

import hashlib
import os
import platform
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from bundlekit._version import __version__
from bundlekit.build.segments import DEFAULT_SEGMENT_TARGET, SegmentWriter
from bundlekit.errors import UsageError, translate_os_errors
from bundlekit.format import layout
from bundlekit.format.archive import ArchiveWriter
from bundlekit.format.dsse import Envelope, Signature
from bundlekit.format.layout import Role
from bundlekit.format.manifest import PAYLOAD_TYPE, Custody, FileEntry, Manifest, build_manifest
from bundlekit.fsutil import (
    STAGED_FILE,
    FileStamp,
    changed_while_read,
    check_unchanged,
    clean_stale_staging,
    reopen_unchanged,
    staged_directory,
    write_file_synced,
)
from bundlekit.keys import Signer
from bundlekit.limits import DEFAULT_LIMITS, Limits
from bundlekit.otlp.signals import Signal

_COPY_CHUNK = 1 << 20


@dataclass(frozen=True)
class BuildOptions:
    """How a bundle is written (what goes in it is the caller's business)."""

    #: Write a single-file ``.bundle.tar`` instead of a directory.
    archive: bool = False
    compression_level: int = 3
    #: Uncompressed size at which a new segment starts (capped by limits.max_segment_bytes).
    segment_target: int = DEFAULT_SEGMENT_TARGET
    #: zstd worker threads per segment (0 = compress on the background thread only,
    #: which overlaps best with parsing on two cores).
    compression_threads: int = 0
    limits: Limits = DEFAULT_LIMITS


@dataclass(frozen=True)
class BundleInfo:
    """The manifest's facts that are not about files."""

    bundle_id: str
    created_ns: int
    profile: str
    retain_until: str
    retention_basis: str
    custody: Custody = field(default_factory=Custody)
    #: What the manifest records as its producer; None: this bundlekit, Python and host
    #: (:func:`producer`).  Golden bundles pin it, so they regenerate byte for byte anywhere.
    producer: dict[str, str] | None = None


def producer() -> dict[str, str]:
    return {
        "tool": "bundlekit",
        "version": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


class BundleBuilder:
    """One bundle being written at ``out``.  Use as a context manager."""

    def __init__(self, out: Path, options: BuildOptions = BuildOptions()) -> None:
        self.out = out
        self.options = options
        #: Staging left by killed packs beside ``out``, removed when this one started.
        self.removed_staging: tuple[Path, ...] = ()
        self._stack = ExitStack()
        self._staging: Path | None = None
        self._segments: SegmentWriter | None = None
        self._files: dict[str, FileEntry] = {}

    # -- life cycle ------------------------------------------------------------------

    def __enter__(self) -> BundleBuilder:
        with translate_os_errors("write bundle", self.out):
            self.removed_staging = tuple(clean_stale_staging(self.out.parent))
            self._staging = self._stack.enter_context(
                staged_directory(self.out, file=self.options.archive)
            )
        options = self.options
        self._segments = SegmentWriter(
            self._staging,
            options.limits,
            options.compression_level,
            options.compression_threads,
            options.segment_target,
            durable=not options.archive,
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None:
            self.abort(exc)
        elif self._staging is not None:
            self.abort(UsageError("the bundle was not finished"))

    def abort(self, reason: BaseException | None = None) -> None:
        """Discard everything written; nothing is left at the final path."""
        if self._segments is not None:
            self._segments.abort()
            self._segments = None
        if self._staging is not None:
            self._staging = None
            error = reason or UsageError("aborted")
            self._stack.__exit__(type(error), error, error.__traceback__)

    @property
    def staging(self) -> Path:
        if self._staging is None:
            raise UsageError("the builder is not open")
        return self._staging

    # -- content ---------------------------------------------------------------------

    def add_request(self, signal: Signal, data: bytes) -> int:
        """Append one serialized request of ``signal``; return its record count.

        Any signal, any order, any thread.  Raises FormatError if ``data`` is
        not a request of ``signal`` (nothing of it is kept).
        """
        assert self._segments is not None, "the builder is not open"
        with translate_os_errors("write bundle", self.out):
            return self._segments.add(signal, data)

    def flush(self, signal: Signal) -> None:
        """Close ``signal``'s open segment, so the next request starts a new one."""
        assert self._segments is not None, "the builder is not open"
        with translate_os_errors("write bundle", self.out):
            self._segments.flush(signal)

    def add_bytes(self, name: str, role: Role, data: bytes, title: str | None = None) -> FileEntry:
        """A small file (config, dashboard) stored as it is."""
        self._claim(name, role)
        with translate_os_errors("write bundle", self.out):
            write_file_synced(self.staging / name, data)
        return self._entry(
            FileEntry(
                name=name,
                role=role,
                media_type=layout.MEDIA_TYPES[role],
                sha256=hashlib.sha256(data).hexdigest(),
                size=len(data),
                uncompressed_size=len(data),
                title=title,
            )
        )

    def add_file(self, name: str, role: Role, source: Path, expect: FileStamp) -> FileEntry:
        """Copy a user's file (an attachment), refusing it if it changed since ``expect``."""
        self._claim(name, role)
        digest = hashlib.sha256()
        target = self.staging / name
        size = 0
        with translate_os_errors("write bundle", self.out):
            target.parent.mkdir(parents=True, exist_ok=True)
            with reopen_unchanged(source, expect, role.value) as src, open(target, "xb") as dst:
                while True:
                    with translate_os_errors(f"read {role.value}", source):
                        chunk = src.read(_COPY_CHUNK)
                    if not chunk:
                        break
                    digest.update(chunk)
                    dst.write(chunk)
                    size += len(chunk)
                if size != expect.size:
                    raise changed_while_read(source, role.value)
                check_unchanged(src, expect, source, role.value)
                dst.flush()
                os.fsync(dst.fileno())
        return self._entry(
            FileEntry(
                name=name,
                role=role,
                media_type=layout.MEDIA_TYPES[role],
                sha256=digest.hexdigest(),
                size=size,
                uncompressed_size=size,
            )
        )

    def _claim(self, name: str, role: Role) -> None:
        layout.check_relative_path(name, self.options.limits)
        if layout.role_for_path(name) is not role or role.signal is not None:
            raise UsageError(f"{name} is not where a {role.value} file belongs in a bundle")
        if name in self._files:
            raise UsageError(f"{name} was added twice")

    def _entry(self, entry: FileEntry) -> FileEntry:
        self._files[entry.name] = entry
        return entry

    # -- the end ---------------------------------------------------------------------

    def finish(self, info: BundleInfo, signers: tuple[Signer, ...] | list[Signer] = ()) -> Manifest:
        """Write the manifest (and envelope, if signers), then publish the bundle."""
        assert self._segments is not None, "the builder is not open"
        with translate_os_errors("write bundle", self.out):
            entries = [*self._segments.close(), *self._files.values()]
            self._segments = None
            manifest = build_manifest(
                entries,
                bundle_id=info.bundle_id,
                created_ns=info.created_ns,
                producer=info.producer if info.producer is not None else producer(),
                profile=info.profile,
                custody=info.custody,
                retain_until=info.retain_until,
                retention_basis=info.retention_basis,
                limits=self.options.limits,
            )
            envelope = sign_manifest(manifest.raw, signers) if signers else None
            if self.options.archive:
                self._write_archive(manifest, envelope, info.created_ns)
            else:
                write_file_synced(self.staging / layout.MANIFEST_NAME, manifest.raw)
                if envelope is not None:
                    write_file_synced(self.staging / layout.ENVELOPE_NAME, envelope.to_bytes())
            self._staging = None
            self._stack.close()  # publishes: rename (directory) or link (archive)
        return manifest

    def _write_archive(
        self, manifest: Manifest, envelope: Envelope | None, created_ns: int
    ) -> None:
        staging = self.staging
        with open(staging / STAGED_FILE, "xb", buffering=0) as handle:
            writer = ArchiveWriter(handle, created_ns // 1_000_000_000)
            writer.add_bytes(layout.MANIFEST_NAME, manifest.raw)
            if envelope is not None:
                writer.add_bytes(layout.ENVELOPE_NAME, envelope.to_bytes())
            for entry in manifest.files:  # manifest (name) order
                writer.add_file(entry.name, entry.size, staging / entry.name)
            writer.finish()
            os.fsync(handle.fileno())


def sign_manifest(raw: bytes, signers: tuple[Signer, ...] | list[Signer]) -> Envelope:
    """A DSSE envelope over ``raw`` with one signature per signer, in the order given."""
    envelope = Envelope(PAYLOAD_TYPE, raw)
    for signer in signers:
        envelope = envelope.with_signature(Signature(signer.keyid, signer.sign(envelope.pae())))
    return envelope
