"""Test data for replay: bundles built with the real packer, and canonical comparison.

A collector such as rotel re-batches what it receives, so comparing bytes or
counts says little.  :func:`flatten` turns requests into a multiset of
``(resource, scope, record)`` tuples in canonical serialized form — the
marker attributes removed — which is what "the same data arrived" means.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bundlekit.keys import GeneratedKey, load_private_key
from bundlekit.otlp.signals import Signal
from bundlekit.pack import PackInput, PackOptions, pack_bundle
from bundlekit.replay.marker import MARKER_KEYS
from bundlekit.synth import companion_counts, read_stream, write_stream

Flat = tuple[bytes, bytes, bytes]


@dataclass(frozen=True)
class Bundle:
    path: Path
    bundle_id: str
    requests: dict[Signal, list[bytes]]
    key: GeneratedKey

    def records(self, signal: Signal) -> int:
        return sum(count(signal, r) for r in self.requests[signal])


def make_bundle(
    folder: Path,
    key: GeneratedKey,
    spans: int = 2000,
    per_request: int = 128,
    profile: str = "default",
    seed: int = 1,
    signals: Iterable[Signal] = (Signal.TRACES, Signal.METRICS, Signal.LOGS),
) -> Bundle:
    """A signed bundle of synthetic, mutually consistent traces, metrics and logs."""
    folder.mkdir(parents=True, exist_ok=True)
    counts = companion_counts(spans, seed)
    inputs, requests = [], {}
    for signal in signals:
        path = folder / f"{signal.value}.otlp"
        write_stream(
            path,
            signal.value,
            records=counts[signal.value],
            seed=seed,
            per_request=per_request,
            trace_records=spans,
        )
        inputs.append(PackInput(path, signal))
        requests[signal] = list(read_stream(path))
    for signal in Signal:
        requests.setdefault(signal, [])
    result = pack_bundle(
        inputs,
        folder / "bundle",
        PackOptions(profile=profile),
        [load_private_key(key.private_path)],
    )
    return Bundle(result.path, result.manifest.bundle_id, requests, key)


def decode(signal: Signal, body: bytes) -> Any:
    return signal.spec.request_class.FromString(body)


def count(signal: Signal, body: bytes) -> int:
    request = decode(signal, body)
    spec = signal.spec
    total = 0
    for entry in getattr(request, spec.resource_field):
        for scope in getattr(entry, spec.scope_field):
            for record in getattr(scope, spec.record_field):
                if signal is Signal.METRICS:
                    kind = record.WhichOneof("data")
                    total += len(getattr(record, kind).data_points) if kind else 0
                else:
                    total += 1
    return total


def resource_key(entry: Any, strip_marker: bool = True) -> bytes:
    resource = type(entry.resource)()
    resource.CopyFrom(entry.resource)
    if strip_marker:
        kept = [kv for kv in resource.attributes if kv.key not in MARKER_KEYS]
        del resource.attributes[:]
        resource.attributes.extend(kept)
    return resource.SerializeToString(deterministic=True) + entry.schema_url.encode()


def flatten(signal: Signal, bodies: Iterable[bytes], strip_marker: bool = True) -> Counter[Flat]:
    """Multiset of (resource, scope, record) in canonical bytes; metrics per data point."""
    out: Counter[Flat] = Counter()
    spec = signal.spec
    for body in bodies:
        request = decode(signal, body)
        for entry in getattr(request, spec.resource_field):
            res = resource_key(entry, strip_marker)
            for scope in getattr(entry, spec.scope_field):
                sc = scope.scope.SerializeToString(deterministic=True) + scope.schema_url.encode()
                for record in getattr(scope, spec.record_field):
                    if signal is Signal.METRICS:
                        kind = record.WhichOneof("data")
                        points = getattr(record, kind).data_points
                        shell = type(record)()
                        shell.CopyFrom(record)
                        del getattr(shell, kind).data_points[:]
                        head = shell.SerializeToString(deterministic=True)
                        for point in points:
                            out[
                                (res, sc, head + b"|" + point.SerializeToString(deterministic=True))
                            ] += 1
                    else:
                        out[(res, sc, record.SerializeToString(deterministic=True))] += 1
    return out


def markers(signal: Signal, bodies: Iterable[bytes]) -> set[tuple[str, str]]:
    """Every distinct (bundle id, replay id) pair found on resources; ("","") if unmarked."""
    found = set()
    spec = signal.spec
    for body in bodies:
        for entry in getattr(decode(signal, body), spec.resource_field):
            attrs = {kv.key: kv.value.string_value for kv in entry.resource.attributes}
            found.add((attrs.get("bundlekit.bundle.id", ""), attrs.get("bundlekit.replay.id", "")))
    return found


def shift(signal: Signal, bodies: Iterable[bytes], delta: int) -> list[bytes]:
    """Reference rebase, written independently of bundlekit.replay.rebase."""
    out = []
    for body in bodies:
        request = decode(signal, body)
        for message in _walk(request):
            for name in (
                "start_time_unix_nano",
                "end_time_unix_nano",
                "time_unix_nano",
                "observed_time_unix_nano",
            ):
                if name in message.DESCRIPTOR.fields_by_name and getattr(message, name):
                    setattr(message, name, getattr(message, name) + delta)
        out.append(request.SerializeToString())
    return out


def _walk(message: Any) -> Iterable[Any]:
    yield message
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if field.is_repeated:
            for item in value:
                yield from _walk(item)
        else:
            yield from _walk(value)
