"""Experiment presets, launchers, failure isolation and resume: real tiny sweeps in subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from mirror_sweep.config import CONFIG_DIR, register_configs, to_run_config
from mirror_sweep.run.threads import thread_policy
from mirror_sweep.sweep import results
from mirror_sweep.sweep.aggregate import load_sweep, write_aggregate
from tests.conftest import compose_config

CONDITIONS = sorted(p.stem for p in (Path(CONFIG_DIR) / "condition").glob("*.yaml"))
# The readout probes are swept by the mechanism preset, not by the ablation suite.
ABLATION_CONDITIONS = sorted(set(CONDITIONS) - {"action_head_both", "sensory_head_both"})
# Seconds per job. batch_size=8 gives 4 batches, so train.lr=1e30 fails mid-training (batch 1).
SMALL = ["data.n_train=32", "data.n_test=20", "train.epochs=1", "train.batch_size=8",
         "model.hidden_size=8", "analysis.n_permutations=100",
         "analysis.decoding_null_permutations=10", "train.progress=false",
         "output.save_activations=false"]


def compose_hydra(overrides: list[str]):
    """The composed config, hydra node included, for these overrides."""
    register_configs()  # the schema conf/config.yaml extends
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=overrides, return_hydra_config=True)


def sweep(sweep_dir: Path, *args: str) -> subprocess.CompletedProcess:
    """`mirror-sweep -m SMALL ARGS` into sweep_dir, with the sweep-summary callback."""
    command = [sys.executable, "-m", "mirror_sweep", "-m", *SMALL, *args,
               f"hydra.sweep.dir={sweep_dir}", "hydra/callbacks=sweep_summary"]
    proc = subprocess.run(command, check=False, cwd=sweep_dir.parent, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "HYDRA_FULL_ERROR": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def summary(folder: Path) -> dict:
    return json.loads((folder / results.SUMMARY_FILE).read_text())


@pytest.mark.parametrize("preset, params, folder", [
    ("ablations", {"condition": ",".join(ABLATION_CONDITIONS), "seed": "range(0,10)"},
     "ablations"),
    ("hidden_sizes", {"condition": "separate_cores,shared_bidirectional,untrained",
                      "model.hidden_size": "16,32,64,96,128,256", "seed": "range(0,10)"},
     "hidden_sizes"),
    ("actions", {"condition": "shared_bidirectional,untrained", "env.n_actions": "2,4,8",
                 "env.action_process": "iid,sticky,constant", "seed": "range(0,10)"}, "actions"),
    ("architectures", {"condition": "separate_cores,shared_bidirectional,untrained",
                       "model.cell": "gru,lstm,rnn", "seed": "range(0,10)"}, "architectures"),
    ("mechanism", {"condition": "action_head_both,sensory_head_both,shared_bidirectional,"
                                "shared_readout,untrained", "seed": "range(0,10)"}, "mechanism"),
    ("seeds", {"seed": "range(0,20)"}, "seeds"),
    ("paper", {}, "paper"),
])
def test_presets_define_their_sweep_in_config(preset, params, folder):
    cfg = compose_hydra([f"+experiment={preset}"])
    swept = dict(cfg.hydra.sweeper.params or {})
    if "condition" in swept:  # in any order
        swept["condition"] = ",".join(sorted(swept["condition"].split(",")))
    assert swept == params
    for key, values in swept.items():  # every swept value composes into a valid run config
        if key == "seed":
            continue
        for value in values.split(","):
            to_run_config(compose_config([f"+experiment={preset}", f"{key}={value}"]))
    sweep_dir = OmegaConf.to_container(cfg.hydra.sweep, resolve=False)["dir"]
    assert sweep_dir == f"multirun/{folder}/${{now:%Y-%m-%d_%H-%M-%S}}"
    assert "sweep_summary" in cfg.hydra.callbacks
    if preset in ("seeds", "paper"):
        assert cfg.hydra.runtime.choices.condition == "shared_bidirectional"
    if preset == "paper":
        assert cfg.seed == 42 and cfg.model.hidden_size == 96 and cfg.data.n_train == 2000


def test_launcher_options_compose_with_the_plugins():
    joblib = compose_hydra(["hydra/launcher=joblib_local"]).hydra.launcher
    assert joblib._target_.endswith("JoblibLauncher") and joblib.n_jobs == 2
    local = compose_hydra(["hydra/launcher=submitit_local_cpu"]).hydra.launcher
    assert local._target_.endswith("LocalLauncher") and local.cpus_per_task == 1
    slurm = compose_hydra(["hydra/launcher=slurm", "hydra.launcher.partition=cpu"]).hydra.launcher
    assert slurm._target_.endswith("SlurmLauncher") and slurm.partition == "cpu"
    for key in ["timeout_min", "mem_gb", "cpus_per_task", "array_parallelism"]:
        assert slurm[key] is not None


def test_slurm_launcher_config_becomes_sbatch_directives(tmp_path, monkeypatch):
    """The launcher's own parameter mapping (as hydra_submitit_launcher.launch), rendered by
    submitit. A fake `srun` on PATH lets submitit build its SLURM executor here; nothing is
    submitted.
    """
    from hydra.utils import instantiate

    (tmp_path / "srun").write_text("#!/bin/sh\nexit 0\n")
    (tmp_path / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    launcher = compose_hydra(["hydra/launcher=slurm", "hydra.launcher.partition=cpu",
                              f"hydra.sweep.dir={tmp_path}"]).hydra.launcher
    executor = instantiate(launcher).make_executor()
    text = executor._executor._make_submission_file_text("python job.py", "uid")
    for line in ["--partition=cpu", f"--cpus-per-task={launcher.cpus_per_task}",
                 f"--mem={launcher.mem_gb}GB", f"--time={launcher.timeout_min}"]:
        assert f"#SBATCH {line}" in text
    assert executor._executor.parameters["array_parallelism"] == launcher.array_parallelism


@pytest.mark.slow
def test_ablations_preset_with_cli_values_winning_over_its_sweep(tmp_path):
    """Command-line values of swept keys replace the preset's sweep of them (not a product)."""
    sweep_dir = tmp_path / "ablations"
    proc = sweep(sweep_dir, "+experiment=ablations", "seed=0,1",
                 "condition=shared_bidirectional,untrained")
    assert f"sweep {sweep_dir}: 4 jobs: 4 complete" in proc.stdout
    runs = load_sweep(sweep_dir).runs.sort_values(["condition", "seed"])
    assert list(runs.run_id) == [f"condition={c},seed={s}" for c in
                                 ["shared_bidirectional", "untrained"] for s in [0, 1]]
    assert list(zip(runs.condition, runs.seed)) == [
        ("shared_bidirectional", 0), ("shared_bidirectional", 1), ("untrained", 0),
        ("untrained", 1)]
    assert runs["data.n_train"].eq(32).all() and runs.hidden_size.eq(8).all()
    out = write_aggregate(load_sweep(sweep_dir), n_boot=200)
    robust = pd.read_csv(out / "robustness.csv")
    assert set(robust.condition) == {"shared_bidirectional", "untrained"}
    # every metric with a value has both seeds (a metric undefined in a tiny run, e.g. a median
    # over no mirror unit, has none)
    assert robust.n.isin([0, 2]).all()
    assert (robust.loc[robust.metric.isin(["frac_abs_r_gt", "max_r"]), "n"] == 2).all()


@pytest.mark.parametrize("launcher", ["basic", "joblib_local"])
@pytest.mark.slow
def test_a_failing_job_keeps_the_healthy_ones(tmp_path, launcher):
    sweep_dir = tmp_path / launcher
    proc = sweep(sweep_dir, f"hydra/launcher={launcher}", "seed=0", "train.lr=1e-3,1e30")
    assert "2 jobs: 1 complete, 1 failed" in proc.stdout
    assert "failed: train.lr=1e+30: NonFiniteLossError" in proc.stdout  # the summary lists it
    assert results.is_complete(sweep_dir / "train.lr=0.001")
    status = results.read_status(sweep_dir / "train.lr=1e+30")
    assert status["status"] == "failed" and "NonFiniteLossError" in status["error"]
    assert "Traceback" in status["traceback"]
    sweep_ = load_sweep(sweep_dir)
    assert list(sweep_.runs.run_id) == ["train.lr=0.001"]
    assert sweep_.failed[["run_id", "condition", "status"]].values.tolist() == [
        ["train.lr=1e+30", "train.lr=1e+30", "failed"]]
    job = summary(sweep_dir / "train.lr=0.001")  # run/threads.py: 2 joblib workers, 1 thread each
    if launcher == "joblib_local":
        assert (job["torch_threads"], job["torch_threads_policy"]) == (1, "fixed")
    else:  # one job at a time: adaptive up to min(2, cores)
        policy = thread_policy(None, OmegaConf.create({}))
        assert job["torch_threads_policy"] == policy.describe()
        assert 1 <= job["torch_threads"] <= policy.cap


@pytest.mark.slow
def test_submitit_local_launcher_runs_each_job_with_one_thread(tmp_path):
    sweep_dir = tmp_path / "submitit"
    proc = sweep(sweep_dir, "hydra/launcher=submitit_local_cpu", "seed=0,1")
    assert "2 jobs: 2 complete" in proc.stdout
    assert (sweep_dir / ".submitit").is_dir()
    for job in ["seed=0", "seed=1"]:
        assert results.is_complete(sweep_dir / job)
        assert summary(sweep_dir / job)["torch_threads"] == 1
    assert len(load_sweep(sweep_dir).runs) == 2


@pytest.mark.slow
def test_resume_skips_complete_jobs_and_reruns_failed_missing_and_changed(tmp_path):
    sweep_dir = tmp_path / "resume"
    sweep(sweep_dir, "seed=0,1,2,3")
    jobs = [f"seed={seed}" for seed in range(4)]
    (sweep_dir / jobs[0] / results.STATUS_FILE).unlink()  # missing: killed before it finished
    results.mark_failed(sweep_dir / jobs[1], RuntimeError("planted"))
    status = results.read_status(sweep_dir / jobs[2])  # changed: completed with another config
    results.write_json(sweep_dir / jobs[2] / results.STATUS_FILE,
                       {**status, "config_hash": "another-config"})
    mtimes = {job: (sweep_dir / job / results.SUMMARY_FILE).stat().st_mtime_ns for job in jobs}
    proc = sweep(sweep_dir, "seed=0,1,2,3")
    assert "4 jobs: 3 complete, 1 skipped" in proc.stdout
    log = "".join((sweep_dir / job / "app.log").read_text() for job in jobs)
    assert "job seed=3 already complete with this config: skipped" in log
    assert not any(f"job {job} already complete" in log for job in jobs[:3])
    assert "moved the complete run it held aside" in log  # seed=2's run of "another config"
    assert len(list((sweep_dir / jobs[2] / results.SUPERSEDED_DIR).iterdir())) == 1
    for job in jobs:
        assert results.is_complete(sweep_dir / job, status["config_hash"] if job == jobs[2]
                                   else None)
        changed = (sweep_dir / job / results.SUMMARY_FILE).stat().st_mtime_ns != mtimes[job]
        assert changed == (job != jobs[3]), job


def test_command_line_condition_replaces_a_presets_condition():
    choices = compose_hydra(["+experiment=seeds", "condition=forward_only"]).hydra.runtime.choices
    assert choices.condition == "forward_only" and choices.objective == "forward_only"


@pytest.mark.slow
@pytest.mark.parametrize("args, factor, values", [
    (["model.cell=gru,lstm,rnn", "condition=shared_bidirectional,separate_cores"], "cell",
     {"gru", "lstm", "rnn"}),
    (["env.action_process=iid,sticky,constant", "env.n_actions=2,3"], "action_process",
     {"iid", "sticky", "constant"}),
])
def test_tiny_sweep_over_each_new_option_groups_by_its_factor(tmp_path, args, factor, values):
    sweep_dir = tmp_path / factor
    sweep(sweep_dir, *args)
    loaded = load_sweep(sweep_dir)
    assert loaded.failed.empty and len(loaded.runs) == 6
    assert set(loaded.runs[factor]) == values
    # the factor is a column, not part of the condition label
    assert not loaded.runs["condition"].str.contains(factor).any()
    table = pd.read_csv(write_aggregate(loaded, n_boot=50) / "robustness.csv")
    keys = table["grouped_by"].iloc[0].split(",")
    assert keys[0] == "condition" and factor in keys
    if factor == "cell":  # equal H: the core's parameter count follows the cell type
        per_core = loaded.runs.groupby("cell")["n_core_parameters"].min()
        assert per_core["lstm"] > per_core["gru"] > per_core["rnn"]
    else:
        assert set(loaded.runs["n_actions"]) == {2, 3} and "n_actions" in keys


@pytest.mark.slow
def test_tiny_sweep_over_the_readout_probes_draws_the_mechanism_figure(tmp_path):
    from mirror_sweep.report.factor_figures import draw_factor_figures

    sweep_dir = tmp_path / "mechanism"
    sweep(sweep_dir, "condition=shared_bidirectional,action_head_both,sensory_head_both")
    loaded = load_sweep(sweep_dir)
    assert loaded.failed.empty
    assert set(loaded.runs["condition"]) == {"shared_bidirectional", "action_head_both",
                                             "sensory_head_both"}
    probe = loaded.runs.set_index("condition")
    assert pd.notna(probe.loc["action_head_both", "final_train_action_head_on_perform_loss"])
    assert pd.notna(probe.loc["sensory_head_both", "final_train_sensory_head_on_observe_loss"])
    paths = draw_factor_figures(loaded, tmp_path / "figures", n_boot=50)
    assert {p.name for p in paths} == {"mechanism_readout.png", "mechanism_readout.pdf"}
