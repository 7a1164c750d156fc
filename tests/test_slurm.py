"""Sweeps on a real SLURM cluster (scripts/slurm_cluster.sh) and on submitit's local executor,
with what clusters do to jobs: SIGKILL, a time limit, scancel, a killed driver, a memory limit.

The `slurm` tests use the local single-node cluster: started here when this machine can (root
and apt-get; MIRROR_SWEEP_SLURM=off never starts one), else skipped, saying why.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from mirror_sweep.sweep import results
from mirror_sweep.sweep.aggregate import load_sweep
from mirror_sweep.sweep.jobs import find_job_folders

REPO = Path(__file__).resolve().parents[1]
CLUSTER_SCRIPT = REPO / "scripts" / "slurm_cluster.sh"
TINY = ["data.n_train=48", "data.n_test=20", "train.epochs=2", "train.batch_size=16",
        "model.hidden_size=8", "analysis.n_permutations=100",
        "analysis.decoding_null_permutations=10", "train.progress=false",
        "output.save_activations=false"]
# short polls and grace periods, so a dead job is noticed within seconds
SLURM = ["hydra/launcher=slurm", "hydra.launcher.partition=debug",
         "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1",
         "hydra.launcher.poll_s=0.5", "hydra.launcher.lost_after_s=3"]
LOCAL = ["hydra/launcher=submitit_local_cpu", "hydra.launcher.poll_s=0.3",
         "hydra.launcher.lost_after_s=2"]
SLOW_JOB = "train.epochs=2000"  # a job that runs long enough to be killed while running


@pytest.fixture(scope="module")
def cluster() -> None:
    """A SLURM cluster that answers: the local one, started if this machine can, else skip."""
    if os.environ.get("MIRROR_SWEEP_SLURM", "").lower() == "off":
        pytest.skip("MIRROR_SWEEP_SLURM=off: no SLURM cluster is used")
    if subprocess.run([str(CLUSTER_SCRIPT), "--check"], capture_output=True,
                      check=False).returncode == 0:
        return
    proc = subprocess.run([str(CLUSTER_SCRIPT)], capture_output=True, text=True, check=False,
                          timeout=600)
    if proc.returncode == 3:
        pytest.skip(f"no SLURM cluster answers and none can be started here: "
                    f"{proc.stderr.strip().splitlines()[-1]}")
    assert proc.returncode == 0, f"scripts/slurm_cluster.sh failed:\n{proc.stdout}{proc.stderr}"


_DRIVERS: list[tuple[subprocess.Popen, Path]] = []


@pytest.fixture(autouse=True)
def _no_leftovers():
    """A failed test leaves no driver behind, nor SLURM jobs of its sweeps."""
    yield
    while _DRIVERS:
        proc, sweep_dir = _DRIVERS.pop()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        ledger = sweep_dir / ".submitit" / "mirror_sweep_jobs.json"
        if ledger.exists():
            ids = [entry["job_id"] for entry in json.loads(ledger.read_text()).values()]
            subprocess.run(["scancel", *ids], capture_output=True, check=False)


def start_sweep(sweep_dir: Path, *args: str) -> subprocess.Popen:
    """`mirror-sweep -m TINY ARGS` into sweep_dir, in the background."""
    command = [sys.executable, "-m", "mirror_sweep", "-m", *TINY, *args,
               f"hydra.sweep.dir={sweep_dir}"]
    sweep_dir.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(command, cwd=sweep_dir.parent, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "HYDRA_FULL_ERROR": "0"})
    _DRIVERS.append((proc, sweep_dir))
    return proc


def finish(proc: subprocess.Popen, timeout: float = 240) -> tuple[str, str]:
    """Wait for the driver (failing the test if it hangs); it must exit 0 without a traceback."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"the sweep driver hung for {timeout} s:\n{out}{err}")
    assert proc.returncode == 0, out + err
    assert "Traceback" not in out + err, out + err
    return out, err


def run_sweep(sweep_dir: Path, *args: str, timeout: float = 240) -> str:
    out, _ = finish(start_sweep(sweep_dir, *args), timeout)
    return out


def job_folder(sweep_dir: Path, override: str) -> Path:
    """The job folder whose overrides include `override` (whatever the folder naming)."""
    for folder in find_job_folders(sweep_dir):
        try:  # the driver may be writing it right now
            overrides = yaml.safe_load((folder / ".hydra" / "overrides.yaml").read_text())
        except (OSError, yaml.YAMLError):
            continue
        if override in (overrides or []):
            return folder
    raise AssertionError(f"no job folder with {override} in {sweep_dir}")


def wait_for(condition, timeout: float = 120, what: str = "condition"):
    """Poll `condition()` every 0.1 s until it returns something truthy; that value."""
    end = time.time() + timeout
    while time.time() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def status_of(folder: Path) -> dict:
    try:
        return results.read_status(folder)
    except (results.RunFileError, OSError):
        return {}


def running_pid(sweep_dir: Path, override: str) -> int | None:
    """The pid of the job with `override` once its status says running."""
    try:
        status = status_of(job_folder(sweep_dir, override))
    except AssertionError:
        return None
    return status.get("pid") if status.get("status") == "running" else None


def slurm_job_id(sweep_dir: Path, folder: Path) -> str:
    ledger = json.loads((sweep_dir / ".submitit" / "mirror_sweep_jobs.json").read_text())
    return ledger[str(folder)]["job_id"]


def squeue_states(job_id: str) -> list[str]:
    out = subprocess.run(["squeue", "--noheader", "--array", "--states=all", "--format=%i|%T"],
                         capture_output=True, text=True, check=False).stdout
    return [line.split("|")[1] for line in out.splitlines()
            if line.split("|")[0].split("_")[0] == job_id.split("_")[0]]


# -- no cluster needed ------------------------------------------------------------------------

def test_queue_reads_squeue_and_sacct_lines():
    from hydra_plugins.mirror_sweep_submitit.queue import expand, parse

    assert expand("12_[0-2,5%1]") == ["12_0", "12_1", "12_2", "12_5"]
    assert expand("12_3") == ["12_3"]
    states = parse("12_0|RUNNING|None\n12_[1-2%1]|PENDING|JobArrayTaskLimit\n"
                   "13|CANCELLED by 0|0:0\n13.batch|CANCELLED|0:15\n")
    assert {k: (v.state, v.active) for k, v in states.items()} == {
        "12_0": ("RUNNING", True), "12_1": ("PENDING", True), "12_2": ("PENDING", True),
        "13": ("CANCELLED", False)}


def test_local_launcher_runs_at_most_cores_per_cpus_jobs_at_once():
    from hydra_plugins.mirror_sweep_submitit.launcher import LocalLauncher

    cores = len(os.sched_getaffinity(0))
    assert LocalLauncher(submitit_folder="x", cpus_per_task=1).parallel == cores
    assert LocalLauncher(submitit_folder="x", cpus_per_task=cores).parallel == 1
    assert LocalLauncher(submitit_folder="x", cpus_per_task=1, array_parallelism=3).parallel == 3


# -- submitit's local executor ----------------------------------------------------------------

@pytest.mark.slow
def test_local_sigkilled_job_is_recorded_failed_and_the_others_complete(tmp_path):
    sweep_dir = tmp_path / "local-kill"
    proc = start_sweep(sweep_dir, *LOCAL, f"train.epochs=2,{SLOW_JOB.split('=')[1]}")
    os.kill(wait_for(lambda: running_pid(sweep_dir, SLOW_JOB), what="the slow job to run"),
            signal.SIGKILL)
    out, _ = finish(proc)
    assert "2 jobs: 1 complete, 1 failed" in out
    status = status_of(job_folder(sweep_dir, SLOW_JOB))
    assert status["status"] == "failed" and status["error"].startswith("KILLED:")
    assert results.is_complete(job_folder(sweep_dir, "train.epochs=2"))


@pytest.mark.slow
def test_local_launcher_respects_array_parallelism(tmp_path):
    """With array_parallelism=1, never two jobs running at once (and pending ones are listed)."""
    sweep_dir = tmp_path / "local-parallel"
    proc = start_sweep(sweep_dir, *LOCAL, "hydra.launcher.array_parallelism=1", "seed=0,1")
    most = 0
    while proc.poll() is None:
        states = [status_of(f).get("status") for f in sweep_dir.glob("*") if f.is_dir()]
        most = max(most, states.count("running"))
        time.sleep(0.05)
    out, _ = finish(proc)
    assert "2 jobs: 2 complete" in out
    assert most == 1


# -- a SLURM cluster --------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.slurm
def test_slurm_sigkilled_job_is_recorded_failed_and_the_sweep_ends(cluster, tmp_path):
    """Without accounting submitit never learns that a killed job ended: the driver hung."""
    sweep_dir = tmp_path / "kill"
    proc = start_sweep(sweep_dir, *SLURM, f"train.epochs=2,{SLOW_JOB.split('=')[1]}")
    os.kill(wait_for(lambda: running_pid(sweep_dir, SLOW_JOB), what="the slow job to run"),
            signal.SIGKILL)
    out, _ = finish(proc)
    assert "2 jobs: 1 complete, 1 failed" in out
    status = status_of(job_folder(sweep_dir, SLOW_JOB))
    assert status["status"] == "failed" and status["launcher_state"] in {"FAILED", "LOST"}
    assert "without a result" in status["error"]
    failed = load_sweep(sweep_dir).failed
    assert failed.status.tolist() == ["failed"] and failed.error.str.contains("SLURM job").all()


@pytest.mark.slow
@pytest.mark.slurm
def test_slurm_cancelled_job_is_recorded_failed(cluster, tmp_path):
    sweep_dir = tmp_path / "cancel"
    proc = start_sweep(sweep_dir, *SLURM, f"train.epochs=2,{SLOW_JOB.split('=')[1]}")
    wait_for(lambda: running_pid(sweep_dir, SLOW_JOB), what="the slow job to run")
    job_id = slurm_job_id(sweep_dir, job_folder(sweep_dir, SLOW_JOB))
    subprocess.run(["scancel", job_id], check=True)
    out, _ = finish(proc)
    assert "2 jobs: 1 complete, 1 failed" in out
    status = status_of(job_folder(sweep_dir, SLOW_JOB))
    assert status["launcher_state"] == "CANCELLED"
    assert status["error"].startswith(f"CANCELLED: SLURM job {job_id} was cancelled")


@pytest.mark.slow
@pytest.mark.slurm
def test_slurm_job_past_its_time_limit_is_recorded_timeout_and_resumes(cluster, tmp_path):
    """timeout_min=1 and a job held 200 s before it starts (sbatch `setup` lines): SLURM ends it
    (TIMEOUT) 60-90 s later (its limits have minute resolution, checked every 30 s)."""
    sweep_dir = tmp_path / "timeout"
    args = [*SLURM, "seed=0"]
    out = run_sweep(sweep_dir, *args, "hydra.launcher.timeout_min=1",
                    "hydra.launcher.setup=['sleep 200']", timeout=200)
    assert "1 jobs: 1 failed" in out
    folder = job_folder(sweep_dir, "seed=0")
    status = status_of(folder)
    assert status["launcher_state"] == "TIMEOUT"
    assert status["error"].startswith("TIMEOUT: SLURM job") and "timeout_min=1" in status["error"]
    assert load_sweep(sweep_dir).failed.status.tolist() == ["failed"]
    out = run_sweep(sweep_dir, *args)  # resume: the same sweep, with time enough
    assert "1 jobs: 1 complete" in out and results.is_complete(folder)


@pytest.mark.slow
@pytest.mark.slurm
def test_slurm_driver_killed_mid_sweep_rerun_waits_for_its_jobs(cluster, tmp_path):
    """The jobs outlive a SIGKILLed driver; a rerun re-attaches to them: none lost, none twice."""
    sweep_dir = tmp_path / "driver"
    args = [*SLURM, "train.epochs=2,400"]
    proc = start_sweep(sweep_dir, *args)
    wait_for(lambda: running_pid(sweep_dir, "train.epochs=400"), what="the slow job to run")
    slow = job_folder(sweep_dir, "train.epochs=400")
    job_id = slurm_job_id(sweep_dir, slow)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert set(squeue_states(job_id)) & {"RUNNING", "COMPLETED"}  # the cluster kept it
    out, err = finish(start_sweep(sweep_dir, *args))
    assert f"still running as SLURM job {job_id}" in out + err
    assert "2 jobs: 2 complete" in out or "2 jobs: 1 complete, 1 skipped" in out
    assert slurm_job_id(sweep_dir, slow) == job_id  # not submitted again
    assert results.is_complete(slow)
    assert len(load_sweep(sweep_dir).runs) == 2


@pytest.mark.slow
@pytest.mark.slurm
def test_slurm_array_parallelism_and_pending_jobs_in_aggregation(cluster, tmp_path):
    """array_parallelism=1: one job at a time; meanwhile aggregation lists the others as pending
    or running, not as lost."""
    sweep_dir = tmp_path / "parallel"
    proc = start_sweep(sweep_dir, *SLURM, "hydra.launcher.array_parallelism=1",
                       "train.epochs=300,2")
    wait_for(lambda: running_pid(sweep_dir, "train.epochs=300"), what="the first job to run")
    failed = load_sweep(sweep_dir).failed
    assert sorted(failed.status) == ["pending", "running"]
    assert failed.error[failed.status == "pending"].str.startswith("queued, not started").all()
    most = 0
    job_id = slurm_job_id(sweep_dir, job_folder(sweep_dir, "train.epochs=300"))
    while proc.poll() is None:
        most = max(most, squeue_states(job_id).count("RUNNING"))
        time.sleep(0.2)
    out, _ = finish(proc)
    assert "2 jobs: 2 complete" in out and most == 1


@pytest.mark.slow
@pytest.mark.slurm
def test_slurm_refusing_the_jobs_is_one_line_and_exit_1(cluster, tmp_path):
    proc = start_sweep(tmp_path / "refused", *SLURM, "hydra.launcher.partition=no_such_partition")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "Traceback" not in out + err
    assert "mirror-sweep: SLURM refused the jobs: " in err and "partition" in err.splitlines()[-1]


@pytest.mark.slow
@pytest.mark.slurm
def test_slurm_job_over_its_memory_limit_is_recorded_out_of_memory(cluster, tmp_path):
    """mem_gb=1 and 1.5 GB allocated in the job's setup: the cluster kills it (sampled every s)."""
    sweep_dir = tmp_path / "memory"
    hog = "python3 -c 'import time; x = bytearray(1536 * 2**20); time.sleep(30)'"
    out = run_sweep(sweep_dir, *SLURM, "seed=0", f"hydra.launcher.setup=[\"{hog}\"]")
    assert "1 jobs: 1 failed" in out
    status = status_of(job_folder(sweep_dir, "seed=0"))
    assert status["launcher_state"] == "OUT_OF_MEMORY" and "mem_gb=1" in status["error"]
