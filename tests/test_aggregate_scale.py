"""Aggregation at scale on synthetic sweeps: streamed == in memory, duplicates, the verification
cache, and a failed row (never a crash) for every kind of corrupt job folder."""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import pandas as pd
import pytest
import yaml

from mirror_sweep.cli import aggregate_main
from mirror_sweep.config import ConfigError, keeps_activations
from mirror_sweep.sweep import aggregate, jobs, packed, results, streams, verify_cache
from mirror_sweep.sweep.aggregate import aggregate_sweep, load_sweep, write_aggregate
from mirror_sweep.sweep.synthetic import CONDITIONS, write_sweep
from mirror_sweep.sweep.verify_cache import CACHE_FILE

FILES = ["runs", "units", "decoding", "history", "failed", "duplicates", "robustness"]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    """20 distinct runs (seed 0 with activations), 2 planted duplicates (folders 20, 21)."""
    root = tmp_path_factory.mktemp("synthetic") / "sweep"
    write_sweep(root, 20, duplicates=2, activation_seeds=1, hidden_sizes=(4, 6))
    return root


def copy_sweep(source: Path, tmp_path: Path) -> Path:
    target = tmp_path / "sweep"
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("aggregate"))
    return target


def test_synthetic_runs_are_complete_distinct_and_shaped_like_real_ones(synthetic):
    sweep = load_sweep(synthetic, progress_every=0)
    assert len(sweep.runs) == 20 and len(sweep.failed) == 2
    assert sweep.runs.condition.tolist()[:9] == CONDITIONS
    assert sorted(sweep.runs.hidden_size.unique()) == [4, 6]
    assert len(sweep.units) == sweep.runs.hidden_size.sum()
    for run_id in ["0", "9", "19"]:
        folder = synthetic / run_id
        status = json.loads((folder / "status.json").read_text())
        config = yaml.safe_load((folder / ".hydra/config.yaml").read_text())
        assert status["config_hash"] == results.task_hash(config)
        results.read_run(folder)  # checksums and tables as results.read_run checks them
    assert (synthetic / "0" / "activations.npz").exists()  # seed 0
    assert not (synthetic / "19" / "activations.npz").exists()  # seed 1
    assert set(results.load_activations(synthetic / "0")) == {
        "perform_hidden", "observe_hidden", "perform_actions", "observe_actions"}


def test_streamed_and_in_memory_aggregation_write_identical_files(synthetic, tmp_path):
    sweep = copy_sweep(synthetic, tmp_path)
    (sweep / "5" / "status.json").write_text("null")  # one failed row too
    in_memory = write_aggregate(load_sweep(sweep, progress_every=0), tmp_path / "mem", n_boot=200)
    streamed = aggregate_sweep(sweep, tmp_path / "stream", n_boot=200, progress_every=0).out
    for name in FILES:
        assert (streamed / f"{name}.csv").read_bytes() == (in_memory / f"{name}.csv").read_bytes()
    table = pd.read_csv(streamed / "units.csv")
    assert len(table) == load_sweep(sweep, progress_every=0).units.shape[0]


def test_streamed_tables_with_different_columns_per_run(tmp_path):
    write_sweep(tmp_path / "s", 3, hidden_sizes=(2,))
    folder = tmp_path / "s" / "1"
    units = pd.read_csv(folder / "units.csv").drop(columns=["tuning_r"])
    units.insert(2, "extra", [1.5, 2.5])
    units.to_csv(folder / "units.csv", index=False)
    status = json.loads((folder / "status.json").read_text())
    status["files"]["units.csv"] = results.file_digest(folder / "units.csv")
    (folder / "status.json").write_text(json.dumps(status))
    mem = load_sweep(tmp_path / "s", progress_every=0).units
    out = aggregate_sweep(tmp_path / "s", tmp_path / "out", n_boot=50, progress_every=0).out
    streamed = pd.read_csv(out / "units.csv")
    assert list(streamed.columns) == list(mem.columns) and "extra" in streamed
    pd.testing.assert_frame_equal(streamed, pd.read_csv(out / "units.csv"))
    write_aggregate(load_sweep(tmp_path / "s", progress_every=0), tmp_path / "mem", n_boot=50)
    pd.testing.assert_frame_equal(streamed, pd.read_csv(tmp_path / "mem" / "units.csv"))


def test_parallel_verification_gives_the_same_tables(synthetic, tmp_path, monkeypatch):
    serial = load_sweep(synthetic, progress_every=0)
    monkeypatch.setattr(jobs, "PARALLEL_MIN", 1)
    parallel = load_sweep(synthetic, progress_every=0, workers=2)
    for name in ["runs", "units", "decoding", "history", "failed", "duplicates"]:
        pd.testing.assert_frame_equal(getattr(parallel, name), getattr(serial, name))


def test_duplicates_are_counted_once_and_reported(synthetic, tmp_path, capsys):
    sweep = copy_sweep(synthetic, tmp_path)
    loaded = load_sweep(sweep, progress_every=0)
    assert "20" not in set(loaded.runs.run_id) and len(loaded.runs) == 20
    dups = loaded.duplicates
    assert dups.run_id.tolist() == ["20", "21"] and dups.kept_run_id.tolist() == ["0", "1"]
    failed = loaded.failed.set_index("run_id")
    assert failed.loc["20", "status"] == "duplicate" and "as run 0" in failed.loc["20", "error"]
    assert aggregate_main([str(sweep), "--n-boot", "50", "--no-figures", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "2 duplicates" in out and "2 duplicate runs (same config as an earlier run_id)" in out
    assert len(pd.read_csv(sweep / "aggregate" / "duplicates.csv")) == 2


def test_unchanged_runs_are_not_reverified_and_changed_ones_are(synthetic, tmp_path,
                                                                 monkeypatch):
    sweep = copy_sweep(synthetic, tmp_path)
    verified = []  # job folders examined (read and checked), not taken from the cache
    original = jobs._examine

    def counting(folder, root):
        verified.append(Path(folder).name)
        return original(folder, root)

    monkeypatch.setattr(jobs, "_examine", counting)
    first = aggregate_sweep(sweep, n_boot=50, progress_every=0)
    assert len(verified) == 22 and first.n_cached == 0
    verified.clear()
    again = aggregate_sweep(sweep, n_boot=50, progress_every=0)
    assert verified == [] and again.n_cached == 22
    for name in FILES:  # the cached pass writes the same files
        assert (again.out / f"{name}.csv").read_bytes() == (first.out / f"{name}.csv").read_bytes()
    # a same-size edit of one run's table (its mtime moves) and one new run
    units = sweep / "3" / "units.csv"
    text = units.read_text()
    units.write_text(text.replace("0.", "9.", 1))
    os.utime(units, ns=(units.stat().st_atime_ns, units.stat().st_mtime_ns + 1_000_000))
    write_sweep(sweep, 1, start=22)
    third = aggregate_sweep(sweep, n_boot=50, progress_every=0)
    assert sorted(verified) == ["22", "3"] and third.n_cached == 21
    failed = third.sweep.failed.set_index("run_id")
    assert failed.loc["3", "status"] == "unreadable" and "checksum" in failed.loc["3", "error"]
    assert "22" in set(third.sweep.runs.run_id)
    # runs added after the others: only they are read, their rows appended to the last files
    reads = []
    original_read = aggregate.read_text
    monkeypatch.setattr(aggregate, "read_text",
                        lambda path: reads.append(Path(path).parent.name) or original_read(path))
    verified.clear()
    write_sweep(sweep, 2, start=23)
    fourth = aggregate_sweep(sweep, n_boot=50, progress_every=0)
    # (run 3 is still corrupt: runs that fail are looked at again on every pass)
    assert verified == ["3", "23", "24"] and sorted(set(reads)) == ["23", "24"]
    in_memory = write_aggregate(load_sweep(sweep, progress_every=0), tmp_path / "mem", n_boot=50)
    for name in FILES:
        assert (fourth.out / f"{name}.csv").read_bytes() == \
            (in_memory / f"{name}.csv").read_bytes(), name


def fresh_pass(sweep: Path, out: Path) -> Path:
    """A full pass (no cache) of the sweep into `out`."""
    return aggregate_sweep(sweep, out, n_boot=50, progress_every=0, use_cache=False).out


def test_incremental_passes_write_the_files_of_a_full_pass(synthetic, tmp_path, monkeypatch):
    """After new runs, a changed run and a removed run, the cached pass's files (runs.csv
    appended or rewritten) are byte for byte those of a full pass; unchanged runs are not read."""
    sweep = copy_sweep(synthetic, tmp_path)
    appended, rewritten, reads = [], [], []
    original_append, original_write = aggregate.append_table, aggregate.results.write_table
    original_read = aggregate.read_text
    monkeypatch.setattr(aggregate, "append_table",
                        lambda path, rows, *how: appended.append(len(rows)) or
                        original_append(path, rows, *how))
    monkeypatch.setattr(aggregate.results, "write_table",
                        lambda path, table: (Path(path).name == "runs.csv" and
                                             rewritten.append(len(table))) or
                        original_write(path, table))
    monkeypatch.setattr(aggregate, "read_text",
                        lambda path: reads.append(Path(path).parent.name) or original_read(path))

    def check(step: str) -> tuple[list, list, set]:
        """Aggregate incrementally, compare with a full pass; what the incremental pass did."""
        appended.clear(), rewritten.clear(), reads.clear()
        incremental = aggregate_sweep(sweep, n_boot=50, progress_every=0).out
        did = (list(appended), list(rewritten), set(reads))
        full = fresh_pass(sweep, tmp_path / f"full-{step}")
        for name in FILES:
            assert (incremental / f"{name}.csv").read_bytes() == \
                (full / f"{name}.csv").read_bytes(), (step, name)
        return did

    assert check("first") == ([], [20], set(map(str, range(20))))
    assert check("unchanged") == ([], [], set())  # runs.csv neither appended nor rewritten
    write_sweep(sweep, 3, start=22)  # new seeds of the same conditions, after the others
    assert check("new runs") == ([3], [], {"22", "23", "24"})
    summary = sweep / "4" / "summary.json"  # one run changed: every row anew, only it re-read
    data = json.loads(summary.read_text())
    data["frac_abs_r_gt"] = 0.123
    summary.write_text(json.dumps(data))
    status = json.loads((sweep / "4" / "status.json").read_text())
    status["files"]["summary.json"] = results.file_digest(summary)
    (sweep / "4" / "status.json").write_text(json.dumps(status))
    appended_now, rewritten_now, read_now = check("changed")
    assert appended_now == [] and rewritten_now == [23] and "4" in read_now
    runs = pd.read_csv(sweep / "aggregate" / "runs.csv", dtype={"run_id": str})
    assert runs.set_index("run_id").loc["4", "frac_abs_r_gt"] == 0.123
    shutil.rmtree(sweep / "23")  # one run removed
    assert check("removed")[1] == [22]
    assert "23" not in set(pd.read_csv(sweep / "aggregate" / "runs.csv").run_id.astype(str))
    cache = sweep / "aggregate" / CACHE_FILE
    before = cache.stat().st_mtime_ns, cache.read_bytes()
    assert check("unchanged again") == ([], [], set())
    assert (cache.stat().st_mtime_ns, cache.read_bytes()) == before  # not rewritten


def break_job(folder: Path, case: str) -> None:
    """Plant one kind of corrupt file in a complete job folder."""
    hydra = folder / ".hydra"
    edits = {
        "config_empty": lambda: (hydra / "config.yaml").write_text(""),
        "config_list": lambda: (hydra / "config.yaml").write_text("- 1\n- 2\n"),
        "config_deleted": lambda: (hydra / "config.yaml").unlink(),
        "hydra_dir_deleted": lambda: shutil.rmtree(hydra),
        "hydra_yaml_no_choices": lambda: (hydra / "hydra.yaml").write_text("hydra: {}\n"),
        "hydra_yaml_binary": lambda: (hydra / "hydra.yaml").write_bytes(b"\xff\xfe\x00"),
        "overrides_mapping": lambda: (hydra / "overrides.yaml").write_text("a: 1\n"),
        "status_list": lambda: (folder / "status.json").write_text("[]"),
        "status_null": lambda: (folder / "status.json").write_text("null"),
        "status_empty": lambda: (folder / "status.json").write_text(""),
        "status_unknown": lambda: (folder / "status.json").write_text('{"status": "zombie"}'),
        "status_files_list": lambda: (folder / "status.json").write_text(
            '{"status": "complete", "files": ["units.csv"]}'),
        "status_deleted": lambda: (folder / "status.json").unlink(),
        "summary_list": lambda: (folder / "summary.json").write_text("[1]"),
        "units_empty": lambda: (folder / "units.csv").write_text(""),
        "history_deleted": lambda: (folder / "history.csv").unlink(),
        "units_directory": lambda: ((folder / "units.csv").unlink(),
                                    (folder / "units.csv").mkdir()),
    }
    edits[case]()


CASES = ["config_empty", "config_list", "config_deleted", "hydra_dir_deleted",
         "hydra_yaml_no_choices", "hydra_yaml_binary", "overrides_mapping", "status_list",
         "status_null", "status_empty", "status_unknown", "status_files_list", "status_deleted",
         "summary_list", "units_empty", "history_deleted", "units_directory"]


@pytest.mark.parametrize("case", CASES)
def test_every_corrupt_job_folder_is_one_failed_row(tmp_path, case):
    write_sweep(tmp_path / "s", 4, hidden_sizes=(2,))
    break_job(tmp_path / "s" / "2", case)
    for sweep in [load_sweep(tmp_path / "s", progress_every=0),
                  aggregate_sweep(tmp_path / "s", n_boot=20, progress_every=0).sweep]:
        assert sweep.runs.run_id.tolist() == ["0", "1", "3"]
        assert sweep.failed.run_id.tolist() == ["2"]
        row = sweep.failed.iloc[0]
        assert row.status in {"unreadable", "missing", "zombie"} and row.error
        if row.status == "unreadable":
            assert row.error.startswith("2/") or row.error.startswith("2:"), row.error


def test_every_job_folder_is_in_exactly_one_of_runs_and_failed(tmp_path):
    write_sweep(tmp_path / "s", len(CASES) + 3, hidden_sizes=(2,))
    for i, case in enumerate(CASES):
        break_job(tmp_path / "s" / str(i), case)
    assert aggregate_main([str(tmp_path / "s"), "--n-boot", "20", "--no-figures",
                           "--quiet"]) == 0
    out = tmp_path / "s" / "aggregate"
    runs, failed = pd.read_csv(out / "runs.csv"), pd.read_csv(out / "failed.csv")
    ids = runs.run_id.astype(str).tolist() + failed.run_id.astype(str).tolist()
    assert sorted(ids) == sorted(str(i) for i in range(len(CASES) + 3))
    assert len(runs) == 3 and failed.error.notna().all()


def test_activation_policy():
    assert keeps_activations("all", 7) and keeps_activations("true", 7)
    assert not keeps_activations("none", 0) and not keeps_activations("False", 0)
    assert keeps_activations("first_seeds:2", 1) and not keeps_activations("first_seeds:2", 2)
    with pytest.raises(ConfigError, match="output.save_activations"):
        keeps_activations("some", 0)


def test_a_damaged_or_foreign_cache_only_costs_a_full_verification(synthetic, tmp_path):
    """Truncated, one byte changed, another version, garbage, a legacy JSON cache: each is ignored
    (every run verified again, the same files written), and the legacy file is removed."""
    sweep = copy_sweep(synthetic, tmp_path)
    first = aggregate_sweep(sweep, n_boot=50, progress_every=0)
    cache = first.out / CACHE_FILE
    good = cache.read_bytes()
    files = {name: (first.out / f"{name}.csv").read_bytes() for name in FILES}
    middle = len(good) // 2
    damaged = {"truncated": good[:-100], "one byte changed":
               good[:middle] + bytes([good[middle] ^ 1]) + good[middle + 1:],
               "garbage": b"\x00\xff" * 100, "empty": b"",
               "another version": good.replace(b"verification cache\n", b"verification cache?\n")}
    for case, data in damaged.items():
        cache.write_bytes(data)
        again = aggregate_sweep(sweep, n_boot=50, progress_every=0)
        assert again.n_cached == 0, case
        assert {name: (again.out / f"{name}.csv").read_bytes() for name in FILES} == files, case
        assert cache.read_bytes() != data, case  # rewritten, good again
    assert aggregate_sweep(sweep, n_boot=50, progress_every=0).n_cached == 22
    (first.out / CACHE_FILE).rename(first.out / ".verified.json")  # a cache of an old version
    assert aggregate_sweep(sweep, n_boot=50, progress_every=0).n_cached == 0
    assert not (first.out / ".verified.json").exists() and cache.exists()


def test_the_cache_is_another_version_after_a_version_bump(synthetic, tmp_path, monkeypatch):
    sweep = copy_sweep(synthetic, tmp_path)
    aggregate_sweep(sweep, n_boot=50, progress_every=0)
    monkeypatch.setattr(verify_cache, "CACHE_VERSION", verify_cache.CACHE_VERSION + 1)
    assert aggregate_sweep(sweep, n_boot=50, progress_every=0).n_cached == 0
    assert aggregate_sweep(sweep, n_boot=50, progress_every=0).n_cached == 22


def test_a_same_size_edit_with_a_new_mtime_re_verifies_the_run(synthetic, tmp_path):
    """Every signed file: status.json, the three .hydra records and each file the status lists
    (activations.npz included) re-verifies its run when rewritten with the same size."""
    sweep = copy_sweep(synthetic, tmp_path)
    aggregate_sweep(sweep, n_boot=50, progress_every=0)
    folder = sweep / "0"
    status = json.loads((folder / "status.json").read_text())
    names = verify_cache.signed_names(status)
    assert "activations.npz" in names and ".hydra/hydra.yaml" in names
    for name in names:
        path = folder / name
        data = path.read_bytes()
        path.write_bytes(data)  # same bytes, same size: only the mtime moves
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 5_000_000))
        again = aggregate_sweep(sweep, n_boot=50, progress_every=0)
        assert again.n_cached == 21, name  # run 0 verified again (and still complete)
        assert "0" in set(again.sweep.runs.run_id), name


def test_new_runs_extend_the_cached_runs_table_without_unpacking_the_others(
        synthetic, tmp_path, monkeypatch):
    """After new runs, only their values are read: the unchanged runs' values stay packed in the
    cache and the last pass's runs table is extended; when a new run's values change a column's
    dtype, the table is built from every run's values (the same table as a full pass)."""
    sweep = copy_sweep(synthetic, tmp_path)
    aggregate_sweep(sweep, n_boot=50, progress_every=0)
    unpacked = []
    original = verify_cache.VerifyCache.values
    monkeypatch.setattr(verify_cache.VerifyCache, "values",
                        lambda self, packed: unpacked.append(1) or original(self, packed))
    write_sweep(sweep, 2, start=22)
    again = aggregate_sweep(sweep, n_boot=50, progress_every=0)
    assert unpacked == [] and again.n_cached == 22 and len(again.sweep.runs) == 22
    full = aggregate_sweep(sweep, tmp_path / "full", n_boot=50, progress_every=0,
                           use_cache=False)
    pd.testing.assert_frame_equal(again.sweep.runs, full.sweep.runs, check_exact=True)
    # a new run whose n_units is a float: the column's dtype changes, every row is rebuilt
    write_sweep(sweep, 1, start=24)
    summary = sweep / "24" / "summary.json"
    data = json.loads(summary.read_text())
    data["n_units"] = float(data["n_units"]) + 0.5
    summary.write_text(json.dumps(data))
    status = json.loads((sweep / "24" / "status.json").read_text())
    status["files"]["summary.json"] = results.file_digest(summary)
    (sweep / "24" / "status.json").write_text(json.dumps(status))
    third = aggregate_sweep(sweep, n_boot=50, progress_every=0)
    assert len(unpacked) == 22 and third.sweep.runs["n_units"].dtype == float  # every kept run
    full = fresh_pass(sweep, tmp_path / "full-3")
    for name in FILES:
        assert (third.out / f"{name}.csv").read_bytes() == (full / f"{name}.csv").read_bytes()


def test_packed_runs_tables_come_back_identical():
    table = pd.DataFrame({"run_id": ["0", "1", "2"], "seed": [0, 1, 2],
                          "x": [0.5, float("nan"), 2.0], "flag": [True, False, True],
                          "mixed": ["a", None, 3], "text": ["a", None, "c"],
                          "strings": pd.Series(["a", "b", "c"], dtype=object),
                          "nothing": [None, None, None],
                          "small": pd.Series([1, 2, 3], dtype="int32")})
    data = packed.pack_table(table)
    pd.testing.assert_frame_equal(packed.unpack_table(data, 3), table, check_exact=True)
    assert packed.unpack_table(data, 4) is None  # not the rows the state says
    assert packed.unpack_table({"rows": 3, "columns": [["x", "<f8", b"\x00"]]}, 3) is None
    assert packed.unpack_table(None, 3) is None
    assert packed.pack_table(table.astype({"seed": "category"})) is None


def test_unchanged_job_folders_are_not_listed_again_and_new_nested_jobs_are_found(
        synthetic, tmp_path, monkeypatch):
    """A job folder found without a subfolder is not listed again while its own mtime holds;
    anything created in it (a nested job folder) moves that mtime, and the folder is searched."""
    sweep = copy_sweep(synthetic, tmp_path)
    aggregate_sweep(sweep, n_boot=50, progress_every=0)
    listed = []
    original = os.scandir
    monkeypatch.setattr(jobs.os, "scandir",
                        lambda path: listed.append(Path(path).name) or original(path))
    again = aggregate_sweep(sweep, n_boot=50, progress_every=0)
    assert sorted(listed) == ["aggregate", "sweep"] and again.n_cached == 22  # no job folder
    # a job folder nested in run 3 (the folder's mtime moves): found, aggregated
    write_sweep(tmp_path / "nested", 1, start=30)
    shutil.move(tmp_path / "nested" / "30", sweep / "3" / "extra")
    listed.clear()
    third = aggregate_sweep(sweep, n_boot=50, progress_every=0)
    assert sorted(listed) == ["3", "aggregate", "extra", "sweep"]
    assert "3/extra" in set(third.sweep.runs.run_id) and third.n_cached == 22
    assert load_sweep(sweep, progress_every=0).runs.run_id.tolist() == \
        third.sweep.runs.run_id.tolist()
    for _ in range(2):  # (the second pass carries the runs: their leaf stamps kept)
        listed.clear()
        aggregate_sweep(sweep, n_boot=50, progress_every=0)
        assert sorted(listed) == ["3", "aggregate", "sweep"]  # 3 holds a subfolder: listed


def cache_content(cache: verify_cache.VerifyCache) -> dict:
    """What a loaded cache holds (the entries, the state but its files' mtimes, the runs table,
    the shared lists)."""
    state = {key: value for key, value in cache.state.items() if key not in ("files", "runs_file")}
    table = cache.table and {"rows": cache.table["rows"], "columns": [
        [name, dtype, values if isinstance(values, bytes) else repr(values)]
        for name, dtype, values in cache.table["columns"]]}
    return {"runs": cache.old, "state": state, "table": table,
            **{name: getattr(cache, name).items for name in verify_cache._SHARED_NAMES}}


def test_a_pass_after_new_runs_appends_its_changes_to_the_cache_file(tmp_path):
    """The cache file of passes that appended segments (new runs; a job folder's own stamp
    changed) loads as the one a full pass writes."""
    sweep, fresh = tmp_path / "s", tmp_path / "fresh"
    write_sweep(sweep, 30, hidden_sizes=(2,))
    first = aggregate_sweep(sweep, n_boot=20, progress_every=0)
    cache = first.out / CACHE_FILE
    sizes = [cache.stat().st_size]
    for start in (30, 33):
        write_sweep(sweep, 3, start=start, hidden_sizes=(2,))
        (sweep / "5" / f"notes-{start}.txt").write_text("x")  # the folder's own stamp moved
        aggregate_sweep(sweep, n_boot=20, progress_every=0)
        sizes.append(cache.stat().st_size)
    loaded = verify_cache.VerifyCache(cache)
    assert loaded._file["updates"] == 2 and sizes[0] < sizes[1] < sizes[2]
    shutil.copytree(sweep, fresh, ignore=shutil.ignore_patterns("aggregate"))
    full = aggregate_sweep(fresh, n_boot=20, progress_every=0)
    assert verify_cache.VerifyCache(full.out / CACHE_FILE)._file["updates"] == 0
    assert cache_content(loaded) == cache_content(verify_cache.VerifyCache(full.out / CACHE_FILE))
    index = verify_cache.VerifyCache(cache, index_only=True)  # what the pre-pass loads
    assert {run_id: (e[0], e[1], e[4]) for run_id, e in loaded.old.items()} == \
        {run_id: (e[0], e[1], e[4]) for run_id, e in index.old.items()}
    assert all(e[2] is None and e[3] is None for e in index.old.values())
    assert index.names.items == loaded.names.items and index.leaves(sweep) == loaded.leaves(sweep)
    assert index.token == loaded.token and index.state == {} and index.table is None
    assert loaded.state["kept"] and loaded.table is not None
    assert aggregate_sweep(sweep, n_boot=20, progress_every=0).n_cached == 36


def test_a_cut_short_segment_is_ignored_and_the_file_written_anew(tmp_path):
    sweep = tmp_path / "s"
    write_sweep(sweep, 30, hidden_sizes=(2,))
    out = aggregate_sweep(sweep, n_boot=20, progress_every=0).out
    cache = out / CACHE_FILE
    before = cache.read_bytes()
    write_sweep(sweep, 2, start=30, hidden_sizes=(2,))
    aggregate_sweep(sweep, n_boot=20, progress_every=0)
    appended = cache.read_bytes()
    assert appended.startswith(before) and len(appended) > len(before)
    cache.write_bytes(appended[:-3])  # a pass killed while appending
    loaded = verify_cache.VerifyCache(cache)
    assert loaded.token is not None and len(loaded.old) == 30 and not loaded._file["clean"]
    again = aggregate_sweep(sweep, n_boot=20, progress_every=0)  # the 2 runs verified again
    assert again.n_cached == 30 and again.sweep.runs.shape[0] == 32
    assert verify_cache.VerifyCache(cache)._file["updates"] == 0  # written anew


def test_a_cache_with_many_segments_or_changed_since_it_was_loaded_is_written_anew(
        tmp_path, monkeypatch):
    sweep = tmp_path / "s"
    write_sweep(sweep, 30, hidden_sizes=(2,))
    out = aggregate_sweep(sweep, n_boot=20, progress_every=0).out
    monkeypatch.setattr(verify_cache, "MAX_UPDATES", 2)
    updates = []
    for start in range(30, 34):
        write_sweep(sweep, 1, start=start, hidden_sizes=(2,))
        aggregate_sweep(sweep, n_boot=20, progress_every=0)
        updates.append(verify_cache.VerifyCache(out / CACHE_FILE)._file["updates"])
    assert updates == [1, 2, 0, 1]
    cache = verify_cache.VerifyCache(out / CACHE_FILE)  # then another pass writes the file
    write_sweep(sweep, 1, start=34, hidden_sizes=(2,))
    aggregate_sweep(sweep, n_boot=20, progress_every=0)
    cache.table_changed = True
    cache.save()  # not appended to a file it did not load: written whole
    assert verify_cache.VerifyCache(out / CACHE_FILE)._file["updates"] == 0


def test_replaced_files_are_renamed_over_and_their_old_versions_removed(tmp_path, monkeypatch):
    target, tmp = tmp_path / "units.csv", tmp_path / ".units.csv.tmp"
    target.write_text("old\n")
    (tmp_path / ".units.csv.replaced").write_text("left by a killed pass\n")
    tmp.write_text("new\n")
    replaced = streams.Replaced()
    with open(target) as reader:  # a reader of the old version keeps it whole
        replaced.replace(tmp, target)
        replaced.close()
        assert target.read_text() == "new\n" and reader.read() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["units.csv"]
    monkeypatch.setattr(streams.os, "link", lambda *args: (_ for _ in ()).throw(
        PermissionError("no hard links here")))
    tmp.write_text("newer\n")
    replaced.replace(tmp, target)  # a plain rename
    replaced.close()
    assert target.read_text() == "newer\n" and sorted(p.name for p in tmp_path.iterdir()) == \
        ["units.csv"]


def test_an_incremental_pass_leaves_no_hidden_file_but_its_caches(tmp_path):
    sweep = tmp_path / "s"
    write_sweep(sweep, 12, hidden_sizes=(2,))
    assert aggregate_main([str(sweep), "--n-boot", "20", "--no-figures", "--quiet"]) == 0
    write_sweep(sweep, 3, start=12, hidden_sizes=(2,))
    assert aggregate_main([str(sweep), "--n-boot", "20", "--no-figures", "--quiet"]) == 0
    hidden = sorted(p.name for p in (sweep / "aggregate").iterdir() if p.name.startswith("."))
    assert hidden == [".unit_r.marshal", CACHE_FILE]


def test_copies_made_in_the_background_are_appended_to_and_the_others_removed(
        tmp_path, monkeypatch):
    """A stream appending while its file's copy is still being made keeps the rows until it is,
    and writes what appending to a copy made at once writes; copies not taken are removed."""
    units, runs = tmp_path / "units.csv", tmp_path / "runs.csv"
    header = ",".join(jobs.RUN_COLUMNS + ["unit", "r"])
    units.write_text(header + "\n" + ",".join(["0"] * (len(jobs.RUN_COLUMNS) + 2)) + "\n")
    runs.write_text("run_id\n0\n")
    release = threading.Event()
    original_copy = streams.shutil.copyfile

    def slow_copy(source, target):  # the units.csv copy waits until the rows were added
        if Path(source) == units:
            release.wait(5)
        return original_copy(source, target)

    monkeypatch.setattr(streams.shutil, "copyfile", slow_copy)
    copying = streams.Copying({units: streams.temporary(units), runs: streams.temporary(runs)})
    level = {key: f"v{i}" for i, key in enumerate(jobs.RUN_COLUMNS)}
    stream = streams.TableStream(units, ["unit", "r"], append_rows=1, copying=copying)
    stream.add(level, "unit,r\n1,0.5\n2,-0.25\n")
    stream.add(level, 'r,unit\n"0.75",3\n')  # other column order, quoted: parsed
    assert stream.handle is None and stream.pending  # kept: the copy is not made yet
    release.set()
    stream.finish()
    copying.close()  # runs.csv's copy was not taken: removed
    front = ",".join(level[key] for key in jobs.RUN_COLUMNS)
    assert units.read_text().splitlines()[2:] == [f"{front},1,0.5", f"{front},2,-0.25",
                                                   f"{front},3,0.75"]
    assert stream.rows == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs.csv", "units.csv"]


def test_carried_runs_give_the_files_of_a_full_pass_or_are_not_carried(tmp_path, monkeypatch):
    """The last pass's kept runs, all unchanged, are carried without a job each (only the other
    folders examined) when the labels, duplicates and order stay what sort_out makes of all
    jobs; a new run kept among them, one that changes the labels or a changed run is not
    carried. Every pass writes the files of a full pass."""
    sweep = tmp_path / "sweep"

    def new_runs(n: int, start: int, hidden_size: int = 2, lr: str = "0.01",
                 where: Path = sweep) -> list[Path]:
        """Synthetic runs, each also holding the override train.lr=LR."""
        folders = write_sweep(where, n, start=start, hidden_sizes=(hidden_size,))
        for folder in folders:
            add_override(folder, f"train.lr={lr}")
        return folders

    new_runs(12, 0)  # train.lr=0.01 held by every run: not in the labels
    carried, examined = [], []
    original_carried, original_examine = aggregate.sort_out_carried, jobs._examine
    monkeypatch.setattr(aggregate, "sort_out_carried", lambda *args: carried.append(
        original_carried(*args) is not None) or original_carried(*args))
    monkeypatch.setattr(jobs, "_examine", lambda folder, root: examined.append(
        Path(folder).name) or original_examine(folder, root))

    def check(step: str) -> list[bool]:
        carried.clear(), examined.clear()
        incremental = aggregate_sweep(sweep, n_boot=50, progress_every=0).out
        full = fresh_pass(sweep, tmp_path / f"full-{step}")
        for name in FILES:
            assert (incremental / f"{name}.csv").read_bytes() == \
                (full / f"{name}.csv").read_bytes(), (step, name)
        return list(carried)

    assert check("first") == []  # nothing to carry
    assert check("unchanged") == [True]
    new_runs(3, 12)
    assert check("new runs") == [True] and examined[:3] == ["12", "13", "14"]
    shutil.copytree(sweep / "0", sweep / "15")  # a duplicate of a carried run
    assert check("duplicate") == [True]
    assert pd.read_csv(sweep / "aggregate" / "duplicates.csv").kept_run_id.tolist() == [0]
    status = json.loads((sweep / "5" / "status.json").read_text())
    (sweep / "5" / "status.json").write_text(json.dumps({**status, "status": "failed"}))
    assert check("failed") == []  # run 5 changed: not carried
    new_runs(1, 16)
    assert check("failed before") == [True]  # run 5, failed, among the carried runs
    before = tmp_path / "before"
    new_runs(1, 17, where=before)
    shutil.move(before / "17", sweep / "2_1")  # sorts between runs 2 and 3: kept among them
    assert check("among") == [False]
    new_runs(1, 18, hidden_size=3)  # a new factor level: no label changes
    assert check("factor") == [True]
    new_runs(1, 19, hidden_size=3, lr="0.02")
    assert check("labels") == [False]  # train.lr=0.01 now varies: in the carried runs' labels
    conditions = pd.read_csv(sweep / "aggregate" / "runs.csv", dtype={"run_id": str}) \
        .set_index("run_id").condition
    assert conditions["0"] == "shared_bidirectional,train.lr=0.01"
    assert conditions["19"].endswith("train.lr=0.02")
    new_runs(1, 20, hidden_size=3)
    assert check("after labels") == [True]
    shutil.copytree(sweep / "7", sweep / "6_1")  # run 7's config, before it: kept in its place
    assert check("duplicate before") == [False]
    assert pd.read_csv(sweep / "aggregate" / "duplicates.csv", dtype=str).set_index(
        "run_id").kept_run_id["7"] == "6_1"


def add_override(folder: Path, override: str) -> None:
    """One more override in the job's overrides.yaml (its config unchanged)."""
    path = folder / ".hydra" / "overrides.yaml"
    path.write_text(yaml.safe_dump([*yaml.safe_load(path.read_text()), override]))


def test_the_pre_pass_reads_the_cache_index_alone_checked_by_its_own_crc(tmp_path):
    """The index part of each segment carries its own CRC: a damaged payload leaves the index
    readable (the full load then stops before that segment, so the tokens differ and the parent
    trusts none of the pre-pass's hits); a damaged index stops the index read there too."""
    sweep = tmp_path / "s"
    write_sweep(sweep, 30, hidden_sizes=(2,))
    out = aggregate_sweep(sweep, n_boot=20, progress_every=0).out
    write_sweep(sweep, 3, start=30, hidden_sizes=(2,))
    aggregate_sweep(sweep, n_boot=20, progress_every=0)  # a second segment appended
    path = out / CACHE_FILE
    data = bytearray(path.read_bytes())
    head, parts = verify_cache._HEAD, verify_cache._PARTS
    _, first = head.unpack_from(data, len(verify_cache._MAGIC))
    second = len(verify_cache._MAGIC) + head.size + first  # where the appended segment starts
    _, index_size, _ = parts.unpack_from(data, second + head.size)
    index_at = second + head.size + parts.size

    def load(damaged_at: int) -> tuple[verify_cache.VerifyCache, verify_cache.VerifyCache]:
        copy = bytearray(data)
        copy[damaged_at] ^= 0xFF
        path.write_bytes(bytes(copy))
        return verify_cache.VerifyCache(path), verify_cache.VerifyCache(path, index_only=True)

    full, index = load(index_at + index_size + 5)  # in the payload
    assert len(full.old) == 30 and len(index.old) == 33 and full.token != index.token
    full, index = load(index_at + 5)  # in the index
    assert len(full.old) == len(index.old) == 30 and full.token == index.token
