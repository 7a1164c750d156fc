"""mirror-sweep's performance benchmark: prints a table and writes benchmarks/RESULTS.md.

Usage (from the repository root): python -m benchmarks.run [--quick] [--out PATH]

Sections: the default run's phases; training FLOP/s against this machine's matmul rate; analysis
against a naive scipy permutation test (benchmarks/bench_analysis.py); a sweep of small jobs on
the basic vs the joblib launcher; scaling with hidden size and training-set size; 1 vs 2 torch
threads. Targets are printed as PASS/MISS beside the ratios measured in this one run; they are
figures to read, not tests. A full run takes a few minutes on 2 cores; --quick about one.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from threadpoolctl import threadpool_limits

from benchmarks import flops, sweep
from benchmarks.bench_analysis import time_analysis
from mirror_sweep.config import CONFIG_DIR, RunConfig, to_run_config
from mirror_sweep.run.experiment import RunSeeds, build_model, make_data, run_experiment
from mirror_sweep.run.threads import available_cores
from mirror_sweep.run.train import train
from mirror_sweep.sweep import results

RESULTS_MD = Path(__file__).resolve().parent / "RESULTS.md"
GENERATED_START, GENERATED_END = "<!-- generated:start -->", "<!-- generated:end -->"
# The sweeps' jobs, by name: (overrides, description). "tiny" jobs compute ~0.5 s each, so the
# launcher's fixed costs dominate; "small" jobs ~2 s (default analysis, a fifth of the training).
_JOB_COMMON = ["train.progress=false", "output.save_activations=false"]
SWEEP_JOBS = {
    "tiny": (["model.hidden_size=64", "data.n_train=600", "data.n_test=100", "train.epochs=4",
              "analysis.n_permutations=2000", "analysis.decoding_null_permutations=50",
              *_JOB_COMMON], "H=64, 600 seq x 4 epochs, 2,000 permutations"),
    "small": (["data.n_train=1000", "train.epochs=4", *_JOB_COMMON],
              "H=96, 1,000 seq x 4 epochs, default analysis"),
    "quick": (["model.hidden_size=32", "data.n_train=200", "data.n_test=40", "train.epochs=2",
               "analysis.n_permutations=500", "analysis.decoding_null_permutations=10",
               *_JOB_COMMON], "H=32, 200 seq x 2 epochs, 500 permutations"),
}


@dataclass
class Row:
    section: str
    name: str
    value: float | str
    unit: str = ""
    target: str = ""
    status: str = ""


def compose_run_config(overrides: list[str] | None = None) -> RunConfig:
    """The validated RunConfig of conf/config.yaml with these overrides (progress off)."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=["train.progress=false", *(overrides or [])])
    return to_run_config(cfg)


def threads_label(threads: int) -> str:
    return f"{threads} thread{'s' * (threads != 1)}"


def check(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def bench_default_run(threads: int) -> tuple[list[Row], dict]:
    """The default experiment (mirror-sweep with no overrides), timed per phase, on `threads`."""
    cfg = compose_run_config()
    torch.set_num_threads(threads)
    with threadpool_limits(limits=threads):
        result = run_experiment(cfg)
    tables = {results.UNITS_FILE: result.units, results.DECODING_FILE: result.decoding,
              results.HISTORY_FILE: result.history}
    with tempfile.TemporaryDirectory(prefix="bench-run-") as folder:
        start = time.perf_counter()
        results.write_run(Path(folder), result.summary, tables, result.activations, "benchmark")
        writing = time.perf_counter() - start
    s = result.summary
    phases = {"data": s["time_data_s"], "training": s["time_train_s"],
              "analysis": s["time_analysis_s"], "writing": writing}
    section = f"default run ({threads_label(threads)})"
    rows = [Row(section, f"{name} phase", value, "s") for name, value in phases.items()]
    rows.append(Row(section, "total", sum(phases.values()), "s"))
    ratio = phases["analysis"] / phases["training"]
    rows.append(Row(section, "analysis / training", ratio, "", "<= 0.10", check(ratio <= 0.10)))
    rows.append(Row(section, "final test observe accuracy (sanity)",
                    s["final_test_observe_accuracy"], ""))
    return rows, {"cfg": cfg, **phases}


def time_training(cfg: RunConfig, threads: int) -> float:
    """Wall seconds of train() alone (data and model built first, not timed) on `threads`."""
    seeds = RunSeeds.from_seed(cfg.seed)
    train_set, test_set = make_data(cfg, seeds)
    model = build_model(cfg, seeds.init)
    generator = torch.Generator().manual_seed(seeds.batches)
    torch.set_num_threads(threads)
    with threadpool_limits(limits=threads):
        start = time.perf_counter()
        train(model, train_set, test_set, cfg.train, cfg.objective, generator)
        return time.perf_counter() - start


def training_rows(section: str, cfg: RunConfig, counted: float, seconds: float, threads: int,
                  square_size: int) -> list[Row]:
    """`counted` FLOPs in `seconds` as GFLOP/s, beside torch.mm on the same threads."""
    achieved = counted / seconds / 1e9
    same_shape = flops.gemm_rate(flops.gru_gemm_shapes(cfg), threads)
    square = flops.gemm_rate([(square_size,) * 3 + (1,)], threads)
    return [
        Row(section, "achieved (matmul FLOPs counted from shapes / wall time)", achieved,
            "GFLOP/s"),
        Row(section, "torch.mm at the GRU's step shapes", same_shape, "GFLOP/s"),
        Row(section, f"torch.mm {square_size}^3", square, "GFLOP/s"),
        Row(section, "efficiency vs same-shape GEMM", achieved / same_shape, "",
            ">= 0.50", check(achieved / same_shape >= 0.5)),
        Row(section, "efficiency vs large-GEMM peak", achieved / square, "",
            ">= 0.50", check(achieved / square >= 0.5)),
    ]


def bench_efficiency(default: dict, threads: int, quick: bool) -> list[Row]:
    """Training FLOP/s: the default run's training phase (one shot), and train() at the default
    size on 1 and 2 threads (best of a few; the per-epoch work is the default run's)."""
    square = 1024 if quick else 2048
    cfg = default["cfg"]
    phase_flops = flops.training_phase_flops(cfg)["training_phase"]
    section = f"default run's training phase ({threads_label(threads)}, one shot)"
    rows = [Row(section, "matmul FLOPs counted from shapes", phase_flops / 1e9, "GFLOP")]
    rows += training_rows(section, cfg, phase_flops, default["training"], threads, square)
    epochs, repeats = (2, 2) if quick else (4, 2)
    cfg = compose_run_config([f"train.epochs={epochs}"])
    time_training(compose_run_config(["train.epochs=1", "data.n_train=256"]), 1)  # warm-up
    best = {}
    for n_threads in (1, 2):
        best[n_threads] = min(time_training(cfg, n_threads) for _ in range(repeats))
        section = (f"train() at default size, {epochs} epochs, {threads_label(n_threads)} "
                   f"(best of {repeats})")
        rows.append(Row(section, "wall", best[n_threads], "s"))
        counted = flops.training_phase_flops(cfg)["train_loop"]
        rows += training_rows(section, cfg, counted, best[n_threads], n_threads, square)
    rows.append(Row("torch threads", "train() speed-up of 2 threads over 1 (best of each)",
                    best[1] / best[2], "x"))
    return rows


def bench_analysis(quick: bool) -> list[Row]:
    """benchmarks/bench_analysis.time_analysis at the paper's sizes."""
    timing = time_analysis(naive_units=2 if quick else 8, repeats=1 if quick else 3)
    section = "analysis (N=300, T=12, H=96, 10,000 permutations)"
    return [
        Row(section, "analyze_activations (all stages)", timing["analysis_s"], "s"),
        Row(section, f"naive scipy permutation_test, {timing['naive_units']} units measured",
            timing["naive_measured_s"], "s"),
        Row(section, "naive, extrapolated to 96 units", timing["naive_extrapolated_s"], "s"),
        Row(section, "speed-up over naive", timing["speedup"], "x"),
    ]


def bench_sweep(job: str, n_jobs: int = 8, workers: int = 2) -> list[Row]:
    """n_jobs seeds of one job size on the basic launcher and on joblib (`workers` processes)."""
    overrides, description = SWEEP_JOBS[job]
    basic = sweep.run_sweep("basic", n_jobs, overrides)
    joblib = sweep.run_sweep("joblib", n_jobs, overrides)
    section = f"sweep of {n_jobs} {job} jobs ({description})"
    ratio = basic["wall_s"] / joblib["wall_s"]
    overhead_joblib = sweep.per_job_overhead(joblib, workers)
    threads, cores = max(joblib["torch_threads"]), available_cores()
    rows = [
        Row(section, "basic launcher: wall", basic["wall_s"], "s"),
        Row(section, "basic: jobs' own compute (sum)", basic["compute_s"], "s"),
        Row(section, "basic: torch threads per job", str(basic["torch_threads"])),
        Row(section, f"joblib launcher ({workers} workers): wall", joblib["wall_s"], "s"),
        Row(section, "joblib: jobs' own compute (sum)", joblib["compute_s"], "s"),
        Row(section, "joblib: torch threads per job", str(joblib["torch_threads"])),
        Row(section, "throughput joblib / basic", ratio, "x", ">= 1.7", check(ratio >= 1.7)),
        Row(section, "per-job overhead, basic (one process)", sweep.per_job_overhead(basic, 1),
            "s"),
        Row(section, "per-job overhead, joblib (worker reuse)", overhead_joblib, "s",
            "<= 1.0", check(overhead_joblib <= 1.0)),
        Row(section, f"joblib workers x threads <= {cores} cores", f"{workers} x {threads}",
            "", "no oversubscription", check(workers * threads <= cores)),
    ]
    if job != "small":  # twice the jobs on joblib: what each job beyond the workers' start costs
        longer = sweep.run_sweep("joblib", 2 * n_jobs, overrides)
        # (16 jobs' total overhead - 8 jobs' total) / 8 = 2 o_16 - o_8
        marginal = 2 * sweep.per_job_overhead(longer, workers) - overhead_joblib
        rows.append(Row(section, f"joblib, {2 * n_jobs} jobs: wall", longer["wall_s"], "s"))
        rows.append(Row(section, f"marginal per-job overhead, joblib (jobs {n_jobs + 1}-"
                        f"{2 * n_jobs})", marginal, "s", "<= 1.0", check(marginal <= 1.0)))
    if basic["n_complete"] != n_jobs or joblib["n_complete"] != n_jobs:
        rows.append(Row(section, "WARNING: incomplete jobs",
                        f"{basic['n_complete']}, {joblib['n_complete']} of {n_jobs}"))
    return rows


def bench_startup(quick: bool) -> list[Row]:
    """What every job process pays before it computes: interpreter, imports, composition."""
    return [Row("start-up (best of runs)", name.removesuffix("_s"), value, "s")
            for name, value in sweep.startup_times(1 if quick else 2).items()]


def bench_scaling(threads: int, quick: bool) -> list[Row]:
    """train() time against hidden size (512 sequences, 1 epoch) and training-set size (H=96).

    Best of 2 each; run on `threads` (1 by default: its timings stay stable when other processes
    share the machine, where 2-thread timings can jump tenfold).
    """
    rows = []
    hidden_sizes = [16, 32, 64, 96, 128, 256] if quick else [16, 32, 64, 96, 128, 256, 512]
    section = f"scaling: hidden size (512 sequences, 1 epoch, {threads_label(threads)})"
    for h in hidden_sizes:
        cfg = compose_run_config([f"model.hidden_size={h}", "data.n_train=512", "train.epochs=1"])
        seconds = min(time_training(cfg, threads) for _ in range(2))
        rate = flops.training_phase_flops(cfg)["train_loop"] / seconds / 1e9
        rows.append(Row(section, f"H={h}", seconds, "s", "", f"{rate:.1f} GFLOP/s"))
    sizes = [250, 1000, 4000] if quick else [250, 500, 1000, 2000, 4000]
    section = f"scaling: training sequences (H=96, 2 epochs, {threads_label(threads)})"
    for n in sizes:
        cfg = compose_run_config([f"data.n_train={n}", "train.epochs=2"])
        seconds = min(time_training(cfg, threads) for _ in range(2))
        rows.append(Row(section, f"n_train={n}", seconds, "s", "",
                        f"{seconds / n * 1000:.2f} s per 1000 seq"))
    return rows


def format_value(value: float | str) -> str:
    if isinstance(value, str):
        return value
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def render_table(rows: list[Row]) -> str:
    """A markdown table, one block per section."""
    lines = ["| section | measurement | value | unit | target | status |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row.section} | {row.name} | {format_value(row.value)} | {row.unit} | "
                     f"{row.target} | {row.status} |")
    return "\n".join(lines)


def machine_notes(load_before: tuple, load_after: tuple, seconds: float, quick: bool) -> str:
    return (f"{'Quick' if quick else 'Full'} run of {datetime.datetime.now():%Y-%m-%d %H:%M}, "
            f"{seconds:.0f} s. torch {torch.__version__}, Python {platform.python_version()}, "
            f"{available_cores()} cores ({platform.processor() or platform.machine()}). "
            f"Load average (1 min) before / after: {load_before[0]:.2f} / {load_after[0]:.2f} "
            "(other processes on this machine slow every figure, 2-thread ones most).")


def write_results(path: Path, table: str, notes: str) -> None:
    """Replace the generated block of RESULTS.md, keeping the hand-written text around it."""
    block = f"{GENERATED_START}\n{notes}\n\n{table}\n{GENERATED_END}"
    text = path.read_text() if path.exists() else f"# Benchmark results\n\n{GENERATED_START}\n" \
        f"{GENERATED_END}\n"
    head, _, rest = text.partition(GENERATED_START)
    _, _, tail = rest.partition(GENERATED_END)
    path.write_text(head + block + tail)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a ~1 minute version")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"markdown file to update (default: {RESULTS_MD} on a full run, "
                             "nothing on --quick)")
    args = parser.parse_args()
    out = args.out or (None if args.quick else RESULTS_MD)
    threads = available_cores()  # the app's policy for a single run (app.torch_threads)
    load_before, start = os.getloadavg(), time.perf_counter()
    rows, default = bench_default_run(threads)
    print(render_table(rows), flush=True)
    rows += bench_efficiency(default, threads, args.quick)
    rows += bench_analysis(args.quick)
    for job in ["quick"] if args.quick else ["tiny", "small"]:
        rows += bench_sweep(job)
    rows += bench_startup(args.quick)
    rows += bench_scaling(1, args.quick)
    table = render_table(rows)
    notes = machine_notes(load_before, os.getloadavg(), time.perf_counter() - start, args.quick)
    print(f"\n{notes}\n\n{table}")
    if out is not None:
        write_results(out, table, notes)
        print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
