"""The thread policy: fixed or adaptive to the cores' load, applied stage by stage with the
results independent of it; and a job imports heavy libraries only when a stage needs them (what
the start-up before data generation pays; timed in benchmarks/run.py)."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from mirror_sweep.config import to_run_config
from mirror_sweep.run import threads
from mirror_sweep.run.experiment import RunSeeds, build_model, make_data, run_experiment
from mirror_sweep.run.threads import CpuLoad, JobThreads, ThreadPolicy, thread_policy
from mirror_sweep.run.train import evaluate, to_tensors, train
from tests.conftest import compose_config


@pytest.fixture
def cores(monkeypatch):
    """Pretend the process may use n cores and its cgroup has no quota."""
    def set_cores(n: int, quota: float | None = None) -> None:
        monkeypatch.setattr(threads, "available_cores", lambda: n)
        monkeypatch.setattr(threads, "cgroup_cores", lambda: quota)
    return set_cores


def test_policy_fixed_when_asked_adaptive_otherwise(cores):
    cores(2)
    launcher = OmegaConf.create
    assert thread_policy(3, launcher({"n_jobs": 2})) == ThreadPolicy(3)  # torch_threads wins
    assert thread_policy(None, launcher({"cpus_per_task": 4})) == ThreadPolicy(4)  # scheduler
    assert thread_policy(None, launcher({"n_jobs": 2})) == ThreadPolicy(1)  # 2 workers x 1
    assert thread_policy(None, launcher({})) == ThreadPolicy(None, 2)  # one job: adaptive 1-2
    assert thread_policy(None, launcher({"n_jobs": -1})) == ThreadPolicy(1)  # one per core
    cores(8)
    assert thread_policy(None, launcher({})) == ThreadPolicy(None, threads.AUTO_MAX_THREADS)
    assert thread_policy(None, launcher({"n_jobs": 4})) == ThreadPolicy(None, 2)
    cores(8, quota=1.5)  # a container allowed 1.5 cores
    assert thread_policy(None, launcher({})) == ThreadPolicy(1)
    cores(1)
    assert thread_policy(None, launcher({})) == ThreadPolicy(1)
    assert ThreadPolicy(None, 2).adaptive and not ThreadPolicy(1).adaptive


def test_cgroup_quota_is_read(tmp_path):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert threads.cgroup_cores(tmp_path / "cpu.max") == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert threads.cgroup_cores(tmp_path / "cpu.max") is None
    assert threads.cgroup_cores(tmp_path / "missing") is None


class FakeMachine:
    """A /proc/stat with two cores, a clock and this process's CPU time, advanced by hand."""

    def __init__(self, tmp_path, monkeypatch):
        self.stat, self.now, self.busy, self.own = tmp_path / "stat", 100.0, [0, 0], 0.0
        monkeypatch.setattr(threads.time, "monotonic", lambda: self.now)
        monkeypatch.setattr(threads.os, "times", lambda: os.times_result(
            (self.own, 0.0, 0.0, 0.0, self.now)))
        monkeypatch.setattr(threads, "available_cpus", lambda: {0, 1})
        monkeypatch.setattr(threads, "available_cores", lambda: 2)
        self.write()

    def write(self) -> None:
        hz = os.sysconf("SC_CLK_TCK")
        lines = ["cpu  0 0 0 0 0 0 0 0 0 0"]
        for cpu, busy in enumerate(self.busy):
            idle = int(self.now * hz) - busy
            lines.append(f"cpu{cpu} {busy} 0 0 {idle} 0 0 0 0 0 0")
        self.stat.write_text("\n".join(lines) + "\nintr 1 2 3\n")

    def run(self, seconds: float, own_cores: float, other_cores: float) -> None:
        """`seconds` pass with this process using own_cores and others other_cores."""
        hz = os.sysconf("SC_CLK_TCK")
        total = (own_cores + other_cores) * seconds * hz
        self.busy = [b + round(total / 2) for b in self.busy]
        self.now += seconds
        self.own += own_cores * seconds
        self.write()


def test_cpu_load_counts_other_processes_only(tmp_path, monkeypatch):
    machine = FakeMachine(tmp_path, monkeypatch)
    load = CpuLoad(machine.stat)
    machine.run(1.0, own_cores=1.0, other_cores=0.0)
    assert load.others() == pytest.approx(0.0, abs=0.02)
    machine.run(1.0, own_cores=1.0, other_cores=1.0)
    assert load.others() == pytest.approx(1.0, abs=0.02)
    machine.run(0.05, own_cores=1.0, other_cores=1.0)
    assert load.others() is None  # too short a window: nothing said, the reading kept
    assert CpuLoad(tmp_path / "no-such-file").others() is None


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """A FakeMachine whose /proc/stat the thread policy reads; torch's thread count restored."""
    fake = FakeMachine(tmp_path, monkeypatch)
    monkeypatch.setattr(threads, "PROC_STAT", fake.stat)
    before = torch.get_num_threads()
    yield fake
    torch.set_num_threads(before)


def test_training_threads_follow_the_load(machine):
    job = JobThreads(ThreadPolicy(None, 2))
    machine.run(1.0, own_cores=1.0, other_cores=0.0)  # start-up on a quiet machine
    job.start_training()
    assert torch.get_num_threads() == 2
    with job.baseline():  # evaluation on one thread
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    machine.run(0.2, own_cores=1.5, other_cores=0.5)
    job.tick()  # not yet RECHECK_S since the last reading
    assert torch.get_num_threads() == 2
    machine.run(0.5, own_cores=1.2, other_cores=0.8)  # another process takes a core
    job.tick()
    assert torch.get_num_threads() == 1
    machine.run(0.6, own_cores=1.0, other_cores=0.1)  # it is gone
    job.tick()
    assert torch.get_num_threads() == 2
    job.end_training()
    assert torch.get_num_threads() == 1
    assert job.summary() == {"torch_threads": 2, "torch_threads_policy": "adaptive 1-2",
                             "torch_thread_switches": 2}


def test_busy_at_start_trains_on_one_thread(machine):
    job = JobThreads(ThreadPolicy(None, 2))
    machine.run(1.0, own_cores=1.0, other_cores=1.0)
    job.start_training()
    assert torch.get_num_threads() == 1
    assert job.summary()["torch_threads"] == 1


def test_training_gives_the_same_parameters_on_one_and_two_threads():
    """What the adaptive policy rests on: the training steps' thread count does not change
    the parameters (default size, one epoch of 256 sequences, both cores kinds)."""
    before = torch.get_num_threads()
    try:
        for shared in ["true", "false"]:
            cfg = to_run_config(compose_config(
                ["train.epochs=1", "data.n_train=256", "data.n_test=64",
                 f"model.shared_core={shared}"], tiny=False))
            params, losses = [], []
            for n in [1, 2]:
                seeds = RunSeeds.from_seed(cfg.seed)
                train_set, test_set = make_data(cfg, seeds)
                model = build_model(cfg, seeds.init)
                torch.set_num_threads(n)
                history = train(model, train_set, test_set, cfg.train, cfg.objective,
                                torch.Generator().manual_seed(seeds.batches))
                params.append([p.detach().clone() for p in model.parameters()])
                losses.append(history)
            assert all(torch.equal(a, b) for a, b in zip(*params))
            assert losses[0] == losses[1]
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
def test_forward_pass_gives_the_same_states_on_one_and_two_threads(cell):
    """What the evaluation's forward pass on the training threads rests on: each cell type's
    states and read-out heads, shared and separate cores, are the same bits on 1 and 2 threads."""
    before = torch.get_num_threads()
    try:
        for shared in ["true", "false"]:
            cfg = to_run_config(compose_config(
                ["data.n_train=64", "data.n_test=300", f"model.cell={cell}",
                 f"model.shared_core={shared}"], tiny=False))
            seeds = RunSeeds.from_seed(cfg.seed)
            _, test_set = make_data(cfg, seeds)
            model = build_model(cfg, seeds.init).eval()
            tensors = to_tensors(test_set)
            outputs = []
            for n in [1, 2]:
                torch.set_num_threads(n)
                with torch.no_grad():
                    perform, observe = model(tensors["perform_actions"],
                                             tensors["observe_sensory"])
                    outputs.append([perform, observe, model.sensory_head(perform),
                                    model.action_head(observe)])
            assert all(torch.equal(a, b) for a, b in zip(*outputs))
    finally:
        torch.set_num_threads(before)


def test_evaluation_shares_the_training_threads_and_keeps_its_losses(machine):
    """During 2-thread training the held-out evaluation's forward pass runs on both threads and
    its losses on the baseline: the values of a 1-thread evaluation. At this size (1,024 test
    sequences) a loss reduction on 2 threads rounds differently, which the last lines check."""
    cfg = to_run_config(compose_config(
        ["train.epochs=1", "data.n_train=256", "data.n_test=1024"], tiny=False))
    seeds = RunSeeds.from_seed(cfg.seed)
    train_set, test_set = make_data(cfg, seeds)
    model = build_model(cfg, seeds.init)
    torch.set_num_threads(1)
    train(model, train_set, test_set, cfg.train, cfg.objective,
          torch.Generator().manual_seed(seeds.batches))
    tensors = to_tensors(test_set)
    one_thread = evaluate(model, tensors, cfg.objective)
    job = JobThreads(ThreadPolicy(None, 2))
    machine.run(1.0, own_cores=1.0, other_cores=0.0)
    job.start_training()
    assert evaluate(model, tensors, cfg.objective, job) == one_thread
    assert torch.get_num_threads() == 2  # back on the training threads
    assert evaluate(model, tensors, cfg.objective) != one_thread  # all of it on 2 threads


def test_run_experiment_sets_the_thread_budget_and_keeps_the_results():
    cfg = to_run_config(compose_config(["analysis.n_permutations=50"]))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = run_experiment(cfg)
        torch.set_num_threads(2)
        limited = run_experiment(cfg, threads=ThreadPolicy(1))
        assert torch.get_num_threads() == 1  # set by the run, not left at 2
    finally:
        torch.set_num_threads(before)
    assert one.summary["final_train_total_loss"] == limited.summary["final_train_total_loss"]
    assert one.units["r"].equals(limited.units["r"])


def test_spare_threads_change_no_result(monkeypatch):
    """With a spare core the ablation runs beside the analyses and the permutation null beside
    the other analyses, and training takes 2 threads: every table and scalar is unchanged."""
    cfg = to_run_config(compose_config(["analysis.n_permutations=50"]))
    before = torch.get_num_threads()
    try:
        one = run_experiment(cfg, threads=ThreadPolicy(1))
        monkeypatch.setattr(JobThreads, "free_threads", lambda self: 2)
        spare = run_experiment(cfg, threads=ThreadPolicy(None, 2))
    finally:
        torch.set_num_threads(before)
    assert not one.ablation.empty
    for table in ["units", "decoding", "history", "top_null", "subset_decoding", "ablation"]:
        pd.testing.assert_frame_equal(getattr(spare, table), getattr(one, table),
                                      check_exact=True)
    varying = {"torch_threads", "torch_threads_policy", "torch_thread_switches"}

    def scalars(summary: dict) -> str:  # JSON, so that nan equals nan
        return json.dumps({k: v for k, v in summary.items()
                           if not k.startswith("time_") and k not in varying}, sort_keys=True)

    assert scalars(spare.summary) == scalars(one.summary)
    assert spare.summary["torch_threads"] == 2 and one.summary["torch_threads"] == 1


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


def test_a_job_freezes_newly_imported_modules_once():
    import gc
    import types

    from mirror_sweep import app

    gc.unfreeze()
    try:
        app.freeze_imported_modules()
        frozen = gc.get_freeze_count()
        assert frozen > 0
        data = [[i] for i in range(1000)]  # a job's own objects: not frozen without new modules
        app.freeze_imported_modules()
        assert gc.get_freeze_count() == frozen
        sys.modules["_freeze_probe"] = types.ModuleType("_freeze_probe")  # a new import
        app.freeze_imported_modules()
        assert gc.get_freeze_count() > frozen + len(data)
    finally:
        sys.modules.pop("_freeze_probe", None)
        gc.unfreeze()
