from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bundlekit.keys import GeneratedKey, KeyType, generate_key
from bundlekit.replay import ReplayOptions, RetryPolicy, TransportOptions, TrustOptions
from bundlekit.replay.interface import Protocol
from tests.replay.otlpdata import Bundle, make_bundle
from tests.replay.receivers import Recorder, grpc_receiver
from tests.replay.rotel import Rotel

#: Variables that change how replay reaches a collector; a test sets them only on purpose.
ROUTE_VARIABLES = (
    "grpc_proxy",
    "https_proxy",
    "http_proxy",
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "no_proxy",
    "NO_PROXY",
    "no_grpc_proxy",
    "GRPC_ADDRESS_HTTP_PROXY",
    "GRPC_ADDRESS_HTTP_PROXY_ENABLED_ADDRESSES",
    "BUNDLEKIT_SEALED",
)


@pytest.fixture(autouse=True)
def no_proxy_from_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """Replay honours proxy variables; a proxy set on the test machine must not reroute tests."""
    for name in ROUTE_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def replay_key(tmp_path_factory: pytest.TempPathFactory) -> GeneratedKey:
    return generate_key(tmp_path_factory.mktemp("replay-key") / "signer", KeyType.ED25519)


@pytest.fixture(scope="session")
def bundle(tmp_path_factory: pytest.TempPathFactory, replay_key: GeneratedKey) -> Bundle:
    """A signed bundle: 2,000 spans plus matching metrics and logs, 128 records a request."""
    return make_bundle(tmp_path_factory.mktemp("bundle"), replay_key, spans=2000, per_request=128)


def options_for(
    bundle: Bundle,
    port: int,
    protocol: Protocol = Protocol.GRPC,
    *,
    max_elapsed: float = 10.0,
    **kwargs: object,
) -> ReplayOptions:
    """Options that trust ``bundle``'s key, talk plaintext to 127.0.0.1:port, retry fast."""
    transport = kwargs.pop("transport", None) or TransportOptions(
        endpoint=f"http://127.0.0.1:{port}", protocol=protocol, timeout=5.0
    )
    return ReplayOptions(
        transport=transport,  # type: ignore[arg-type]
        trust=TrustOptions(keys=(bundle.key.public_path,)),
        retry=RetryPolicy(initial_backoff=0.05, max_backoff=0.5, max_elapsed=max_elapsed),
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[tuple[Rotel, Recorder]]:
    """rotel on free loopback ports, forwarding to a gRPC receiver of the test.

    Started before a test sets any proxy variable, so only the replay under
    test can be affected by them.
    """
    with grpc_receiver() as (port, receiver):
        rotel = Rotel(tmp_path, forward_port=port)
        rotel.start()
        try:
            yield rotel, receiver
        finally:
            rotel.stop()
