"""Aggregation at cluster scale: `mirror-aggregate --no-figures` on synthetic sweeps.

Usage (repository root): python -m benchmarks.bench_aggregate [--runs 10000] [--rounds 3]
[--dir PATH] [--figures] (or `make bench-aggregate`). Writes a synthetic sweep of --runs job
folders (`mirror_sweep.sweep.synthetic`, activations for seed 0 only) and 1% more runs kept
aside, then runs `mirror-aggregate --no-figures --quiet` as a child process, each measured by its
wall time, CPU time and peak RSS (os.wait4's rusage of that child, its worker processes included):
a first full pass (not counted: it warms the page cache, and its output with the cache of --runs
runs is kept as the state every re-aggregation starts from); a pass where nothing changed; then
--rounds rounds, each a full pass with no verification cache and a re-aggregation after the 1%
new runs are moved in (from the kept state), so that both are measured at the same moments of a
shared machine whose speed drifts; the same sweep's first 10% as a smaller size to get per-run
costs; the aggregation stage alone (aggregate_sweep, n_boot=1) for both; with --figures, a pass
that also draws the figures. The re-aggregation's share of a full pass is the ratio of the
rounds' medians (also given per round).
Prints the targets with PASS/MISS and an estimate for 10^5 runs from the measured per-run costs.
Figures, not tests: the machine is shared, so wall times vary with its load (printed).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Self

from benchmarks.processes import compile_package
from mirror_sweep.sweep.synthetic import write_sweep

TARGET_WALL_S = 60.0  # 10^4 runs
TARGET_PEAK_MB = 1536.0
TARGET_REAGGREGATE = 0.10  # of a full pass, after 1% new runs


_STAGE = ("import sys; from mirror_sweep.sweep.aggregate import aggregate_sweep; "
          "aggregate_sweep(sys.argv[1], sys.argv[2], n_boot=1, workers=int(sys.argv[3]), "
          "progress_every=0)")


def measure(command: list[str]) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (user + system, its worker processes included) and peak RSS
    (MB, of the largest process) of a child process, from os.wait4's rusage."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{command} failed ({proc.returncode}):\n{stdout}\n{stderr}")
    if stdout:
        print(f"    {stdout.splitlines()[0]}")
    usage = proc.usage
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024  # KiB on Linux


class _Popen(subprocess.Popen):
    """Popen that keeps the rusage of its child (reaped with os.wait4)."""

    usage = None

    def _try_wait(self, wait_flags):
        try:
            pid, status, self.usage = os.wait4(self.pid, wait_flags)
        except ChildProcessError:
            pid, status = self.pid, 0
        return pid, status


subprocess.Popen = _Popen  # only in this benchmark's process


def aggregate(sweep: Path, out: Path, workers: int,
              figures: bool = False) -> tuple[float, float, float]:
    """`mirror-aggregate SWEEP --out OUT --no-figures --quiet --workers N` (claims included;
    figures=True: without --no-figures)."""
    return measure([sys.executable, "-m", "mirror_sweep.cli", str(sweep), "--out", str(out),
                    *([] if figures else ["--no-figures"]), "--quiet", "--workers", str(workers)])


def stage(sweep: Path, out: Path, workers: int) -> tuple[float, float, float]:
    """aggregate_sweep alone with n_boot=1: verification and tables, without the bootstrap."""
    return measure([sys.executable, "-c", _STAGE, str(sweep), str(out), str(workers)])


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def median(values: list[float]) -> float:
    return statistics.median(values)


def restore(snapshot: Path, out: Path) -> None:
    """`out` as the kept state: the aggregate of --runs runs with its caches."""
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(snapshot, out)


class NewRuns:
    """The 1% new runs, kept aside in their own folder and moved into the sweep for a
    re-aggregation (renamed: their files and folders' own stamps stay as written)."""

    def __init__(self, aside: Path, sweep: Path, ids: range) -> None:
        self.aside, self.sweep, self.ids = aside, sweep, ids

    def __enter__(self) -> Self:
        for i in self.ids:
            os.rename(self.aside / str(i), self.sweep / str(i))
        return self

    def __exit__(self, *exc) -> None:
        for i in self.ids:
            os.rename(self.sweep / str(i), self.aside / str(i))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000, help="runs of the sweep (10000)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of (full pass, re-aggregation) (3)")
    parser.add_argument("--dir", type=Path, default=None,
                        help="where to write the synthetic sweeps, kept and reused by the next "
                             "run (default: a temporary folder, removed at the end)")
    parser.add_argument("--workers", type=int, default=2, help="mirror-aggregate --workers (2)")
    parser.add_argument("--figures", action="store_true",
                        help="also time a pass with the figures (cache warm, nothing changed)")
    args = parser.parse_args(argv)
    compile_package()  # bytecode, as an installed package has
    base = args.dir or Path(tempfile.mkdtemp(prefix="bench-aggregate-"))
    n, small_n, new = args.runs, max(args.runs // 10, 1), max(args.runs // 100, 1)
    large, aside = base / "large", base / "new"
    new_ids = range(n, n + new)
    try:
        print(f"load average: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)")
        for name in ["small-out", "large-out", "stage-out", "kept", "re-out"]:
            shutil.rmtree(base / name, ignore_errors=True)
        for extra in new_ids:  # left in the sweep by an interrupted run of this benchmark
            if (large / str(extra)).exists() and (aside / str(extra)).exists():
                shutil.rmtree(large / str(extra))
            elif (large / str(extra)).exists():
                aside.mkdir(exist_ok=True)
                os.rename(large / str(extra), aside / str(extra))
        gen = None
        if (large / str(n - 1) / "status.json").exists():
            print(f"  reusing the {n} synthetic runs in {large}")
        else:
            start = time.perf_counter()
            write_sweep(large, n, activation_seeds=1)
            gen = time.perf_counter() - start
            print(f"  generated {n} synthetic runs in {gen:.1f} s ({gen / n * 1e3:.2f} ms/run)")
        if not (aside / str(n + new - 1) / "status.json").exists():
            write_sweep(aside, new, start=n, activation_seeds=1)
        if not (base / "small" / str(small_n - 1) / "status.json").exists():
            write_sweep(base / "small", small_n, activation_seeds=1)

        w = args.workers
        print(f"  full pass, {small_n} runs (no cache):")
        small = aggregate(base / "small", base / "small-out", w)
        print(f"  first full pass, {n} runs (warms the page cache; not counted):")
        first = aggregate(large, base / "kept", w)
        print(f"  again, {n} runs, nothing changed (cache):")
        restore(base / "kept", base / "re-out")
        same = aggregate(large, base / "re-out", w)
        fulls, agains = [], []
        for r in range(1, args.rounds + 1):
            shutil.rmtree(base / "large-out", ignore_errors=True)
            print(f"  round {r}: full pass, {n} runs (no cache):")
            fulls.append(aggregate(large, base / "large-out", w))
            restore(base / "kept", base / "re-out")
            with NewRuns(aside, large, new_ids):
                print(f"  round {r}: re-aggregation after {new} new runs (cache):")
                agains.append(aggregate(large, base / "re-out", w))
        print(f"  aggregation stage alone (n_boot=1), {n} runs (no cache):")
        stage_full = stage(large, base / "stage-out", w)
        restore(base / "kept", base / "stage-out")
        with NewRuns(aside, large, new_ids):
            print(f"  aggregation stage alone (n_boot=1) after {new} new runs (cache):")
            stage_again = stage(large, base / "stage-out", w)
            drawn = None
            if args.figures:
                print(f"  again, with the figures, {n + new} runs, nothing changed (cache):")
                drawn = aggregate(large, base / "re-out", w, figures=True)
    finally:
        if args.dir is None:
            shutil.rmtree(base, ignore_errors=True)

    wall, cpu = median([m[0] for m in fulls]), median([m[1] for m in fulls])
    rss = max(m[2] for m in [first, *fulls])
    full = (wall, cpu, rss)
    again = (median([m[0] for m in agains]), median([m[1] for m in agains]),
             max(m[2] for m in agains))
    small_wall, small_cpu, small_rss = small
    per_run_s = (wall - small_wall) / (n - small_n)
    per_run_cpu = (cpu - small_cpu) / (n - small_n)
    per_run_mb = max(rss - small_rss, 0.0) / (n - small_n)
    fixed_s, fixed_mb = wall - per_run_s * n, rss - per_run_mb * n
    est_wall, est_mb = fixed_s + per_run_s * 100_000, fixed_mb + per_run_mb * 100_000
    est_cpu = cpu - per_run_cpu * n + per_run_cpu * 100_000
    re_ratio, stage_ratio = again[0] / wall, stage_again[0] / stage_full[0]
    re_cpu_ratio = again[1] / cpu
    print(f"\naggregation of {n} synthetic runs (mirror-aggregate --no-figures, --workers {w}; "
          f"load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; medians of "
          f"{args.rounds} rounds):")

    def fmt(m: tuple[float, float, float]) -> str:
        return f"{m[0]:.1f} s wall, {m[1]:.1f} s CPU, {m[2]:.0f} MB"

    def each(measured: list[tuple[float, float, float]], digits: int) -> str:
        return " / ".join(f"{m[0]:.{digits}f}" for m in measured)

    rows = [
        (f"full pass, {n} runs", f"{wall:.1f} s", f"<= {TARGET_WALL_S:.0f} s",
         verdict(wall <= TARGET_WALL_S)),
        (f"peak RSS, {n} runs", f"{rss:.0f} MB", f"<= {TARGET_PEAK_MB:.0f} MB",
         verdict(rss <= TARGET_PEAK_MB)),
        (f"re-aggregation after {new} new runs", f"{again[0]:.2f} s = {re_ratio:.1%} of full",
         f"<= {TARGET_REAGGREGATE:.0%}", verdict(re_ratio <= TARGET_REAGGREGATE)),
        ("  the same in CPU time (user + system)",
         f"{again[1]:.2f} s = {re_cpu_ratio:.1%} of {cpu:.1f} s", f"<= {TARGET_REAGGREGATE:.0%}",
         verdict(re_cpu_ratio <= TARGET_REAGGREGATE)),
        ("  each round: re-aggregation / full pass",
         " / ".join(f"{a[0]:.2f}/{f[0]:.1f} s = {a[0] / f[0]:.1%}"
                    for a, f in zip(agains, fulls)), "", ""),
        ("  the same, aggregation stage alone",
         f"{stage_again[0]:.2f} s = {stage_ratio:.1%} of {stage_full[0]:.1f} s", "", ""),
        (f"full pass, {n} runs", f"{fmt(full)} (each: {each(fulls, 1)} s)", "", ""),
        ("  first full pass (not counted)", fmt(first), "", ""),
        ("re-aggregation", f"{fmt(again)} (each: {each(agains, 2)} s)", "", ""),
        ("again, nothing changed", fmt(same), "", ""),
        (f"stage alone, {n} runs / after new runs", f"{fmt(stage_full)} / {fmt(stage_again)}",
         "", ""),
        (f"full pass, {small_n} runs", fmt(small), "", ""),
        ("per run (difference of the two sizes)",
         (f"{per_run_s * 1e3:.2f} ms wall, {per_run_cpu * 1e3:.2f} ms CPU, "
          f"{per_run_mb * 1e3:.1f} kB"), "", ""),
        ("estimate, 10^5 runs (fixed + per-run x 10^5)",
         f"{est_wall:.0f} s wall, {est_cpu:.0f} s CPU, {est_mb:.0f} MB", "", ""),
        *([("with figures, nothing changed", (f"{fmt(drawn)} (figures: "
             f"{drawn[0] - again[0]:.1f} s wall, {drawn[1] - again[1]:.1f} s CPU)"), "", "")]
          if drawn is not None else []),
        (f"generating {n} synthetic runs", "reused" if gen is None else f"{gen:.1f} s", "", ""),
    ]
    width = max(len(row[0]) for row in rows)
    for name, value, target, mark in rows:
        print(f"  {name:<{width}}  {value:<50} {target:<9} {mark}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
