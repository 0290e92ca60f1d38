"""Between the two containers: ``archive`` (directory → .bundle.tar) and ``unpack`` (back).

Both are one pass of the verifier with a sink: the head is checked first
(signatures against trusted keys, unless ``require_trust`` is off), then each
file is hashed as it is copied, and the result is published at its final path
only if every check passed.  Extraction never trusts a name it is given: the
only names written are those of the trusted manifest, each already checked
as a safe relative path, under a fresh staging directory; links, devices and
anything the manifest does not list stop the pass before a byte is written.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

from bundlekit.errors import FormatError, UsageError, translate_os_errors
from bundlekit.format import layout
from bundlekit.format.archive import BLOCK, ArchiveWriter, member_header
from bundlekit.format.dsse import Envelope
from bundlekit.format.manifest import FileEntry, Manifest
from bundlekit.format.reader import BundleReader, Head, open_bundle
from bundlekit.fsutil import (
    STAGED_FILE,
    atomic_write,
    clean_stale_staging,
    fsync_dir,
    staged_directory,
    temp_sibling,
)
from bundlekit.limits import Limits
from bundlekit.verify.report import VerificationReport
from bundlekit.verify.verifier import VerifyOptions, check_bundle, raise_for_report


class _DirectorySink:
    """Writes each checked file under a staging directory, by its manifest name."""

    def __init__(self, root: Path, limits: Limits) -> None:
        self._root = root
        self._limits = limits
        self._handle: BinaryIO | None = None

    def begin(self, entry: FileEntry) -> None:
        target = self._root / layout.check_relative_path(entry.name, self._limits)
        with translate_os_errors("write bundle", target):
            target.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            self._handle = os.fdopen(fd, "wb")

    def write(self, data: bytes) -> None:
        assert self._handle is not None
        with translate_os_errors("write bundle", self._root):
            self._handle.write(data)

    def end(self) -> None:
        assert self._handle is not None
        with translate_os_errors("write bundle", self._root):
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
        self._handle = None


class _ArchiveSink:
    """Appends each checked file to an archive as a member of the manifest's size."""

    def __init__(self, writer: ArchiveWriter, mtime: int) -> None:
        self._writer = writer
        self._mtime = mtime
        self._size = 0

    def begin(self, entry: FileEntry) -> None:
        self._size = entry.size
        self._raw(member_header(entry.name, entry.size, self._mtime))

    def write(self, data: bytes) -> None:
        self._raw(data)

    def end(self) -> None:
        self._raw(bytes(-self._size % BLOCK))

    def _raw(self, data: bytes) -> None:
        with translate_os_errors("write bundle", None):
            self._writer.write_raw(data)


def archive_bundle(
    source: str | os.PathLike[str], out: Path, options: VerifyOptions
) -> VerificationReport:
    """Write the bundle at ``source`` (any container) as a ``.bundle.tar`` at ``out``."""
    return _convert(source, out, options, to_archive=True)


def unpack_bundle(
    source: str | os.PathLike[str], out: Path, options: VerifyOptions
) -> VerificationReport:
    """Extract the bundle at ``source`` (an archive, or ``-``) into a new directory ``out``."""
    return _convert(source, out, options, to_archive=False)


def _convert(
    source: str | os.PathLike[str], out: Path, options: VerifyOptions, *, to_archive: bool
) -> VerificationReport:
    if os.path.lexists(out):
        raise UsageError(f"{out} already exists", "choose another --out path or remove it first")
    with open_bundle(source, options.limits) as reader:
        head = reader.head()
        with translate_os_errors("write bundle", out):
            clean_stale_staging(out.parent)
        with staged_directory(out, file=to_archive) as staging:
            if to_archive:
                report = _to_archive(reader, head, staging / STAGED_FILE, options)
            else:
                report = _to_directory(reader, head, staging, options)
            raise_for_report(report)  # raising discards the staging: nothing at ``out``
    return report


def _to_directory(
    reader: BundleReader, head: Head, staging: Path, options: VerifyOptions
) -> VerificationReport:
    report = check_bundle(reader, options, _DirectorySink(staging, options.limits))
    if report.ok and report.manifest is not None:
        with translate_os_errors("write bundle", staging):
            _write_small(staging / layout.MANIFEST_NAME, report.manifest.raw)
            if head.envelope is not None:
                _write_small(staging / layout.ENVELOPE_NAME, head.envelope)
    return report


def _to_archive(
    reader: BundleReader,
    head: Head,
    target: Path,
    options: VerifyOptions,
    envelope: bytes | None = None,
) -> VerificationReport:
    """manifest and envelope first (as the format requires), then each file as it is checked.

    The manifest written is the one the report is about; if verification fails
    the whole staging is discarded, so a mismatched manifest.json never lands.
    """
    envelope = envelope if envelope is not None else head.envelope
    raw = head.manifest
    if envelope is not None:
        raw = Envelope.from_bytes(envelope, options.limits).payload
    if raw is None:
        raise FormatError(
            f"{reader.location} has no manifest.json", "this is not a bundlekit bundle"
        )
    mtime = Manifest.from_bytes(raw, options.limits).created_ns // 1_000_000_000
    with translate_os_errors("write bundle", target), open(target, "xb", buffering=0) as handle:
        writer = ArchiveWriter(handle, mtime)
        writer.add_bytes(layout.MANIFEST_NAME, raw)
        if envelope is not None:
            writer.add_bytes(layout.ENVELOPE_NAME, envelope)
        report = check_bundle(reader, options, _ArchiveSink(writer, mtime))
        writer.finish()
        os.fsync(handle.fileno())
    return report


def _write_small(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def replace_envelope(location: Path, envelope: bytes, options: VerifyOptions) -> None:
    """Give the bundle at ``location`` a new envelope (co-signing), atomically.

    A directory gets a new envelope file (written aside, fsynced, renamed);
    nothing else in it is touched.  An archive is rewritten: every file is
    copied through the verifier (signatures are the caller's business, so
    ``options.require_trust`` is normally off), so a damaged archive is
    refused rather than endorsed, and the original stays until the new one is
    complete and fsynced.
    """
    with open_bundle(location, options.limits) as reader:
        if reader.kind == "directory":
            _replace_in_directory(location, envelope)
            return
        head = reader.head()
        target = temp_sibling(location, "tmp")
        try:
            report = _to_archive(reader, head, target, options, envelope)
            raise_for_report(report)
            with translate_os_errors("write bundle", location):
                os.replace(target, location)
                fsync_dir(location.parent)
        finally:
            target.unlink(missing_ok=True)


def _replace_in_directory(root: Path, envelope: bytes) -> None:
    signatures = root / layout.SIGNATURES_DIR
    if signatures.is_symlink() or (signatures.exists() and not signatures.is_dir()):
        raise FormatError(
            f"{signatures} is a link or not a directory",
            "refusing to write a signature outside the bundle; it may have been tampered with",
        )
    with translate_os_errors("write signature envelope", root / layout.ENVELOPE_NAME):
        signatures.mkdir(exist_ok=True)
        atomic_write(root / layout.ENVELOPE_NAME, envelope)
