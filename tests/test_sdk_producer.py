"""End to end with real components at both ends.

The OpenTelemetry Python SDK's own OTLP/gRPC exporters produce traces, metrics
and logs into an OTLP receiver; what it got is written in the Collector file
exporter's length-delimited form, packed, signed, deep-verified, and replayed
through a real collector (rotel) into another receiver.  What finally arrives
must equal, record for record, what the SDK exported.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from bundlekit.format.manifest import Custody
from bundlekit.keys import GeneratedKey, KeyType, load_private_key
from bundlekit.otlp.signals import Signal
from bundlekit.pack import PackInput, PackOptions, pack_bundle
from bundlekit.replay import replay_bundle
from bundlekit.replay.interface import Protocol
from bundlekit.verify import VerifyOptions, check_bundle
from tests.oracle import oracle_stats
from tests.otlpgen import stream
from tests.replay.conftest import options_for
from tests.replay.otlpdata import Bundle, flatten
from tests.replay.receivers import grpc_receiver
from tests.replay.rotel import Rotel, needs_rotel

SPANS = 40
LOG_LINES = 25


def _produce_with_sdk(endpoint: str) -> None:
    """Emit telemetry through the real SDK and its OTLP/gRPC exporters, then flush."""
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": "sdk-checkout", "deployment.environment": "test"})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint, insecure=True))
    )
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint, insecure=True), export_interval_millis=3_600_000
    )
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(
        BatchLogRecordProcessor(OTLPLogExporter(endpoint, insecure=True))
    )

    tracer = tracer_provider.get_tracer("tests.sdk")
    meter = meter_provider.get_meter("tests.sdk")
    orders = meter.create_counter("orders", unit="1")
    latency = meter.create_histogram("checkout.duration", unit="ms")
    logger = logging.getLogger("tests.sdk.producer")
    handler = LoggingHandler(level=logging.INFO, logger_provider=logger_provider)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        for i in range(SPANS // 2):
            with tracer.start_as_current_span("POST /checkout", attributes={"order": i}) as parent:
                with tracer.start_as_current_span("charge card"):
                    orders.add(1, {"region": "eu" if i % 2 else "us"})
                    latency.record(10.0 + i, {"region": "eu"})
                parent.add_event("paid", {"amount": i})
        for i in range(LOG_LINES):
            logger.warning("payment retry %d", i)
    finally:
        logger.removeHandler(handler)
        for provider in (tracer_provider, meter_provider, logger_provider):
            provider.force_flush()
            provider.shutdown()


pytestmark = [
    pytest.mark.collector,
    # The SDK's LoggingHandler is the simplest real log producer; its deprecation is not ours.
    pytest.mark.filterwarnings("ignore:.*LoggingHandler.*:DeprecationWarning"),
    needs_rotel,
]


def test_sdk_output_survives_pack_verify_and_replay(
    tmp_path: Path, keys: dict[KeyType, GeneratedKey]
) -> None:
    # 1. A real producer: the SDK exporting over OTLP/gRPC.
    with grpc_receiver() as (port, produced):
        _produce_with_sdk(f"127.0.0.1:{port}")
        produced.wait_for(Signal.TRACES, SPANS)
        produced.wait_for(Signal.LOGS, LOG_LINES)
        produced.wait_for(Signal.METRICS, 1)
    exported = {s: list(produced.accepted[s]) for s in Signal}
    assert oracle_stats(Signal.TRACES, exported[Signal.TRACES]).records == SPANS
    assert oracle_stats(Signal.LOGS, exported[Signal.LOGS]).records == LOG_LINES

    # 2. Files as the Collector's file exporter (format: proto) would write them; pack them.
    inputs = []
    for signal in Signal:
        path = tmp_path / f"{signal.value}.binpb"
        path.write_bytes(stream(*exported[signal]))
        inputs.append(PackInput(path))  # signal detected from the content
    key = keys[KeyType.ED25519]
    result = pack_bundle(
        inputs,
        tmp_path / "bundle",
        PackOptions(custody=Custody("sdk-test")),
        [load_private_key(key.private_path)],
    )
    totals = result.manifest.signal_totals()
    for signal in Signal:
        expected = oracle_stats(signal, exported[signal])
        assert totals[signal.value]["records"] == expected.records
    assert result.manifest.services == ["sdk-checkout"]

    # 3. Deep verification decodes every record and agrees with the manifest.
    report = check_bundle(tmp_path / "bundle", VerifyOptions(keys=[key.public_path], deep=True))
    assert report.ok, report.failures
    assert report.records_checked == sum(t["records"] for t in totals.values())

    # 4. Replay through a real collector; what arrives equals what the SDK exported.
    bundle = Bundle(tmp_path / "bundle", result.manifest.bundle_id, exported, key)
    with grpc_receiver() as (forward_port, arrived):
        (tmp_path / "rotel").mkdir()
        rotel = Rotel(tmp_path / "rotel", forward_port=forward_port)
        rotel.start()
        try:
            replayed = replay_bundle(
                bundle.path, options_for(bundle, rotel.grpc_port, Protocol.GRPC)
            )
            assert replayed.completed
            for signal in Signal:
                want = flatten(signal, exported[signal])
                arrived.wait_for(signal, sum(want.values()))
            time.sleep(0.2)
            for signal in Signal:
                assert flatten(signal, arrived.accepted[signal]) == flatten(
                    signal, exported[signal]
                )
        finally:
            rotel.stop()
