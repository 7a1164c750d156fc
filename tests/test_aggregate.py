"""Aggregation of sweep folders fabricated with results.write_run (no training, no torch)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf
from scipy import stats

from mirror_sweep import cli
from mirror_sweep.cli import aggregate_main
from mirror_sweep.sweep import results
from mirror_sweep.sweep.aggregate import (
    FAILED_COLUMNS,
    RUN_COLUMNS,
    SweepError,
    load_sweep,
    write_aggregate,
)
from mirror_sweep.sweep.summaries import robustness, summarise

N_UNITS = 4


def make_job(root: Path, run_id: str, seed: int, condition: str | None = "shared_bidirectional",
             overrides: tuple[str, ...] = (), hidden_size: int = 8, status: str = "complete"
             ) -> Path:
    """A job folder as Hydra and app.py write it, with metrics drawn from the seed."""
    folder = root / run_id
    (folder / ".hydra").mkdir(parents=True)
    # A condition sets config keys (here one that stands for them), so conditions differ in config.
    config = {"seed": seed, "model": {"shared_core": True, "hidden_size": hidden_size},
              "train": {"lr": 0.001, "epochs": 1}, "objective": {"condition": str(condition)}}
    choices = {"condition": condition, "env": "linear", "model": "shared_gru",
               "objective": "bidirectional", "data_pairing": "paired", "hydra/launcher": "basic"}
    OmegaConf.save(OmegaConf.create(config), folder / ".hydra" / "config.yaml")
    OmegaConf.save(OmegaConf.create([*overrides, f"seed={seed}"]), folder / ".hydra/overrides.yaml")
    OmegaConf.save(OmegaConf.create({"hydra": {"runtime": {"choices": choices}}}),
                   folder / ".hydra" / "hydra.yaml")
    if status == "complete":
        rng = np.random.default_rng(seed)
        r = rng.uniform(-1, 1, N_UNITS)
        summary = {"seed": seed, "n_units": N_UNITS, "frac_abs_r_gt": float(np.mean(abs(r) > 0.6)),
                   "max_r": float(r.max()), "min_r": float(r.min()),
                   "final_test_observe_accuracy": float(rng.uniform())}
        tables = {
            results.UNITS_FILE: pd.DataFrame({"unit": range(N_UNITS), "r": r}),
            results.DECODING_FILE: pd.DataFrame({
                "train_mode": ["perform", "perform", "observe", "observe"],
                "test_mode": ["perform", "observe", "perform", "observe"],
                "accuracy": rng.uniform(size=4), "chance": 0.25, "null_sd": 0.05,
                "p_value": rng.uniform(size=4), "n_train_sequences": 14,
                "n_test_sequences": 6}),
            results.HISTORY_FILE: pd.DataFrame({"epoch": [1], "train_total_loss": [1.0]}),
        }
        results.write_run(folder, summary, tables, None, results.folder_config_hash(folder))
    elif status == "failed":
        results.mark_failed(folder, RuntimeError("planted failure"))
    elif status == "running":
        results.write_status(folder, "running", pid=12345)
    return folder


def make_sweep(root: Path, conditions=("shared_bidirectional", "forward_only"), seeds=range(3)):
    for i, (condition, seed) in enumerate((c, s) for c in conditions for s in seeds):
        make_job(root, str(i), seed, condition, overrides=(f"condition={condition}",))
    return root


def file_hashes(root: Path) -> dict[str, tuple[str, int]]:
    """sha256 and mtime of every file under root outside aggregate/."""
    return {str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(),
                                       p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file() and "aggregate" not in p.parts}


def test_tables_have_one_row_per_run_unit_and_decoder_with_run_columns_first(tmp_path):
    sweep = load_sweep(make_sweep(tmp_path))
    assert len(sweep.runs) == 6 and len(sweep.units) == 6 * N_UNITS
    assert len(sweep.decoding) == 24 and len(sweep.history) == 6 and sweep.failed.empty
    for table in [sweep.runs, sweep.units, sweep.decoding, sweep.history]:
        assert list(table.columns[:len(RUN_COLUMNS)]) == RUN_COLUMNS
    assert list(sweep.failed.columns) == FAILED_COLUMNS
    runs = sweep.runs
    assert list(runs.run_id) == [str(i) for i in range(6)]
    assert list(runs.condition) == ["shared_bidirectional"] * 3 + ["forward_only"] * 3
    assert list(runs.seed) == [0, 1, 2] * 2 and set(runs.hidden_size) == {8}
    assert set(runs.model) == {"shared_gru"} and set(runs.env) == {"linear"}
    assert runs.columns[len(RUN_COLUMNS)] == "n_units"  # then the summary's metrics
    assert runs["train.lr"].tolist() == [0.001] * 6  # and the flattened config
    unit_r = sweep.units.loc[(sweep.units.run_id == "4"), "r"].to_numpy()
    np.testing.assert_allclose(unit_r, np.random.default_rng(1).uniform(-1, 1, N_UNITS))


def test_population_and_causal_tables_are_concatenated_and_older_runs_read_empty(tmp_path):
    make_sweep(tmp_path, conditions=("shared_bidirectional",), seeds=range(2))
    for run_id in ("0", "1"):  # rewrite each run with the two newer tables
        record = results.read_run(tmp_path / run_id)
        ablation = pd.DataFrame({"mode": ["perform"], "metric": ["forward_loss"],
                                 "selection": ["mirror"], "k": [1], "delta": [float(run_id)]})
        subsets = pd.DataFrame({"train_mode": ["perform"], "selection": ["random"], "k": [1]})
        tables = {results.UNITS_FILE: record.units, results.DECODING_FILE: record.decoding,
                  results.HISTORY_FILE: record.history, results.ABLATION_FILE: ablation,
                  results.SUBSET_DECODING_FILE: subsets}
        results.write_run(tmp_path / run_id, record.summary, tables, None,
                          results.folder_config_hash(tmp_path / run_id))
    make_job(tmp_path, "2", seed=2)  # an older run: no ablation.csv, no subset_decoding.csv
    sweep = load_sweep(tmp_path)
    assert len(sweep.runs) == 3 and sweep.failed.empty
    assert list(sweep.ablation.columns[:len(RUN_COLUMNS)]) == RUN_COLUMNS
    assert sweep.ablation["run_id"].tolist() == ["0", "1"]
    assert sweep.ablation["delta"].tolist() == [0.0, 1.0]
    assert sweep.subset_decoding["seed"].tolist() == [0, 1]


def test_run_ids_in_natural_order_and_nested_sweeps(tmp_path):
    for i in range(12):
        make_job(tmp_path / "2024-01-01_00-00-00", str(i), seed=i)
    sweep = load_sweep(tmp_path)
    assert list(sweep.runs.run_id) == [f"2024-01-01_00-00-00/{i}" for i in range(12)]


def test_condition_label_from_the_overrides_that_vary_else_default(tmp_path):
    for i, lr in enumerate([0.1, 0.1, 0.01]):
        make_job(tmp_path, str(i), seed=i, condition=None,
                 overrides=("+experiment=x", f"train.lr={lr}", "model.hidden_size=8"))
    assert list(load_sweep(tmp_path).runs.condition) == ["train.lr=0.1"] * 2 + ["train.lr=0.01"]
    other = tmp_path / "same"
    for i in range(2):
        make_job(other, str(i), seed=i, condition=None, overrides=("train.lr=0.1",))
    assert list(load_sweep(other).runs.condition) == ["default", "default"]


def test_single_run_folder(tmp_path):
    folder = make_job(tmp_path, "run", seed=42)
    sweep = load_sweep(folder)
    assert list(sweep.runs.run_id) == ["run"] and len(sweep.units) == N_UNITS


def test_failed_killed_and_corrupted_runs_are_listed_and_the_rest_aggregated(tmp_path):
    make_sweep(tmp_path, conditions=["shared_bidirectional"], seeds=range(3))
    make_job(tmp_path, "3", seed=3, status="failed")
    make_job(tmp_path, "4", seed=4, status="running")
    make_job(tmp_path, "5", seed=5, status="missing")
    (make_job(tmp_path, "6", seed=6) / "summary.json").write_text('{"seed": 6, "max_r"')
    units = make_job(tmp_path, "7", seed=7) / "units.csv"
    units.write_text("\n".join(units.read_text().splitlines()[:2]) + "\n")  # truncated
    (make_job(tmp_path, "8", seed=8) / "status.json").write_text("{not json")
    (make_job(tmp_path, "9", seed=9) / ".hydra" / "config.yaml").write_text("seed: [1, 2\n")
    sweep = load_sweep(tmp_path)
    assert list(sweep.runs.run_id) == ["0", "1", "2"]
    failed = sweep.failed.set_index("run_id")
    assert list(failed.index) == [str(i) for i in range(3, 10)]
    assert list(failed.status) == ["failed", "running", "missing"] + ["unreadable"] * 4
    assert "planted failure" in failed.loc["3", "error"]
    assert failed.loc["4", "seed"] == 4 and "killed" in failed.loc["4", "error"]
    for run_id, name in [("6", "summary.json"), ("7", "units.csv"), ("8", "status.json"),
                         ("9", ".hydra/config.yaml")]:
        assert failed.loc[run_id, "error"].startswith(f"{run_id}/{name}: ")


def test_robustness_ci_brackets_the_mean_and_matches_a_plain_loop(tmp_path):
    runs = load_sweep(make_sweep(tmp_path, seeds=range(5))).runs
    table = robustness(runs, ["max_r", "frac_abs_r_gt"], n_boot=2000, seed=7, ci="percentile")
    assert list(table.columns) == ["condition", "metric", "n", "mean", "sd", "ci_low", "ci_high",
                                   "grouped_by"]
    assert len(table) == 4 and (table.n == 5).all()
    assert (table.ci_low <= table["mean"]).all() and (table["mean"] <= table.ci_high).all()
    for _, row in table.iterrows():
        x = runs.loc[runs.condition == row.condition, row.metric].to_numpy()
        idx = np.random.default_rng(7).integers(0, len(x), size=(2000, len(x)))
        means = [np.mean(x[idx[b]]) for b in range(2000)]
        assert row["mean"] == pytest.approx(np.mean(x))
        assert row.sd == pytest.approx(np.std(x, ddof=1))
        assert [row.ci_low, row.ci_high] == pytest.approx(np.percentile(means, [2.5, 97.5]))


def test_bootstrap_ci_agrees_with_scipy():
    x = np.random.default_rng(0).normal(1.0, 2.0, size=(40, 1))
    low, high = summarise(x, n_boot=20_000, seed=0, level=0.95, ci="percentile")[0, 3:]
    ref = stats.bootstrap((x[:, 0],), np.mean, n_resamples=20_000, method="percentile",
                          random_state=1).confidence_interval
    assert low == pytest.approx(ref.low, abs=0.05) and high == pytest.approx(ref.high, abs=0.05)


def test_robustness_per_hidden_size_and_nan_values_dropped(tmp_path):
    for i, (h, seed) in enumerate((h, s) for h in [8, 16] for s in range(3)):
        make_job(tmp_path, str(i), seed, hidden_size=h)
    runs = load_sweep(tmp_path).runs
    runs.loc[0, "max_r"] = np.nan
    table = robustness(runs, n_boot=500)
    assert list(table.columns[:3]) == ["condition", "hidden_size", "metric"]
    assert set(table.metric) == {"frac_abs_r_gt", "max_r", "min_r", "final_test_observe_accuracy"}
    n = table.set_index(["hidden_size", "metric"]).n
    assert n[(8, "max_r")] == 2 and n[(8, "min_r")] == 3 and n[(16, "max_r")] == 3
    assert table.equals(robustness(runs, n_boot=500))  # seeded


def test_write_aggregate_twice_gives_identical_files_and_leaves_runs_untouched(tmp_path):
    make_sweep(tmp_path)
    make_job(tmp_path, "6", seed=6, status="failed")
    before = file_hashes(tmp_path)
    out = write_aggregate(load_sweep(tmp_path), n_boot=500)
    assert out == tmp_path / "aggregate"
    names = ["ablation.csv", "contrasts.csv", "decoding.csv", "duplicates.csv", "failed.csv",
             "history.csv", "robustness.csv", "runs.csv", "subset_decoding.csv", "units.csv"]
    assert sorted(p.name for p in out.iterdir()) == names
    first = {name: (out / name).read_bytes() for name in names}
    write_aggregate(load_sweep(tmp_path), n_boot=500)
    assert {name: (out / name).read_bytes() for name in names} == first
    assert file_hashes(tmp_path) == before
    failed = pd.read_csv(out / "failed.csv")
    assert list(failed.columns) == FAILED_COLUMNS and list(failed.run_id) == [6]
    assert len(pd.read_csv(out / "runs.csv")) == 6


def test_progress_lines_on_large_sweeps(tmp_path, capsys):
    make_sweep(tmp_path, conditions=["a"], seeds=range(5))
    load_sweep(tmp_path, progress_every=2)
    assert capsys.readouterr().err.splitlines() == [
        f"load_sweep: read {i}/5 job folders" for i in (2, 4, 5)]


@pytest.mark.parametrize("case", ["missing", "empty", "no_runs"])
def test_bad_sweep_folder_is_an_error_naming_it(tmp_path, case, capsys):
    path = tmp_path / case
    if case != "missing":
        path.mkdir()
    if case == "no_runs":
        (path / "notes.txt").write_text("no runs here")
    with pytest.raises(SweepError, match=str(path)):
        load_sweep(path)
    assert aggregate_main([str(path)]) == 2
    assert str(path) in capsys.readouterr().err
    assert not (path / "aggregate").exists()


@pytest.mark.slow
def test_mirror_aggregate_cli_as_a_subprocess(tmp_path):
    make_sweep(tmp_path / "sweep")
    make_job(tmp_path / "sweep", "6", seed=6, status="failed")
    cli = [sys.executable, "-m", "mirror_sweep.cli"]
    # (stdout buffered, as it is by default when piped: what cli.main must flush before os._exit)
    env = {key: value for key, value in os.environ.items() if key != "PYTHONUNBUFFERED"}
    proc = subprocess.run([*cli, str(tmp_path / "sweep"), "--n-boot", "200"],
                          check=False, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "6 complete runs, 1 failed" in proc.stdout
    assert str(tmp_path / "sweep" / "aggregate") in proc.stdout
    # the last line printed: the output is flushed before the process leaves (cli.main)
    assert proc.stdout.rstrip().endswith(f"{tmp_path / 'sweep' / 'aggregate' / 'figures'}")
    assert (tmp_path / "sweep" / "aggregate" / "robustness.csv").exists()
    proc = subprocess.run([*cli, str(tmp_path / "nowhere")], check=False,
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 2 and str(tmp_path / "nowhere") in proc.stderr
    script = "import sys; from mirror_sweep.cli import main; sys.argv[0] = 'mirror-aggregate'; main()"
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path / "nowhere")],
                          check=False, capture_output=True, text=True, env=env)  # the console script's
    assert proc.returncode == 2 and str(tmp_path / "nowhere") in proc.stderr


def test_only_failed_runs_writes_the_tables_and_exits_1(tmp_path, capsys):
    make_job(tmp_path, "0", seed=0, status="failed")
    assert aggregate_main([str(tmp_path), "--n-boot", "100"]) == 1
    assert "no complete run" in capsys.readouterr().err
    assert len(pd.read_csv(tmp_path / "aggregate" / "failed.csv")) == 1


@pytest.mark.slow
def test_aggregate_does_not_import_torch():
    code = ("import sys, mirror_sweep.sweep.aggregate, mirror_sweep.cli; "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_one_blas_thread_leaves_a_process_that_has_numpy_as_it_is(monkeypatch):
    for name in cli.BLAS_THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    cli.one_blas_thread()  # this process has numpy: a notebook's, the tests', never changed
    assert not any(name in os.environ for name in cli.BLAS_THREAD_VARIABLES)


@pytest.mark.slow
def test_mirror_aggregate_loads_numpy_with_one_blas_thread_unless_told_otherwise():
    probe = ("import os, sys; from mirror_sweep import cli; "
             "print('numpy' in sys.modules); cli.one_blas_thread(); import numpy; "
             "from threadpoolctl import threadpool_info; "
             "print(sorted({i['num_threads'] for i in threadpool_info() "
             "if i['user_api'] == 'blas'}), os.environ['OPENBLAS_NUM_THREADS'])")
    env = {k: v for k, v in os.environ.items() if k not in cli.BLAS_THREAD_VARIABLES}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                         text=True, check=True).stdout.split("\n")
    assert out[:2] == ["False", "[1] 1"]  # the CLI module loads no numpy before setting it
    env["OPENBLAS_NUM_THREADS"] = "2"
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                         text=True, check=True).stdout.split("\n")
    assert out[1].endswith(" 2")  # the user's value kept
