"""Command-line tools beside the Hydra app: `mirror-aggregate SWEEP_DIR`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mirror_sweep import errors
from mirror_sweep.report.stats import headline_stats, report_contrasts, report_stats
from mirror_sweep.sweep.aggregate import Sweep, SweepError, load_sweep, write_aggregate
from mirror_sweep.sweep.summaries import CI_METHODS, DEFAULT_CI


def count(low: int, what: str):
    """An argparse type: an integer >= low (a one-line usage error otherwise)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value}: {what}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mirror-aggregate",
        description="Aggregate a mirror-sweep sweep folder into tidy CSV tables: runs, units, "
                    "decoding, history, robustness (cross-seed mean, sd, CI), contrasts (seed-paired "
                    "differences between conditions) and failed.")
    parser.add_argument("sweep_dir", type=Path, help="a sweep folder (or a single run's folder)")
    parser.add_argument("--out", type=Path, default=None,
                        help="where to write the tables (default: SWEEP_DIR/aggregate)")
    parser.add_argument("--n-boot", type=count(1, "must be at least 1"), default=10_000,
                        help="bootstrap resamples for bca/percentile CIs (default: 10000)")
    parser.add_argument("--ci", choices=CI_METHODS, default=DEFAULT_CI,
                        help="CI of an across-seed mean: t (Student t), bca or percentile "
                             f"(bootstrap) (default: {DEFAULT_CI})")
    parser.add_argument("--seed", type=count(0, "must be >= 0"), default=0,
                        help="seed of the bootstrap (default: 0)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on large sweeps")
    parser.add_argument("--no-figures", action="store_true",
                        help="write the claims report but skip the figures (faster)")
    return parser


def print_summary(sweep: Sweep, out_dir: Path) -> None:
    """Table sizes, failures and where the files are."""
    errors.say(f"aggregated {sweep.path}: {len(sweep.runs)} complete runs, "
               f"{len(sweep.failed)} failed or incomplete")
    for name in ["runs", "units", "decoding", "history", "failed"]:
        table = getattr(sweep, name)
        errors.say(f"  {name + '.csv':<16} {len(table):>7} rows x {table.shape[1]} columns")
    errors.say(f"  robustness.csv   per condition across seeds\n"
               f"  contrasts.csv    seed-paired differences between conditions\n  files: {out_dir}")
    if len(sweep.failed):
        errors.say(f"  see {out_dir / 'failed.csv'} for the {len(sweep.failed)} failed runs' "
                   "errors")


def aggregate_main(argv: list[str] | None = None) -> int:
    """`mirror-aggregate SWEEP_DIR`: exit codes of mirror_sweep.errors: 0 written, 1 no complete
    run, 2 a bad option or folder, 3 a file-system error (full disk, permission, read-only).
    A closed output pipe (`| head`) never stops the work."""
    errors.guard_stdout()
    args = build_parser().parse_args(argv)
    try:
        return _aggregate(args)
    except OSError as error:
        message = errors.filesystem_message(error)
        if message is None:
            raise
        print(f"mirror-aggregate: {message}", file=sys.stderr)
        return errors.EXIT_FILESYSTEM


def _aggregate(args: argparse.Namespace) -> int:
    try:
        sweep = load_sweep(args.sweep_dir, progress_every=0 if args.quiet else 100)
    except SweepError as error:
        print(f"mirror-aggregate: {error}", file=sys.stderr)
        return errors.EXIT_BAD_INPUT
    # One bootstrap per aggregation: robustness.csv, the claims and the figures read this table.
    # The same for the seed-paired contrasts: contrasts.csv and the claims' paired rules.
    common = {"n_boot": args.n_boot, "seed": args.seed, "ci": args.ci, "units": sweep.units}
    stats = report_stats(sweep.runs, **common)
    paired = report_contrasts(sweep.runs, **common)
    out_dir = write_aggregate(sweep, args.out, n_boot=args.n_boot, seed=args.seed,
                              ci=args.ci, summary=headline_stats(stats), paired=paired)
    print_summary(sweep, out_dir)
    if not sweep.runs.empty:
        from mirror_sweep.report.write import write_report  # matplotlib only when reporting

        write_report(sweep, out_dir, figures=not args.no_figures, stats=stats, paired=paired)
    if sweep.runs.empty:
        print(f"mirror-aggregate: no complete run in {sweep.path}", file=sys.stderr)
        return errors.EXIT_RUN_FAILED
    return errors.EXIT_OK


if __name__ == "__main__":
    sys.exit(aggregate_main())
