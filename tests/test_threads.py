"""The thread policy is applied stage by stage, and a job imports heavy libraries only when a
stage needs them (what the start-up before data generation pays; timed in benchmarks/run.py)."""

import subprocess
import sys

import pytest
import torch

from mirror_sweep.config import to_run_config
from mirror_sweep.run.experiment import run_experiment
from tests.conftest import compose_config


def test_run_experiment_sets_the_thread_budget_and_keeps_the_results():
    cfg = to_run_config(compose_config(["analysis.n_permutations=50"]))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = run_experiment(cfg)
        torch.set_num_threads(2)
        limited = run_experiment(cfg, threads=1)
        assert torch.get_num_threads() == 1  # set by the run, not left at 2
    finally:
        torch.set_num_threads(before)
    assert one.summary["final_train_total_loss"] == limited.summary["final_train_total_loss"]
    assert one.units["r"].equals(limited.units["r"])


@pytest.mark.slow
def test_start_up_imports_no_heavy_library():
    code = ("import sys, mirror_sweep.app, mirror_sweep.run.experiment; "
            "print(sorted(m for m in ['torch', 'pandas', 'scipy', 'sklearn', 'matplotlib'] "
            "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.slow
def test_a_sweep_worker_imports_every_stage_once_before_forking_its_jobs():
    code = ("import sys; from mirror_sweep.run.experiment import import_stages; import_stages(); "
            "print(sorted(m for m in ['torch', 'pandas', 'scipy', 'scipy.stats', "
            "'matplotlib'] if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "['pandas', 'scipy', 'scipy.stats', 'torch']"
