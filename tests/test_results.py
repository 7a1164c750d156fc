"""The run-folder contract (sweep/results.py): a run written, read back, and refused when a file
is missing, altered or the run is not complete. (The completeness rule with its config hash and
code version, results.run_state, is tested with the sweeps.)"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from mirror_sweep.sweep import results


def write_small_run(folder, activations=True, null=True):
    folder.mkdir(parents=True, exist_ok=True)
    tables = {results.UNITS_FILE: pd.DataFrame({"unit": [0, 1], "r": [0.5, -0.2]}),
              results.DECODING_FILE: pd.DataFrame({"train_mode": ["perform"],
                                                   "test_mode": ["observe"], "accuracy": [0.4]}),
              results.HISTORY_FILE: pd.DataFrame({"epoch": [1], "train_total_loss": [1.5]})}
    if null:
        tables[results.NULL_FILE] = pd.DataFrame({"unit": 0, "null_r": [0.1, -0.3, 0.05]})
    acts = {"perform_hidden": np.zeros((2, 3, 2), np.float32)} if activations else None
    results.write_run(folder, {"n_units": 2, "frac_abs_r_gt": 0.0}, tables, acts, "abc123")
    return folder


def test_a_run_is_written_and_read_back_with_checksums(tmp_path):
    folder = write_small_run(tmp_path / "run")
    status = results.read_status(folder)
    assert status["status"] == "complete" and status["config_hash"] == "abc123"
    assert set(status["files"]) == {*results.TABLE_FILES, results.SUMMARY_FILE,
                                    results.NULL_FILE, results.ACTIVATIONS_FILE}
    record = results.read_run(folder)
    assert record.summary["n_units"] == 2 and list(record.units["r"]) == [0.5, -0.2]
    assert results.load_activations(folder)["perform_hidden"].shape == (2, 3, 2)
    null = results.read_table(folder / results.NULL_FILE, ("unit", "null_r"))
    assert list(null["null_r"]) == [0.1, -0.3, 0.05]
    assert not list(folder.glob(".*.tmp"))  # no temporary file left behind


def test_optional_files_are_optional(tmp_path):
    folder = write_small_run(tmp_path / "run", activations=False, null=False)
    assert set(results.read_status(folder)["files"]) == {*results.TABLE_FILES,
                                                         results.SUMMARY_FILE}
    assert len(results.read_run(folder).units) == 2
    assert not (folder / results.NULL_FILE).exists()
    with pytest.raises(results.RunFileError, match="save_activations=true"):
        results.load_activations(folder)


@pytest.mark.parametrize("name", [results.UNITS_FILE, results.NULL_FILE, results.SUMMARY_FILE])
def test_an_altered_or_missing_file_is_named(tmp_path, name):
    folder = write_small_run(tmp_path / "run")
    (folder / name).write_text((folder / name).read_text()[:-3])
    with pytest.raises(results.RunFileError, match=f"{name}: contents differ"):
        results.read_run(folder)
    (folder / name).unlink()
    with pytest.raises(results.RunFileError, match=f"{name}: missing"):
        results.read_run(folder)
    assert not results.is_complete(folder)


def test_a_running_or_failed_run_is_not_complete(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    assert results.read_status(folder) == {"status": "missing"}
    results.write_status(folder, "running", pid=1)
    with pytest.raises(results.RunFileError, match="run is running, not complete"):
        results.read_run(folder)
    results.mark_failed(folder, RuntimeError("boom"))
    status = results.read_status(folder)
    assert status["status"] == "failed" and "RuntimeError: boom" in status["error"]
    assert not results.is_complete(folder)



def test_update_table_writes_only_a_changed_table(tmp_path):
    path = tmp_path / "failed.csv"
    table = pd.DataFrame({"run_id": ["3", "10"], "error": ["a, quoted \"one\"", float("nan")]})
    assert results.update_table(path, table)
    assert path.read_text() == table.to_csv(index=False)
    os.utime(path, ns=(0, 0))
    assert not results.update_table(path, table) and path.stat().st_mtime_ns == 0
    assert results.update_table(path, table.iloc[:1])  # changed: written
    assert pd.read_csv(path, dtype=str).run_id.tolist() == ["3"] and path.stat().st_mtime_ns > 0
