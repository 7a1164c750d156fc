"""Time sweeps of small jobs through `mirror-sweep -m` under a launcher, and the CLI's start-up."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO / "mirror_sweep" / "conf"
CLI = str(Path(sys.executable).parent / "mirror-sweep")
LAUNCHERS = {
    "basic": [],
    "joblib": ["hydra/launcher=joblib_local"],  # conf/hydra/launcher/joblib_local.yaml
}


def launcher_args(name: str) -> list[str]:
    """Overrides selecting a launcher; falls back to the plugin's joblib if joblib_local is absent."""
    if name == "joblib" and not (CONFIG_DIR / "hydra/launcher/joblib_local.yaml").exists():
        return ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
    return LAUNCHERS[name]


def run_sweep(launcher: str, n_jobs: int, job_overrides: list[str]) -> dict:
    """Run n_jobs seeds as one sweep into a temporary folder; wall time and the jobs' summaries.

    Returns: dict with wall_s, n_jobs, n_complete, compute_s (sum over jobs of the data, training
    and analysis times their summary.json reports), torch_threads (set of values), launcher args.
    """
    seeds = ",".join(str(seed) for seed in range(n_jobs))
    result = run_multirun([f"seed={seeds}", *job_overrides, *launcher_args(launcher)], n_jobs)
    return {**result, "launcher": " ".join(launcher_args(launcher)) or "(basic)"}


def run_multirun(overrides: list[str], n_jobs: int) -> dict:
    """`mirror-sweep -m OVERRIDES` into a temporary sweep folder: wall_s, n_jobs, n_complete,
    compute_s (sum of the jobs' data + training + analysis + causal-ablation seconds),
    torch_threads."""
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as folder:
        cmd = [CLI, "-m", *overrides, f"hydra.sweep.dir={folder}",
               "hydra.job_logging.root.level=WARNING"]
        start = time.perf_counter()
        done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=7200,
                              check=False)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"sweep failed ({' '.join(cmd)}):\n{done.stderr[-2000:]}")
        summaries = [json.loads(path.read_text()) for path in Path(folder).glob("*/summary.json")]
    compute = sum(s["time_data_s"] + s["time_train_s"] + s["time_analysis_s"]
                  + s.get("time_ablation_s", 0.0) for s in summaries)
    return {"wall_s": wall, "n_jobs": n_jobs, "n_complete": len(summaries), "compute_s": compute,
            "torch_threads": sorted({s["torch_threads"] for s in summaries})}


def ablation_subset(conditions: list[str], seeds: list[int], workers: int = 2) -> dict:
    """Jobs of the ablation sweep (+experiment=ablations, full size) under joblib_local."""
    overrides = ["+experiment=ablations", f"condition={','.join(conditions)}",
                 f"seed={','.join(map(str, seeds))}", "hydra/launcher=joblib_local",
                 f"hydra.launcher.n_jobs={workers}"]
    return run_multirun(overrides, len(conditions) * len(seeds))


def per_job_overhead(sweep: dict, parallel: int) -> float:
    """Worker-seconds per job not spent in the jobs' own compute.

    (wall x parallel workers - sum of the jobs' compute) / jobs: process start, imports, config
    composition, Hydra's per-job files, writing results, and idle workers at the end of a sweep.
    """
    return (sweep["wall_s"] * parallel - sweep["compute_s"]) / sweep["n_jobs"]


def time_command(cmd: list[str], repeats: int) -> float:
    """Best-of-repeats wall seconds of a command run from the repository root."""
    best = float("inf")
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="bench-cmd-") as folder:
            start = time.perf_counter()
            subprocess.run(cmd, cwd=folder, capture_output=True, check=True, timeout=120)
            best = min(best, time.perf_counter() - start)
    return best


def startup_times(repeats: int) -> dict[str, float]:
    """Interpreter start, `import mirror_sweep.app`, and `mirror-sweep --cfg job` (compose only)."""
    return {
        "python_start_s": time_command([sys.executable, "-c", "pass"], repeats),
        "import_app_s": time_command([sys.executable, "-c", "import mirror_sweep.app"], repeats),
        "import_experiment_s": time_command(
            [sys.executable, "-c", "import mirror_sweep.app, mirror_sweep.run.experiment"], repeats),
        "cfg_job_s": time_command([CLI, "--cfg", "job"], repeats),
    }


def ablation_conditions() -> list[str]:
    """The conditions the ablation preset sweeps (conf/experiment/ablations.yaml)."""
    import yaml

    preset = yaml.safe_load((CONFIG_DIR / "experiment" / "ablations.yaml").read_text())
    return preset["hydra"]["sweeper"]["params"]["condition"].split(",")
