"""A summary of a bundle for people: what is in it, when, from whom, signed by whom.

Inspect reads only the manifest and envelope; it does not vouch for them.
The summary says whether signatures were checked, and against which keys.
"""

from __future__ import annotations

import os
from typing import Any

from bundlekit.errors import FormatError
from bundlekit.format.dsse import Envelope
from bundlekit.format.manifest import Manifest
from bundlekit.format.reader import open_bundle
from bundlekit.limits import DEFAULT_LIMITS, Limits
from bundlekit.verify.signatures import check_signatures
from bundlekit.verify.trust import TrustStore


def inspect_bundle(
    location: str | os.PathLike[str],
    trust: TrustStore | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> dict[str, Any]:
    """Describe the bundle as a JSON-ready dict (see docs/cli.md for the fields).

    Only the head is read (manifest and envelope), so inspecting an archive on
    a pipe stops reading after its first members.
    """
    with open_bundle(location, limits) as reader:
        head = reader.head()
        where = reader.location
    for problem in (head.manifest_problem, head.envelope_problem):
        if problem is not None:
            raise FormatError(problem, "this bundle is not one bundlekit wrote")
    raw = head.manifest
    if raw is None:
        raise FormatError(f"{where} has no manifest.json", "this is not a bundlekit bundle")
    manifest = Manifest.from_bytes(raw, limits)
    predicate = manifest.document["predicate"]
    envelope_raw = head.envelope
    signers: list[dict[str, Any]] = []
    if envelope_raw is not None:
        envelope = Envelope.from_bytes(envelope_raw, limits)
        trusted = {k.keyid for k in check_signatures(envelope, trust).accepted} if trust else set()
        signers = [
            {
                "keyid": s.keyid,
                "trusted": (s.keyid in trusted) if trust else None,
                "matchesManifest": envelope.payload == raw,
            }
            for s in envelope.signatures
        ]
    return {
        "bundle": where,
        "bundleId": manifest.bundle_id,
        "created": manifest.created,
        "profile": manifest.profile,
        "producer": predicate["producer"],
        "custody": predicate["custody"],
        "retention": predicate["retention"],
        "window": predicate.get("window"),
        "services": manifest.services,
        "signals": manifest.signal_totals(),
        "totals": {k: v for k, v in predicate["totals"].items() if k != "signals"},
        "files": [
            {
                "name": f.name,
                "role": f.role.value,
                "size": f.size,
                "records": f.records,
                "title": f.title,
            }
            for f in manifest.files
        ],
        "signers": signers,
        "signaturesChecked": trust is not None,
    }
