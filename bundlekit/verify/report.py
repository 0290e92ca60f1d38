"""What verification found: every failure, not just the first.

A report never raises; the CLI (or a caller using the raising door) decides
what a failure means.  Each finding has a category that maps to a documented
exit code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from bundlekit.errors import ExitCode
from bundlekit.format.manifest import Manifest


class Category(StrEnum):
    """Kinds of failure, in the order that decides the exit code."""

    SIGNATURE = "signature"
    INTEGRITY = "integrity"
    FORMAT = "format"

    @property
    def exit_code(self) -> ExitCode:
        return {
            Category.SIGNATURE: ExitCode.SIGNATURE,
            Category.INTEGRITY: ExitCode.INTEGRITY,
            Category.FORMAT: ExitCode.FORMAT,
        }[self]


@dataclass(frozen=True)
class Finding:
    category: Category
    code: str
    message: str
    path: str | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "category": self.category.value,
            "code": self.code,
            "message": self.message,
        }
        if self.path is not None:
            doc["path"] = self.path
        return doc

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"[{self.category.value}] {where}{self.message}"


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

    @property
    def ok(self) -> bool:
        return not self.failures

    def fail(self, category: Category, code: str, message: str, path: str | None = None) -> None:
        self.failures.append(Finding(category, code, message, path))

    @property
    def exit_code(self) -> ExitCode:
        if self.ok:
            return ExitCode.OK
        present = {f.category for f in self.failures}
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
            "notes": list(self.notes),
        }
        if self.manifest is not None:
            doc["bundleId"] = self.manifest.bundle_id
        return doc
