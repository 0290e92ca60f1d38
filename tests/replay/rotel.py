"""A real OTLP collector (rotel) on free loopback ports, for @pytest.mark.collector tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest


def rotel_binary() -> Path:
    import rotel

    return Path(os.path.dirname(rotel.__file__)) / "rotel-agent"


#: Skip where rotel is missing on a developer's machine; under CI (CI=true) the test runs
#: and a missing collector is a failure, never a silent skip.
needs_rotel = pytest.mark.skipif(
    not rotel_binary().exists() and os.environ.get("CI") != "true",
    reason="rotel-agent is not installed (under CI=true this fails instead)",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


class Rotel:
    """One rotel-agent process; ``exporter`` is "otlp" (to ``forward_port``) or "blackhole"."""

    def __init__(
        self, workdir: Path, forward_port: int | None = None, exporter: str = "otlp"
    ) -> None:
        self.workdir = workdir
        self.grpc_port = free_port()
        self.http_port = free_port()
        self.forward_port = forward_port
        self.exporter = exporter
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def command(self) -> list[str]:
        self.starts += 1
        tag = f"{self.starts}"
        cmd = [
            str(rotel_binary()),
            "start",
            "--otlp-grpc-endpoint",
            f"127.0.0.1:{self.grpc_port}",
            "--otlp-http-endpoint",
            f"127.0.0.1:{self.http_port}",
            "--pid-file",
            str(self.workdir / f"rotel-{tag}.pid"),
            "--log-file",
            str(self.workdir / f"rotel-{tag}.log"),
            "--exporter",
            self.exporter,
            "--batch-timeout",
            "50ms",
        ]
        if self.exporter == "otlp":
            cmd += [
                "--otlp-exporter-endpoint",
                f"http://127.0.0.1:{self.forward_port}",
                "--otlp-exporter-compression",
                "none",
                "--otlp-exporter-retry-initial-backoff",
                "100ms",
                "--otlp-exporter-retry-max-backoff",
                "500ms",
            ]
        return cmd

    def start(self) -> None:
        assert self.process is None
        log = open(self.workdir / f"rotel-stdout-{self.starts + 1}.txt", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT)
        log.close()
        try:
            wait_listening(self.grpc_port)
            wait_listening(self.http_port)
        except TimeoutError:
            self.stop()
            raise

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (rotel flushes its batches and exits), SIGKILL if it does not."""
        process, self.process = self.process, None
        if process is None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)

    def __enter__(self) -> Rotel:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
