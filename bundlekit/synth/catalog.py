"""The fictional shop the synthetic data describe: services and the call trees
of the requests they serve.

Kept as plain data so realism can be reviewed (and extended) in one place;
every other synth module derives spans, logs and metrics from these tables.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeAlias

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span

Attr = tuple[str, str | int | float | bool]
Kind: TypeAlias = "Span.SpanKind.ValueType"

SERVER, CLIENT, INTERNAL = Span.SPAN_KIND_SERVER, Span.SPAN_KIND_CLIENT, Span.SPAN_KIND_INTERNAL
PRODUCER, CONSUMER = Span.SPAN_KIND_PRODUCER, Span.SPAN_KIND_CONSUMER
DEBUG, INFO, WARN, ERROR = 5, 9, 13, 17
SCHEMA_URL = "https://opentelemetry.io/schemas/1.26.0"


@dataclass(frozen=True)
class Service:
    name: str
    version: str
    language: str
    host: str
    #: Instrumentation scopes by role: "http", "client", "db", "cache", "msg",
    #: "app" (hand-written spans), "runtime" (process metrics), "log" (the logger).
    scopes: dict[str, tuple[str, str]]


_SDK_VERSION = {"go": "1.32.0", "java": "1.44.1", "python": "1.28.2", "nodejs": "1.29.0"}
_JAVA_AGENT = "2.10.0-alpha"

SERVICES: tuple[Service, ...] = (
    Service(
        "gateway",
        "2.14.1",
        "go",
        "gw-7d9f8c6b5-x2lqp",
        {
            "http": ("go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp", "0.58.0"),
            "runtime": ("go.opentelemetry.io/contrib/instrumentation/runtime", "0.58.0"),
            "log": ("gateway/accesslog", "2.14.1"),
        },
    ),
    Service(
        "auth",
        "1.9.3",
        "java",
        "auth-5c6b8d7f9-q8kzt",
        {
            "http": ("io.opentelemetry.spring-webmvc-6.0", _JAVA_AGENT),
            "db": ("io.opentelemetry.jdbc", _JAVA_AGENT),
            "app": ("com.shop.auth", "1.9.3"),
            "runtime": ("io.opentelemetry.runtime-telemetry-java17", _JAVA_AGENT),
            "log": ("com.shop.auth.AuthController", ""),
        },
    ),
    Service(
        "checkout",
        "3.2.0",
        "python",
        "checkout-6f8d9c7b4-m4wnr",
        {
            "http": ("opentelemetry.instrumentation.flask", "0.49b2"),
            "client": ("opentelemetry.instrumentation.requests", "0.49b2"),
            "db": ("opentelemetry.instrumentation.psycopg", "0.49b2"),
            "msg": ("opentelemetry.instrumentation.confluent_kafka", "0.49b2"),
            "runtime": ("opentelemetry.instrumentation.system_metrics", "0.49b2"),
            "log": ("checkout.orders", ""),
        },
    ),
    Service(
        "payments",
        "4.0.7",
        "java",
        "payments-8b7c6d5f4-z7xhd",
        {
            "http": ("io.opentelemetry.spring-webmvc-6.0", _JAVA_AGENT),
            "client": ("io.opentelemetry.okhttp-3.0", _JAVA_AGENT),
            "db": ("io.opentelemetry.jdbc", _JAVA_AGENT),
            "runtime": ("io.opentelemetry.runtime-telemetry-java17", _JAVA_AGENT),
            "log": ("com.shop.payments.ChargeService", ""),
        },
    ),
    Service(
        "inventory",
        "1.22.5",
        "nodejs",
        "inventory-7b5d4c8f6-k2pjv",
        {
            "http": ("@opentelemetry/instrumentation-http", "0.56.0"),
            "db": ("@opentelemetry/instrumentation-pg", "0.50.0"),
            "cache": ("@opentelemetry/instrumentation-ioredis", "0.46.0"),
            "msg": ("@opentelemetry/instrumentation-kafkajs", "0.6.0"),
            "app": ("inventory", "1.22.5"),
            "runtime": ("@opentelemetry/instrumentation-runtime-node", "0.10.0"),
            "log": ("inventory", ""),
        },
    ),
)
SERVICE_INDEX = {s.name: i for i, s in enumerate(SERVICES)}


@dataclass(frozen=True)
class Failure:
    """Where a failing trace breaks: the exception raised and the time it costs."""

    error_type: str
    message: str
    extra_us: int


@dataclass(frozen=True)
class LogSpec:
    """A log line a span emits; ``{o}`` is an order id, ``{u}`` a user, ``{n}`` a count.

    ``access`` lines get a structured (kvlist) body built from the span instead.
    """

    severity: int
    body: str
    fail_severity: int
    fail_body: str
    access: bool = False


@dataclass(frozen=True)
class Step:
    """One span of a trace template."""

    service: str
    scope: str
    name: str
    kind: Kind
    parent: int
    #: Own time in microseconds before and after the children run.
    own_us: tuple[int, int]
    attrs: tuple[Attr, ...]
    #: HTTP status reported when the trace fails and this span is on the failing path.
    fail_code: int | None = None
    failure: Failure | None = None
    #: Name and attributes that replace the usual ones when the trace fails.
    fail_name: str | None = None
    fail_attrs: tuple[Attr, ...] = ()
    event: str | None = None
    logs: tuple[LogSpec, ...] = ()
    #: Attribute whose value is formatted per trace ("{n}" = a product/offset number).
    dynamic: tuple[str, str] | None = None


@dataclass(frozen=True)
class Template:
    """A kind of request: its call tree, how often it happens and how it fails."""

    name: str
    weight: int
    steps: tuple[Step, ...]
    fail_rate: float
    incident_fail_rate: float = 0.0
    incident_slowdown: float = 1.0
    #: Consumer traces link to the producer span of the previous checkout trace.
    links_to_producer: bool = False

    @property
    def failing_path(self) -> frozenset[int]:
        """The failure's origin step and all its ancestors."""
        origin = next(i for i, s in enumerate(self.steps) if s.failure is not None)
        path = set()
        while origin >= 0:
            path.add(origin)
            origin = self.steps[origin].parent
        return frozenset(path)


def _server(method: str, route: str, path: str, port: int, host: str) -> tuple[Attr, ...]:
    return (
        ("http.request.method", method),
        ("http.route", route),
        ("url.path", path),
        ("url.scheme", "http"),
        ("server.address", host),
        ("server.port", port),
        ("network.protocol.version", "1.1"),
        ("http.response.status_code", 200),
    )


def _client(method: str, host: str, port: int, path: str) -> tuple[Attr, ...]:
    return (
        ("http.request.method", method),
        ("server.address", host),
        ("server.port", port),
        ("url.full", f"http://{host}:{port}{path}"),
        ("network.protocol.version", "1.1"),
        ("http.response.status_code", 200),
    )


#: The client address as samples/config/collector.yaml leaves it: hashed (SHA-256).
_CLIENT_HASH = hashlib.sha256(b"203.0.113.42").hexdigest()


def _public(method: str, route: str, path: str) -> tuple[Attr, ...]:
    """An edge span, after the collector hashed the client address and dropped the
    user agent (see samples/config/collector.yaml)."""
    return (
        *_server(method, route, path, 443, "shop.example.com"),
        ("client.address", _CLIENT_HASH),
    )


def _sql(db: str, op: str, table: str, query: str) -> tuple[Attr, ...]:
    return (
        ("db.system", "postgresql"),
        ("db.namespace", db),
        ("db.operation.name", op),
        ("db.collection.name", table),
        ("db.query.text", query),
        ("server.address", f"{db}-db.prod.internal"),
        ("server.port", 5432),
    )


def _kafka(op: str, topic: str) -> tuple[Attr, ...]:
    return (
        ("messaging.system", "kafka"),
        ("messaging.destination.name", topic),
        ("messaging.operation.type", op),
        ("messaging.kafka.consumer.group", "inventory"),
        ("server.address", "kafka.prod.internal"),
        ("server.port", 9092),
    )


_ACCESS = LogSpec(INFO, "", WARN, "", access=True)
_DB_TIMEOUT = Failure(
    "org.postgresql.util.PSQLException",
    "ERROR: canceling statement due to statement timeout",
    2_000_000,
)
_TOKEN_OK = LogSpec(DEBUG, "token of {u} verified", DEBUG, "token of {u} verified")
_PSP_TIMEOUT = Failure("java.net.SocketTimeoutException", "Read timed out", 2_962_000)

#: The gateway checks the caller's token with auth at the start of every user journey.
_AUTH_CHECK = (
    Step(
        "gateway",
        "http",
        "POST",
        CLIENT,
        0,
        (80, 60),
        _client("POST", "auth", 8443, "/v1/token/verify"),
    ),
    Step(
        "auth",
        "http",
        "POST /v1/token/verify",
        SERVER,
        1,
        (900, 150),
        _server("POST", "/v1/token/verify", "/v1/token/verify", 8443, "auth"),
        logs=(_TOKEN_OK,),
    ),
)

TEMPLATES: tuple[Template, ...] = (
    Template(
        "browse",
        40,
        fail_rate=0.004,
        steps=(
            Step(
                "gateway",
                "http",
                "GET /api/products/{id}",
                SERVER,
                -1,
                (300, 200),
                _public("GET", "/api/products/{id}", "/api/products/1"),
                502,
                logs=(_ACCESS,),
                dynamic=("url.path", "/api/products/{n}"),
            ),
            Step(
                "gateway",
                "http",
                "GET",
                CLIENT,
                0,
                (80, 60),
                _client("GET", "inventory", 8080, "/products/1"),
                500,
            ),
            Step(
                "inventory",
                "http",
                "GET /products/:id",
                SERVER,
                1,
                (400, 300),
                _server("GET", "/products/:id", "/products/1", 8080, "inventory"),
                500,
                logs=(
                    LogSpec(
                        DEBUG,
                        "product {n} served, stock checked",
                        ERROR,
                        "product lookup failed: statement timeout after 2000 ms",
                    ),
                ),
            ),
            Step(
                "inventory",
                "cache",
                "GET",
                CLIENT,
                2,
                (250, 0),
                (
                    ("db.system", "redis"),
                    ("db.operation.name", "GET"),
                    ("db.query.text", "GET product:?"),
                    ("server.address", "redis.prod.internal"),
                    ("server.port", 6379),
                ),
            ),
            Step(
                "inventory",
                "db",
                "SELECT shop.products",
                CLIENT,
                2,
                (2_100, 0),
                _sql(
                    "shop",
                    "SELECT",
                    "products",
                    "SELECT id, sku, name, price, stock FROM products WHERE id = $1",
                ),
                failure=_DB_TIMEOUT,
            ),
        ),
    ),
    Template(
        "cart",
        25,
        fail_rate=0.004,
        steps=(
            Step(
                "gateway",
                "http",
                "GET /api/cart",
                SERVER,
                -1,
                (300, 200),
                _public("GET", "/api/cart", "/api/cart"),
                502,
                logs=(_ACCESS,),
            ),
            *_AUTH_CHECK,
            Step(
                "gateway",
                "http",
                "GET",
                CLIENT,
                0,
                (80, 60),
                _client("GET", "checkout", 8000, "/cart"),
                500,
            ),
            Step(
                "checkout",
                "http",
                "GET /cart",
                SERVER,
                3,
                (700, 400),
                _server("GET", "/cart", "/cart", 8000, "checkout"),
                500,
                logs=(
                    LogSpec(
                        INFO,
                        "cart of {u} loaded: {n} items",
                        ERROR,
                        "loading cart of {u} failed: statement timeout",
                    ),
                ),
            ),
            Step(
                "checkout",
                "db",
                "SELECT checkout.cart_items",
                CLIENT,
                4,
                (1_800, 0),
                _sql(
                    "checkout",
                    "SELECT",
                    "cart_items",
                    "SELECT sku, qty, unit_price FROM cart_items WHERE cart_id = %s",
                ),
                failure=_DB_TIMEOUT,
            ),
        ),
    ),
    Template(
        "checkout",
        15,
        fail_rate=0.003,
        incident_fail_rate=0.45,
        incident_slowdown=2.5,
        steps=(
            Step(
                "gateway",
                "http",
                "POST /api/checkout",
                SERVER,
                -1,
                (400, 250),
                _public("POST", "/api/checkout", "/api/checkout"),
                502,
                logs=(_ACCESS,),
            ),
            *_AUTH_CHECK,
            Step(
                "gateway",
                "http",
                "POST",
                CLIENT,
                0,
                (80, 60),
                _client("POST", "checkout", 8000, "/checkout"),
                502,
            ),
            Step(
                "checkout",
                "http",
                "POST /checkout",
                SERVER,
                3,
                (1_200, 600),
                _server("POST", "/checkout", "/checkout", 8000, "checkout"),
                502,
                event="order.validated",
                logs=(
                    LogSpec(
                        INFO,
                        "order {o} placed by {u}: {n} items",
                        ERROR,
                        "order {o} failed: payments returned 503 Service Unavailable",
                    ),
                ),
            ),
            Step(
                "checkout",
                "client",
                "POST",
                CLIENT,
                4,
                (120, 80),
                _client("POST", "inventory", 8080, "/reservations"),
            ),
            Step(
                "inventory",
                "http",
                "POST /reservations",
                SERVER,
                5,
                (600, 300),
                _server("POST", "/reservations", "/reservations", 8080, "inventory"),
                logs=(
                    LogSpec(
                        INFO,
                        "reserved {n} items for order {o}",
                        INFO,
                        "reserved {n} items for order {o}",
                    ),
                ),
            ),
            Step(
                "inventory",
                "db",
                "UPDATE shop.stock",
                CLIENT,
                6,
                (3_200, 0),
                _sql(
                    "shop",
                    "UPDATE",
                    "stock",
                    "UPDATE stock SET reserved = reserved + $1 WHERE sku = $2",
                ),
            ),
            Step(
                "checkout",
                "client",
                "POST",
                CLIENT,
                4,
                (120, 80),
                _client("POST", "payments", 8443, "/charges"),
                503,
            ),
            Step(
                "payments",
                "http",
                "POST /charges",
                SERVER,
                8,
                (1_500, 700),
                _server("POST", "/charges", "/charges", 8443, "payments"),
                503,
                logs=(
                    LogSpec(
                        INFO,
                        "charge for order {o} authorized, amount {n}9.99 EUR",
                        ERROR,
                        "charge for order {o} failed: PSP did not answer in 3000 ms",
                    ),
                ),
            ),
            Step(
                "payments",
                "client",
                "POST",
                CLIENT,
                9,
                (38_000, 0),
                _client("POST", "api.psp.example", 443, "/v2/authorizations"),
                504,
                failure=_PSP_TIMEOUT,
            ),
            Step(
                "payments",
                "db",
                "INSERT payments.charges",
                CLIENT,
                9,
                (2_400, 0),
                _sql(
                    "payments",
                    "INSERT",
                    "charges",
                    "INSERT INTO charges (order_id, amount, status) VALUES (?, ?, ?)",
                ),
            ),
            Step(
                "checkout",
                "msg",
                "orders publish",
                PRODUCER,
                4,
                (450, 0),
                _kafka("publish", "orders"),
                fail_name="orders.failed publish",
                fail_attrs=(("messaging.destination.name", "orders.failed"),),
            ),
        ),
    ),
    Template(
        "login",
        10,
        fail_rate=0.005,
        steps=(
            Step(
                "gateway",
                "http",
                "POST /api/login",
                SERVER,
                -1,
                (300, 200),
                _public("POST", "/api/login", "/api/login"),
                502,
                logs=(_ACCESS,),
            ),
            Step(
                "gateway",
                "http",
                "POST",
                CLIENT,
                0,
                (80, 60),
                _client("POST", "auth", 8443, "/v1/login"),
                500,
            ),
            Step(
                "auth",
                "http",
                "POST /v1/login",
                SERVER,
                1,
                (700, 300),
                _server("POST", "/v1/login", "/v1/login", 8443, "auth"),
                500,
                logs=(
                    LogSpec(
                        INFO,
                        "login succeeded for user {u}",
                        ERROR,
                        "login failed for user {u}: user store unavailable",
                    ),
                ),
            ),
            Step(
                "auth",
                "db",
                "SELECT auth.users",
                CLIENT,
                2,
                (1_600, 0),
                _sql(
                    "auth",
                    "SELECT",
                    "users",
                    "SELECT id, password_hash, locked FROM users WHERE email = ?",
                ),
                failure=_DB_TIMEOUT,
            ),
            Step(
                "auth",
                "app",
                "bcrypt.verify",
                INTERNAL,
                2,
                (48_000, 0),
                (("code.function", "verify"), ("code.namespace", "com.shop.auth.Passwords")),
            ),
        ),
    ),
    Template(
        "fulfil",
        10,
        fail_rate=0.004,
        links_to_producer=True,
        steps=(
            Step(
                "inventory",
                "msg",
                "orders process",
                CONSUMER,
                -1,
                (350, 150),
                (*_kafka("process", "orders"), ("messaging.kafka.message.offset", 0)),
                logs=(
                    LogSpec(
                        INFO,
                        "fulfilling order {o}: {n} items",
                        ERROR,
                        "fulfilment of order {o} failed, message sent to DLQ",
                    ),
                ),
                dynamic=("messaging.kafka.message.offset", "{n}"),
            ),
            Step(
                "inventory",
                "db",
                "UPDATE shop.stock",
                CLIENT,
                0,
                (2_900, 0),
                _sql(
                    "shop",
                    "UPDATE",
                    "stock",
                    "UPDATE stock SET on_hand = on_hand - $1, reserved = reserved - $1 "
                    "WHERE sku = $2",
                ),
                failure=_DB_TIMEOUT,
            ),
            Step(
                "inventory",
                "app",
                "notify warehouse",
                INTERNAL,
                0,
                (700, 0),
                (("code.function", "notifyWarehouse"), ("code.namespace", "fulfilment")),
                logs=(
                    LogSpec(
                        INFO,
                        "warehouse notified to ship order {o}",
                        WARN,
                        "warehouse not notified: order {o} rolled back",
                    ),
                ),
            ),
        ),
    ),
)
MAX_STEPS = max(len(t.steps) for t in TEMPLATES)
CHECKOUT = next(i for i, t in enumerate(TEMPLATES) if t.name == "checkout")
PRODUCER_STEP = next(i for i, s in enumerate(TEMPLATES[CHECKOUT].steps) if s.kind == PRODUCER)


def any_value(value: str | int | float | bool) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    return AnyValue(string_value=value)


def kvs(attrs: Sequence[Attr]) -> list[KeyValue]:
    return [KeyValue(key=k, value=any_value(v)) for k, v in attrs]


def _resource(service: Service) -> Resource:
    return Resource(
        attributes=kvs(
            (
                ("service.name", service.name),
                ("service.namespace", "shop"),
                ("service.version", service.version),
                ("service.instance.id", hashlib.sha256(service.host.encode()).hexdigest()[:32]),
                ("deployment.environment", "production"),
                ("host.name", service.host),
                ("host.arch", "amd64"),
                ("cloud.provider", "aws"),
                ("cloud.region", "eu-west-1"),
                ("telemetry.sdk.name", "opentelemetry"),
                ("telemetry.sdk.language", service.language),
                ("telemetry.sdk.version", _SDK_VERSION[service.language]),
                ("collector.name", "otelcol-gateway-0"),
            )
        )
    )


RESOURCES: tuple[Resource, ...] = tuple(_resource(s) for s in SERVICES)


def scope(service: int, role: str) -> InstrumentationScope:
    name, version = SERVICES[service].scopes[role]
    return InstrumentationScope(name=name, version=version)
