"""TLS and mutual TLS against receivers holding a certificate from a test CA."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from bundlekit.otlp.signals import Signal
from bundlekit.replay import Filters, ReplayFailed, TransportOptions, replay_bundle
from bundlekit.replay.interface import Protocol
from tests.replay.conftest import options_for
from tests.replay.otlpdata import Bundle, flatten
from tests.replay.receivers import Recorder, TraceServicer, http_receiver

TRACES = Filters(signals=frozenset({Signal.TRACES}))


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _issue(
    subject: str,
    issuer: x509.Name | None,
    issuer_key: ec.EllipticCurvePrivateKey | None,
    ca: bool,
    out: Path,
    names: list[x509.GeneralName] | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                names
                or [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
    cert = builder.sign(issuer_key or key, hashes.SHA256())
    (out.with_suffix(".crt")).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    out.with_suffix(".key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca_cert, ca_key = _issue("test CA", None, None, True, d / "ca")
    _issue("127.0.0.1", ca_cert.subject, ca_key, False, d / "server")
    _issue("replay client", ca_cert.subject, ca_key, False, d / "client")
    return Pki(d / "ca.crt", d / "server.crt", d / "server.key", d / "client.crt", d / "client.key")


@pytest.fixture(scope="module")
def localhost_only_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A server certificate for the name ``localhost`` only (no IP address in it)."""
    d = tmp_path_factory.mktemp("pki-localhost")
    ca_cert, ca_key = _issue("test CA", None, None, True, d / "ca")
    _issue("localhost", ca_cert.subject, ca_key, False, d / "server", [x509.DNSName("localhost")])
    return Pki(d / "ca.crt", d / "server.crt", d / "server.key", d / "none.crt", d / "none.key")


@contextmanager
def tls_grpc_receiver(pki: Pki, mutual: bool) -> Iterator[tuple[int, Recorder]]:
    recorder = Recorder()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(
        TraceServicer(recorder, Signal.TRACES), server
    )
    credentials = grpc.ssl_server_credentials(
        [(pki.server_key.read_bytes(), pki.server_cert.read_bytes())],
        root_certificates=pki.ca.read_bytes() if mutual else None,
        require_client_auth=mutual,
    )
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    try:
        yield port, recorder
    finally:
        server.stop(grace=None).wait(5)


@contextmanager
def tls_http_receiver(pki: Pki, mutual: bool) -> Iterator[tuple[int, Recorder]]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    if mutual:
        context.load_verify_locations(pki.ca)
        context.verify_mode = ssl.CERT_REQUIRED
    with http_receiver(context) as (port, recorder):
        yield port, recorder


def _receiver(protocol: Protocol, pki: Pki, mutual: bool):  # type: ignore[no-untyped-def]
    return (
        tls_grpc_receiver(pki, mutual)
        if protocol is Protocol.GRPC
        else tls_http_receiver(pki, mutual)
    )


@pytest.mark.parametrize("protocol", [Protocol.GRPC, Protocol.HTTP])
@pytest.mark.parametrize("mutual", [False, True], ids=["tls", "mtls"])
def test_tls_with_ca_file_and_client_certificate(
    bundle: Bundle, pki: Pki, protocol: Protocol, mutual: bool
) -> None:
    with _receiver(protocol, pki, mutual) as (port, receiver):
        transport = TransportOptions(
            endpoint=f"https://127.0.0.1:{port}",
            protocol=protocol,
            ca_file=pki.ca,
            cert_file=pki.client_cert if mutual else None,
            key_file=pki.client_key if mutual else None,
            timeout=5.0,
        )
        report = replay_bundle(
            bundle.path, options_for(bundle, port, transport=transport, filters=TRACES)
        )
        assert report.completed and report.endpoint.endswith("(tls)")
        assert flatten(Signal.TRACES, receiver.accepted[Signal.TRACES]) == flatten(
            Signal.TRACES, bundle.requests[Signal.TRACES]
        )


@pytest.mark.parametrize("protocol", [Protocol.GRPC, Protocol.HTTP])
def test_untrusted_server_certificate_fails_fast_instead_of_retrying(
    bundle: Bundle, pki: Pki, protocol: Protocol
) -> None:
    with _receiver(protocol, pki, False) as (port, receiver):
        transport = TransportOptions(endpoint=f"127.0.0.1:{port}", protocol=protocol, timeout=5.0)
        with pytest.raises(ReplayFailed, match="refused traces data") as err:
            # A budget of a minute: the test would time out if TLS errors were retried.
            replay_bundle(
                bundle.path,
                options_for(bundle, port, transport=transport, filters=TRACES, max_elapsed=60.0),
            )
        assert receiver.accepted[Signal.TRACES] == []
    assert err.value.report is not None and err.value.report.signals[Signal.TRACES].retries == 0
    # The collector does speak TLS: the plaintext probe must not blame that.
    assert "does not speak TLS" not in err.value.message


@pytest.mark.parametrize("protocol", [Protocol.GRPC, Protocol.HTTP])
def test_sealed_tls_to_localhost_dials_127_0_0_1_but_checks_the_name_localhost(
    bundle: Bundle, localhost_only_pki: Pki, protocol: Protocol
) -> None:
    """Dialling the literal address must not change which name the certificate is checked for."""
    with _receiver(protocol, localhost_only_pki, False) as (port, receiver):
        transport = TransportOptions(
            endpoint=f"https://localhost.:{port}",
            protocol=protocol,
            ca_file=localhost_only_pki.ca,
            timeout=5.0,
        )
        options = options_for(bundle, port, transport=transport, filters=TRACES, sealed=True)
        report = replay_bundle(bundle.path, options)
        assert report.completed and receiver.accepted[Signal.TRACES]
    assert report.route == f"direct to 127.0.0.1:{port} (sealed; proxy variables ignored)"
