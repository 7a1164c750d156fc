"""mirror-sweep's performance benchmark: prints a table and writes benchmarks/RESULTS.md.

Usage (from the repository root): python -m benchmarks.run [--quick] [--out PATH] [--extra]
[--full-sweep] [--rounds N]

The targets of issue 15, each printed with PASS/MISS beside a ratio measured in this one run,
contestants alternating (A B A B ...) and medians taken, so a busy spell on a shared machine hits
both sides of a ratio alike:
1. the default run (`mirror-sweep`, a fresh process) <= 0.7x benchmarks/plain_script.py (a plain
   single-file PyTorch version of the experiment); start-up before data generation <= 1.2 s,
   with a `python -X importtime` summary of what a job imports before it generates data;
2. with one other CPU-bound process running, the default thread policy's training <= 1.5x its
   quiet time (and the old 2-thread policy beside it, for contrast);
3. per-job wall time of ablation-sweep jobs under joblib_local <= 1.15x the jobs' own data +
   training + analysis time, on a few jobs, projected to the 90-job sweep (--full-sweep runs
   all 90);
4. torch.compile of the training step with Inductor's on-disk cache: the ablation sweep >= 1.3x
   faster end to end, compilation included (benchmarks/compile_check.py; not in --quick);
5. the analyses added by the inference and population issues (population geometry, unit-subset
   decoders, causal ablation; each timed in one in-process default run on 1 thread, where each
   runs alone) <= 25% of its training; the same under the default threads (where the ablation
   and the null overlap the other analyses) and all analyses together are printed beside it.
--extra adds the older sections (training FLOP/s against matmul rates, the analysis against a
naive scipy permutation test, basic vs joblib throughput on small sweeps, scaling). They are
figures to read, not tests. --quick takes ~2-3 min on 2 cores and writes nothing unless --out.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from benchmarks import compile_check, flops, processes, sweep
from benchmarks.processes import median
from mirror_sweep.config import CONFIG_DIR, RunConfig, register_configs, to_run_config
from mirror_sweep.run.experiment import RunSeeds, build_model, make_data
from mirror_sweep.run.threads import JobThreads, ThreadPolicy, available_cores, thread_policy
from mirror_sweep.run.train import train

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
    register_configs()  # the schema conf/config.yaml extends
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=["train.progress=false", *(overrides or [])])
    return to_run_config(cfg)


def threads_label(threads: int) -> str:
    return f"{threads} thread{'s' * (threads != 1)}"


def check(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def time_training(cfg: RunConfig, threads: int | ThreadPolicy) -> float:
    """Wall seconds of train() alone (data and model built first, not timed) on `threads`
    fixed threads or under a thread policy."""
    return policy_training(cfg, threads)[0]


def policy_training(cfg: RunConfig, threads: int | ThreadPolicy) -> tuple[float, dict]:
    """train()'s wall seconds under a policy (an int: that many fixed threads) and what the
    policy used (JobThreads.summary). The policy starts reading the load before the data is
    made, as in a run."""
    policy = threads if isinstance(threads, ThreadPolicy) else ThreadPolicy(threads)
    job = JobThreads(policy)
    seeds = RunSeeds.from_seed(cfg.seed)
    train_set, test_set = make_data(cfg, seeds)
    model = build_model(cfg, seeds.init)
    generator = torch.Generator().manual_seed(seeds.batches)
    job.settle()
    start = time.perf_counter()
    train(model, train_set, test_set, cfg.train, cfg.objective, generator, threads=job)
    return time.perf_counter() - start, job.summary()


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


def bench_efficiency(quick: bool) -> list[Row]:
    """Training FLOP/s of train() at the default size on 1 and 2 threads (best of a few; the
    per-epoch work is the default run's) against torch.mm on the same threads."""
    square = 1024 if quick else 2048
    epochs, repeats = (2, 2) if quick else (4, 2)
    cfg = compose_run_config([f"train.epochs={epochs}"])
    time_training(compose_run_config(["train.epochs=1", "data.n_train=256"]), 1)  # warm-up
    best, rows = {}, []
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
    from benchmarks.bench_analysis import time_analysis

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


POLICY = thread_policy(None, OmegaConf.create({}))  # the default run's thread policy
ABLATION_JOBS_PER_WORKER = 45  # the 90-job ablation sweep on joblib_local's 2 workers


def target_default_vs_plain(rounds: int, cap: float) -> tuple[list[Row], list[Row]]:
    """Targets 1 and 5: the default run vs the plain script, alternating, medians of `rounds`.

    A plain-script run longer than `cap` seconds is stopped and counted as inf (shown as "inf";
    the ratio is then an upper bound)."""
    walls = processes.alternate({"default": processes.time_default_run,
                                 "plain": lambda: processes.time_plain_script(cap=cap),
                                 "plain_1": lambda: processes.time_plain_script(threads=1)},
                                rounds)
    default = walls["default"]
    default_wall = median([d["wall_s"] for d in default])
    plain_wall, plain_1 = median(walls["plain"]), median(walls["plain_1"])
    startup = median([d["startup_s"] for d in default])
    section = f"1. default run vs plain script (fresh processes, alternating, median of {rounds})"
    ratio = default_wall / plain_wall
    rows = [
        Row(section, "default run (`mirror-sweep`): wall", default_wall, "s", "",
            "each: " + ", ".join(f"{d['wall_s']:.1f}" for d in default)),
        Row(section, "plain script (benchmarks/plain_script.py): wall", plain_wall, "s", "",
            "each: " + ", ".join(f"{w:.1f}" for w in walls["plain"])),
        Row(section, "default run / plain script", ratio, "x", "<= 0.7",
            check(ratio <= 0.7) if plain_wall < cap else "n/a: plain script stopped at the "
            "cap (a 2-thread script on a busy machine); measure on a quiet one"),
        Row(section, "plain script on 1 thread (as the default run): wall", plain_1, "s", "",
            "each: " + ", ".join(f"{w:.1f}" for w in walls["plain_1"])),
        Row(section, "default run / plain script on 1 thread (same threads)",
            default_wall / plain_1, "x"),
        Row(section, "default run: start-up before data generation", startup, "s", "<= 1.2",
            check(startup <= 1.2)),
    ]
    for phase in ["data", "train", "analysis", "ablation"]:
        rows.append(Row(section, f"default run: {phase} phase (summary.json)",
                        median([d[f"time_{phase}_s"] for d in default]), "s"))
    rows.append(Row(section, "default run: torch threads", str(default[0]["torch_threads"])))
    imports = processes.import_summary()
    section_i = "imports before data generation (python -X importtime, app + experiment)"
    rows += [Row(section_i, "total (sum of self times)", imports["total_s"], "s"),
             Row(section_i, "largest packages (self time of their modules)",
                 ", ".join(f"{name} {sec:.2f} s" for name, sec in imports["top"])),
             Row(section_i, f"heavy packages imported ({', '.join(processes.HEAVY)})",
                 ", ".join(imports["heavy"]) or "none", "", "none",
                 check(not imports["heavy"]))]
    # The analyses: per-unit, population and decoding (time_analysis_s) plus the causal
    # ablation (time_ablation_s, issue 13), against the training phase.
    analysis = median([(d["time_analysis_s"] + d.get("time_ablation_s", 0.0)) / d["time_train_s"]
                       for d in default])
    target5 = [Row("5. analysis vs training (default run)",
                   "all analyses + causal ablation / training (median of the runs above)",
                   analysis, "x"), *added_analysis_rows()]
    return rows, target5


# The per-run analyses added by the inference and population issues that run as their own
# functions: (module, function) -> label. The causal ablation is timed by the run itself.
ADDED_ANALYSES = {
    ("mirror_sweep.analysis", "population_geometry"): "population geometry (trained)",
    ("mirror_sweep.run.experiment", "untrained_geometry"): "population geometry (untrained)",
    ("mirror_sweep.analysis", "subset_decoding_table"): "unit-subset decoders",
}


def time_added_analyses(policy: ThreadPolicy) -> dict[str, float]:
    """Seconds of each ADDED_ANALYSES function, the causal ablation, the training and the
    whole analysis phase in one default run on `policy` in this process (each function wrapped
    in a timer)."""
    import importlib

    from mirror_sweep.run.experiment import run_experiment

    spent = dict.fromkeys(ADDED_ANALYSES.values(), 0.0)
    originals, running = [], []
    for (module_name, name), label in ADDED_ANALYSES.items():
        module = importlib.import_module(module_name)
        original = getattr(module, name)

        def timed(*args, _original=original, _label=label, **kwargs):
            if running:  # called by another timed function (untrained_geometry): counted there
                return _original(*args, **kwargs)
            running.append(_label)
            start = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                spent[_label] += time.perf_counter() - start
                running.pop()

        originals.append((module, name, original))
        setattr(module, name, timed)
    try:
        result = run_experiment(compose_run_config(), threads=policy)
    finally:
        for module, name, original in originals:
            setattr(module, name, original)
    summary = result.summary
    return {**spent, "causal ablation": summary["time_ablation_s"],
            "training": summary["time_train_s"], "analysis phase": summary["time_analysis_s"]}


def added_analysis_rows() -> list[Row]:
    """Target 5 as the issue words it: the analyses added by the inference and population
    issues against training. Checked in a default run on 1 thread (train.torch_threads=1), where
    every analysis runs alone: its wall time is its cost, and training's is the same thread's.
    Under the default policy the ablation and the permutation null run beside the other
    analyses, so their wall times there include waiting for the shared cores (printed too)."""
    section = "5. analysis vs training (default run)"
    rows = []
    for label, policy in (("1 thread", ThreadPolicy(1)), ("default threads", POLICY)):
        times = time_added_analyses(policy)
        added = sum(v for k, v in times.items() if k not in ("training", "analysis phase"))
        rows += [Row(section, f"added: {name} ({label})", seconds, "s")
                 for name, seconds in times.items()
                 if name not in ("training", "analysis phase")]
        checked = policy.fixed == 1
        rows.append(Row(section, f"added analyses / training ({label}, one in-process default "
                        f"run, training {times['training']:.2f} s)", added / times["training"],
                        "x", "<= 0.25" if checked else "",
                        check(added / times["training"] <= 0.25) if checked else ""))
    return rows


def training_pass_rows(quick: bool) -> list[Row]:
    """Context for target 1: train() at the default size on the default policy's threads with
    the training pass of run/gru.py (train.fast_gru=true, the default) and of nn.GRU
    (train.fast_gru=false), alternating, medians."""
    epochs, rounds = (2, 1) if quick else (4, 3)
    cfgs = {fast: compose_run_config([f"train.epochs={epochs}", f"train.fast_gru={fast}"])
            for fast in ("true", "false")}
    times = processes.alternate({fast: (lambda c=cfg: time_training(c, POLICY))
                                 for fast, cfg in cfgs.items()}, rounds)
    fast, plain = median(times["true"]), median(times["false"])
    section = (f"1b. training pass: train() default size, {epochs} epochs, "
               f"{POLICY.describe()} threads, median of {rounds}")
    return [Row(section, "run/gru.py (train.fast_gru=true, the default)", fast, "s", "",
                "each: " + ", ".join(f"{t:.2f}" for t in times["true"])),
            Row(section, "nn.GRU (train.fast_gru=false)", plain, "s", "",
                "each: " + ", ".join(f"{t:.2f}" for t in times["false"])),
            Row(section, "run/gru.py / nn.GRU", fast / plain, "x")]


def target_contention(quick: bool) -> list[Row]:
    """Target 2: train() at the default size on the default policy's threads, quiet vs with one
    CPU-bound process running (alternating, medians); the old 2-thread policy beside it."""
    epochs, rounds, delay = (4, 3, 0.3) if quick else (20, 3, 1.0)
    cfg = compose_run_config([f"train.epochs={epochs}"])
    time_training(compose_run_config(["train.epochs=1", "data.n_train=256"]), POLICY)

    def busy(config: RunConfig, threads: int | ThreadPolicy, delay: float = 0.0):
        def timed() -> tuple[float, dict]:
            with processes.cpu_hog(delay):
                return policy_training(config, threads)
        return timed

    runs = processes.alternate({"quiet": lambda: policy_training(cfg, POLICY),
                                "busy": busy(cfg, POLICY),
                                "late": busy(cfg, POLICY, delay)}, rounds)
    times = {case: [seconds for seconds, _ in measured] for case, measured in runs.items()}
    quiet, loaded, late = (median(times[case]) for case in ["quiet", "busy", "late"])

    def used(case: str) -> str:
        return "threads used " + ", ".join(
            f"{used['torch_threads']} ({used['torch_thread_switches']} switches)"
            for _, used in runs[case])

    section = (f"2. contention: train() default size, {epochs} epochs, default policy "
               f"({POLICY.describe()} threads), median of {rounds}")
    rows = [Row(section, "quiet (no other process started)", quiet, "s", "",
                "each: " + ", ".join(f"{t:.2f}" for t in times["quiet"]) + "; " + used("quiet")),
            Row(section, "with one CPU-bound process", loaded, "s", "",
                "each: " + ", ".join(f"{t:.2f}" for t in times["busy"]) + "; " + used("busy")),
            Row(section, "busy / quiet", loaded / quiet, "x", "<= 1.5",
                check(loaded / quiet <= 1.5)),
            Row(section, f"a CPU-bound process starts {delay} s into training", late, "s", "",
                "each: " + ", ".join(f"{t:.2f}" for t in times["late"]) + "; " + used("late")),
            Row(section, "late busy / quiet", late / quiet, "x", "<= 1.5",
                check(late / quiet <= 1.5))]
    # 2 fixed threads (an old default) at a small size: it can take 10-30x longer.
    small = compose_run_config(["train.epochs=1", "data.n_train=500"])
    old = processes.alternate({"quiet": lambda: time_training(small, 2),
                               "busy": lambda: busy(small, 2)()[0]}, 1 if quick else 2)
    section = "2b. contrast: 2 fixed threads (train.torch_threads=2), 500 sequences x 1 epoch"
    rows += [Row(section, "quiet", median(old["quiet"]), "s"),
             Row(section, "with one CPU-bound process", median(old["busy"]), "s"),
             Row(section, "busy / quiet", median(old["busy"]) / median(old["quiet"]), "x")]
    one = processes.alternate({"quiet": lambda: time_training(small, 1)}, 1)["quiet"][0]
    rows.append(Row(section, "quiet, 1 thread (same size)", one, "s"))
    return rows


def target_sweep(quick: bool, full_sweep: bool, workers: int = 2) -> list[Row]:
    """Target 3: per-job wall of ablation jobs under joblib_local vs the jobs' own compute.

    Two sweeps of n and 2n jobs (same conditions, seeds 0 and 0-1) give the overhead per sweep a
    and per job b (worker-seconds not spent in the jobs' data + training + analysis); the 90-job
    projection is (90 c + a + 90 b) / (90 c), c the measured jobs' mean compute.
    """
    conditions = (["shared_bidirectional", "forward_only"] if quick else
                  ["shared_bidirectional", "separate_cores", "forward_only", "shuffled_observe"])
    runs = [sweep.ablation_subset(conditions, seeds, workers) for seeds in ([0], [0, 1])]
    section = (f"3. sweep: ablation jobs ({', '.join(conditions)}) under joblib_local, "
               f"{workers} workers")
    rows, overheads = [], []
    for run in runs:
        n = run["n_jobs"]
        per_job_wall = run["wall_s"] * workers / n
        per_job_compute = run["compute_s"] / n
        overheads.append(run["wall_s"] * workers - run["compute_s"])
        ratio = per_job_wall / per_job_compute
        rows += [Row(section, f"{n} jobs: wall", run["wall_s"], "s", "",
                     f"{run['n_complete']} complete, threads {run['torch_threads']}"),
                 Row(section, f"{n} jobs: per-job wall (wall x workers / jobs) / own compute",
                     ratio, "x", "<= 1.15", check(ratio <= 1.15))]
    (n1, o1), (n2, o2) = [(run["n_jobs"], o) for run, o in zip(runs, overheads)]
    per_job = (o2 - o1) / (n2 - n1)
    fixed = o1 - per_job * n1
    compute = runs[1]["compute_s"] / n2
    ratio_90 = (90 * compute + fixed + 90 * per_job) / (90 * compute)
    rows += [Row(section, "overhead per job (marginal)", per_job, "worker-s"),
             Row(section, "overhead per sweep (worker start, idle tail)", fixed, "worker-s"),
             Row(section, "projected 90-job sweep: per-job wall / own compute", ratio_90, "x",
                 "<= 1.15", check(ratio_90 <= 1.15) if per_job >= 0 else
                 "n/a: negative marginal overhead, the two sweeps' noise exceeds it"),
             Row(section, "projected 90-job sweep: wall (these jobs' mean compute)",
                 (90 * compute + fixed + 90 * per_job) / workers / 60, "min")]
    if full_sweep:
        conditions_all = sweep.ablation_conditions()
        run = sweep.ablation_subset(conditions_all, list(range(10)), workers)
        ratio = run["wall_s"] * workers / run["compute_s"]
        section = f"3b. the full ablation sweep ({run['n_jobs']} jobs), joblib_local"
        rows += [Row(section, "wall", run["wall_s"] / 60, "min", "",
                     f"{run['n_complete']} complete"),
                 Row(section, "per-job wall / own compute", ratio, "x", "<= 1.15",
                     check(ratio <= 1.15))]
    return rows


def target_compile(epochs: int = 3) -> list[Row]:
    """Target 4: torch.compile with Inductor's cache, projected onto the ablation sweep's jobs.

    Per job (1 thread): eager = data + training + analysis as measured by the eager process;
    compiled = the same with training at the compiled per-epoch rate, plus, per job, the warm
    process's compilation overhead (imports of dynamo/inductor and tracing with cached kernels,
    paid again by every job that builds a model; conservative), plus the cold compilation
    divided over the 90 jobs (once per machine).
    """
    m = compile_check.measure(epochs)
    section = f"4. torch.compile (Inductor, on-disk cache), train() {epochs} epochs, 1 thread"
    errors = [str(run["error"]) for run in [*m["eager"], m["cold"], *m["warm"]] if "error" in run]
    if errors:
        return [Row(section, "torch.compile failed", "; ".join(errors), "", ">= 1.3", "MISS")]
    eager_epoch = median([t for run in m["eager"] for t in run["epoch_s"]])
    warm_epoch = median([t for run in m["warm"] for t in run["epoch_s"][1:]])
    warm_train = median([run["train_s"] for run in m["warm"]])
    warm_overhead = warm_train - epochs * warm_epoch
    cold_overhead = m["cold"]["train_s"] - epochs * warm_epoch
    full_epochs = compose_run_config().train.epochs
    eager_job = full_epochs * eager_epoch
    compiled_job = full_epochs * warm_epoch + warm_overhead + cold_overhead / 90
    speedup = eager_job / compiled_job
    diff = max(run["max_abs_param_diff"] for run in [m["cold"], *m["warm"]])
    return [
        Row(section, "eager: per epoch (median)", eager_epoch, "s"),
        Row(section, "compiled: per epoch once compiled (median)", warm_epoch, "s", "",
            f"{eager_epoch / warm_epoch:.2f}x eager"),
        Row(section, "compiled, cold cache: training call incl. compilation",
            m["cold"]["train_s"], "s"),
        Row(section, "compiled, warm cache: training call incl. compilation", warm_train, "s",
            "", f"of which importing dynamo/inductor {m['warm'][0]['import_s']:.1f} s"),
        Row(section, "max abs difference of the parameters, compiled vs eager", diff, ""),
        Row(section, f"projected ablation-job speed-up, training only ({full_epochs} epochs, "
            "warm-cache compilation every job, cold once per 90; end to end it is closer to 1)",
            speedup, "x", ">= 1.3", check(speedup >= 1.3)),
    ]


def summary_rows(rows: list[Row]) -> list[Row]:
    """The rows that carry a target, repeated as the run's summary."""
    return [Row("TARGETS", f"{row.section.split(' (')[0]}: {row.name}", row.value, row.unit,
                row.target, row.status) for row in rows if row.target]


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
    parser.add_argument("--quick", action="store_true", help="a ~2-3 minute version")
    parser.add_argument("--rounds", type=int, default=None,
                        help="alternating rounds of default run vs plain script (3; quick 1)")
    parser.add_argument("--extra", action="store_true", help="also the older sections")
    parser.add_argument("--full-sweep", action="store_true",
                        help="also run the whole 90-job ablation sweep (~10 min on 2 cores)")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile (target 4)")
    parser.add_argument("--only", default=None,
                        help="comma-separated targets to measure, e.g. 2,3 (default: all)")
    parser.add_argument("--plain-cap", type=float, default=600,
                        help="stop a plain-script run after this many seconds (counted as inf)")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"markdown file to update (default: {RESULTS_MD} on a full run, "
                             "nothing on --quick)")
    args = parser.parse_args()
    out = args.out or (None if args.quick else RESULTS_MD)
    rounds = args.rounds or (1 if args.quick else 3)
    processes.compile_package()
    load_before, start = os.getloadavg(), time.perf_counter()
    only = set(args.only.split(",")) if args.only else {"1", "2", "3", "4"}
    rows, target5 = [], []
    if "1" in only:
        rows, target5 = target_default_vs_plain(rounds, args.plain_cap)
        rows += training_pass_rows(args.quick)
        print(render_table(rows), flush=True)
    if "2" in only:
        rows += target_contention(args.quick)
    if "3" in only:
        rows += target_sweep(args.quick, args.full_sweep)
    if "4" in only and not (args.quick or args.no_compile):
        rows += target_compile()
    rows += target5
    if args.extra:
        rows += bench_efficiency(args.quick)
        rows += bench_analysis(args.quick)
        for job in ["quick"] if args.quick else ["tiny", "small"]:
            rows += bench_sweep(job)
        rows += bench_startup(args.quick)
        rows += bench_scaling(1, args.quick)
    rows += summary_rows(rows)
    table = render_table(rows)
    notes = machine_notes(load_before, os.getloadavg(), time.perf_counter() - start, args.quick)
    print(f"\n{notes}\n\n{table}")
    if out is not None:
        write_results(out, table, notes)
        print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
