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


HEAVY = ["torch", "pandas", "scipy", "scipy.stats", "sklearn", "matplotlib"]


def heavy_modules_after(code: str) -> list[str]:
    """Which of HEAVY a fresh interpreter has imported after running `code`."""
    probe = f"import sys; {code}; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True)
    return [m for m in done.stdout.strip().split(",") if m]


@pytest.mark.slow
def test_start_up_imports_no_heavy_library():
    assert heavy_modules_after("import mirror_sweep.app, mirror_sweep.run.experiment") == []


@pytest.mark.slow
def test_a_sweep_worker_imports_every_stage_once_before_forking_its_jobs():
    imported = heavy_modules_after(
        "from mirror_sweep.run.experiment import import_stages; import_stages()")
    assert imported == ["torch", "pandas", "scipy"]  # not scipy.stats (~0.6 s): not needed
