"""The committed samples: reproducible, small, and consistent with each other."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)

from bundlekit.synth import read_stream

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
OTLP = SAMPLES / "otlp"
SIGNALS = ("traces", "metrics", "logs")


def test_regenerating_the_samples_gives_byte_identical_files(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(SAMPLES / "make_samples.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    for signal in SIGNALS:
        committed = OTLP / f"{signal}.binpb"
        assert (tmp_path / committed.name).read_bytes() == committed.read_bytes(), (
            f"{committed} is stale: run python samples/make_samples.py"
        )


@pytest.mark.parametrize("signal", SIGNALS)
def test_sample_streams_are_small_and_well_framed(signal: str) -> None:
    path = OTLP / f"{signal}.binpb"
    assert 10_000 < path.stat().st_size < 1_500_000
    assert len(list(read_stream(path))) > 1


# --------------------------------------------------------------------------- collector config


@pytest.fixture(scope="module")
def collector() -> dict[str, Any]:
    document = yaml.safe_load((SAMPLES / "config" / "collector.yaml").read_text())
    assert isinstance(document, dict)
    return document


def test_collector_config_receives_otlp_over_grpc_and_http(collector: dict[str, Any]) -> None:
    protocols = collector["receivers"]["otlp"]["protocols"]
    assert set(protocols) == {"grpc", "http"}
    assert protocols["grpc"]["endpoint"].endswith(":4317")
    assert protocols["http"]["endpoint"].endswith(":4318")


def test_collector_pipelines_cover_every_signal_with_defined_components(
    collector: dict[str, Any],
) -> None:
    pipelines = collector["service"]["pipelines"]
    assert set(pipelines) == set(SIGNALS)
    for signal, pipeline in pipelines.items():
        for section in ("receivers", "processors", "exporters"):
            for name in pipeline[section]:
                assert name in collector[section], f"{signal}: {name} is not defined"
        processors = pipeline["processors"]
        assert processors[0] == "memory_limiter" and processors[-1] == "batch"
        files = [e for e in pipeline["exporters"] if e.startswith("file/")]
        assert files, f"{signal} is not written to a file"
        exporter = collector["exporters"][files[0]]
        assert exporter["format"] == "proto"
        assert exporter["path"].endswith(f"{signal}.binpb")
        assert any(e.startswith("otlp") for e in pipeline["exporters"])
    redacting = ("attributes/", "redaction")
    assert any(p.startswith(redacting) for p in pipelines["traces"]["processors"])
    for extension in collector["service"]["extensions"]:
        assert extension in collector["extensions"]


def test_sample_data_went_through_the_configured_redaction() -> None:
    """What the file exporters wrote must look processed by the config's processors."""
    traces = (OTLP / "traces.binpb").read_bytes()
    assert b"user_agent.original" not in traces  # deleted by attributes/redact-pii
    assert b"203.0.113.42" not in traces  # client.address is hashed
    assert b"otelcol-gateway-0" in traces  # inserted by resource/environment


# --------------------------------------------------------------------------- dashboard


def _prometheus_names() -> set[str]:
    """Names Prometheus gives the sample metrics (OTLP to Prometheus translation)."""
    names: set[str] = set()
    for raw in read_stream(OTLP / "metrics.binpb"):
        request = ExportMetricsServiceRequest.FromString(raw)
        for rm in request.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    base = m.name.replace(".", "_")
                    base += {"s": "_seconds", "1": "_ratio"}.get(m.unit, "")
                    kind = m.WhichOneof("data")
                    if kind == "sum" and m.sum.is_monotonic:
                        names.add(base + "_total")
                    elif kind == "histogram":
                        names |= {base + "_bucket", base + "_sum", base + "_count"}
                    elif kind == "summary":
                        names |= {base, base + "_sum", base + "_count"}
                    else:  # gauges, up-down sums, native (exponential) histograms
                        names.add(base)
    return names


def test_dashboard_is_a_grafana_dashboard_over_the_sample_metrics() -> None:
    dashboard = json.loads((SAMPLES / "dashboards" / "incident-overview.json").read_text())
    assert dashboard["title"].strip() and dashboard["uid"]
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len(panels) >= 6
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    exprs = [
        t["expr"] for p in panels if p["datasource"]["type"] == "prometheus" for t in p["targets"]
    ]
    used = {m for e in exprs for m in re.findall(r"([a-z_]+)\{", e)}
    assert used and used <= _prometheus_names(), used - _prometheus_names()
    jobs = {j for e in exprs for j in re.findall(r'job="shop/([a-z]+)"', e)}
    assert jobs <= {"gateway", "auth", "checkout", "payments", "inventory"}
