"""Time bundlekit pack/verify against tar+zstd+openssl baselines on one data set.

    python bench/bench_pack_verify.py bench/data/spans-1000000 [--reps 5] [--json out.json]

Each repetition runs, in this order:

  baseline pack    tar -I 'zstd -3 -T2' -cf OUT.tar.zst INPUTS ; openssl dgst -sha256 INPUTS
  pack             bundlekit pack INPUTS --out BUNDLE --key KEY
  baseline verify  openssl dgst -sha256 <every file of BUNDLE>
  verify           bundlekit verify BUNDLE --key KEY.pub
  version          bundlekit --version

One untimed warm-up repetition runs first (the page cache cannot be dropped
without root, so every measurement is a warm-cache one); the report gives
medians, peak RSS of each bundlekit command (from wait4, the child's own
rusage) and the ratios checked against the targets:

  pack <= 1.25 x baseline pack
  verify - version <= 1.15 x baseline verify
  version <= 0.2 s
  peak RSS <= 256 MB (pack and verify)
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
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TARGETS = {
    "pack_ratio": 1.25,
    "verify_ratio": 1.15,
    "version_seconds": 0.2,
    "peak_rss_mb": 256.0,
}
#: ru_maxrss is in KiB on Linux and in bytes on macOS.
_RSS_TO_MB = 1 / 1024 if sys.platform != "darwin" else 1 / (1024 * 1024)


@dataclass
class Sample:
    seconds: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)

    def add(self, seconds: float, rss_mb: float) -> None:
        self.seconds.append(seconds)
        self.rss_mb.append(rss_mb)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def peak_rss(self) -> float:
        return max(self.rss_mb)


def run(cmd: Sequence[str], *, cwd: Path | None = None) -> tuple[float, float]:
    """Run ``cmd``; return (wall seconds, peak RSS of the process tree in MB).

    os.wait4 gives the child's own rusage, so no /usr/bin/time process is
    timed along with it and the RSS is that command's, not the harness's.
    """
    with tempfile.TemporaryFile() as err:
        began = time.perf_counter()
        proc = subprocess.Popen(list(cmd), cwd=cwd, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - began
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            message = err.read().decode(errors="replace")[-4000:]
            raise SystemExit(f"command failed ({proc.returncode}): {shlex.join(cmd)}\n{message}")
    return seconds, usage.ru_maxrss * _RSS_TO_MB


def files_under(root: Path) -> list[str]:
    return sorted(str(p) for p in root.rglob("*") if p.is_file())


def bundlekit_command(spec: str | None) -> list[str]:
    if spec:
        return shlex.split(spec)
    found = shutil.which("bundlekit")
    return [found] if found else [sys.executable, "-m", "bundlekit"]


def benchmark(data: Path, reps: int, work: Path, bk: list[str], threads: int) -> dict[str, Any]:
    inputs = sorted(p.name for p in data.glob("*.binpb"))
    if not inputs:
        raise SystemExit(f"no *.binpb files in {data}; see bench/gen_data.py")
    input_bytes = sum((data / name).stat().st_size for name in inputs)
    absolute = [str(data / name) for name in inputs]
    key = work / "bench"
    if not key.with_suffix(".key").exists():
        run([*bk, "keygen", "--type", "ed25519", "--out", str(key), "--no-passphrase"])
    private, public = str(key.with_suffix(".key")), str(key.with_suffix(".pub"))
    tarball, bundle = work / "baseline.tar.zst", work / "bundle"

    names = ["baseline_pack", "pack", "baseline_verify", "verify", "version"]
    samples = {name: Sample() for name in names}
    bundle_bytes = tar_bytes = 0
    for rep in range(reps + 1):  # repetition 0 warms caches and is not counted
        tarball.unlink(missing_ok=True)
        shutil.rmtree(bundle, ignore_errors=True)
        tar_s, _ = run(
            ["tar", "-I", f"zstd -3 -T{threads}", "-cf", str(tarball), "-C", str(data), *inputs]
        )
        dgst_s, _ = run(["openssl", "dgst", "-sha256", *absolute])
        pack = run([*bk, "pack", *absolute, "--out", str(bundle), "--key", private])
        bundle_files = files_under(bundle)
        base_verify = run(["openssl", "dgst", "-sha256", *bundle_files])
        verify = run([*bk, "verify", str(bundle), "--key", public])
        version = run([*bk, "--version"])
        if rep == 0:
            bundle_bytes = sum(Path(f).stat().st_size for f in bundle_files)
            tar_bytes = tarball.stat().st_size
            print(
                f"warm-up done: bundle {bundle_bytes / 1e6:,.1f} MB in {len(bundle_files)} "
                f"files, tar.zst {tar_bytes / 1e6:,.1f} MB",
                flush=True,
            )
            continue
        samples["baseline_pack"].add(tar_s + dgst_s, 0.0)
        samples["pack"].add(*pack)
        samples["baseline_verify"].add(*base_verify)
        samples["verify"].add(*verify)
        samples["version"].add(*version)
        print(
            f"rep {rep}/{reps}: pack {pack[0]:.2f} s (baseline {tar_s + dgst_s:.2f} s), "
            f"verify {verify[0]:.2f} s (baseline {base_verify[0]:.2f} s), "
            f"--version {version[0]:.3f} s",
            flush=True,
        )

    med = {name: s.median for name, s in samples.items()}
    version_s = med["version"]
    results = {
        "pack_ratio": med["pack"] / med["baseline_pack"],
        "verify_ratio": max(med["verify"] - version_s, 0.0) / med["baseline_verify"],
        "version_seconds": version_s,
        "peak_rss_mb": max(samples["pack"].peak_rss, samples["verify"].peak_rss),
    }
    dataset = data / "dataset.json"
    return {
        "data": str(data),
        "dataset": json.loads(dataset.read_text()) if dataset.exists() else None,
        "input_bytes": input_bytes,
        "bundle_bytes": bundle_bytes,
        "baseline_tar_zst_bytes": tar_bytes,
        "repetitions": reps,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "commands": {
            "baseline_pack": f"tar -I 'zstd -3 -T{threads}' -cf OUT.tar.zst INPUTS && "
            "openssl dgst -sha256 INPUTS",
            "pack": f"{shlex.join(bk)} pack INPUTS --out BUNDLE --key KEY",
            "baseline_verify": "openssl dgst -sha256 BUNDLE/**",
            "verify": f"{shlex.join(bk)} verify BUNDLE --key KEY.pub",
            "version": f"{shlex.join(bk)} --version",
        },
        "median_seconds": med,
        "all_seconds": {name: s.seconds for name, s in samples.items()},
        "peak_rss_mb": {name: samples[name].peak_rss for name in ("pack", "verify", "version")},
        "results": results,
        "targets": TARGETS,
        "pass": {name: results[name] <= TARGETS[name] for name in TARGETS},
    }


def print_report(report: dict[str, Any]) -> None:
    med, rss = report["median_seconds"], report["peak_rss_mb"]
    mb = report["input_bytes"] / 1e6
    bundle_mb = report["bundle_bytes"] / 1e6
    print(
        f"\n{report['data']}: {mb:,.1f} MB of input, bundle {bundle_mb:,.1f} MB, "
        f"{report['repetitions']} repetitions (medians, warm cache)\n"
    )
    print(
        f"{'step':<18}{'median s':>10}{'MB/s':>10}{'peak RSS MB':>13}   (MB/s: pack of "
        "input, verify of bundle)"
    )
    for name in ("baseline_pack", "pack", "baseline_verify", "verify", "version"):
        size = mb if "pack" in name else bundle_mb
        rate = f"{size / med[name]:,.0f}" if name != "version" else ""
        peak = f"{rss[name]:,.0f}" if name in rss else ""
        print(f"{name:<18}{med[name]:>10.3f}{rate:>10}{peak:>13}")
    results, targets, passed = report["results"], report["targets"], report["pass"]
    print(f"\n{'check':<18}{'value':>10}{'target':>10}{'':>8}")
    for name, target in targets.items():
        print(
            f"{name:<18}{results[name]:>10.3f}{target:>10.2f}{'ok' if passed[name] else 'MISS':>8}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="directory of *.binpb (bench/gen_data.py)")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None, help="also write the report here")
    parser.add_argument(
        "--work",
        type=Path,
        default=None,
        help="scratch directory for bundles and keys (default: a temp dir)",
    )
    parser.add_argument(
        "--bundlekit", default=None, help="command to run bundlekit (default: bundlekit on PATH)"
    )
    parser.add_argument("--zstd-threads", type=int, default=2)
    args = parser.parse_args(argv)
    for tool in ("tar", "zstd", "openssl"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed for the baselines")
    bk = bundlekit_command(args.bundlekit)
    # An installed package is byte-compiled by pip; an editable checkout run with
    # PYTHONDONTWRITEBYTECODE=1 would otherwise recompile every module on each run.
    import bundlekit

    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(Path(bundlekit.__file__).parent)], check=True
    )
    with tempfile.TemporaryDirectory(prefix="bundlekit-bench-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        report = benchmark(args.data.resolve(), args.reps, work, bk, args.zstd_threads)
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0 if all(report["pass"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
