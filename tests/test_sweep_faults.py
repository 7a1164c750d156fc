"""Fault injection for issue 10: each case once lost or mixed up a result, or ended in a traceback.

Real tiny runs and sweeps in subprocesses (slow). Every complete run found afterwards must hold
the data of the config it names: units rows == model.hidden_size, history rows == train.epochs.
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
from omegaconf import OmegaConf

from mirror_sweep import errors
from mirror_sweep.sweep import results
from mirror_sweep.sweep.aggregate import load_sweep
from mirror_sweep.sweep.lock import is_locked

pytestmark = pytest.mark.slow

SMALL = ["data.n_train=32", "data.n_test=20", "train.batch_size=8", "analysis.n_permutations=100",
         "analysis.decoding_null_permutations=10", "output.save_activations=false"]


def command(*args: str) -> list[str]:
    flags = [a for a in args if a.startswith("-")]  # -m before the overrides
    return [sys.executable, "-m", "mirror_sweep", *flags, *SMALL,
            *(a for a in args if a not in flags)]


def run(*args: str, cwd: Path, umask: int | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(command(*args), cwd=cwd, capture_output=True, text=True, timeout=300,
                          check=False, env={**os.environ, "HYDRA_FULL_ERROR": "0"},
                          preexec_fn=None if umask is None else (lambda: os.umask(umask)))


def start(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(command(*args), cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def wait_for(predicate, timeout: float = 120, step: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(step)


def status_of(folder: Path) -> dict:
    try:
        return results.read_status(folder)
    except results.RunFileError:
        return {"status": "unreadable"}


def assert_every_complete_run_is_its_config(sweep_dir: Path) -> int:
    """Every run aggregation accepts holds the data of its .hydra/config.yaml; returns how many."""
    sweep = load_sweep(sweep_dir)
    for row in sweep.runs.itertuples():
        config = OmegaConf.load(sweep_dir / row.run_id / results.HYDRA_CONFIG)
        record = results.read_run(sweep_dir / row.run_id)
        assert len(record.units) == config.model.hidden_size, row.run_id
        epochs = config.train.epochs if config.train.enabled else 0
        assert len(record.history) == epochs, row.run_id
    return len(sweep.runs)


def test_extending_a_sweep_runs_only_the_new_jobs(tmp_path):
    sweep_dir = tmp_path / "sweep"
    first = run("-m", "train.epochs=1", "model.hidden_size=8", "condition=forward_only,untrained",
                "seed=0,1", f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    names = sorted(p.name for p in sweep_dir.iterdir() if p.is_dir())
    assert names == [f"condition={c},seed={s}" for c in ["forward_only", "untrained"]
                     for s in [0, 1]]
    mtimes = {n: (sweep_dir / n / results.SUMMARY_FILE).stat().st_mtime_ns for n in names}
    second = run("-m", "train.epochs=1", "model.hidden_size=8", "condition=forward_only,untrained",
                 "seed=0,1,2", f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "6 jobs: 2 complete, 4 skipped" in second.stdout
    for name, mtime in mtimes.items():  # the finished jobs were not touched
        assert (sweep_dir / name / results.SUMMARY_FILE).stat().st_mtime_ns == mtime
    for folder in (p for p in sweep_dir.iterdir() if p.is_dir()):
        status = results.read_status(folder)
        assert folder.name.endswith(f"seed={status['config']['seed']}")
    assert assert_every_complete_run_is_its_config(sweep_dir) == 6


def test_a_failing_rerun_over_a_complete_run_never_relabels_it(tmp_path):
    folder = tmp_path / "run"
    first = run("train.epochs=2", "model.hidden_size=8", f"hydra.run.dir={folder}", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    proc = run("train.epochs=7", "model.hidden_size=16", "+foo=1", f"hydra.run.dir={folder}",
               cwd=tmp_path)
    assert proc.returncode == errors.EXIT_BAD_INPUT
    assert "foo: unknown config key" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert load_sweep(folder).runs.empty  # never reported as H=16, 7 epochs
    (moved,) = (folder / results.SUPERSEDED_DIR).iterdir()  # the old run is kept, aside
    assert OmegaConf.load(moved / "config.yaml").model.hidden_size == 8
    assert "moved the complete run it held aside" in proc.stdout + proc.stderr


def test_kill_in_the_start_window_never_labels_old_data_with_the_new_config(tmp_path):
    folder = tmp_path / "run"
    first = run("train.epochs=2", "model.hidden_size=8", f"hydra.run.dir={folder}", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    config = folder / results.HYDRA_CONFIG
    proc = start("train.epochs=3", "model.hidden_size=12", f"hydra.run.dir={folder}", cwd=tmp_path)
    wait_for(lambda: "hidden_size: 12" in config.read_text(), step=0.001)
    proc.kill()  # as soon as Hydra has written the new config
    proc.wait()
    assert not results.run_state(folder).complete or \
        len(results.read_run(folder).units) == 12
    assert_every_complete_run_is_its_config(folder)


def test_two_sweeps_into_one_folder_at_once_never_mix(tmp_path):
    sweep_dir = tmp_path / "sweep"
    a = start("-m", "model.hidden_size=16", "train.epochs=30", "seed=0,1",
              f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path)
    wait_for(lambda: any(status_of(p).get("status") == "running"
                         for p in sweep_dir.glob("*/")))
    b = run("-m", "model.hidden_size=8", "train.epochs=2", "seed=0,1",
            f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path)
    a_out = a.communicate(timeout=300)[0]
    assert a.returncode == 0 and b.returncode == 0, a_out + b.stdout + b.stderr
    assert_every_complete_run_is_its_config(sweep_dir)
    for moved in sweep_dir.glob(f"*/{results.SUPERSEDED_DIR}/*"):  # kept aside, and whole
        status = json.loads((moved / results.STATUS_FILE).read_text())
        units = (moved / results.UNITS_FILE).read_text().strip().splitlines()
        assert len(units) - 1 == status["config"]["model"]["hidden_size"]


def test_parent_killed_then_an_immediate_rerun_never_runs_a_job_twice(tmp_path):
    sweep_dir = tmp_path / "sweep"
    args = ["-m", "model.hidden_size=8", "train.epochs=400", "seed=0,1",
            "hydra/launcher=joblib_local", f"hydra.sweep.dir={sweep_dir}"]
    parent = start(*args, cwd=tmp_path)
    jobs = [sweep_dir / "seed=0", sweep_dir / "seed=1"]
    wait_for(lambda: all(status_of(j).get("status") == "running" for j in jobs), timeout=180)
    pids = {job: status_of(job)["pid"] for job in jobs}
    parent.kill()
    parent.wait()
    try:
        rerun = run(*args, cwd=tmp_path)
        assert rerun.returncode == 0, rerun.stderr
        out = rerun.stdout + rerun.stderr
        assert out.count("running elsewhere") >= 2, out
        for job in jobs:  # still the first sweep's processes, never a second run
            assert status_of(job).get("pid") == pids[job]
    finally:
        for pid in pids.values():
            try:
                worker = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
                os.kill(pid, signal.SIGKILL)
                os.kill(worker, signal.SIGKILL)
            except (OSError, ValueError, IndexError):
                pass
    wait_for(lambda: not any(is_locked(job) for job in jobs), timeout=30)


def test_a_sigkilled_job_under_joblib_is_failed_and_the_others_complete(tmp_path):
    sweep_dir = tmp_path / "sweep"
    proc = start("-m", "model.hidden_size=8", "train.epochs=1,400,2", "seed=0",
                 "hydra/launcher=joblib_local", f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path)
    victim = sweep_dir / "train.epochs=400"
    wait_for(lambda: status_of(victim).get("status") == "running", timeout=180)
    os.kill(status_of(victim)["pid"], signal.SIGKILL)  # as the OOM killer does
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, out
    assert "3 jobs: 2 complete, 1 failed" in out
    assert "failed: train.epochs=400: JobKilled" in out and "SIGKILL" in out
    assert "TerminatedWorkerError" not in out
    sweep = load_sweep(sweep_dir)
    assert sorted(sweep.runs.run_id) == ["train.epochs=1", "train.epochs=2"]
    assert list(sweep.failed.run_id) == ["train.epochs=400"]


def test_code_change_then_resume_reruns_unless_asked_not_to(tmp_path):
    sweep_dir = tmp_path / "sweep"
    args = ["-m", "model.hidden_size=8", "train.epochs=1", "seed=0,1",
            f"hydra.sweep.dir={sweep_dir}"]
    assert run(*args, cwd=tmp_path).returncode == 0

    def plant_old_code(job: str) -> None:
        path = sweep_dir / job / results.STATUS_FILE
        path.write_text(json.dumps({**json.loads(path.read_text()), "code_version": "old"}))

    plant_old_code("seed=0")
    (sweep_dir / "seed=1" / results.STATUS_FILE).write_text("[]")  # a corrupt status
    proc = run(*args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "2 jobs: 2 complete" in proc.stdout
    assert len(list((sweep_dir / "seed=0" / results.SUPERSEDED_DIR).iterdir())) == 1
    plant_old_code("seed=0")
    kept = run(*args, "output.resume=config", cwd=tmp_path)
    assert "2 jobs: 2 skipped" in kept.stdout
    status = results.read_status(sweep_dir / "seed=1")
    for key in ["code_version", "package_version", "python", "torch", "numpy", "host",
                "started", "ended"]:
        assert status[key] is not None, key
    summary = json.loads((sweep_dir / "seed=1" / results.SUMMARY_FILE).read_text())
    assert summary["provenance"]["code_version"] == status["code_version"]


@pytest.mark.parametrize("override, needle", [
    ("+train.epoch=50", "did you mean 'train.epochs'"),
    ("+model.hiden_size=8", "did you mean 'model.hidden_size'"),
    ("+foo=1", "foo: unknown config key"),
    ("analysis.alpha=0", "analysis.alpha"),
    ("analysis.alpha=1", "analysis.alpha"),
    ("analysis.decoding_null_permutations=0", "analysis.decoding_null_permutations"),
    ("analysis.max_lag=12", "analysis.max_lag = 12: must be below env.seq_len"),
    ("env.seq_len=1", "env.seq_len"),
    ("seed=-1", "seed = -1"),
    ("analysis.n_permutations=1", "analysis.n_permutations = 1: must be >= 1/analysis.alpha"),
    ("model.hidden_size=100000000", "model.hidden_size = 100000000: the run would need"),
    ("analysis.n_permutations=1000000000000", "analysis.n_permutations = 1000000000000: the run"),
])
def test_bad_input_is_one_line_before_any_work(tmp_path, override, needle):
    folder = tmp_path / "run"
    proc = run("train.epochs=1", "model.hidden_size=8", override, f"hydra.run.dir={folder}",
               cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == errors.EXIT_BAD_INPUT, out
    assert needle in out and "Traceback" not in out
    assert results.read_status(folder)["status"] == "failed"
    assert not (folder / results.HISTORY_FILE).exists()  # no training happened


def test_a_typo_in_a_sweep_fails_every_job_with_the_summary(tmp_path):
    sweep_dir = tmp_path / "sweep"
    proc = run("-m", "+train.epoch=5", "seed=0,1", f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path)
    assert proc.returncode == 0 and "Traceback" not in proc.stdout + proc.stderr
    assert "2 jobs: 2 failed" in proc.stdout and "did you mean 'train.epochs'" in proc.stdout


def test_files_respect_the_umask_and_a_closed_pipe_stops_nothing(tmp_path):
    folder = tmp_path / "run"
    shell = " ".join(command("train.epochs=1", "model.hidden_size=8",
                             f"hydra.run.dir={folder}")) + " | head -c 1 > /dev/null"
    proc = subprocess.run(["bash", "-c", f"umask 002; {shell}"], cwd=tmp_path, timeout=300,
                          capture_output=True, text=True, check=False)
    assert "Traceback" not in proc.stderr and "Broken pipe" not in proc.stderr, proc.stderr
    assert results.run_state(folder).complete
    for name in [results.SUMMARY_FILE, results.UNITS_FILE, results.STATUS_FILE]:
        assert (folder / name).stat().st_mode & 0o777 == 0o664, name
    aggregate = subprocess.run(
        ["bash", "-c", f"{sys.executable} -m mirror_sweep.cli {folder} --n-boot 50 | head -1"],
        cwd=tmp_path, timeout=300, capture_output=True, text=True, check=False)
    assert "Traceback" not in aggregate.stderr, aggregate.stderr
    assert (folder / "aggregate" / "claims.md").exists()  # the report after the closed pipe


@pytest.mark.parametrize("args, code, needle", [
    (["--n-boot", "0"], 2, "--n-boot: 0: must be at least 1"),
    (["--n-boot", "-5"], 2, "--n-boot: -5: must be at least 1"),
    (["--seed", "-1"], 2, "--seed: -1: must be >= 0"),
])
def test_bad_aggregate_options_are_one_line(tmp_path, args, code, needle):
    proc = subprocess.run([sys.executable, "-m", "mirror_sweep.cli", str(tmp_path), *args],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == code and needle in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("args, code, needle", [
    (["-m", "seed=0,1", "hydra/launcher=joblib_local", "hydra.launcher.n_jobs=0"], 2,
     "hydra.launcher.n_jobs = 0"),
    (["hydra.run.dir=a_file/run"], 3, "cannot write a_file/run"),
    (["-m", "seed=0,1", "hydra.sweep.dir=a_file/sweep"], 3, "cannot write a_file/sweep"),
])
def test_unusable_launcher_or_folder_is_one_line(tmp_path, args, code, needle):
    (tmp_path / "a_file").write_text("not a folder")
    proc = run(*args, cwd=tmp_path)
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert needle in proc.stderr and "Traceback" not in proc.stdout + proc.stderr


def test_figures_are_byte_identical_across_reruns(tiny_sweep, tmp_path):
    from mirror_sweep.report import figures

    sweep = load_sweep(tiny_sweep)
    first = figures.draw_figures(sweep, tmp_path / "a", n_boot=100)
    second = figures.draw_figures(sweep, tmp_path / "b", n_boot=100)
    assert len(first) == 2 * 6  # Figures 1-6, PNG and PDF
    for a, b in zip(first, second):
        assert a.read_bytes() == b.read_bytes(), a.name


def test_a_sweep_console_shows_one_line_per_job_and_epochs_go_to_the_logs(tmp_path):
    sweep_dir = tmp_path / "sweep"
    proc = run("-m", "model.hidden_size=8", "train.epochs=2", "train.progress=true", "seed=0,1",
               f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    console = proc.stdout + proc.stderr
    assert "epoch 1/2" not in console and "training ..." not in console
    assert "[1/2] seed=" in console and "[2/2] seed=" in console and "ETA" in console
    assert "2 jobs: 2 complete" in console
    for job in ["seed=0", "seed=1"]:
        assert "epoch 2/2" in (sweep_dir / job / "app.log").read_text()
    single = run("model.hidden_size=8", "train.epochs=2", "train.progress=true",
                 f"hydra.run.dir={tmp_path / 'one'}", cwd=tmp_path)
    assert "epoch 2/2" in single.stdout + single.stderr  # single runs keep their output


def test_a_single_run_into_a_locked_folder_is_left_alone(tmp_path):
    from mirror_sweep.sweep.lock import JobLock

    folder = tmp_path / "run"
    with JobLock(folder):
        proc = run("model.hidden_size=8", "train.epochs=1", f"hydra.run.dir={folder}",
                   cwd=tmp_path)
    assert proc.returncode == errors.EXIT_BUSY
    assert f"running elsewhere (pid {os.getpid()}" in proc.stdout + proc.stderr
    assert results.read_status(folder)["status"] == "missing"  # nothing written
