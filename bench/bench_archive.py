"""Time the single-file archive (``.bundle.tar``) paths against openssl and directory pack.

    python bench/bench_archive.py bench/data/spans-1000000 bench/data/spans-3000000 \
        [--reps 5] [--json bench/results-archive.json]

bundlekit runs as ``python -m bundlekit`` with ``PYTHONPATH`` set to this
checkout (byte-compiled first), so the code measured is the code beside this
script, never an installed copy.  For each data set (bench/gen_data.py), one
untimed warm-up repetition, then ``--reps`` interleaved repetitions of:

  pack_dir        bundlekit pack INPUTS --out DIR --key KEY            (today's directory pack)
  pack_archive    bundlekit pack INPUTS --out A.bundle.tar --archive --key KEY
  openssl_file    openssl dgst -sha256 A.bundle.tar
  verify_file     bundlekit verify A.bundle.tar --key KEY.pub
  openssl_stdin   openssl dgst -sha256 < A.bundle.tar
  verify_stdin    bundlekit verify - --key KEY.pub < A.bundle.tar
  openssl_pipe    cat A.bundle.tar | openssl dgst -sha256
  verify_pipe     cat A.bundle.tar | bundlekit verify - --key KEY.pub
  deep            bundlekit verify --deep A.bundle.tar --key KEY.pub
  version         bundlekit --version

The verification steps run in reverse order on every other repetition, so
neither side of a ratio always runs first.  Medians are reported.  Peak RSS
is the child's own ``ru_maxrss`` from wait4; a pipeline's is bundlekit's.
wait4 does not see grandchildren it did not reap (deep's forkserver workers),
so during the untimed warm-up the whole process tree's RSS is also sampled
from /proc every 20 ms (``tree_rss_mb``: the largest sum seen).

Targets (issue 7), on the largest data set (>= 3M spans):

  (verify_file - version) / openssl_file   <= 0.8
  verify_stdin / openssl_stdin             <= 1.3   (as the issue words it: nothing subtracted)
  pack_archive / pack_dir                  <= 1.3
  deep / pack_archive                      <= 0.5
  peak RSS <= 256 MB, and flat: largest / smallest data set <= 1.15
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
_RSS_TO_MB = 1 / 1024 if sys.platform != "darwin" else 1 / (1024 * 1024)
_PAGE_MB = os.sysconf("SC_PAGE_SIZE") / (1024 * 1024) if hasattr(os, "sysconf") else 0.0

TARGETS = {
    "verify_file_ratio": 0.8,
    "verify_stdin_ratio": 1.3,
    "pack_archive_ratio": 1.3,
    "deep_ratio": 0.5,
    "peak_rss_mb": 256.0,
}
RSS_FLAT = 1.15
STEPS = (
    "pack_dir",
    "pack_archive",
    "openssl_file",
    "verify_file",
    "openssl_stdin",
    "verify_stdin",
    "openssl_pipe",
    "verify_pipe",
    "deep",
    "version",
)
BUNDLEKIT_STEPS = ("pack_dir", "pack_archive", "verify_file", "verify_stdin", "verify_pipe", "deep")


def _tree_rss_mb(root: int) -> float:
    """Sum of the RSS of ``root`` and all its descendants, from /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid and child not in tree:
                tree.add(child)
                frontier.append(child)
    total = 0.0
    for pid in tree:
        try:
            with open(f"/proc/{pid}/statm", "rb") as handle:
                total += int(handle.read().split()[1]) * _PAGE_MB
        except OSError:
            continue
    return total


class _TreeSampler:
    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.peak = 0.0
        self._pid = pid
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _tree_rss_mb(self._pid))
            self._stop.wait(self._interval)

    def close(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak


def run(
    cmd: Sequence[str],
    *,
    stdin_file: Path | None = None,
    pipe_from: Sequence[str] | None = None,
    env: dict[str, str] | None = None,
    sample_tree: bool = False,
) -> tuple[float, float, float | None]:
    """(wall seconds, peak RSS MB from wait4, sampled tree RSS MB or None) of one command.

    ``stdin_file`` redirects standard input from a file (``< FILE``);
    ``pipe_from`` runs that command with its output piped into ``cmd``
    (``A | B``); the time is until both have exited.
    """
    with tempfile.TemporaryFile() as err:
        stdin: Any = subprocess.DEVNULL
        opened = None
        began = time.perf_counter()
        feeder = None
        if stdin_file is not None:
            opened = open(stdin_file, "rb")  # noqa: SIM115 - closed below
            stdin = opened
        elif pipe_from is not None:
            feeder = subprocess.Popen(list(pipe_from), stdout=subprocess.PIPE)
            stdin = feeder.stdout
        proc = subprocess.Popen(
            list(cmd), stdin=stdin, stdout=subprocess.DEVNULL, stderr=err, env=env
        )
        if feeder is not None and feeder.stdout is not None:
            feeder.stdout.close()  # the reader holds the only read end now
        sampler = _TreeSampler(proc.pid) if sample_tree else None
        _, status, usage = os.wait4(proc.pid, 0)
        if feeder is not None:
            feeder.wait()
        seconds = time.perf_counter() - began
        tree = sampler.close() if sampler is not None else None
        if opened is not None:
            opened.close()
        code = os.waitstatus_to_exitcode(status)
        if code != 0 or (feeder is not None and feeder.returncode != 0):
            err.seek(0)
            message = err.read().decode(errors="replace")[-4000:]
            raise SystemExit(f"command failed ({code}): {shlex.join(cmd)}\n{message}")
    return seconds, usage.ru_maxrss * _RSS_TO_MB, tree


def benchmark(
    data: Path, reps: int, work: Path, bk: list[str], env: dict[str, str]
) -> dict[str, Any]:
    inputs = sorted(str(p) for p in data.glob("*.binpb"))
    if not inputs:
        raise SystemExit(f"no *.binpb files in {data}; see bench/gen_data.py")
    input_bytes = sum(Path(p).stat().st_size for p in inputs)
    key = work / "bench"
    if not key.with_suffix(".key").exists():
        run([*bk, "keygen", "--type", "ed25519", "--out", str(key), "--no-passphrase"], env=env)
    private, public = str(key.with_suffix(".key")), str(key.with_suffix(".pub"))
    directory, archive = work / "bundle", work / "bundle.bundle.tar"

    def step(name: str, sample: bool) -> tuple[float, float, float | None]:
        if name == "pack_dir":
            shutil.rmtree(directory, ignore_errors=True)
            return run(
                [*bk, "pack", *inputs, "--out", str(directory), "--key", private],
                env=env,
                sample_tree=sample,
            )
        if name == "pack_archive":
            archive.unlink(missing_ok=True)
            cmd = [*bk, "pack", *inputs, "--out", str(archive), "--archive", "--key", private]
            return run(cmd, env=env, sample_tree=sample)
        dgst = ["openssl", "dgst", "-sha256"]
        verify = [*bk, "verify", "-", "--key", public]
        if name == "openssl_file":
            return run([*dgst, str(archive)])
        if name == "openssl_stdin":
            return run(dgst, stdin_file=archive)
        if name == "openssl_pipe":
            return run(dgst, pipe_from=["cat", str(archive)])
        if name == "verify_file":
            return run([*bk, "verify", str(archive), "--key", public], env=env, sample_tree=sample)
        if name == "verify_stdin":
            return run(verify, stdin_file=archive, env=env, sample_tree=sample)
        if name == "verify_pipe":
            return run(verify, pipe_from=["cat", str(archive)], env=env, sample_tree=sample)
        if name == "deep":
            cmd = [*bk, "verify", "--deep", str(archive), "--key", public]
            return run(cmd, env=env, sample_tree=sample)
        if name == "version":
            return run([*bk, "--version"], env=env)
        raise AssertionError(name)

    seconds: dict[str, list[float]] = {name: [] for name in STEPS}
    rss: dict[str, list[float]] = {name: [] for name in STEPS}
    tree: dict[str, float] = {}
    archive_bytes = 0
    checks = STEPS[2:]
    for rep in range(reps + 1):  # repetition 0 warms caches and is not counted
        order = list(STEPS[:2]) + (list(checks) if rep % 2 == 0 else list(reversed(checks)))
        times = {}
        for name in order:
            wall, peak, sampled = step(name, sample=rep == 0)
            times[name] = wall
            if rep == 0:
                if sampled is not None:
                    tree[name] = sampled
                continue
            seconds[name].append(wall)
            rss[name].append(peak)
        if rep == 0:
            archive_bytes = archive.stat().st_size
            print(f"warm-up done: archive {archive_bytes / 1e6:,.1f} MB", flush=True)
            continue
        print(f"rep {rep}/{reps}: " + ", ".join(f"{n} {times[n]:.3f}" for n in STEPS), flush=True)

    med = {name: statistics.median(v) for name, v in seconds.items()}
    version = med["version"]
    peak = {name: max(rss[name]) for name in BUNDLEKIT_STEPS}
    results = {
        "verify_file_ratio": max(med["verify_file"] - version, 0.0) / med["openssl_file"],
        "verify_stdin_ratio": med["verify_stdin"] / med["openssl_stdin"],
        "pack_archive_ratio": med["pack_archive"] / med["pack_dir"],
        "deep_ratio": med["deep"] / med["pack_archive"],
        "peak_rss_mb": max([*peak.values(), *tree.values()]),
    }
    informative = {
        "verify_file_ratio_no_subtraction": med["verify_file"] / med["openssl_file"],
        "verify_stdin_ratio_version_subtracted": max(med["verify_stdin"] - version, 0.0)
        / med["openssl_stdin"],
        "verify_pipe_ratio": med["verify_pipe"] / med["openssl_pipe"],
        "verify_pipe_ratio_version_subtracted": max(med["verify_pipe"] - version, 0.0)
        / med["openssl_pipe"],
        "deep_ratio_vs_pack_dir": med["deep"] / med["pack_dir"],
    }
    dataset = data / "dataset.json"
    return {
        "data": str(data),
        "dataset": json.loads(dataset.read_text()) if dataset.exists() else None,
        "input_bytes": input_bytes,
        "archive_bytes": archive_bytes,
        "repetitions": reps,
        "median_seconds": med,
        "all_seconds": seconds,
        "peak_rss_mb": peak,
        "tree_rss_mb_warmup": tree,
        "results": results,
        "informative": informative,
        "pass": {name: results[name] <= TARGETS[name] for name in TARGETS},
    }


def print_report(report: dict[str, Any]) -> None:
    med, rss, tree = report["median_seconds"], report["peak_rss_mb"], report["tree_rss_mb_warmup"]
    print(
        f"\n{report['data']}: {report['input_bytes'] / 1e6:,.1f} MB of input, archive "
        f"{report['archive_bytes'] / 1e6:,.1f} MB, {report['repetitions']} repetitions (medians)\n"
    )
    print(f"{'step':<16}{'median s':>10}{'RSS MB':>9}{'tree MB':>9}")
    for name in STEPS:
        peak = f"{rss[name]:,.0f}" if name in rss else ""
        sampled = f"{tree[name]:,.0f}" if name in tree else ""
        print(f"{name:<16}{med[name]:>10.3f}{peak:>9}{sampled:>9}")
    print(f"\n{'check':<40}{'value':>8}{'target':>8}")
    for name, target in TARGETS.items():
        ok = "ok" if report["pass"][name] else "MISS"
        print(f"{name:<40}{report['results'][name]:>8.3f}{target:>8.2f}  {ok}")
    for name, value in report["informative"].items():
        print(f"{name:<40}{value:>8.3f}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, nargs="+", help="directories of *.binpb, smallest first")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None, help="also write the report here")
    parser.add_argument("--work", type=Path, default=None, help="scratch directory (default: temp)")
    args = parser.parse_args(argv)
    for tool in ("openssl", "cat"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed for the baselines")
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "bundlekit")], check=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    bk = [sys.executable, "-m", "bundlekit"]
    reports = []
    with tempfile.TemporaryDirectory(prefix="bundlekit-bench-archive-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for data in args.data:
            report = benchmark(data.resolve(), args.reps, work, bk, env)
            print_report(report)
            reports.append(report)
    flat = None
    if len(reports) > 1:
        small, large = reports[0], reports[-1]
        flat = {
            name: large["peak_rss_mb"][name] / small["peak_rss_mb"][name]
            for name in BUNDLEKIT_STEPS
        }
        print(f"\npeak RSS, largest / smallest data set (flat: <= {RSS_FLAT:.2f})")
        for name, ratio in flat.items():
            print(f"  {name:<14}{ratio:>7.2f}  {'ok' if ratio <= RSS_FLAT else 'MISS'}")
    out = {
        "git": subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            check=False,
            capture_output=True,
            text=True,
        ).stdout.strip(),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "commands": {
            "bundlekit": f"PYTHONPATH={ROOT} {shlex.join(bk)}",
            "pack_dir": "bundlekit pack INPUTS --out DIR --key KEY",
            "pack_archive": "bundlekit pack INPUTS --out A.bundle.tar --archive --key KEY",
            "openssl_file": "openssl dgst -sha256 A.bundle.tar",
            "verify_file": "bundlekit verify A.bundle.tar --key KEY.pub",
            "openssl_stdin": "openssl dgst -sha256 < A.bundle.tar",
            "verify_stdin": "bundlekit verify - --key KEY.pub < A.bundle.tar",
            "openssl_pipe": "cat A.bundle.tar | openssl dgst -sha256",
            "verify_pipe": "cat A.bundle.tar | bundlekit verify - --key KEY.pub",
            "deep": "bundlekit verify --deep A.bundle.tar --key KEY.pub",
            "version": "bundlekit --version",
        },
        "targets": TARGETS,
        "rss_flat_ratio_target": RSS_FLAT,
        "rss_flat_ratio": flat,
        "datasets": reports,
    }
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    ok = all(reports[-1]["pass"].values()) and (flat is None or max(flat.values()) <= RSS_FLAT)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
