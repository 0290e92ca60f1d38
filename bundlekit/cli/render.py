"""Human (rich) and machine (JSON) output for CLI commands.

Text output neutralizes every value that came from a bundle, a key file or a
path (``_v``) one value at a time, so the line breaks bundlekit writes survive
while a line break, escape sequence or bidi override inside a value is shown
as an inert escape and cannot forge a line or rewrite the terminal.  Rich is
used without markup or emoji codes, so ``[bold]`` or ``:warning:`` in a value
is shown as typed rather than interpreted (or crashing on a stray ``[/]``).
JSON output is exact: JSON escapes control characters itself.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bundlekit.textsafe import neutralize

if TYPE_CHECKING:
    from rich.console import Console

    from bundlekit.format.dsse import Envelope
    from bundlekit.keys import GeneratedKey
    from bundlekit.pack import PackResult
    from bundlekit.verify.report import VerificationReport


def _console(stderr: bool = False) -> Console:
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # Off a terminal (a file, a pipe, a report), never cut columns to 80 characters.
    width = None if stream.isatty() else 200
    return Console(
        stderr=stderr, highlight=False, markup=False, emoji=False, soft_wrap=True, width=width
    )


def _v(value: object) -> str:
    """One untrusted value, made safe to print (see the module docstring)."""
    return neutralize(str(value))


def _keyid(keyid: str) -> str:
    """A key id shortened for people: the first 16 characters, neutralized."""
    return _v(keyid[:16]) + "…"


def say(text: str, stderr: bool = False) -> None:
    """One line of plain text; rich is imported only for tables and progress bars."""
    (sys.stderr if stderr else sys.stdout).write(text + "\n")


def emit_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=True) + "\n")


@contextmanager
def progress(label: str, enabled: bool = True) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on a terminal (stderr); a no-op elsewhere."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    with Progress(
        f"[bold]{label}",
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=_console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield advance


def keygen(generated: GeneratedKey, as_json: bool) -> None:
    doc = {
        "private": str(generated.private_path),
        "public": str(generated.public_path),
        "keyid": generated.keyid,
        "type": generated.key_type.value,
        "encrypted": generated.encrypted,
    }
    if as_json:
        emit_json(doc)
        return
    state = "encrypted" if generated.encrypted else "UNENCRYPTED"
    say(f"wrote {_v(generated.private_path)} ({state})")
    say(f"wrote {_v(generated.public_path)}")
    say(f"key id {_v(generated.keyid)}")


def packed(result: PackResult, as_json: bool) -> None:
    manifest = result.manifest
    if as_json:
        emit_json(
            {
                "bundle": str(result.path),
                "bundleId": manifest.bundle_id,
                "signedBy": list(result.signed_by),
                "totals": manifest.document["predicate"]["totals"],
                "window": manifest.document["predicate"].get("window"),
            }
        )
        return
    say(f"packed {_v(result.path)} (bundle {_v(manifest.bundle_id)})")
    for signal, totals in manifest.signal_totals().items():
        say(f"  {_v(signal):8} {totals['records']:>12,} records in {totals['files']} segment(s)")
    if result.signed_by:
        for keyid in result.signed_by:
            say(f"  signed by {_v(keyid)}")
    else:
        say("  unsigned: run `bundlekit sign` before handing it over")


def signed(bundle: Path, envelope: Envelope, as_json: bool) -> None:
    keyids = [s.keyid for s in envelope.signatures]
    if as_json:
        emit_json({"bundle": str(bundle), "signatures": keyids})
        return
    say(f"{_v(bundle)}: {len(keyids)} signature(s): " + ", ".join(_keyid(k) for k in keyids))


def verification(report: VerificationReport, as_json: bool) -> None:
    if as_json:
        emit_json(report.to_json())
        return
    lines: list[str] = []
    if report.ok:
        who = ", ".join(f"{_keyid(s.keyid)} ({_v(s.source)})" for s in report.signers)
        lines += [
            f"OK {_v(report.bundle)}",
            f"  signatures: {len(report.signers)} trusted (threshold {report.threshold}): {who}",
            f"  files: {report.files_checked} checked, {report.bytes_hashed:,} bytes hashed",
        ]
        if report.deep:
            lines.append(
                f"  deep: {report.records_checked:,} records decoded and matched the manifest"
            )
    else:
        problems = len(report.failures) + report.omitted
        lines.append(f"FAILED {_v(report.bundle)} ({problems:,} problem(s))")
        # str(finding) neutralizes its path and message (bundlekit/verify/report.py).
        lines += [f"  {finding}" for finding in report.failures]
    lines += [f"  note: {_v(note)}" for note in report.all_notes]
    say("\n".join(lines), stderr=not report.ok)


def converted(report: VerificationReport, out: Path, verb: str, as_json: bool) -> None:
    if as_json:
        emit_json({**report.to_json(), "out": str(out)})
        return
    assert report.manifest is not None
    trusted = (
        "signatures not checked"
        if not report.signers
        else (f"signed by {len(report.signers)} trusted key(s)")
    )
    say(
        f"{verb} {_v(report.bundle)} -> {_v(str(out))}: {report.files_checked} files checked, "
        f"{trusted}"
    )


def inspection(doc: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(doc)
        return
    from rich.table import Table

    con = _console()
    con.print(f"bundle {_v(doc['bundle'])}  id {_v(doc['bundleId'])}")
    con.print(
        f"  created {_v(doc['created'])}  profile {_v(doc['profile'])}  retain until "
        f"{_v(doc['retention']['retainUntil'])}"
    )
    if doc["producer"]:
        con.print("  producer " + ", ".join(f"{_v(k)}={_v(v)}" for k, v in doc["producer"].items()))
    if doc["custody"]:
        con.print("  custody " + ", ".join(f"{_v(k)}={_v(v)}" for k, v in doc["custody"].items()))
    if doc["window"]:
        con.print(f"  window {_v(doc['window']['earliest'])} .. {_v(doc['window']['latest'])}")
    con.print(f"  services {', '.join(_v(s) for s in doc['services']) or '(none)'}")
    table = Table("signal", "files", "requests", "records", "earliest", "latest")
    for signal, totals in doc["signals"].items():
        window = totals.get("window") or {}
        table.add_row(
            _v(signal),
            _v(totals["files"]),
            f"{totals['requests']:,}",
            f"{totals['records']:,}",
            _v(window.get("earliest", "-")),
            _v(window.get("latest", "-")),
        )
    con.print(table)
    for item in doc["files"]:
        if item["role"] not in ("traces", "metrics", "logs"):
            title = f"  ({_v(item['title'])})" if item.get("title") else ""
            con.print(f"  {_v(item['role']):16} {_v(item['name'])}{title}")
    if not doc["signers"]:
        con.print("  signers: none (unsigned)")
    for signer in doc["signers"]:
        state = {True: "trusted", False: "NOT trusted", None: "not checked"}[signer["trusted"]]
        con.print(f"  signer {_keyid(signer['keyid'])}  {state}")
