"""Helpers that build and re-sign bundles for tests."""

from __future__ import annotations

from pathlib import Path

from bundlekit.format import layout
from bundlekit.format.dsse import Envelope, Signature
from bundlekit.format.manifest import PAYLOAD_TYPE
from bundlekit.keys import GeneratedKey, load_private_key
from bundlekit.otlp.signals import Signal
from bundlekit.pack import PackInput, PackOptions, PackResult, pack_bundle
from tests import otlpgen

FIXED_CREATED_NS = 1_793_491_200_000_000_000
FIXED_ID = "00000000-0000-4000-8000-000000000001"


def small_inputs(folder: Path) -> list[PackInput]:
    """Three small OTLP files, one per signal, in the length-delimited form."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        Signal.TRACES: otlpgen.stream(otlpgen.traces(50), otlpgen.traces(30, service="auth")),
        Signal.METRICS: otlpgen.stream(otlpgen.metrics(40)),
        Signal.LOGS: otlpgen.stream(otlpgen.logs(60)),
    }
    inputs = []
    for signal, data in files.items():
        path = folder / f"{signal.value}.binpb"
        path.write_bytes(data)
        inputs.append(PackInput(path))
    return inputs


def pack_small(folder: Path, out: Path, *keys: GeneratedKey, **options: object) -> PackResult:
    opts = PackOptions(created_ns=FIXED_CREATED_NS, bundle_id=FIXED_ID, **options)  # type: ignore[arg-type]
    signers = [load_private_key(k.private_path) for k in keys]
    return pack_bundle(small_inputs(folder), out, opts, signers)


def write_envelope(
    bundle: Path, payload: bytes, *keys: GeneratedKey, payload_type: str = PAYLOAD_TYPE
) -> None:
    """Replace the bundle's envelope with one over ``payload`` signed by ``keys``."""
    envelope = Envelope(payload_type, payload)
    for key in keys:
        signer = load_private_key(key.private_path)
        envelope = envelope.with_signature(Signature(signer.keyid, signer.sign(envelope.pae())))
    (bundle / layout.ENVELOPE_NAME).write_bytes(envelope.to_bytes())
