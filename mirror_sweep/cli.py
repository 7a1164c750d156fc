"""Command-line tools beside the Hydra app: `mirror-aggregate SWEEP_DIR`."""

from __future__ import annotations

import argparse
import atexit
import gc
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from mirror_sweep import errors

if TYPE_CHECKING:
    from mirror_sweep.sweep.aggregate import Aggregate
    from mirror_sweep.sweep.prepass import Prepass

# The BLAS libraries' thread counts mirror-aggregate sets to 1 (unless the user set them).
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def one_blas_thread() -> None:
    """One BLAS thread for an aggregation process that has not loaded numpy yet.

    Aggregation's numpy work is many small array operations; a BLAS thread pool only spins on
    the other cores between them: ~0.3 s of the ~1.8 s of CPU of a cached pass at 10^4 runs on
    2 cores, time taken from whatever else runs there. It must be set before numpy loads its
    BLAS, so the heavy modules are imported after it (in the functions below); a process that has
    numpy already (a notebook, the tests) is left as it is, and a value the user set is kept.
    """
    if "numpy" not in sys.modules:
        for name in BLAS_THREAD_VARIABLES:
            os.environ.setdefault(name, "1")


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
    from mirror_sweep.sweep.ci import CI_METHODS, DEFAULT_CI

    parser = argparse.ArgumentParser(
        prog="mirror-aggregate",
        description="Aggregate a mirror-sweep sweep folder into tidy CSV tables: runs, units, "
                    "decoding, history, subset_decoding, ablation, robustness (cross-seed mean, "
                    "sd, CI), contrasts (seed-paired), failed and duplicates; then the claims "
                    "report and the figures.")
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
    parser.add_argument("--workers", type=count(1, "must be at least 1"),
                        default=min(2, os.cpu_count() or 1),
                        help="processes that verify runs in parallel (default: min(2, cores))")
    return parser


def print_summary(result: Aggregate) -> None:
    """Table sizes, failures, duplicates and where the files are."""
    sweep, out_dir = result.sweep, result.out
    n_dup = len(sweep.duplicates)
    errors.say(f"aggregated {sweep.path}: {len(sweep.runs)} complete runs, "
               f"{len(sweep.failed) - n_dup} failed or incomplete"
               f"{f', {n_dup} duplicates' if n_dup else ''} ({result.n_cached} unchanged runs "
               "not re-verified)")
    for name, (rows, columns) in result.shapes.items():
        errors.say(f"  {name + '.csv':<22} {rows:>7} rows x {columns} columns")
    errors.say(f"  {'robustness.csv':<22} per condition across seeds\n"
               f"  {'contrasts.csv':<22} seed-paired differences between conditions\n"
               f"  files: {out_dir}")
    if n_dup:
        errors.say(f"  {n_dup} duplicate runs (same config as an earlier run_id) counted once: "
                   f"see {out_dir / 'duplicates.csv'}")
    if len(sweep.failed) > n_dup:
        errors.say(f"  see {out_dir / 'failed.csv'} for the {len(sweep.failed) - n_dup} failed "
                   "runs' errors")


def aggregate_main(argv: list[str] | None = None) -> int:
    """`mirror-aggregate SWEEP_DIR`: exit codes of mirror_sweep.errors: 0 written, 1 no complete
    run, 2 a bad option or folder, 3 a file-system error (full disk, permission, read-only).
    A closed output pipe (`| head`) never stops the work."""
    one_blas_thread()
    errors.guard_stdout()
    # At exit, what is left (modules, the runs table) needs no cyclic collection: frozen, it is
    # spared the interpreter's final one (~0.1 s of a cached pass at 10^4 runs).
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)
    # In a process of its own (not a notebook or the tests), no collection while the modules
    # load: they create ~10^6 lasting objects, and the ~150 collections that triggers cost
    # ~30-50 ms; they are frozen once loaded (_aggregate), so later collections skip them.
    if "pandas" not in sys.modules:
        gc.disable()
    args = build_parser().parse_args(argv)
    # The job folders are found and checked in a child process while this one imports numpy,
    # pandas and scipy (sweep/prepass.py): forked now, before any of them (or a thread) is loaded.
    from mirror_sweep.sweep.prepass import Prepass, worth_forking

    prepass = Prepass.start(args.sweep_dir, args.out) if worth_forking() else None
    try:
        return _aggregate(args, prepass)
    except OSError as error:
        message = errors.filesystem_message(error)
        if message is None:
            raise
        print(f"mirror-aggregate: {message}", file=sys.stderr)
        return errors.EXIT_FILESYSTEM
    finally:
        if prepass is not None:
            prepass.close()


def _aggregate(args: argparse.Namespace, prepass: Prepass | None = None) -> int:
    from mirror_sweep.report.stats import headline_stats, report_tables
    from mirror_sweep.sweep import results, unit_r
    from mirror_sweep.sweep.aggregate import SweepError, aggregate_sweep, read_aggregate
    from mirror_sweep.sweep.jobs import output_dir
    from mirror_sweep.sweep.summaries import special

    if not gc.isenabled():  # (aggregate_main: the modules loaded)
        gc.freeze()
        gc.enable()

    # The claims read each unit's r: that of the last pass's units.csv is taken now, while the
    # pre-pass scans the sweep, and after the pass only the rows it appended (sweep/unit_r.py).
    earlier = unit_r.read_before(output_dir(args.sweep_dir, args.out)) if args.no_figures \
        else None
    try:  # the per-run tables are streamed to CSV; robustness is written below, with the claims'
        result = aggregate_sweep(args.sweep_dir, args.out, n_boot=args.n_boot, seed=args.seed,
                                 workers=args.workers, progress_every=0 if args.quiet else 100,
                                 summary=lambda runs: None, prepass=prepass,
                                 meanwhile=special)  # scipy.special imported while it scans
    except SweepError as error:
        print(f"mirror-aggregate: {error}", file=sys.stderr)
        return errors.EXIT_BAD_INPUT
    sweep, out_dir = result.sweep, result.out
    # Figures need the per-unit and per-decoder tables (read back from the CSVs); the claims only
    # each unit's r.
    if not sweep.runs.empty and not args.no_figures:
        sweep = read_aggregate(out_dir, sweep)
        units = sweep.units
    else:
        units = None
        if not sweep.runs.empty:
            now = unit_r.read_after(out_dir, earlier, result.kept_files.get("units"))
            unit_r.keep(out_dir, now)
            units = now.table
    # One bootstrap per aggregation: robustness.csv, the claims and the figures read this table.
    # The same for the seed-paired contrasts: contrasts.csv and the claims' paired rules.
    common = {"n_boot": args.n_boot, "seed": args.seed, "ci": args.ci, "units": units}
    stats, paired = report_tables(sweep.runs, **common)
    results.write_table(out_dir / "robustness.csv", headline_stats(stats))
    results.write_table(out_dir / "contrasts.csv", paired)
    print_summary(result)
    if not sweep.runs.empty:
        from mirror_sweep.report.write import write_report  # matplotlib only when reporting

        write_report(sweep, out_dir, figures=not args.no_figures, n_boot=args.n_boot,
                     seed=args.seed, stats=stats, paired=paired, ci=args.ci)
    if sweep.runs.empty:
        print(f"mirror-aggregate: no complete run in {sweep.path}", file=sys.stderr)
        return errors.EXIT_RUN_FAILED
    return errors.EXIT_OK


def main() -> None:
    """The `mirror-aggregate` command: aggregate_main, then out of the process at once.

    By then every file is written and closed and the child processes are reaped; the output
    streams are flushed here, and the interpreter's teardown (freeing ~10^6 objects: ~15-20 ms
    of a re-aggregation at 10^4 runs) is skipped (os._exit). An error aggregate_main raises
    ends the process as usual."""
    code = aggregate_main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more to say
            pass
    os._exit(code)


if __name__ == "__main__":
    main()
