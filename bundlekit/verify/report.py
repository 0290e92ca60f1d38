"""What verification found: every failure, not just the first.

A report never raises; the CLI (or a caller using the raising door) decides
what a failure means.  Each finding has a code (:class:`~bundlekit.format.defects.Defect`,
documented there and in docs/cli.md) whose category maps to a documented
exit code.

Findings keep the exact strings a bundle supplied (JSON output shows them
exactly); their text form, ``str(finding)``, is neutralized for terminals.
The list is capped at ``Limits.max_findings``: past it failures are counted,
not stored, and still decide the exit code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bundlekit.errors import BundlekitError, ExitCode
from bundlekit.format.defects import Category, Defect
from bundlekit.limits import DEFAULT_LIMITS
from bundlekit.textsafe import neutralize, neutralize_lines

if TYPE_CHECKING:
    from bundlekit.format.manifest import Manifest


@dataclass(frozen=True)
class Finding:
    category: Category
    code: Defect
    message: str
    path: str | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "category": self.category.value,
            "code": self.code.value,
            "message": self.message,
        }
        if self.path is not None:
            doc["path"] = self.path
        return doc

    def __str__(self) -> str:
        """One line per line of the message, every untrusted value neutralized.

        The path is one value (an attacker's line break in it is shown escaped);
        the message keeps the line breaks bundlekit composed it with.
        """
        where = f"{neutralize(self.path)}: " if self.path else ""
        message = neutralize_lines(self.message).replace("\n", "\n    ")
        return f"[{self.category.value}] {where}{message}"


@dataclass(frozen=True)
class SignerInfo:
    keyid: str
    source: str


@dataclass
class VerificationReport:
    """Everything checked and everything that failed."""

    bundle: str
    threshold: int
    deep: bool
    failures: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    signers: list[SignerInfo] = field(default_factory=list)
    manifest: Manifest | None = None
    files_checked: int = 0
    bytes_hashed: int = 0
    records_checked: int = 0
    #: False when no trusted signature vouched for the manifest, so it was not read.
    manifest_examined: bool = False
    max_findings: int = DEFAULT_LIMITS.max_findings
    #: Failures past ``max_findings``: counted, with their categories, but not listed.
    omitted: int = 0
    omitted_categories: set[Category] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        return not self.failures and not self.omitted

    def fail(self, code: Defect, message: str, path: str | None = None) -> None:
        if len(self.failures) >= self.max_findings:
            self.omitted += 1
            self.omitted_categories.add(code.category)
            return
        self.failures.append(Finding(code.category, code, message, path))

    @property
    def all_notes(self) -> list[str]:
        """The notes, plus one saying how many failures were not listed."""
        if not self.omitted:
            return list(self.notes)
        return [
            *self.notes,
            f"{self.omitted:,} more problem(s) not shown "
            f"(a report lists at most {self.max_findings:,})",
        ]

    @property
    def exit_code(self) -> ExitCode:
        if self.ok:
            return ExitCode.OK
        present = {f.category for f in self.failures} | self.omitted_categories
        for category in Category:
            if category in present:
                return category.exit_code
        return ExitCode.INTERNAL  # unreachable: every finding has a category

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "bundle": self.bundle,
            "ok": self.ok,
            "exitCode": int(self.exit_code),
            "threshold": self.threshold,
            "deep": self.deep,
            "signers": [{"keyid": s.keyid, "source": s.source} for s in self.signers],
            "checked": {
                "files": self.files_checked,
                "bytes": self.bytes_hashed,
                "records": self.records_checked,
            },
            "failures": [f.to_json() for f in self.failures],
            "failuresNotShown": self.omitted,
            "manifestExamined": self.manifest_examined,
            "notes": self.all_notes,
        }
        if self.manifest is not None:
            doc["bundleId"] = self.manifest.bundle_id
        return doc


class VerificationFailed(BundlekitError):
    """A bundle failed verification; ``report`` says every way it did.

    One class for every failure: its exit code is the report's (signature 3,
    integrity 4, format 5), and callers that need detail read the report.
    """

    def __init__(self, report: VerificationReport, message: str, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.report = report
        self.exit_code = report.exit_code
