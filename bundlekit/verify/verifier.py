"""Offline verification of a bundle, directory or archive, in one pass.

Order matters.  The envelope and its signatures are checked first, and the
file checks use the *signed payload* as the manifest, so nothing in the
bundle is trusted before its signature is.  When the signatures fall short,
verification stops there: manifest.json is not examined and no file is
checked, so a hostile manifest costs nothing however large it is.  Then each
file is checked against the trusted manifest: present, the listed size,
the listed SHA-256 (and with ``deep``, decoded and compared with the
manifest's figures).

Two ways through the files, one set of checks:

* random access (a directory, an archive file): the container is listed
  first (a directory walk, or the archive's headers), and files are hashed on
  threads (hashlib releases the GIL) while keys load and the envelope and
  manifest are checked; untrusted, the hashing is abandoned;
* a stream (``verify -``): each member is hashed as it goes by, after trust;
  a member the manifest does not list, or of another size, stops the stream
  there rather than reading bytes nobody vouched for.

Every failure is recorded (up to ``Limits.max_findings``); the report says
what passed and what did not.
"""

from __future__ import annotations

import hashlib
import os
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from bundlekit.errors import BundlekitError, UsageError
from bundlekit.format import layout
from bundlekit.format.defects import Defect
from bundlekit.format.reader import BundleReader, ContainerError, Extent, Member, open_bundle
from bundlekit.limits import DEFAULT_LIMITS, Limits
from bundlekit.textsafe import neutralize
from bundlekit.verify.hashing import ParallelHasher, StreamHasher
from bundlekit.verify.head import check_manifest, trusted_envelope, untrusted_manifest
from bundlekit.verify.report import VerificationFailed, VerificationReport

if TYPE_CHECKING:
    from bundlekit.format.manifest import FileEntry, Manifest
    from bundlekit.verify.trust import TrustStore

_HASH_CHUNK = 1 << 20

#: Called with the bytes of payload checked so far and the total the manifest lists.
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class VerifyOptions:
    trust_dir: Path | None = None
    keys: Sequence[Path] = ()
    threshold: int = 1
    deep: bool = False
    limits: Limits = DEFAULT_LIMITS
    #: Files hashed (or, with ``deep``, segments decoded) in parallel: one per CPU, at most 8.
    workers: int = field(default_factory=lambda: min(8, os.cpu_count() or 2))
    #: Pre-loaded trust (overrides trust_dir/keys), for callers that hold keys already.
    trust: TrustStore | None = field(default=None, compare=False)
    #: Leave segments' digests to the caller, who checks each as it reads it (replay reads
    #: every byte once); everything else is checked as usual.
    defer_segments: bool = False
    progress: Progress | None = field(default=None, compare=False)
    #: False: take the manifest without checking signatures (``--no-verify``); every
    #: file is still checked against it, and the report says trust was skipped.
    require_trust: bool = True


class Sink(Protocol):
    """Receives every payload file's bytes as they are checked (unpack, archive, re-sign).

    Files arrive in stored order, each between ``begin`` and ``end``; the
    caller publishes what it wrote only if the report comes back clean.
    """

    def begin(self, entry: FileEntry) -> None: ...
    def write(self, data: bytes) -> None: ...
    def end(self) -> None: ...


def check_bundle(
    location: str | os.PathLike[str] | BundleReader,
    options: VerifyOptions,
    sink: Sink | None = None,
) -> VerificationReport:
    """Verify a bundle and return a full report; never raises for a bad bundle.

    ``location`` is a directory, a ``.bundle.tar``, ``-`` for standard input,
    or an open reader.  With a ``sink``, every file is also copied to it in
    the same pass.  Raises UsageError only for caller mistakes (no such path,
    no trusted keys, threshold below 1).
    """
    return _run(location, options, sink)[0]


def verify_bundle(
    location: str | os.PathLike[str] | BundleReader, options: VerifyOptions
) -> tuple[VerificationReport, dict[str, Extent]]:
    """Verify or raise :class:`VerificationFailed`; return the report and where each file lies."""
    report, extents = _run(location, options)
    raise_for_report(report)
    return report, extents


def _run(
    location: str | os.PathLike[str] | BundleReader,
    options: VerifyOptions,
    sink: Sink | None = None,
) -> tuple[VerificationReport, dict[str, Extent]]:
    if options.threshold < 1:
        raise UsageError("--threshold must be at least 1")
    if isinstance(location, BundleReader):
        run = _Verification(location, options, sink)
        return run.execute(), run.extents
    with open_bundle(location, options.limits) as reader:
        run = _Verification(reader, options, sink)
        return run.execute(), run.extents


UNTRUSTED_NOTE = (
    "manifest not examined: no trusted signature vouches for it, so neither it nor "
    "the files it lists were read"
)


class _Verification:
    def __init__(self, reader: BundleReader, options: VerifyOptions, sink: Sink | None) -> None:
        self.reader = reader
        self.options = options
        self.sink = sink
        #: A sink gets the bytes in stored order from this thread: no early hashing.
        self.sequential = sink is not None or not reader.random_access
        self.limits = options.limits
        self.report = VerificationReport(
            reader.location,
            options.threshold,
            options.deep,
            max_findings=options.limits.max_findings,
        )
        self.extents: dict[str, Extent] = {}
        self.hasher: ParallelHasher | None = None
        self.stream_hasher: StreamHasher | None = None
        self.done_bytes = 0
        self.total_bytes = 0

    def execute(self) -> VerificationReport:
        report = self.report
        try:
            head = self.reader.head()
            # A container that can be listed is listed before anything else, with or
            # without a sink: a file's structure is refused the same way whichever
            # command reads it (a stream can only tell as it goes).
            listed = list(self.reader.members()) if self.reader.random_access else None
        except ContainerError as exc:
            report.fail(exc.defect, exc.message, exc.path)
            return report
        if listed is not None:
            self.extents = {m.name: m.extent for m in listed if m.extent is not None}
        if listed is not None and not self.sequential:
            early = [name for name in sorted(self.extents) if self._hashed_early(name)]
            # Hashing starts now and runs on threads while keys load and the
            # envelope and manifest are checked on this one.
            self.hasher = ParallelHasher(
                early, lambda name: self.extents[name].open(), self.options.workers
            )
        try:
            if not self.options.require_trust:
                manifest = untrusted_manifest(head, self.limits, report)
                if manifest is not None:
                    report.manifest = manifest
                    self._check_payload(self._stream() if listed is None else listed, manifest)
                return report
            # Imported only now: the hashing threads above are already running while the
            # signature and manifest code (cryptography, the schema validator) loads.
            from bundlekit.verify.trust import TrustStore

            trust = self.options.trust or TrustStore.load(self.options.trust_dir, self.options.keys)
            if self.options.threshold > len(trust.keys):
                raise UsageError(
                    f"threshold {self.options.threshold} is more than the "
                    f"{len(trust.keys)} trusted key(s)",
                    "add trusted keys or lower --threshold",
                )
            envelope = trusted_envelope(head, trust, self.options.threshold, self.limits, report)
            if envelope is None:
                report.notes.append(UNTRUSTED_NOTE)
                if self.options.deep:
                    report.notes.append(
                        "deep checks skipped: the manifest is not signed by enough trusted keys"
                    )
                return report
            report.manifest_examined = True
            manifest = check_manifest(head, envelope, self.limits, report)
            if manifest is not None:
                report.manifest = manifest
                self._check_payload(listed if listed is not None else self._stream(), manifest)
        finally:
            if self.hasher is not None:
                self.hasher.stop()
            if self.stream_hasher is not None:
                self.stream_hasher.stop()
        return report

    def _hashed_early(self, name: str) -> bool:
        """False for segments that deep workers hash or the caller checks as it reads."""
        role = layout.role_for_path(name)
        segment = role is not None and role.signal is not None
        return not (segment and (self.options.deep or self.options.defer_segments))

    def _stream(self) -> Iterable[Member]:
        return self.reader.members()

    # -- files -------------------------------------------------------------------------

    def _check_payload(self, members: Iterable[Member], manifest: Manifest) -> None:
        report = self.report
        options = self.options
        expected = {f.name: f for f in manifest.files}
        self.total_bytes = sum(f.size for f in manifest.files)
        seen: set[str] = set()
        hashed: list[FileEntry] = []
        #: Streamed members handed to hashing threads, oldest first, digests not yet recorded.
        streamed: deque[FileEntry] = deque()
        deep = None
        if options.deep:
            # Only --deep pays for this import (multiprocessing, the projection views).
            from bundlekit.verify.deep import DeepPool

            deep = DeepPool(self.limits, options.workers)
        stopped_at: str | None = None
        current = "?"
        try:
            for member in members:
                current = member.name
                if member.defect is not None:
                    report.fail(
                        member.defect, member.detail or member.defect.description, member.name
                    )
                    continue
                entry = expected.get(member.name)
                if entry is None:
                    report.fail(Defect.EXTRA, "file is not listed in the manifest", member.name)
                    if member.extent is None:
                        stopped_at = member.name
                        break
                    continue
                seen.add(entry.name)
                if member.size != entry.size:
                    report.fail(
                        Defect.SIZE,
                        f"file is {member.size} bytes, manifest says {entry.size}",
                        entry.name,
                    )
                    if member.extent is None:
                        stopped_at = member.name
                        break
                    continue
                report.files_checked += 1
                if entry.signal is not None and options.defer_segments:
                    continue
                if self.sink is not None:
                    self._record_digest(entry, self._hash_stream(member, entry))
                elif deep is not None and entry.signal is not None:
                    source = member.extent or self._read_all(member, entry)
                    if source is not None:
                        deep.submit(entry, source)
                    if member.extent is None:
                        self._advance(entry.size)  # a stream: reading is the progress
                elif member.extent is not None:
                    hashed.append(entry)
                else:
                    if self._hash_on_threads(member, entry):
                        streamed.append(entry)
                    while streamed and self._stream_hashed(streamed[0]):
                        self._record_digest(streamed[0], self._stream_result(streamed.popleft()))
        except ContainerError as exc:
            report.fail(exc.defect, exc.message, exc.path)
            stopped_at = exc.path or "?"
        except OSError as exc:
            # A stream that fails (a dying medium, a broken pipe) cannot go on: the
            # file it was in is unreadable, as it would be in a directory, and the
            # rest is unchecked.  (Hashing already reported it if it failed there.)
            if not any(f.code is Defect.UNREADABLE and f.path == current for f in report.failures):
                report.fail(Defect.UNREADABLE, f"cannot read file: {exc.strerror or exc}", current)
            stopped_at = current
        finally:
            for entry in hashed:
                assert self.hasher is not None
                self._record_digest(entry, self.hasher.result(entry.name))
            for entry in streamed:
                self._record_digest(entry, self._stream_result(entry))
            if deep is not None:
                for entry, outcome in deep.results():
                    self._record_deep(entry, outcome)
                deep.close()
        if stopped_at is None:
            for entry in manifest.files:
                if entry.name not in seen:
                    report.fail(
                        Defect.MISSING, "file listed in the manifest is missing", entry.name
                    )
        else:
            unchecked = len(expected) - report.files_checked
            report.notes.append(
                f"verification stopped at {neutralize(stopped_at)}: the rest of the bundle was "
                f"not read ({unchecked} listed file(s) unchecked)"
            )
        if options.defer_segments:
            report.notes.append("segment digests are checked as each segment is read")

    def _advance(self, size: int) -> None:
        self.done_bytes += size
        if self.options.progress is not None:
            self.options.progress(self.done_bytes, self.total_bytes)

    def _hash_on_threads(self, member: Member, entry: FileEntry) -> bool:
        """Read a streamed member here and hash it on a thread, so reading the next
        member overlaps hashing this one; False if reading failed (already recorded).

        A cut-short stream raises ContainerError as when hashing inline; the
        member's partial digest is then never recorded.
        """
        if self.stream_hasher is None:
            self.stream_hasher = StreamHasher(self.options.workers)
        hasher = self.stream_hasher
        stream = self.reader.open(member)
        hasher.begin(entry.name)
        try:
            while chunk := stream.read(_HASH_CHUNK):
                hasher.feed(chunk)
        except OSError as exc:
            self._record_digest(entry, exc)
            return False
        finally:
            hasher.end()
        return True

    def _stream_hashed(self, entry: FileEntry) -> bool:
        assert self.stream_hasher is not None
        return self.stream_hasher.ready(entry.name)

    def _stream_result(self, entry: FileEntry) -> str:
        assert self.stream_hasher is not None
        return self.stream_hasher.result(entry.name)

    def _hash_stream(self, member: Member, entry: FileEntry) -> str | Exception:
        """Hash a member on this thread (and pass its bytes to the sink, if any)."""
        digest = hashlib.sha256()
        sink = self.sink
        stream = self.reader.open(member)
        try:
            if sink is not None:
                sink.begin(entry)
            while chunk := stream.read(_HASH_CHUNK):
                digest.update(chunk)
                if sink is not None:
                    sink.write(chunk)
            if sink is not None:
                sink.end()
        except OSError as exc:
            return exc
        finally:
            close = getattr(stream, "close", None)
            if close is not None and member.extent is not None:
                close()
        return digest.hexdigest()

    def _read_all(self, member: Member, entry: FileEntry) -> bytes | None:
        """A streamed segment's bytes, for a deep worker (at most its trusted, capped size)."""
        data = self.reader.open(member).read(entry.size)
        if len(data) != entry.size:
            self.report.fail(Defect.UNREADABLE, "cannot read file: cut short", entry.name)
            return None
        return data

    def _record_digest(self, entry: FileEntry, digest: str | Exception) -> None:
        self._advance(entry.size)
        if isinstance(digest, Exception):
            why = digest.message if isinstance(digest, BundlekitError) else str(digest)
            self.report.fail(Defect.UNREADABLE, f"cannot read file: {why}", entry.name)
            return
        self.report.bytes_hashed += entry.size
        if digest != entry.sha256:
            self.report.fail(Defect.DIGEST, "SHA-256 differs from the manifest", entry.name)

    def _record_deep(self, entry: FileEntry, outcome: object) -> None:
        from bundlekit.verify.deep import DeepOutcome

        assert isinstance(outcome, DeepOutcome)
        if not self.sequential:
            self._advance(entry.size)
        report = self.report
        if outcome.error is not None:
            defect = Defect.UNREADABLE if outcome.unreadable else Defect.UNDECODABLE
            prefix = "cannot read file" if outcome.unreadable else "cannot decode segment"
            report.fail(defect, f"{prefix}: {outcome.error}", entry.name)
            return
        report.bytes_hashed += entry.size
        if outcome.digest != entry.sha256:
            report.fail(Defect.DIGEST, "SHA-256 differs from the manifest", entry.name)
            return
        report.records_checked += outcome.records
        for problem in outcome.problems:
            report.fail(Defect.DEEP, problem, entry.name)


def raise_for_report(report: VerificationReport) -> None:
    """The raising door: turn a failed report into :class:`VerificationFailed`.

    The message is text for people, so every value from the bundle in it is
    neutralized (``str(finding)``); the exact values stay on ``error.report``.
    """
    if report.ok:
        return
    shown = [str(f) for f in report.failures]
    shown += [f"note: {neutralize(note)}" for note in report.all_notes]
    lines = "\n  ".join(shown)
    raise VerificationFailed(
        report,
        f"bundle {neutralize(report.bundle)} failed verification:\n  {lines}",
        "do not trust or replay this bundle; obtain a fresh copy from its producer",
    )
