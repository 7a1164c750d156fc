"""The app end to end, in subprocesses: files written, bad input rejected, determinism."""

import json
import time

import numpy as np
import pandas as pd
import pytest

from mirror_sweep.sweep import results
from tests.conftest import TINY, run_cli

pytestmark = pytest.mark.slow  # every test here runs the app in a subprocess


def run_folder(tmp_path, name="run"):
    return tmp_path / name


def run_tiny(tmp_path, *extra, name="run"):
    folder = run_folder(tmp_path, name)
    proc = run_cli([*TINY, *extra, f"hydra.run.dir={folder}"], cwd=tmp_path)
    return proc, folder


def test_cli_writes_the_run_files_and_a_readable_summary(tmp_path):
    proc, folder = run_tiny(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "units with |r| > 0.6" in proc.stdout and str(folder) in proc.stdout
    record = results.read_run(folder)
    assert len(record.units) == 8 and list(record.units.columns[:2]) == ["unit", "r"]
    assert len(record.history) == 2
    assert set(zip(record.decoding.train_mode, record.decoding.test_mode)) == {
        ("perform", "perform"), ("perform", "observe"), ("observe", "perform"),
        ("observe", "observe")}
    assert results.read_status(folder)["status"] == "complete"
    for key in ["frac_abs_r_gt", "frac_r_gt", "max_r", "min_r", "final_test_observe_accuracy",
                "untrained_frac_abs_r_gt", "time_train_s"]:
        assert key in record.summary


def test_units_r_matches_an_independent_computation_from_saved_activations(tmp_path):
    proc, folder = run_tiny(tmp_path)
    assert proc.returncode == 0, proc.stderr
    acts = results.load_activations(folder)
    perform = acts["perform_hidden"].reshape(-1, 8)
    observe = acts["observe_hidden"].reshape(-1, 8)
    expected = [np.corrcoef(perform[:, u], observe[:, u])[0, 1] for u in range(8)]
    units = pd.read_csv(folder / "units.csv")
    np.testing.assert_allclose(units["r"], expected, atol=1e-5)


@pytest.mark.parametrize("override,needle", [
    ("model.hidden_size=-5", "model.hidden_size"),
    ("objective=nope", "bidirectional_shared_readout"),  # lists the valid options
    ("model.hidden_size=abc", "model.hidden_size"),
    ("analysis.alpha=2", "analysis.alpha"),
])
def test_bad_overrides_fail_fast_naming_the_key(tmp_path, override, needle):
    start = time.perf_counter()
    proc, folder = run_tiny(tmp_path, override)
    elapsed = time.perf_counter() - start
    assert proc.returncode != 0
    assert needle in proc.stdout + proc.stderr
    assert not (folder / "summary.json").exists()
    assert elapsed < 30  # generous: the point is no training happens (typically ~2 s)


def test_same_seed_gives_identical_tables_and_another_seed_differs(tmp_path):
    runs = [run_tiny(tmp_path, f"seed={seed}", name=f"run{i}")
            for i, seed in enumerate([3, 3, 4])]
    assert all(proc.returncode == 0 for proc, _ in runs), runs[0][0].stderr
    units = [(folder / "units.csv").read_bytes() for _, folder in runs]
    assert units[0] == units[1] and units[0] != units[2]
    summaries = [json.loads((folder / "summary.json").read_text()) for _, folder in runs]
    for s in summaries:
        for key in [k for k in s if k.startswith("time_") or k == "provenance"]:
            s.pop(key)  # wall times and start/end stamps differ between identical runs
    # nan (e.g. a median over no mirror unit in a tiny run) equals nan here
    assert summaries[0] == pytest.approx(summaries[1], nan_ok=True)
    assert summaries[0] != pytest.approx(summaries[2], nan_ok=True)
    assert (runs[0][1] / "history.csv").read_bytes() == (runs[1][1] / "history.csv").read_bytes()


def test_a_sweep_runs_every_combination(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_cli(["-m", *TINY, "seed=0,1", "model=shared_gru,separate_gru",
                    f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    done = [p.parent for p in sweep.glob("*/status.json") if results.is_complete(p.parent)]
    assert len(done) == 4
