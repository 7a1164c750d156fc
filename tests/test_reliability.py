"""Fault injection: killed jobs, truncated files, non-finite losses never pass for results."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from mirror_sweep.sweep import results
from mirror_sweep.sweep.aggregate import load_sweep
from tests.conftest import TINY, run_cli


def complete_run(tmp_path, name="run"):
    folder = tmp_path / name
    proc = run_cli([*TINY, f"hydra.run.dir={folder}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return folder


@pytest.mark.slow
def test_a_job_killed_mid_training_is_never_complete(tmp_path):
    folder = tmp_path / "killed"
    args = ["data.n_train=2000", "train.epochs=50", "model.hidden_size=32",
            f"hydra.run.dir={folder}"]
    proc = subprocess.Popen([sys.executable, "-m", "mirror_sweep", *args], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if (folder / "status.json").exists():
            break
        time.sleep(0.1)
    time.sleep(1.0)  # well inside training (50 epochs take far longer)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert results.read_status(folder)["status"] == "running"
    assert not results.is_complete(folder)
    with pytest.raises(results.RunFileError, match="status.json: run is running"):
        results.read_run(folder)
    sweep = load_sweep(folder)  # aggregation lists it as failed, never as a finished run
    assert sweep.runs.empty and list(sweep.failed.status) == ["running"]


@pytest.mark.parametrize("name", ["units.csv", "summary.json", "history.csv", "decoding.csv",
                                  "activations.npz"])
@pytest.mark.slow
def test_a_truncated_file_is_named(tmp_path, name):
    folder = complete_run(tmp_path)
    path = folder / name
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    assert not results.is_complete(folder)
    with pytest.raises(results.RunFileError, match=name.replace(".", r"\.")):
        results.read_run(folder)


@pytest.mark.slow
def test_a_corrupted_status_file_is_named(tmp_path):
    folder = complete_run(tmp_path)
    (folder / "status.json").write_text('{"status": "compl')
    with pytest.raises(results.RunFileError, match="status.json"):
        results.read_run(folder)


@pytest.mark.slow
def test_non_finite_loss_stops_the_run_without_metrics(tmp_path):
    folder = tmp_path / "nan"
    proc = run_cli([*TINY, "env.effect_scale=1e30", f"hydra.run.dir={folder}"], cwd=tmp_path)
    assert proc.returncode != 0
    assert "non-finite loss" in proc.stdout + proc.stderr
    assert not (folder / "summary.json").exists() and not (folder / "units.csv").exists()
    status = json.loads((folder / "status.json").read_text())
    assert status["status"] == "failed" and "NonFiniteLossError" in status["error"]


def test_writes_are_atomic(tmp_path, monkeypatch):
    target = tmp_path / "table.csv"
    target.write_text("old\n")

    def explode(handle):
        handle.write("half a ta")
        raise OSError("disk full")

    with pytest.raises(OSError):
        results.write_atomic(target, explode)
    assert target.read_text() == "old\n"
    assert list(tmp_path.iterdir()) == [target]
