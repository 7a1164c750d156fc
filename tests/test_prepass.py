"""mirror-aggregate's forked pre-pass (sweep/prepass.py, sweep/forked.py): its scan is the one the
parent would make; a child that dies costs the scan made in process (never a lost run), and a
child's error is raised in the parent."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mirror_sweep.sweep import aggregate, prepass
from mirror_sweep.sweep.aggregate import SweepError, aggregate_sweep, examine_all
from mirror_sweep.sweep.prepass import Prepass, Scan, cache_path, scan
from mirror_sweep.sweep.synthetic import write_sweep
from mirror_sweep.sweep.verify_cache import VerifyCache

FILES = ["runs", "units", "decoding", "history", "failed", "duplicates", "robustness"]


@pytest.fixture()
def sweep(tmp_path) -> Path:
    """12 runs aggregated once (the cache written), then 2 new runs and run 3 changed."""
    root = tmp_path / "sweep"
    write_sweep(root, 12, duplicates=1, activation_seeds=1, hidden_sizes=(4,))
    aggregate_sweep(root, n_boot=20, progress_every=0)
    write_sweep(root, 2, start=13)
    summary = root / "3" / "summary.json"
    summary.write_text(summary.read_text().replace("{", "{ ", 1))  # checksum now wrong
    return root


def test_the_forked_scan_is_the_in_process_one(sweep):
    cache_file = cache_path(sweep, None, True)
    here = scan(sweep, cache_file)
    forked = Prepass.start(sweep).result()
    assert forked == here  # folders, leaves, token, hits, examined jobs (Job equality)
    assert len(here.folders) == 15 and here.token is not None
    assert here.hits == {str(sweep / str(i)) for i in range(13) if i != 3}
    assert [job.run_id for job in here.fresh] == ["3", "13", "14"]
    assert here.fresh[0].state == "unreadable" and here.fresh[1].problem is None


def test_aggregation_from_the_pre_pass_writes_the_files_of_one_without(sweep, tmp_path):
    shutil.copytree(sweep, tmp_path / "copy")
    with_prepass = aggregate_sweep(sweep, n_boot=20, progress_every=0,
                                   prepass=Prepass.start(sweep))
    without = aggregate_sweep(tmp_path / "copy", n_boot=20, progress_every=0)
    assert with_prepass.n_cached == without.n_cached == 12
    for name in FILES:
        assert (with_prepass.out / f"{name}.csv").read_bytes() == \
            (without.out / f"{name}.csv").read_bytes(), name
    with pytest.raises(ValueError, match="other arguments"):
        aggregate_sweep(sweep, tmp_path / "elsewhere", prepass=Prepass.start(sweep))


def test_runs_the_pre_pass_found_unchanged_are_carried(tmp_path, monkeypatch):
    """After new runs, the last pass's kept runs are carried on the pre-pass's cache hits (none
    stat'ed again), and the files are those of a pass without a pre-pass."""
    root = tmp_path / "sweep"
    write_sweep(root, 12, hidden_sizes=(4,))
    aggregate_sweep(root, n_boot=20, progress_every=0)
    write_sweep(root, 2, start=12, hidden_sizes=(4,))
    shutil.copytree(root, tmp_path / "copy")
    carried = []
    original = aggregate.sort_out_carried
    monkeypatch.setattr(aggregate, "sort_out_carried",
                        lambda *args: carried.append(original(*args)) or carried[-1])
    parent, check = os.getpid(), VerifyCache.check  # (the child checks every run)
    monkeypatch.setattr(VerifyCache, "check", lambda *args: pytest.fail("stat'ed again")
                        if os.getpid() == parent else check(*args))
    with_prepass = aggregate_sweep(root, n_boot=20, progress_every=0, prepass=Prepass.start(root))
    assert len(carried) == 1 and len(carried[0].carried) == 12 and with_prepass.n_cached == 12
    without = aggregate_sweep(tmp_path / "copy", n_boot=20, progress_every=0, use_cache=False)
    for name in FILES:
        assert (with_prepass.out / f"{name}.csv").read_bytes() == \
            (without.out / f"{name}.csv").read_bytes(), name


def test_checking_in_two_halves_gives_the_hits_of_one_process(sweep, monkeypatch):
    cache = VerifyCache(cache_path(sweep, None, True), index_only=True)
    folders = scan(sweep, None).folders
    one = prepass._check_each(cache, folders, Path(sweep))
    monkeypatch.setattr(prepass, "CHECK_SPLIT_MIN", 2)
    monkeypatch.setattr(prepass, "can_fork", lambda: True)
    split = prepass._check_each(cache, folders, Path(sweep))
    assert split == one and str(sweep / "3") in one[1] and len(one[0]) == 12
    assert all(any(hit is folder for folder in folders) for hit in split[0])  # the same objects


def test_examining_in_two_halves_gives_the_jobs_of_one_process(sweep, monkeypatch):
    root = Path(sweep)
    folders = scan(root, None).folders  # no cache: every job folder examined
    one = prepass._examine_each(folders, root)
    monkeypatch.setattr(prepass, "SPLIT_MIN", 2)
    monkeypatch.setattr(prepass, "can_fork", lambda: True)
    assert prepass.examined(folders, root) == one and len(one) == 15


def test_a_child_that_dies_costs_a_scan_in_process(sweep, monkeypatch, capfd):
    parent, original = os.getpid(), prepass._scan

    def dying(*args):
        if os.getpid() != parent:
            os._exit(7)  # killed before answering
        return original(*args)

    monkeypatch.setattr(prepass, "_scan", dying)
    found = Prepass.start(sweep).result()
    assert "pre-pass process ended without an answer (exit code 7)" in capfd.readouterr().err
    assert found == scan(sweep, cache_path(sweep, None, True)) and found.folders[0] == str(sweep / "0")


def test_errors_in_the_child_are_raised_in_the_parent(tmp_path):
    with pytest.raises(SweepError, match=f"no such sweep folder: {tmp_path / 'nowhere'}"):
        Prepass.start(tmp_path / "nowhere").result()
    (tmp_path / "empty").mkdir()
    started = Prepass.start(tmp_path / "empty")
    started.close()  # never taken: the child is reaped
    assert started.child is None


def test_hits_checked_against_another_cache_file_are_checked_again(sweep):
    """A scan whose cache token differs from the parent's cache (another aggregation rewrote it
    in between) is not trusted: every run is stat'ed, run 3 (changed) is verified again."""
    root = Path(sweep)
    folders, leaves = scan(root, None).folders, {}
    stale = Scan(root, folders, leaves, b"another file", set(folders), [])  # all "unchanged"
    cache = VerifyCache(cache_path(root, None, True))
    jobs = examine_all(root, folders, cache, scan=stale)
    by_id = {job.run_id: job for job in jobs}
    assert cache.hits == 12 and by_id["3"].state == "unreadable" and not by_id["3"].from_cache
    assert by_id["13"].problem is None and not by_id["13"].from_cache


@pytest.mark.slow
def test_what_the_child_runs_imports_neither_numpy_nor_pandas():
    """The pre-pass overlaps the parent's imports only while the scan needs none of them."""
    code = ("import sys, mirror_sweep.cli as cli, mirror_sweep.sweep.prepass, "
            "mirror_sweep.sweep.jobs, mirror_sweep.sweep.verify_cache; cli.build_parser(); "
            "print(sorted(m for m in ('numpy', 'pandas', 'scipy') if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True).stdout
    assert out.strip() == "[]"


def test_the_parent_imports_scipy_special_while_the_pre_pass_scans(sweep, tmp_path):
    """mirror-aggregate's modules load without scipy.special (~0.1 s), which the command
    imports in aggregate_sweep's `meanwhile`: called once, before the scan is taken."""
    code = ("import sys, mirror_sweep.cli, mirror_sweep.report.stats, mirror_sweep.report.write, "
            "mirror_sweep.sweep.aggregate; print('scipy.special' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True).stdout
    assert out.strip() == "False"
    calls = []
    started = Prepass.start(sweep)
    aggregate_sweep(sweep, n_boot=20, progress_every=0, prepass=started,
                    meanwhile=lambda: calls.append(started.taken))
    assert calls == [False]  # called before the result was taken
    aggregate_sweep(sweep, n_boot=20, progress_every=0, meanwhile=lambda: calls.append(1))
    assert calls == [False]  # without a pre-pass, nothing to wait for


# mirror-aggregate, counting the pre-passes it starts
_COUNTING_FORKS = (
    "import sys, mirror_sweep.cli as cli, mirror_sweep.sweep.prepass as p; started = []; "
    "start = p.Prepass.start; p.Prepass.start = lambda *a: started.append(1) or start(*a); "
    "code = cli.aggregate_main(sys.argv[1:]); print('forked', len(started)); sys.exit(code)")


@pytest.mark.slow
def test_the_command_line_forks_the_pre_pass_and_writes_the_same_files(sweep, tmp_path):
    shutil.copytree(sweep, tmp_path / "copy")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-c", _COUNTING_FORKS, str(sweep), "--n-boot", "20",
                           "--no-figures", "--quiet"],
                          capture_output=True, text=True, env=env, check=True)
    assert "forked 1" in proc.stdout
    from mirror_sweep.cli import aggregate_main  # in this process (pandas loaded): no fork

    assert aggregate_main([str(tmp_path / "copy"), "--n-boot", "20", "--no-figures",
                           "--quiet"]) == 0
    for name in [*FILES, "contrasts", "claims", "signature"]:  # (claims.md names the folder)
        assert (sweep / "aggregate" / f"{name}.csv").read_bytes() == \
            (tmp_path / "copy" / "aggregate" / f"{name}.csv").read_bytes(), name
