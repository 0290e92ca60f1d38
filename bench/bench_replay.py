"""Time ``bundlekit replay`` into a real collector against a strong minimal gRPC sender.

    python bench/bench_replay.py bench/data/spans-1000000 [--bundle PATH --key PUB]
                                 [--large bench/data/spans-3000000] [--reps 5] [--json out.json]

Data sets come from ``bench/gen_data.py``.  The traces file is packed into a
signed bundle once (or ``--bundle``/``--key`` name an existing one: a directory
or, once it exists, a ``.bundle.tar``); one rotel collector with
``--exporter blackhole`` runs on free loopback ports for the whole run, so its
start-up is in no measurement.  One untimed warm-up of every case, then
``--reps`` interleaved repetitions (the order rotated each time, and the
collector left to go idle before every run), each case its own process:

  baseline     the minimal loop of issue 7: grpc's generic ``unary_unary`` on the
               trace Export method with no serializers, the stored request bytes
               (streamed from the traces file), a pool of 8 threads making blocking
               calls, so 8 requests are always in flight
  raw          bundlekit replay BUNDLE --signal traces --no-marker
  rebase-now   bundlekit replay BUNDLE --signal traces --rebase now   (marker on)
  marker       bundlekit replay BUNDLE --signal traces   (the default: marker on, no rebase)

With ``--before DIR`` (an older checkout, e.g. from ``git archive``) the three
replay cases also run with ``PYTHONPATH=DIR``, interleaved in the same run.

Two rates per run, both from acknowledged spans: over the whole command's wall
time (interpreter start-up, imports and, for replay, bundle verification
included) and over its send phase (first request to last acknowledgement: the
replay report's ``duration_s``; the baseline times its own loop).  The targets
(raw >= 0.85x, rebase-now >= 0.6x the baseline) are on whole-command wall time
for both sides.  Peak RSS and CPU time (user + sys, the sender's own: the
collector's is not in it) come from wait4; CPU time is the figure that moves
least when the machine is shared.

Why the old baseline showed 130k spans/s: it kept 8 grpc *futures* in flight
and waited on the oldest.  grpc's Python futures complete through one
channel-spin thread, so each response waits its turn behind the others; 8
threads each blocked in a call (the GIL released in C-core) send about twice
as fast on this machine.  It also imported the test helpers (and with them
pytest) at start-up, inside its timed wall time; the worker now imports only
grpc.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TRACE_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
IN_FLIGHT = 8


def baseline_worker(path: Path, port: int) -> None:
    """The reference: stored request bytes onto one channel from 8 blocking threads.

    Prints ``{"send_s": ..., "requests": ...}``: the time from the first call to
    the last response.  Any failed call raises (the process exits non-zero).
    """
    import struct
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import grpc

    header = struct.Struct(">I")  # the framing of otlp.framing, without importing bundlekit
    channel = grpc.insecure_channel(
        f"127.0.0.1:{port}",
        [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)],
    )
    export = channel.unary_unary(TRACE_METHOD)
    slots = threading.Semaphore(IN_FLIGHT)
    errors: list[BaseException] = []

    def call(body: bytes) -> None:
        try:
            export(body, timeout=60)
        except BaseException as exc:
            errors.append(exc)
        finally:
            slots.release()

    requests = 0
    with open(path, "rb") as stream, ThreadPoolExecutor(IN_FLIGHT) as pool:
        started = time.perf_counter()
        while head := stream.read(header.size):
            body = stream.read(header.unpack(head)[0])
            slots.acquire()
            pool.submit(call, body)
            requests += 1
    send = time.perf_counter() - started
    channel.close()
    if errors:
        raise errors[0]
    print(json.dumps({"send_s": send, "requests": requests}))


def run(
    cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> tuple[float, float, float, str]:
    """(wall seconds, peak RSS MB, CPU seconds (user + sys), stdout) of one child process."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=cwd)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if process.returncode != 0:
            tail = err.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"{cmd[:4]}... exited {process.returncode}: {tail}")
        cpu = usage.ru_utime + usage.ru_stime
        return wall, usage.ru_maxrss / 1024, cpu, out.read().decode()


def settle(pid: int, timeout: float = 15.0) -> None:
    """Wait until the collector is idle: it acknowledges requests before its pipeline has
    processed them, so a run would otherwise pay for the backlog of the one before."""
    ticks = os.sysconf("SC_CLK_TCK")

    def cpu() -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / ticks

    deadline = time.monotonic() + timeout
    last = cpu()
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = cpu()
        if now - last < 0.02:  # under 8 % of a core: idle
            return
        last = now


def pack(data: Path, work: Path) -> tuple[Path, Path]:
    """Bundle the traces file of ``data`` with the CLI; returns (bundle, public key).

    Packing runs in child processes so this process stays small: a child's peak
    RSS (wait4) includes the memory it inherited from its parent before exec.
    """
    work.mkdir(parents=True, exist_ok=True)
    bundlekit = [sys.executable, "-m", "bundlekit"]
    subprocess.run(
        [*bundlekit, "keygen", "--out", str(work / "bench"), "--no-passphrase"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    bundle = work / "bundle"
    subprocess.run(
        [*bundlekit, "pack", "--traces", str(data / "traces.binpb"), "--out", str(bundle),
         "--key", str(work / "bench.key")],
        check=True,
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return bundle, work / "bench.pub"


def spans_of(data: Path) -> int:
    return int(json.loads((data / "dataset.json").read_text())["files"]["traces"]["records"])


def replay_cmd(bundle: Path, key: Path, port: int, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "bundlekit", "replay", str(bundle),
        "--endpoint", f"http://127.0.0.1:{port}", "--key", str(key),
        "--signal", "traces", "--json", *extra,
    ]  # fmt: skip


def rotel_version() -> str:
    from importlib.metadata import version

    return f"rotel {version('rotel')}"


def measure(
    data: Path,
    bundle: Path | None,
    key: Path | None,
    large: Path | None,
    reps: int,
    before: Path | None = None,
) -> dict[str, Any]:
    results: dict[str, Any] = {
        "runs": {},
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "collector": rotel_version(),
        },
    }
    # Imported here, not at the top: the baseline worker runs this file too, and
    # importing the test helpers (pytest) would count in its wall time.
    sys.path.insert(0, str(ROOT))
    from tests.replay.rotel import Rotel

    # Byte-compile bundlekit first: an installed package has its .pyc files, but a
    # checkout run with PYTHONDONTWRITEBYTECODE=1 would compile ~60 modules from
    # source in every replay (about 0.1 s of its wall time, none of the baseline's).
    for tree in (ROOT, before):
        if tree is not None:
            subprocess.run(
                [sys.executable, "-m", "compileall", "-q", str(tree / "bundlekit")], check=True
            )
    spans = spans_of(data)
    results["spans"] = spans
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        work = Path(tmp)
        if bundle is None:
            bundle, key = pack(data, work / "small")
        assert key is not None, "--bundle needs --key"
        results["bundle"] = str(bundle)
        with Rotel(work, exporter="blackhole") as rotel:
            port = rotel.grpc_port
            cases = {
                "baseline": [sys.executable, __file__, "--baseline-worker",
                             str(data / "traces.binpb"), str(port)],
                "raw": replay_cmd(bundle, key, port, "--no-marker"),
                "rebase-now": replay_cmd(bundle, key, port, "--rebase", "now"),
                "marker": replay_cmd(bundle, key, port),
            }  # fmt: skip
            # Children run in the work directory with an explicit PYTHONPATH: `python -m`
            # puts the working directory first on sys.path, which would pick the checkout
            # the benchmark was started from whatever PYTHONPATH says.
            current = {**os.environ, "PYTHONPATH": str(ROOT)}
            envs: dict[str, dict[str, str] | None] = dict.fromkeys(cases, current)
            if before is not None:
                # The same commands on an older checkout of bundlekit, in the same run.
                old = {**os.environ, "PYTHONPATH": str(before)}
                for name in ("raw", "rebase-now", "marker"):
                    cases[f"{name} (before)"] = cases[name]
                    envs[f"{name} (before)"] = old
            counts = {name: spans for name in cases}
            if large is not None:
                big_bundle, big_key = pack(large, work / "large")
                counts["raw-large"] = spans_of(large)
                results["large_spans"] = counts["raw-large"]
                cases["raw-large"] = replay_cmd(big_bundle, big_key, port, "--no-marker")
            assert rotel.process is not None
            for name, cmd in cases.items():  # warm-up: page cache, rotel's allocations
                run(cmd, envs[name], work)
            names = list(cases)
            for rep in range(reps):
                # A different order each repetition, so no case always follows the same one.
                for name in names[rep % len(names) :] + names[: rep % len(names)]:
                    cmd = cases[name]
                    settle(rotel.process.pid)
                    wall, rss, cpu, out = run(cmd, envs[name], work)
                    report = json.loads(out)
                    if name == "baseline":
                        send = report["send_s"]
                    else:
                        send = report["duration_s"]
                        acked = report["signals"]["traces"]["records_acknowledged"]
                        assert acked == counts[name], (name, acked, counts[name])
                    entry = {
                        "wall_s": wall,
                        "send_s": send,
                        "rss_mb": rss,
                        "cpu_s": cpu,
                        "spans_per_s": counts[name] / wall,
                        "send_spans_per_s": counts[name] / send,
                    }
                    results["runs"].setdefault(name, []).append(entry)
                    print(
                        f"rep {rep + 1} {name:11} wall {wall:6.2f} s {counts[name] / wall:>10,.0f}"
                        f" spans/s  send {send:6.2f} s {counts[name] / send:>10,.0f} spans/s "
                        f"{rss:6.1f} MB  cpu {cpu:5.2f} s",
                        flush=True,
                    )
    summary: dict[str, Any] = {}
    for name, entries in results["runs"].items():
        summary[name] = {
            key_: statistics.median(e[key_] for e in entries)
            for key_ in ("wall_s", "send_s", "cpu_s", "spans_per_s", "send_spans_per_s")
        }
        summary[name]["peak_rss_mb"] = max(e["rss_mb"] for e in entries)
    base = summary["baseline"]
    for name, row in summary.items():
        if name not in ("baseline", "raw-large"):
            row["ratio_wall"] = row["spans_per_s"] / base["spans_per_s"]
            row["ratio_send"] = row["send_spans_per_s"] / base["send_spans_per_s"]
    results["summary"] = summary
    return results


def markdown(results: dict[str, Any]) -> str:
    s = results["summary"]
    rows = [
        "| run | median wall (s) | spans/s (wall) | vs baseline (wall) | median send (s) "
        "| spans/s (send) | vs baseline (send) | median CPU (s) | peak RSS (MB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in s.items():
        wall_ratio = f"{row['ratio_wall']:.2f}x" if "ratio_wall" in row else "-"
        send_ratio = f"{row['ratio_send']:.2f}x" if "ratio_send" in row else "-"
        if name == "baseline":
            wall_ratio = send_ratio = "1.00x"
        rows.append(
            f"| {name} | {row['wall_s']:.2f} | {row['spans_per_s']:,.0f} | {wall_ratio} "
            f"| {row['send_s']:.2f} | {row['send_spans_per_s']:,.0f} | {send_ratio} "
            f"| {row['cpu_s']:.2f} | {row['peak_rss_mb']:.0f} |"
        )
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--baseline-worker"]:
        baseline_worker(Path(argv[1]), int(argv[2]))
        return 0
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("data", type=Path, help="data set directory from bench/gen_data.py")
    parser.add_argument("--bundle", type=Path, help="replay this bundle (of data's traces)")
    parser.add_argument("--key", type=Path, help="public key that signed --bundle")
    parser.add_argument("--large", type=Path, help="a bigger data set, for RSS flatness")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--json", type=Path, help="write all measurements here")
    parser.add_argument(
        "--before",
        type=Path,
        help="an older bundlekit checkout: also time raw, rebase-now and "
        "marker with it (PYTHONPATH), for before/after figures from one run",
    )
    args = parser.parse_args(argv)
    results = measure(args.data, args.bundle, args.key, args.large, args.reps, args.before)
    print(markdown(results))
    s = results["summary"]
    print(
        f"whole-command wall time: raw/baseline {s['raw']['ratio_wall']:.2f} (target >= 0.85); "
        f"rebase-now/baseline {s['rebase-now']['ratio_wall']:.2f} (target >= 0.6)"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
