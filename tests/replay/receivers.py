"""OTLP receivers for tests: a gRPC and an HTTP server on 127.0.0.1 with scripted replies.

Each receiver records every attempt (so retries are visible) and the bodies
it accepted.  A script is a list of :class:`Reply` consumed one per request;
when it runs out, requests are accepted.
"""

from __future__ import annotations

import contextlib
import gzip
import ssl
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from bundlekit.otlp.signals import Signal


@dataclass(frozen=True)
class Reply:
    """One scripted answer. Defaults: accept."""

    grpc_code: grpc.StatusCode | None = None
    http_status: int = 200
    retry_after: str | None = None  # HTTP Retry-After header
    retry_delay: float | None = None  # gRPC RetryInfo
    rejected: int = 0  # partial_success
    message: str = ""


@dataclass
class Attempt:
    at: float
    signal: Signal
    body: bytes
    reply: Reply
    headers: dict[str, str]


@dataclass
class Recorder:
    script: list[Reply] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    accepted: dict[Signal, list[bytes]] = field(default_factory=lambda: {s: [] for s in Signal})
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, signal: Signal, body: bytes, headers: dict[str, str]) -> Reply:
        with self.lock:
            reply = self.script.pop(0) if self.script else Reply()
            self.attempts.append(Attempt(time.monotonic(), signal, body, reply, headers))
            ok = reply.grpc_code is None and 200 <= reply.http_status < 300
            if ok:
                self.accepted[signal].append(body)
            return reply

    def wait_for(self, signal: Signal, records: int, timeout: float = 20.0) -> None:
        from tests.replay.otlpdata import count

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                got = sum(count(signal, b) for b in self.accepted[signal])
            if got >= records:
                return
            time.sleep(0.05)
        raise AssertionError(f"receiver got {got} of {records} {signal.value} records")


def response_bytes(signal: Signal, reply: Reply) -> bytes:
    response = signal.spec.response_class()
    if reply.rejected or reply.message:
        field_name = {
            Signal.TRACES: "rejected_spans",
            Signal.METRICS: "rejected_data_points",
            Signal.LOGS: "rejected_log_records",
        }[signal]
        setattr(response.partial_success, field_name, reply.rejected)
        response.partial_success.error_message = reply.message
    return bytes(response.SerializeToString())


def status_bytes(code: int, message: str, retry_delay: float | None) -> bytes:
    status = status_pb2.Status(code=code, message=message)
    if retry_delay is not None:
        info = error_details_pb2.RetryInfo(
            retry_delay=duration_pb2.Duration(
                seconds=int(retry_delay), nanos=int((retry_delay % 1) * 1e9)
            )
        )
        status.details.add().Pack(info)
    return bytes(status.SerializeToString())


# -- gRPC ---------------------------------------------------------------------------------


class _Servicer:
    def __init__(self, recorder: Recorder, signal: Signal) -> None:
        self.recorder = recorder
        self.signal = signal

    def Export(self, request: Any, context: grpc.ServicerContext) -> Any:
        headers = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
        reply = self.recorder.take(self.signal, request.SerializeToString(), headers)
        if reply.grpc_code is not None:
            if reply.retry_delay is not None:
                details = status_bytes(reply.grpc_code.value[0], reply.message, reply.retry_delay)
                context.set_trailing_metadata((("grpc-status-details-bin", details),))
            context.abort(reply.grpc_code, reply.message or reply.grpc_code.name)
        return self.signal.spec.response_class.FromString(response_bytes(self.signal, reply))


class TraceServicer(_Servicer, trace_service_pb2_grpc.TraceServiceServicer):
    pass


class MetricsServicer(_Servicer, metrics_service_pb2_grpc.MetricsServiceServicer):
    pass


class LogsServicer(_Servicer, logs_service_pb2_grpc.LogsServiceServicer):
    pass


@contextmanager
def grpc_receiver(port: int = 0) -> Iterator[tuple[int, Recorder]]:
    """An OTLP/gRPC receiver on 127.0.0.1; yields (port, recorder)."""
    recorder = Recorder()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8),
        options=[("grpc.max_receive_message_length", 64 * 1024 * 1024), ("grpc.so_reuseport", 0)],
    )
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(
        TraceServicer(recorder, Signal.TRACES), server
    )
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(
        MetricsServicer(recorder, Signal.METRICS), server
    )
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(
        LogsServicer(recorder, Signal.LOGS), server
    )
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    try:
        yield bound, recorder
    finally:
        server.stop(grace=None).wait(5)


# -- HTTP ---------------------------------------------------------------------------------

_PATHS = {s.spec.http_path: s for s in Signal}


class _Handler(BaseHTTPRequestHandler):
    recorder: Recorder

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        signal = _PATHS.get(self.path)
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        if signal is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        headers = {k.lower(): v for k, v in self.headers.items()}
        reply = self.recorder.take(signal, body, headers)
        if 200 <= reply.http_status < 300:
            payload = response_bytes(signal, reply)
        else:
            payload = status_bytes(reply.http_status, reply.message, None)
        self.send_response(reply.http_status)
        self.send_header("Content-Type", "application/x-protobuf")
        if reply.retry_after is not None:
            self.send_header("Retry-After", reply.retry_after)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@contextmanager
def http_receiver(tls: ssl.SSLContext | None = None) -> Iterator[tuple[int, Recorder]]:
    """An OTLP/HTTP receiver on 127.0.0.1 (HTTPS with ``tls``); yields (port, recorder)."""
    recorder = Recorder()
    handler = type("Handler", (_Handler,), {"recorder": recorder})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], recorder
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# -- a byte-counting TCP proxy, to see what actually crosses the wire ---------------------------


@contextmanager
def counting_proxy(target_port: int) -> Iterator[tuple[int, list[int]]]:
    """Forward 127.0.0.1:<yielded port> to ``target_port``; count client->server bytes."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    sent = [0]
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def pump(src: socket.socket, dst: socket.socket, counted: bool) -> None:
        try:
            while data := src.recv(65536):
                if counted:
                    sent[0] += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def accept() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", target_port))
            for args in ((client, upstream, True), (upstream, client, False)):
                t = threading.Thread(target=pump, args=args, daemon=True)
                t.start()
                threads.append(t)

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield listener.getsockname()[1], sent
    finally:
        stop.set()
        acceptor.join(2)
        listener.close()


# -- a loopback listener posing as an HTTP proxy ----------------------------------------------


@dataclass
class ProxyLog:
    """What reached the fake proxy: one entry of received bytes per connection."""

    port: int
    connections: list[bytearray] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def received(self) -> bytes:
        with self.lock:
            return b"".join(bytes(c) for c in self.connections)


@contextmanager
def recording_proxy() -> Iterator[ProxyLog]:
    """A proxy on 127.0.0.1 that records every byte it is sent.

    ``CONNECT 127.0.0.1:PORT`` is honoured (a real tunnel, so a replay through
    it succeeds); anything else gets ``502``.  It never connects anywhere but
    127.0.0.1, and every socket and thread ends with the context.
    """
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)
    log = ProxyLog(listener.getsockname()[1])
    stop = threading.Event()
    sockets: list[socket.socket] = []

    def pump(src: socket.socket, dst: socket.socket, record: bytearray | None) -> None:
        try:
            while data := src.recv(65536):
                if record is not None:
                    with log.lock:
                        record += data
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def serve(client: socket.socket) -> None:
        record = bytearray()
        with log.lock:
            log.connections.append(record)
        client.settimeout(5)
        head = b""
        try:
            while b"\r\n\r\n" not in head and len(head) < 65536:
                data = client.recv(65536)
                if not data:
                    break
                head += data
                with log.lock:
                    record += data
            words = head.split(b" ", 2)
            if len(words) == 3 and words[0] == b"CONNECT" and words[1].startswith(b"127.0.0.1:"):
                upstream = socket.create_connection(("127.0.0.1", int(words[1][10:])), timeout=5)
                sockets.append(upstream)
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                client.settimeout(None)
                upstream.settimeout(None)
                rest = head.split(b"\r\n\r\n", 1)[1]
                if rest:
                    upstream.sendall(rest)
                t = threading.Thread(target=pump, args=(upstream, client, None), daemon=True)
                t.start()
                pump(client, upstream, record)
                t.join(5)
            else:
                client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
        except OSError:
            pass
        finally:
            client.close()

    def accept() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            sockets.append(client)
            threading.Thread(target=serve, args=(client,), daemon=True).start()

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield log
    finally:
        stop.set()
        acceptor.join(2)
        listener.close()
        for s in sockets:
            with contextlib.suppress(OSError):
                s.close()
