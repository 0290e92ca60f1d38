"""The route decision on its own: which address is dialled, which proxy (if any) is used."""

from __future__ import annotations

import pytest

from bundlekit.errors import EgressRefused, UsageError
from bundlekit.replay.egress import ip_literal, loopback_address
from bundlekit.replay.endpoint import parse_endpoint
from bundlekit.replay.grpc_exporter import channel_route_options, grpc_target
from bundlekit.replay.interface import Protocol, TransportOptions
from bundlekit.replay.route import Route, plan_route, redact

PROXY = "http://proxy.corp:3128"


def route(
    endpoint: str,
    protocol: Protocol = Protocol.GRPC,
    sealed: str | None = None,
    allowed: tuple[str, ...] = (),
    **env: str,
) -> Route:
    parsed = parse_endpoint(TransportOptions(endpoint=endpoint, protocol=protocol))
    return plan_route(parsed, protocol, sealed, allowed, env)


# -- sealed: literal addresses only --------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("localhost", "127.0.0.1"),
        ("localhost.", "127.0.0.1"),
        ("LOCALHOST", "127.0.0.1"),
        ("LocalHost.", "127.0.0.1"),
        ("127.0.0.1", "127.0.0.1"),
        ("127.0.0.1.", "127.0.0.1"),
        ("127.9.8.7", "127.9.8.7"),
        ("[::1]", "::1"),
        ("[0:0:0:0:0:0:0:1]", "::1"),
        ("[::ffff:127.0.0.1]", "127.0.0.1"),
        ("[::ffff:7f00:2]", "127.0.0.2"),
    ],
)
def test_sealed_mode_dials_a_literal_for_every_loopback_spelling(host: str, address: str) -> None:
    chosen = route(f"http://{host}:4317", sealed="--sealed")
    assert chosen.address == address and chosen.literal
    assert grpc_target(chosen).startswith("ipv6:" if ":" in address else "ipv4:")


@pytest.mark.parametrize(
    "host",
    [
        "127.1",  # getaddrinfo reads it as 127.0.0.1; ipaddress does not: a name, refused
        "0x7f.0.0.1",
        "2130706433",
        "0177.0.0.1",
        "127.000.000.001",
        "localhost.localdomain",
        "app.localhost",
        "localhost.evil.example",
        "0.0.0.0",
        "[::]",
        "[::127.0.0.1]",  # IPv4-compatible, not mapped: not loopback
        "collector.internal",
    ],
)
def test_sealed_mode_refuses_names_and_odd_spellings_it_cannot_prove_loopback(host: str) -> None:
    with pytest.raises(EgressRefused) as err:
        route(f"http://{host}:4317", sealed="--sealed")
    assert err.value.exit_code == 2
    assert loopback_address(host) is None


def test_a_name_named_by_allow_egress_is_dialled_as_written() -> None:
    chosen = route(
        "http://Collector.Example.:4317", sealed="--sealed", allowed=("collector.example",)
    )
    assert chosen.address == "collector.example." and not chosen.literal
    assert grpc_target(chosen) == "collector.example.:4317"


def test_ip_literal_drops_a_zone_and_unmaps_ipv4() -> None:
    assert str(ip_literal("[::1%lo]")) == "::1"
    assert str(ip_literal("::ffff:10.0.0.1")) == "10.0.0.1"
    assert ip_literal("127.1") is None


# -- proxies -------------------------------------------------------------------------------


def test_sealed_mode_ignores_proxy_variables_and_says_so() -> None:
    chosen = route("http://127.0.0.1:4317", sealed="--sealed", grpc_proxy="http://127.0.0.1:3128")
    assert chosen.proxy is None
    assert chosen.describe() == (
        "direct to 127.0.0.1:4317 (sealed; proxy variables ignored: grpc_proxy not allowed by "
        "--allow-egress)"
    )
    options = dict(channel_route_options(chosen))
    assert options["grpc.enable_http_proxy"] == 0 and "grpc.http_proxy" not in options
    assert options["grpc.address_http_proxy_enabled_addresses"] == ""


def test_sealed_mode_uses_a_proxy_allow_egress_names() -> None:
    chosen = route(
        "http://localhost:4317", sealed="--sealed", allowed=("PROXY.corp",), https_proxy=PROXY
    )
    assert chosen.proxy == PROXY and chosen.address == "127.0.0.1"
    options = dict(channel_route_options(chosen))
    assert options["grpc.http_proxy"] == PROXY and "grpc.enable_http_proxy" not in options
    assert options["grpc.default_authority"] == "localhost:4317"


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"grpc_proxy": PROXY, "https_proxy": "http://other:1"}, "grpc_proxy"),
        ({"https_proxy": PROXY, "http_proxy": "http://other:1"}, "https_proxy"),
        ({"http_proxy": PROXY}, "http_proxy"),
    ],
)
def test_grpc_follows_grpc_cores_proxy_variable_order(env: dict[str, str], variable: str) -> None:
    chosen = route("http://10.0.0.5:4317", **env)
    assert (chosen.proxy, chosen.proxy_variable) == (PROXY, variable)


def test_grpc_ignores_upper_case_proxy_variables_like_grpc_core() -> None:
    assert route("http://10.0.0.5:4317", HTTPS_PROXY=PROXY, HTTP_PROXY=PROXY).proxy is None


def test_an_empty_grpc_proxy_variable_means_no_proxy_even_if_a_later_one_is_set() -> None:
    assert route("http://10.0.0.5:4317", grpc_proxy="", https_proxy=PROXY).proxy is None


@pytest.mark.parametrize(
    ("env", "proxied"),
    [
        ({"no_proxy": "example.com"}, True),
        ({"no_proxy": "10.0.0.5"}, False),
        ({"no_proxy": "10.0.0.0/8"}, False),
        ({"no_proxy": "192.168.0.0/16"}, True),
        ({"no_grpc_proxy": "nothing", "no_proxy": "10.0.0.5"}, True),  # no_grpc_proxy first
        ({"NO_PROXY": "10.0.0.5"}, True),  # grpc-core reads lower case only
    ],
)
def test_grpc_no_proxy_rule_matches_grpc_core(env: dict[str, str], proxied: bool) -> None:
    chosen = route("http://10.0.0.5:4317", https_proxy=PROXY, **env)
    assert (chosen.proxy is not None) is proxied


@pytest.mark.parametrize(
    ("endpoint", "env", "variable"),
    [
        (
            "https://collector.example:4318",
            {"https_proxy": PROXY, "http_proxy": "x:1"},
            "https_proxy",
        ),
        ("https://collector.example:4318", {"HTTPS_PROXY": PROXY}, "HTTPS_PROXY"),
        (
            "http://collector.example:4318",
            {"http_proxy": PROXY, "https_proxy": "x:1"},
            "http_proxy",
        ),
        ("http://collector.example:4318", {"HTTP_PROXY": PROXY, "grpc_proxy": "x:1"}, "HTTP_PROXY"),
        ("http://collector.example:4318", {"http_proxy": PROXY, "HTTP_PROXY": "x:1"}, "http_proxy"),
    ],
)
def test_http_follows_curls_proxy_variables(
    endpoint: str, env: dict[str, str], variable: str
) -> None:
    chosen = route(endpoint, Protocol.HTTP, **env)
    assert (chosen.proxy, chosen.proxy_variable) == (PROXY, variable)


@pytest.mark.parametrize(
    ("host", "no_proxy", "proxied"),
    [
        ("collector.example", "*", False),
        ("collector.example", "example", False),  # a domain suffix
        ("collector.example", ".example", False),
        ("collector.example", "collector.example", False),
        ("collector.example", "other.example, collector.example:4318", False),
        ("a.collector.example", "collector.example", False),
        ("collector.example", "ample", True),  # not at a label boundary
        ("collector.example", "llector.example", True),
        ("collector.example", "a.collector.example", True),
        ("10.0.0.5", "10.0.0.0/8", True),  # no CIDR ranges for HTTP, as in urllib
    ],
)
def test_http_no_proxy_rule_matches_curl(host: str, no_proxy: str, proxied: bool) -> None:
    for proxy_name, no_proxy_name in (("http_proxy", "no_proxy"), ("HTTP_PROXY", "NO_PROXY")):
        env = {proxy_name: PROXY, no_proxy_name: no_proxy}
        chosen = route(f"http://{host}:4318", Protocol.HTTP, **env)
        assert (chosen.proxy is not None) is proxied, env


def test_a_proxy_without_scheme_means_http() -> None:
    assert route("http://10.0.0.5:4317", grpc_proxy="proxy.corp:3128").proxy == PROXY


@pytest.mark.parametrize(
    ("protocol", "value"),
    [
        (Protocol.GRPC, "https://proxy.corp:3128"),  # grpc-core speaks plain CONNECT only
        (Protocol.GRPC, "socks5://proxy.corp:1080"),
        (Protocol.HTTP, "socks5://proxy.corp:1080"),
        (Protocol.HTTP, "http://:3128"),
        (Protocol.HTTP, "http://proxy.corp:notaport"),
    ],
)
def test_an_unusable_proxy_variable_is_a_usage_error_naming_it(
    protocol: Protocol, value: str
) -> None:
    with pytest.raises(UsageError, match=r"proxy variable https_proxy=.* is not a proxy URL"):
        route("https://10.0.0.5:4317", protocol, https_proxy=value)


def test_proxy_credentials_never_appear_in_messages_or_the_report() -> None:
    chosen = route("http://10.0.0.5:4317", grpc_proxy="http://user:s3cret@proxy.corp:3128")
    assert chosen.proxy == "http://user:s3cret@proxy.corp:3128"  # used, with credentials
    assert "s3cret" not in chosen.describe() and "***@proxy.corp:3128" in chosen.describe()
    with pytest.raises(UsageError) as err:
        route("http://10.0.0.5:4317", grpc_proxy="socks5://user:s3cret@proxy.corp:1")
    assert "s3cret" not in err.value.diagnostics()
    assert redact("user:pw@host:1") == "***@host:1"


def test_sealed_mode_ignores_even_an_unusable_proxy_value() -> None:
    chosen = route("http://127.0.0.1:4317", sealed="airgap bundle", grpc_proxy="socks5://x:1")
    assert chosen.proxy is None and "grpc_proxy not allowed" in chosen.note
