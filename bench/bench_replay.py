"""Time ``bundlekit replay`` into a real collector against a minimal gRPC sender.

    python bench/bench_replay.py bench/data/spans-1000000 [--large bench/data/spans-3000000]
                                 [--reps 3] [--json out.json]

Data sets come from ``bench/gen_data.py``.  The traces file is packed into a
signed bundle once; a rotel collector with ``--exporter blackhole`` runs on
free loopback ports.  Each repetition runs, each as its own process:

  baseline     a minimal loop: read the stored requests from the traces file and
               send the bytes with grpc unary_unary (no serializers), 8 in flight
  raw          bundlekit replay BUNDLE --signal traces --no-marker
  rebase-now   bundlekit replay BUNDLE --signal traces --rebase now   (marker on)

One untimed warm-up repetition runs first.  Times are wall-clock for the
whole command (start-up and bundle verification included for replay), and
peak RSS comes from wait4 (the child's own rusage).  With ``--large``, raw
replay of a bigger data set is also measured, to show memory is flat in bundle
size.  Targets: raw >= 0.8 x baseline spans/s, rebase-now >= 0.5 x, peak RSS
<= 256 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.replay.rotel import Rotel  # noqa: E402 - after the path tweak

TRACE_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
IN_FLIGHT = 8


def baseline_worker(path: Path, port: int) -> None:
    """The reference: stored request bytes straight onto a gRPC channel, 8 in flight."""
    from collections import deque

    import grpc

    channel = grpc.insecure_channel(
        f"127.0.0.1:{port}", [("grpc.max_send_message_length", 64 << 20)]
    )
    export = channel.unary_unary(TRACE_METHOD)
    pending: deque[Any] = deque()
    header = struct.Struct(">I")
    with open(path, "rb") as stream:
        while head := stream.read(4):
            body = stream.read(header.unpack(head)[0])
            if len(pending) >= IN_FLIGHT:
                pending.popleft().result()
            pending.append(export.future(body, timeout=60))
    for future in pending:
        future.result()
    channel.close()


def run(cmd: list[str]) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MB, stdout) of one child process."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(cmd, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if process.returncode != 0:
            tail = err.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"{cmd[:4]}... exited {process.returncode}: {tail}")
        return wall, usage.ru_maxrss / 1024, out.read().decode()


def pack(data: Path, work: Path) -> tuple[Path, Path, int]:
    """Bundle the traces file of ``data`` with the CLI; returns (bundle, public key, spans).

    Packing runs in child processes so this process stays small: a child's peak
    RSS (wait4) includes the memory it inherited from its parent before exec.
    """
    work.mkdir(parents=True, exist_ok=True)
    bundlekit = [sys.executable, "-m", "bundlekit"]
    subprocess.run([*bundlekit, "keygen", "--out", str(work / "bench"), "--no-passphrase"],
                   check=True, stdout=subprocess.DEVNULL)
    bundle = work / "bundle"
    subprocess.run([*bundlekit, "pack", "--traces", str(data / "traces.binpb"), "--out",
                    str(bundle), "--key", str(work / "bench.key")],
                   check=True, stdout=subprocess.DEVNULL)
    spans = json.loads((data / "dataset.json").read_text())["files"]["traces"]["records"]
    return bundle, work / "bench.pub", int(spans)


def replay_cmd(bundle: Path, key: Path, port: int, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "bundlekit", "replay", str(bundle),
        "--endpoint", f"http://127.0.0.1:{port}", "--key", str(key),
        "--signal", "traces", "--json", *extra,
    ]


def measure(data: Path, large: Path | None, reps: int) -> dict[str, Any]:
    results: dict[str, Any] = {"runs": {}, "machine": {
        "python": platform.python_version(), "cpus": os.cpu_count(),
        "platform": platform.platform()}}
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        work = Path(tmp)
        bundle, key, spans = pack(data, work / "small")
        results["spans"] = spans
        with Rotel(work, exporter="blackhole") as rotel:
            port = rotel.grpc_port
            cases = {
                "baseline": [sys.executable, __file__, "--baseline-worker",
                             str(data / "traces.binpb"), str(port)],
                "raw": replay_cmd(bundle, key, port, "--no-marker"),
                "rebase-now": replay_cmd(bundle, key, port, "--rebase", "now"),
            }
            large_case = None
            if large is not None:
                big_bundle, big_key, big_spans = pack(large, work / "large")
                results["large_spans"] = big_spans
                large_case = replay_cmd(big_bundle, big_key, port, "--no-marker")
            for cmd in cases.values():  # warm-up
                run(cmd)
            for rep in range(reps):
                for name, cmd in cases.items():
                    wall, rss, out = run(cmd)
                    entry = {"wall_s": wall, "rss_mb": rss, "spans_per_s": spans / wall}
                    if out.strip():
                        report = json.loads(out)
                        entry["send_s"] = report["duration_s"]
                        assert report["signals"]["traces"]["records_acknowledged"] == spans
                    results["runs"].setdefault(name, []).append(entry)
                    print(f"rep {rep + 1} {name:11} {wall:7.2f} s {spans / wall:>12,.0f} spans/s "
                          f"{rss:7.1f} MB", flush=True)
                if large_case is not None:
                    wall, rss, _ = run(large_case)
                    results["runs"].setdefault("raw-large", []).append(
                        {"wall_s": wall, "rss_mb": rss,
                         "spans_per_s": results["large_spans"] / wall})
                    rate = results["large_spans"] / wall
                    print(f"rep {rep + 1} raw-large   {wall:7.2f} s {rate:>12,.0f} spans/s "
                          f"{rss:7.1f} MB", flush=True)
    summary: dict[str, Any] = {}
    for name, entries in results["runs"].items():
        summary[name] = {
            "median_wall_s": statistics.median(e["wall_s"] for e in entries),
            "median_spans_per_s": statistics.median(e["spans_per_s"] for e in entries),
            "peak_rss_mb": max(e["rss_mb"] for e in entries),
        }
        if all("send_s" in e for e in entries):
            summary[name]["median_send_s"] = statistics.median(e["send_s"] for e in entries)
    base = summary["baseline"]["median_spans_per_s"]
    summary["ratio_raw"] = summary["raw"]["median_spans_per_s"] / base
    summary["ratio_rebase_now"] = summary["rebase-now"]["median_spans_per_s"] / base
    results["summary"] = summary
    return results


def markdown(results: dict[str, Any]) -> str:
    s = results["summary"]
    rows = [
        "| run | median wall (s) | median spans/s | ratio to baseline | peak RSS (MB) |",
        "|---|---:|---:|---:|---:|",
    ]
    base = s["baseline"]["median_spans_per_s"]
    for name in ("baseline", "raw", "rebase-now", "raw-large"):
        if name in s:
            row = s[name]
            ratio = f"{row['median_spans_per_s'] / base:.2f}x" if name != "raw-large" else "-"
            rows.append(f"| {name} | {row['median_wall_s']:.2f} | {row['median_spans_per_s']:,.0f} "
                        f"| {ratio} | {row['peak_rss_mb']:.0f} |")
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--baseline-worker"]:
        baseline_worker(Path(argv[1]), int(argv[2]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="data set directory from bench/gen_data.py")
    parser.add_argument("--large", type=Path, help="a bigger data set, for RSS flatness")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write all measurements here")
    args = parser.parse_args(argv)
    results = measure(args.data, args.large, args.reps)
    print(markdown(results))
    s = results["summary"]
    print(f"raw/baseline {s['ratio_raw']:.2f} (target >= 0.8); "
          f"rebase-now/baseline {s['ratio_rebase_now']:.2f} (target >= 0.5)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
