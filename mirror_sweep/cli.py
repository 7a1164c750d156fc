"""Command-line tools beside the Hydra app: `mirror-aggregate SWEEP_DIR`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from mirror_sweep.report.stats import headline_stats, report_stats
from mirror_sweep.sweep.aggregate import Aggregate, SweepError, aggregate_sweep, read_aggregate


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mirror-aggregate",
        description="Aggregate a mirror-sweep sweep folder into tidy CSV tables: runs, units, "
                    "decoding, history, robustness (cross-seed mean, sd, bootstrap CI) and failed.")
    parser.add_argument("sweep_dir", type=Path, help="a sweep folder (or a single run's folder)")
    parser.add_argument("--out", type=Path, default=None,
                        help="where to write the tables (default: SWEEP_DIR/aggregate)")
    parser.add_argument("--n-boot", type=int, default=10_000,
                        help="bootstrap resamples for the 95%% CIs (default: 10000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default: 0)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on large sweeps")
    parser.add_argument("--no-figures", action="store_true",
                        help="write the claims report but skip the figures (faster)")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                        help="processes that verify runs in parallel (default: min(2, cores))")
    return parser


def print_summary(result: Aggregate) -> None:
    """Table sizes, failures, duplicates and where the files are."""
    sweep, out_dir = result.sweep, result.out
    n_dup = len(sweep.duplicates)
    print(f"aggregated {sweep.path}: {len(sweep.runs)} complete runs, "
          f"{len(sweep.failed) - n_dup} failed or incomplete"
          f"{f', {n_dup} duplicates' if n_dup else ''} ({result.n_cached} unchanged runs "
          "not re-verified)")
    for name in ["runs", "units", "decoding", "history", "failed", "duplicates"]:
        rows, columns = result.shapes[name]
        print(f"  {name + '.csv':<16} {rows:>7} rows x {columns} columns")
    print(f"  robustness.csv   per condition across seeds\n  files: {out_dir}")
    if n_dup:
        print(f"  {n_dup} duplicate runs (same config as an earlier run_id) counted once: see "
              f"{out_dir / 'duplicates.csv'}")
    if len(sweep.failed) > n_dup:
        print(f"  see {out_dir / 'failed.csv'} for the {len(sweep.failed) - n_dup} failed runs' "
              "errors")


def aggregate_main(argv: list[str] | None = None) -> int:
    """`mirror-aggregate SWEEP_DIR`: 0 on success, 1 if no run is complete, 2 on a bad folder."""
    args = build_parser().parse_args(argv)
    # One bootstrap per aggregation: robustness.csv, the claims and the figures read this table.
    stats = {}

    def summarise(runs):
        stats["table"] = report_stats(runs, n_boot=args.n_boot, seed=args.seed)
        return headline_stats(stats["table"])

    try:
        result = aggregate_sweep(args.sweep_dir, args.out, n_boot=args.n_boot, seed=args.seed,
                                 workers=max(1, args.workers),
                                 progress_every=0 if args.quiet else 100, summary=summarise)
    except SweepError as error:
        print(f"mirror-aggregate: {error}", file=sys.stderr)
        return 2
    sweep, out_dir = result.sweep, result.out
    print_summary(result)
    # The figures and claims stage reads `sweep` and writes into `out_dir`; claims need only the
    # runs table, figures the per-unit and per-decoder tables too (read back from the CSVs).
    if not sweep.runs.empty:
        from mirror_sweep.report.write import write_report  # matplotlib only when reporting

        if not args.no_figures:
            sweep = read_aggregate(out_dir, sweep)
        write_report(sweep, out_dir, figures=not args.no_figures, stats=stats["table"])
    if sweep.runs.empty:
        print(f"mirror-aggregate: no complete run in {sweep.path}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(aggregate_main())
