"""The completeness rule, job locks, job folder names, umask: fast, no training."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf

from mirror_sweep.sweep import results
from mirror_sweep.sweep.lock import JobLock, LockHeld, is_locked


def fake_run(folder: Path, config: dict | None = None, code_version: str = "code-1") -> Path:
    """A complete run folder as app.py writes it (tiny tables, no training)."""
    (folder / ".hydra").mkdir(parents=True)
    config = config or {"seed": 0, "model": {"hidden_size": 8}, "train": {"progress": False}}
    OmegaConf.save(OmegaConf.create(config), folder / results.HYDRA_CONFIG)
    tables = {results.UNITS_FILE: pd.DataFrame({"unit": [0, 1], "r": [0.1, 0.9]}),
              results.DECODING_FILE: pd.DataFrame({"train_mode": ["perform"],
                                                   "test_mode": ["observe"], "accuracy": [0.5]}),
              results.HISTORY_FILE: pd.DataFrame({"epoch": [1]})}
    results.write_run(folder, {"seed": 0, "n_units": 2}, tables, None,
                      results.folder_config_hash(folder), code_version=code_version,
                      config=config)
    return folder


def test_a_complete_run_is_complete(tmp_path):
    folder = fake_run(tmp_path / "run")
    state = results.run_state(folder, results.folder_config_hash(folder), "code-1")
    assert state.complete and results.is_complete(folder)


def test_a_config_rewritten_after_completion_unlabels_the_run(tmp_path):
    """A later (failed or killed) job rewrote .hydra/config.yaml: the old data are not its."""
    folder = fake_run(tmp_path / "run")
    OmegaConf.save(OmegaConf.create({"seed": 0, "model": {"hidden_size": 16}}),
                   folder / results.HYDRA_CONFIG)
    state = results.run_state(folder)
    assert state.state == results.CONFIG_CHANGED and "config.yaml" in state.reason
    assert not results.is_complete(folder)
    with pytest.raises(results.RunFileError, match="config.yaml"):
        results.read_run(folder)


def test_a_config_read_just_before_is_taken_only_while_the_file_holds_its_text(tmp_path):
    """run_state(known_config=...) (what aggregation passes, not to parse config.yaml twice)
    gives the state of a fresh read: the config passed counts only for the text it came from."""
    folder = fake_run(tmp_path / "run")
    text = (folder / results.HYDRA_CONFIG).read_text()
    stale = {"seed": 0, "model": {"hidden_size": 16}}  # not what the file holds
    assert results.run_state(folder, known_config=(text + " ", stale)).complete  # reparsed
    assert results.run_state(folder, known_config=(text, stale)).state == results.CONFIG_CHANGED
    OmegaConf.save(OmegaConf.create(stale), folder / results.HYDRA_CONFIG)  # rewritten since
    fresh = {"seed": 0, "model": {"hidden_size": 8}, "train": {"progress": False}}
    assert results.run_state(folder, known_config=(text, fresh)).state == \
        results.CONFIG_CHANGED


def test_display_only_keys_do_not_change_the_config_hash(tmp_path):
    folder = fake_run(tmp_path / "run")
    OmegaConf.save(OmegaConf.create({"seed": 0, "model": {"hidden_size": 8},
                                     "train": {"progress": True}}), folder / results.HYDRA_CONFIG)
    assert results.run_state(folder).complete


def test_another_config_or_code_is_not_this_jobs_result(tmp_path):
    folder = fake_run(tmp_path / "run")
    assert results.run_state(folder, "other-hash").state == results.CONFIG_CHANGED
    state = results.run_state(folder, None, "code-2")
    assert state.state == results.CODE_CHANGED and "code-1" in state.reason
    assert results.run_state(folder, None, None).complete  # policy "config": any code


@pytest.mark.parametrize("text", ["[]", "null", '"complete"', "{}", '{"status": "compl', ""])
def test_a_corrupt_status_is_a_state_never_a_crash(tmp_path, text):
    folder = fake_run(tmp_path / "run")
    (folder / results.STATUS_FILE).write_text(text)
    state = results.run_state(folder)
    assert state.state == results.UNREADABLE and "status.json" in state.reason


@pytest.mark.parametrize("text", ["", "[1, 2]", "a: [", "7"])
def test_a_corrupt_hydra_config_is_a_state_never_a_crash(tmp_path, text):
    folder = fake_run(tmp_path / "run")
    (folder / results.HYDRA_CONFIG).write_text(text)
    state = results.run_state(folder)
    assert state.state == results.UNREADABLE and "config.yaml" in state.reason


def test_a_changed_file_is_named(tmp_path):
    folder = fake_run(tmp_path / "run")
    (folder / results.UNITS_FILE).write_text("unit,r\n0,1\n")
    state = results.run_state(folder)
    assert state.state == results.UNREADABLE and "units.csv" in state.reason


def test_move_aside_keeps_the_old_run_and_its_config(tmp_path):
    folder = fake_run(tmp_path / "run")
    moved = results.move_aside(folder, "config_changed: test")
    assert moved.parent == folder / results.SUPERSEDED_DIR
    assert (moved / results.UNITS_FILE).exists() and (moved / results.STATUS_FILE).exists()
    assert OmegaConf.load(moved / "config.yaml").model.hidden_size == 8
    assert results.run_state(folder).state == results.MISSING


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_written_files_respect_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        results.write_json(tmp_path / "x.json", {"a": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "x.json").stat().st_mode & 0o777 == mode


def test_a_second_lock_on_a_held_folder_is_refused(tmp_path):
    with JobLock(tmp_path):
        assert is_locked(tmp_path)
        with pytest.raises(LockHeld, match=f"running elsewhere \\(pid {os.getpid()}"):
            JobLock(tmp_path).acquire()
    assert not is_locked(tmp_path)
    with JobLock(tmp_path):
        pass


def test_the_os_releases_the_lock_of_a_killed_process(tmp_path):
    code = ("import sys, time; from mirror_sweep.sweep.lock import JobLock; "
            f"JobLock({str(tmp_path)!r}).acquire(); print('held', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert is_locked(tmp_path)
        with pytest.raises(LockHeld, match=f"pid {holder.pid}"):
            JobLock(tmp_path).acquire()
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    deadline = time.monotonic() + 5
    while is_locked(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    with JobLock(tmp_path):  # no stale lock to clean up
        pass


def test_job_folders_are_named_by_what_varies(tmp_path):
    assert results.job_dirname(["seed=2", "condition=forward_only"], 5, tmp_path) == \
        "condition=forward_only,seed=2"
    assert results.job_dirname(["+experiment=ablations", "train.progress=False", "seed=1"], 0,
                               tmp_path) == "seed=1"
    assert results.job_dirname([], 0, tmp_path) == "default"
    results.write_json(tmp_path / results.SWEEP_FILE, {"shared_overrides": ["data.n_train=48"]})
    assert results.job_dirname(["data.n_train=48", "seed=1"], 0, tmp_path) == "seed=1"
    long = results.job_dirname([f"k{i}=v" * 5 for i in range(60)], 0, tmp_path)
    assert len(long) <= results.MAX_DIRNAME
    assert long != results.job_dirname([f"k{i}=v" * 5 for i in range(61)], 0, tmp_path)


def test_a_numbered_sweep_from_before_keeps_its_layout(tmp_path):
    fake_run(tmp_path / "3")
    assert results.job_dirname(["seed=2"], 7, tmp_path) == "7"
