"""Load a sweep's run folders into tidy tables, in memory (notebooks) or streamed to CSV (CLI).

A sweep folder holds job folders (any folder holding `.hydra/` or `status.json`, at any depth);
each job folder holds a run written by `mirror_sweep.sweep.results`. Every job folder is examined
once (`jobs.examine`): its Hydra records, its status and, for a complete run, the checksums and
table headers. A run that passes is aggregated; every other job folder becomes a `failed` row naming
why (a missing or corrupt file of any kind is a row, never a crash). Runs with the same config
hash are counted once: the first in natural run_id order is kept, the others are `duplicate` rows
in `failed` and listed in `duplicates`.

`load_sweep` joins every run's config, overrides and group choices to its tables in memory;
`write_aggregate` writes such a Sweep as CSV files. `aggregate_sweep` (what `mirror-aggregate`
runs) streams the per-unit, per-decoder and per-epoch tables run by run into the CSV files, so
memory holds only the per-run table, and reuses a verification cache (`verify_cache`) so that
unchanged runs are neither re-hashed nor re-parsed: when the last pass's kept runs are all still
there and unchanged, they are carried as the last pass left them, without a job each, and only
the other job folders are examined and sorted out (`sort_out_carried`: the result sort_out would
give, else the usual path); their rows stay in the files, the new runs' are appended
(sweep/streams.py). `mirror-aggregate` gives it the job folders found and checked by a pre-pass
forked before pandas was imported (sweep/prepass.py). Both give the same tables. Per-run files
are only read.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Any

import pandas as pd

from mirror_sweep.sweep import jobs as job_folders
from mirror_sweep.sweep import results
from mirror_sweep.sweep.contrasts import contrasts
from mirror_sweep.sweep.factors import FACTORS, factor_values
from mirror_sweep.sweep.jobs import (
    AGGREGATE_DIR,
    GROUP_CHOICES,
    RUN_COLUMNS,
    TABLES,
    Job,
    SweepError,  # noqa: F401 - what aggregate_sweep raises
    examine,
    natural_key,
    output_dir,
    recorded,
    relative_id,
    relative_ids,
    short_error,
    sweep_folders,
)
from mirror_sweep.sweep.packed import pack_table, unpack_table
from mirror_sweep.sweep.prepass import Prepass, Scan
from mirror_sweep.sweep.streams import (
    Copying,
    Replaced,
    TableStream,
    append_table,
    read_text,
    table_layout,
    temporary,
)
from mirror_sweep.sweep.summaries import DEFAULT_CI, robustness
from mirror_sweep.sweep.verify_cache import CACHE_FILE, VerifyCache, stamp

FAILED_COLUMNS = ["run_id", "condition", "seed", "status", "error"]
DUPLICATE_COLUMNS = ["run_id", "condition", "seed", "config_hash", "kept_run_id"]
PER_RUN_TABLES = list(TABLES)
# Override keys left out of condition labels: the seed is the replicate, each factor (hidden size,
# K, action process, cell; sweep/factors.py) has its own column, `condition` is the label's head,
# and these others never change a run's numbers.
_UNLABELLED_KEYS = {"seed", *FACTORS.values(), "condition", "train.progress", "output.resume",
                    "output.save_activations"}


def _empty(columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(columns=columns)


@dataclass
class Sweep:
    """A sweep read back: one row per complete run, per unit, per decoder, per epoch, per failure,
    per unit-subset decoder and per ablation.

    Every table starts with the run-level columns RUN_COLUMNS (failed: FAILED_COLUMNS;
    duplicates: DUPLICATE_COLUMNS, the runs counted once and the run kept in their place).
    """

    path: Path
    runs: pd.DataFrame
    units: pd.DataFrame
    decoding: pd.DataFrame
    history: pd.DataFrame
    failed: pd.DataFrame
    duplicates: pd.DataFrame = field(default_factory=lambda: _empty(DUPLICATE_COLUMNS))
    subset_decoding: pd.DataFrame = field(default_factory=pd.DataFrame)
    ablation: pd.DataFrame = field(default_factory=pd.DataFrame)


def examine_all(root: Path, folders: list[Path] | list[str], cache: VerifyCache | None = None,
                workers: int = 1, progress_every: int = 0,
                leaves: dict[str, bytes] | None = None, scan: Scan | None = None) -> list[Job]:
    """Examine every job folder (unchanged cached runs from the cache), in the folders' order.

    workers > 1 verifies in that many processes when enough runs need it. Prints
    `load_sweep: read i/N job folders` to stderr every `progress_every` jobs (0: never) on sweeps
    at least that large. leaves: the walk's leaf stamps (_Walk), kept in the cache entries.
    scan: what the pre-pass found of these folders (prepass.Scan): its cache hits are taken
    without stat'ing the files again when it checked them against the same cache file as
    `cache`, and the runs it examined are not examined again.
    """
    cached: dict[int, Job] = {}
    todo = []
    leaves = leaves or {}
    checked = scan is not None and cache is not None and scan.token == cache.token
    ready = {str(job.folder): job for job in scan.fresh or []} if checked else {}
    for i, folder in enumerate(folders):
        run_id = relative_id(folder, root)
        if cache is None:
            data = None
        elif checked:  # the pre-pass stat'ed the run's files against the same entries
            data = cache.lookup(run_id, folder, leaves.get(str(folder)), checked=True) \
                if str(folder) in scan.hits else None
        else:
            data = cache.lookup(run_id, folder, leaves.get(str(folder)))
        if data is not None:
            cached[i] = Job(folder, run_id, state="complete", from_cache=True, **data)
        elif str(folder) not in ready:
            todo.append(folder)
    fresh: Iterator[Job]
    pool = None
    if workers > 1 and len(todo) >= job_folders.PARALLEL_MIN:
        pool = ProcessPoolExecutor(min(workers, len(todo)), initializer=gc.enable)
        fresh = pool.map(examine, todo, repeat(root), chunksize=32)
    else:
        fresh = map(examine, todo, repeat(root))
    jobs = []
    try:
        for i in range(len(folders)):
            job = cached.get(i) or ready.pop(str(folders[i]), None) or next(fresh)
            if cache is not None and i not in cached and job.problem is None:
                cache.store(job.run_id, job.sig, job.cached(), leaves.get(str(job.folder)))
            if not job.from_cache:  # cached ones share the cache's key lists and headers
                job.headers = {name: _shared(columns) for name, columns in job.headers.items()}
                job.values = _interned(job.values)
            jobs.append(job)
            n = len(jobs)
            if progress_every and len(folders) >= progress_every and (
                    n % progress_every == 0 or n == len(folders)):
                print(f"load_sweep: read {n}/{len(folders)} job folders", file=sys.stderr,
                      flush=True)
    finally:
        if pool is not None:
            pool.shutdown()
    return jobs


_HEADERS: dict[tuple[str, ...], list[str]] = {}


def _shared(columns: list[str]) -> list[str]:
    """One list object per distinct header (most runs share theirs)."""
    return _HEADERS.setdefault(tuple(columns), columns)


def _interned(data: dict) -> dict:
    """`data` with its keys (at any depth) interned: every run's dicts share their key strings."""
    return {sys.intern(key) if isinstance(key, str) else key:
            _interned(value) if isinstance(value, dict) else value for key, value in data.items()}


def override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


class Labels:
    """Condition labels: a job's `condition` choice, plus its overrides that vary across the sweep
    (those not held by every readable job), minus the seed, the other keys of _UNLABELLED_KEYS
    and Hydra's own; "default" when there is none.

    everywhere: the overrides every readable job holds (None: there is no readable job, and no
    override varies).
    """

    def __init__(self, everywhere: set[str] | None) -> None:
        self.everywhere = everywhere
        self.decided: dict[str, bool] = {}  # override -> part of labels (decided once each)

    @classmethod
    def of(cls, jobs: list[Job]) -> Labels:
        readable = [set(job.overrides) for job in jobs if job.error is None]
        return cls(set.intersection(*readable) if readable else None)

    def varies(self, override: str) -> bool:
        """Whether the override is part of the labels of the jobs holding it."""
        keep = self.decided.get(override)
        if keep is None:
            keep = self.decided[override] = self.everywhere is not None \
                and override not in self.everywhere and self.labelled(override)
        return keep

    @staticmethod
    def labelled(override: str) -> bool:
        """Whether the override is part of labels where it varies (not the seed, a factor...)."""
        key = override_key(override)
        return key not in _UNLABELLED_KEYS and not key.startswith("hydra")

    def label(self, job: Job) -> str:
        varying = [o for o in job.overrides if self.varies(o)]
        head = [str(job.choices["condition"])] if job.choices.get("condition") else []
        return ",".join(head + varying) or "default"


def condition_labels(jobs: list[Job]) -> list[str]:
    """Each job's condition (Labels)."""
    labels = Labels.of(jobs)
    return [labels.label(job) for job in jobs]


def run_level(job: Job, label: str) -> dict[str, Any]:
    """The RUN_COLUMNS values of a job."""
    return {"run_id": job.run_id, "condition": label, "seed": job.config.get("seed"),
            **{group: job.choices.get(group) for group in GROUP_CHOICES},
            **factor_values(job.config)}


def problem_row(level: dict[str, Any]) -> dict[str, Any]:
    return {key: level[key] for key in ["run_id", "condition", "seed"]}


@dataclass
class Sorted:
    """The jobs of a sweep sorted out: runs to aggregate (with run-level values) and the rest.

    carried: the stream keys (stream_key) of the last pass's kept runs, taken unchanged without a
    Job each (sort_out_carried): the first runs to aggregate, before `kept`. in_all_kept and
    everywhere: the overrides every kept run holds and those every readable job holds (Labels),
    what the next pass needs to carry these runs.
    """

    kept: list[tuple[Job, dict[str, Any]]]
    failed: list[dict[str, Any]]
    duplicates: list[dict[str, Any]]
    carried: list[list] = field(default_factory=list)
    carried_folders: list[str] = field(default_factory=list)  # their job folders, in order
    in_all_kept: list[str] = field(default_factory=list)
    everywhere: list[str] | None = None


def sort_out(jobs: list[Job]) -> Sorted:
    """Verified runs to aggregate, once per config hash (the first in run_id order is kept);
    every other job folder is a failed row (status failed, running, missing, unreadable or
    duplicate) with its reason."""
    labels = Labels.of(jobs)
    out = Sorted([], [], [])
    first: dict[str, str] = {}
    for job in jobs:
        level = run_level(job, labels.label(job))
        if job.problem is not None:
            out.failed.append({**problem_row(level), "status": job.state, "error": job.problem})
        elif job.digest in first:
            _duplicate(out, level, job.digest, first[job.digest])
        else:
            if job.digest is not None:
                first[job.digest] = job.run_id
            out.kept.append((job, level))
    kept = [set(job.overrides) for job, _ in out.kept]
    out.in_all_kept = sorted(set.intersection(*kept)) if kept else []
    out.everywhere = sorted(labels.everywhere) if labels.everywhere is not None else None
    return out


def _duplicate(out: Sorted, level: dict[str, Any], digest: str, kept: str) -> None:
    out.duplicates.append({**problem_row(level), "config_hash": digest, "kept_run_id": kept})
    out.failed.append({**problem_row(level), "status": "duplicate",
                       "error": f"same config (hash {digest}) as run {kept}: counted once"})


def sort_out_carried(state: dict, carried_at: list[int],
                     others: list[tuple[int, Job]]) -> Sorted | None:
    """sort_out of a sweep whose last pass's kept runs (state["kept"], at these positions in
    folder order, increasing) are all unchanged, without a Job for each: they are `carried`,
    and `others` (the other job folders' jobs, with their positions, in order) are sorted out
    as sort_out would. None when the result would not be sort_out's with those runs first and
    unchanged: when their labels change (another set of labelled overrides is held everywhere)
    or another job is kept before one of them or in its place."""
    keys = state["kept"]
    readable = [set(job.overrides) for _, job in others if job.error is None]
    everywhere = set(state["in_all_kept"]).intersection(*readable)
    labels = Labels(everywhere)
    if {o for o in everywhere if labels.labelled(o)} != \
            {o for o in state["everywhere"] if labels.labelled(o)}:
        return None
    last = carried_at[-1]
    position_of: dict[str, int] = {}  # (built when a job has a carried run's config hash)
    carried_digests = {key[-1]: key[0] for key in keys if key[-1] is not None}
    out = Sorted([], [], [], carried=keys)
    first: dict[str, str] = {}
    for position, job in others:
        level = run_level(job, labels.label(job))
        if job.problem is not None:
            out.failed.append({**problem_row(level), "status": job.state, "error": job.problem})
            continue
        carried_run = carried_digests.get(job.digest)
        if carried_run is not None:
            position_of = position_of or {key[0]: i for key, i in zip(keys, carried_at)}
            if position_of[carried_run] > position:
                return None  # this job would be kept, the carried run its duplicate
        kept = carried_run or first.get(job.digest)
        if kept is not None:
            _duplicate(out, level, job.digest, kept)
        elif position < last:
            return None  # kept among the carried runs, not after them
        else:
            if job.digest is not None:
                first[job.digest] = job.run_id
            out.kept.append((job, level))
    out.in_all_kept = sorted(set(state["in_all_kept"]).intersection(
        *(set(job.overrides) for job, _ in out.kept)))
    out.everywhere = state["everywhere"]
    return out


def run_row(job: Job, level: dict[str, Any]) -> dict[str, Any]:
    """The runs-table row: run-level values, the summary's metrics, the flattened config."""
    return {**level, **job.values}


def failed_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    rows = sorted(rows, key=lambda row: natural_key(str(row["run_id"])))
    return pd.DataFrame(rows, columns=FAILED_COLUMNS)


def runs_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=None if rows else RUN_COLUMNS)


def tag(table: pd.DataFrame, level: dict[str, Any]) -> pd.DataFrame:
    """`table` with the run-level columns in front."""
    front = pd.DataFrame({key: [value] * len(table) for key, value in level.items()},
                         index=table.index)
    return pd.concat([front, table.drop(columns=[c for c in level if c in table])], axis=1)


def load_sweep(path: Path | str, progress_every: int = 100, workers: int = 1) -> Sweep:
    """Read every job folder under `path` (a sweep folder, or a single run's folder), in memory.

    Complete, verified runs go to runs/units/decoding/history (once per config); failed, killed
    (status running), never-finished (no status), unreadable and duplicate ones to `failed`,
    whose error names the bad file. Prints a progress line to stderr every `progress_every` jobs
    on sweeps at least that large (0: never). Raises SweepError when `path` is missing, empty, or
    holds no job folder.
    """
    root, folders = sweep_folders(path)
    jobs = examine_all(root, folders, None, workers, progress_every)
    sorted_out = sort_out(jobs)
    rows, failed = [], list(sorted_out.failed)
    tables: dict[str, list[pd.DataFrame]] = {name: [] for name in TABLES}
    for job, level in sorted_out.kept:
        try:
            status = results.read_status(job.folder)
            parts = {name: results.read_table(job.folder / file, required)
                     if recorded(name, status) else pd.DataFrame()
                     for name, (file, required) in TABLES.items()}
        except results.RunFileError as error:
            failed.append({**problem_row(level), "status": "unreadable",
                           "error": short_error(error, root)})
            continue
        rows.append(run_row(job, level))
        for name, table in parts.items():
            tables[name].append(tag(table, level))
    return Sweep(root, runs_table(rows), **{name: concat(tables[name]) for name in TABLES},
                 failed=failed_table(failed),
                 duplicates=pd.DataFrame(sorted_out.duplicates, columns=DUPLICATE_COLUMNS))


def concat(tables: list[pd.DataFrame]) -> pd.DataFrame:
    if not tables:
        return pd.DataFrame(columns=RUN_COLUMNS)
    return pd.concat(tables, ignore_index=True)


def aggregate_dir(sweep: Sweep) -> Path:
    """Where write_aggregate writes by default: SWEEP_DIR/aggregate."""
    return sweep.path / AGGREGATE_DIR


def write_aggregate(sweep: Sweep, out_dir: Path | str | None = None, n_boot: int = 10_000,
                    seed: int = 0, ci: str = DEFAULT_CI, summary: pd.DataFrame | None = None,
                    paired: pd.DataFrame | None = None) -> Path:
    """Write runs, the PER_RUN_TABLES, robustness, contrasts and failed .csv into `out_dir`.

    out_dir: default SWEEP_DIR/aggregate. ci: the CI method of robustness and contrasts
    (summaries.CI_METHODS). summary / paired: the robustness / contrasts tables when the caller
    has already computed them (robustness(...) / contrasts(...) of sweep.runs with n_boot, seed
    and ci otherwise). Each file is written atomically; the same sweep gives byte-identical
    files. Returns the folder.
    """
    out = Path(out_dir) if out_dir is not None else aggregate_dir(sweep)
    out.mkdir(parents=True, exist_ok=True)
    tables = {"runs": sweep.runs, **{name: getattr(sweep, name) for name in PER_RUN_TABLES},
              "contrasts": contrasts(sweep.runs, n_boot=n_boot, seed=seed, ci=ci)
              if paired is None else paired}
    for name, table in tables.items():
        results.write_table(out / f"{name}.csv", table)
    write_run_level(out, sweep, robustness(sweep.runs, n_boot=n_boot, seed=seed, ci=ci)
                    if summary is None else summary)
    return out


def write_run_level(out: Path, sweep: Sweep, summary: pd.DataFrame | None) -> None:
    """failed.csv, duplicates.csv (each left as it is when it holds that table already) and
    robustness.csv (`summary`: across seeds, from the runs; None: the caller writes
    robustness.csv)."""
    results.update_table(out / "failed.csv", sweep.failed)
    results.update_table(out / "duplicates.csv", sweep.duplicates)
    if summary is not None:
        results.write_table(out / "robustness.csv", summary)


# --- streamed aggregation (mirror-aggregate) -------------------------------------------------

def union_columns(headers: list[list[str]]) -> list[str]:
    """Columns in order of first appearance (as pandas.concat orders them), minus RUN_COLUMNS."""
    seen: dict[str, None] = {}
    looked: set[int] = set()  # most runs share one list object per header (_shared)
    for columns in headers:
        if id(columns) in looked:
            continue
        looked.add(id(columns))
        for column in columns:
            if column not in RUN_COLUMNS:
                seen.setdefault(column, None)
    return list(seen)


def stream_key(job: Job, level: dict[str, Any]) -> list:
    """What must not change for a run's rows in the streamed files to stay valid (as a JSON
    list: run-level values are str, int or None)."""
    return [*(level[key] for key in RUN_COLUMNS), job.digest]


def appendable(state: dict, out: Path, columns: dict[str, list[str]],
               kept: list[tuple[Job, dict[str, Any]]], carried: int = 0) -> int:
    """How many leading runs of `kept` the last pass's streamed files already hold, unchanged.

    Nonzero only when those files are as that pass left them, their columns are the same, and
    the runs it wrote are the first runs of `kept`, each unchanged (from the cache) with the same
    run-level values (labels change when new runs add a varying override). New runs that sort
    after them are then appended; anything else streams every run again. carried: how many of
    those runs come before `kept` (carried, sort_out_carried: known unchanged).
    """
    try:
        old = state["kept"]
        if not old or len(old) > carried + len(kept) or state["columns"] != columns:
            return 0
        if any(stamp(out, [f"{name}.csv"]) != state["files"][name] for name in TABLES):
            return 0
        for (job, level), key in zip(kept, old[carried:]):
            if not job.from_cache or stream_key(job, level) != key:
                return 0
        return len(old) if all(isinstance(state["rows"][name], int) for name in TABLES) else 0
    except (KeyError, TypeError):
        return 0


@dataclass
class Aggregate:
    """What aggregate_sweep wrote: the run-level tables in memory, the others' sizes."""

    sweep: Sweep  # runs, failed, duplicates (units/decoding/history are left empty: see out)
    out: Path
    shapes: dict[str, tuple[int, int]]  # rows x columns of every table written
    n_cached: int  # runs taken from the verification cache (not re-read)
    # per streamed table whose file as the last pass left it is the start of this pass's (new
    # runs' rows appended, or none), that file's stamp (verify_cache.stamp); tables written anew
    # are absent
    kept_files: dict[str, bytes] = field(default_factory=dict)


def aggregate_sweep(path: Path | str, out_dir: Path | str | None = None, n_boot: int = 10_000,
                    seed: int = 0, workers: int = 1, progress_every: int = 100,
                    use_cache: bool = True,
                    summary: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
                    prepass: Prepass | None = None,
                    meanwhile: Callable[[], object] | None = None) -> Aggregate:
    """Aggregate a sweep into CSV files with memory bounded by the per-run table.

    Writes the same files as write_aggregate(load_sweep(path)) (same tables; the per-unit,
    per-decoder and per-epoch ones streamed run by run) plus the verification cache
    `.verified.marshal` in the output folder (use_cache=False: neither read nor written).
    summary: makes robustness.csv from the runs table (default: robustness with n_boot, seed;
    a summary returning None leaves robustness.csv to the caller).
    workers > 1 verifies runs in that many processes. prepass: the scan of the sweep started in
    a forked process for these arguments (prepass.Prepass.start(path, out_dir, use_cache)),
    taken instead of one made here; meanwhile: called while that scan is made, before it is
    taken (the command line imports what its report needs then).
    """
    if prepass is not None and not prepass.matches(path, out_dir, use_cache):
        raise ValueError(f"the pre-pass scanned {prepass.path} for other arguments")
    replaced = Replaced()  # the old versions of rewritten files removed in the background
    try:
        with paused_gc():
            result = _aggregate_sweep(path, out_dir, workers, progress_every, use_cache, prepass,
                                      replaced, meanwhile)
    finally:
        replaced.close()
    runs = result.sweep.runs  # the statistics with the collector on (pandas makes cycles)
    table = robustness(runs, n_boot=n_boot, seed=seed) if summary is None else summary(runs)
    if table is not None:
        results.write_table(result.out / "robustness.csv", table)
    return result


@contextmanager
def paused_gc() -> Iterator[None]:
    """The cyclic garbage collector off inside (on again after, if it was): a pass allocates
    millions of acyclic objects (freed by reference counting as usual), and each collection they
    trigger walks every object alive, ~10% of a cached pass at 10^4 runs. Processes verifying
    runs (examine_all) collect as usual, and so do the statistics."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _aggregate_sweep(path: Path | str, out_dir: Path | str | None, workers: int,
                     progress_every: int, use_cache: bool,
                     prepass: Prepass | None = None,
                     replaced: Replaced | None = None,
                     meanwhile: Callable[[], object] | None = None) -> Aggregate:
    """aggregate_sweep but robustness.csv (replaced: how files are renamed over)."""
    out = output_dir(path, out_dir)
    cache = VerifyCache(out / CACHE_FILE if use_cache else None)
    # while the child scans: the runs table of the runs that may be carried unpacked, or (when
    # none may) every cache record decoded
    early = None
    if prepass is not None and may_carry(cache.state):
        early = unpack_table(cache.table, len(cache.state["kept"]))
    elif prepass is not None:
        cache.prepare()
    if prepass is not None and meanwhile is not None:
        meanwhile()
    scan = prepass.result() if prepass is not None else None
    if scan is not None:
        root, folders, leaves = scan.root, scan.folders, scan.leaves
    else:
        root, folders, leaves = job_folders.walk_sweep(
            path, cache.leaves(Path(path)) if use_cache else None)
    out.mkdir(parents=True, exist_ok=True)
    sorted_out = _sorted_out(root, folders, leaves, cache, scan, workers, progress_every)
    cache.old = {}  # entries of job folders that are gone
    failed = list(sorted_out.failed)
    # the carried runs' columns: their union, as the last pass found it
    carried = [cache.state.get("columns") or {}] if sorted_out.carried else []
    columns = {name: union_columns([*(c.get(name, []) for c in carried),
                                    *(job.headers.get(name, []) for job, _ in sorted_out.kept)])
               for name in TABLES}
    done = appendable(cache.state, out, columns, sorted_out.kept, len(sorted_out.carried))
    # the last pass's runs table holds the first `done` runs' rows: their values stay packed
    old_runs = (early if early is not None else unpack_table(cache.table, done)) if done else None
    if sorted_out.carried and (not done or old_runs is None):  # every run's rows are needed
        sorted_out.kept[:0] = uncarried(sorted_out, cache)
        sorted_out.carried, sorted_out.carried_folders = [], []
    # the files the new runs' rows are appended to are copied while their rows are read
    copying = copies_for(out, cache.state, sorted_out.kept[done - len(sorted_out.carried):]) \
        if done else None
    try:
        return _write_tables(root, out, cache, sorted_out, columns, done, old_runs, failed,
                             use_cache, replaced, copying)
    finally:
        if copying is not None:
            copying.close()


def _sorted_out(root: Path, folders: list[Path] | list[str], leaves: dict[str, bytes],
                cache: VerifyCache, scan: Scan | None, workers: int,
                progress_every: int) -> Sorted:
    """The job folders examined (examine_all) and sorted out (sort_out). When the pre-pass
    found every run the last pass kept unchanged (`carriable`), those runs are carried
    (sort_out_carried) and only the other folders are examined; if that does not give
    sort_out's result, the carried runs are examined too and all sorted out as usual."""
    carried_at = carriable(cache, scan, root, folders)
    if carried_at is None:
        return sort_out(examine_all(root, folders, cache, workers, progress_every, leaves, scan))
    carried = bytearray(len(folders))
    for i in carried_at:
        carried[i] = 1
    others_at = [i for i, flag in enumerate(carried) if not flag]
    others = examine_all(root, [folders[i] for i in others_at], cache, workers,
                         progress_every, leaves, scan)
    sorted_out = sort_out_carried(cache.state, carried_at, list(zip(others_at, others)))
    if sorted_out is not None:
        sorted_out.carried_folders = [str(folders[i]) for i in carried_at]
        cache.carry(sorted_out.carried, sorted_out.carried_folders, leaves)
        return sorted_out
    carried_jobs = examine_all(root, [folders[i] for i in carried_at], cache, workers, 0,
                               leaves, scan)
    jobs = dict(zip(others_at, others)) | dict(zip(carried_at, carried_jobs))
    return sort_out([jobs[i] for i in range(len(folders))])


def may_carry(state: dict) -> bool:
    """Whether the last pass left what carrying its kept runs needs (carriable)."""
    return bool(state.get("kept")) and isinstance(state.get("in_all_kept"), list)


def carriable(cache: VerifyCache, scan: Scan | None, root: Path,
              folders: list[Path] | list[str]) -> list[int] | None:
    """The positions in `folders` of the last pass's kept runs, when every one of them is still
    there, in the same order, its files unchanged (as the pre-pass found them, when it checked
    them against the same cache file: its hits; else stat'ed here, VerifyCache.check), and the
    cache's state says what carrying them needs (may_carry); None otherwise."""
    state = cache.state
    if not may_carry(state) or not isinstance(state.get("everywhere"), list):
        return None
    checked = scan is not None and cache.token is not None and scan.token == cache.token
    texts = [str(folder) for folder in folders]
    index = {run_id: i for i, run_id in enumerate(relative_ids(folders, root))}
    old, hits = cache.old, (scan.hits if checked else None)
    positions: list[int] = []
    last = -1
    try:
        for key in state["kept"]:
            run_id = key[0]
            position = index.get(run_id, -1)
            if position <= last or run_id not in old:
                return None  # gone, moved or not cached
            if (texts[position] not in hits) if hits is not None \
                    else cache.check(run_id, folders[position]) is None:
                return None  # changed
            positions.append(position)
            last = position
    except (TypeError, IndexError, KeyError):  # a malformed state: the usual path
        return None
    return positions


def uncarried(sorted_out: Sorted, cache: VerifyCache) -> list[tuple[Job, dict[str, Any]]]:
    """The carried runs as jobs (from their cache entries) with their run-level values."""
    return [(Job(folder, key[0], state="complete", from_cache=True, **cache.entry(key[0])),
             dict(zip(RUN_COLUMNS, key[:-1])))
            for key, folder in zip(sorted_out.carried, sorted_out.carried_folders)]


def copies_for(out: Path, state: dict, new: list[tuple[Job, dict[str, Any]]]) -> Copying | None:
    """The copies of the streamed tables the `new` runs add rows to (and of runs.csv, when the
    last pass wrote it as it is), started in the background (streams.Copying); None when none."""
    tables = [out / f"{name}.csv" for name in TABLES
              if any(job.headers.get(name) for job, _ in new)]
    if not tables:
        return None
    if state.get("runs_file") == stamp(out, ["runs.csv"]):  # first: appended to first
        tables.insert(0, out / "runs.csv")
    return Copying({path: temporary(path) for path in tables})


def _write_tables(root: Path, out: Path, cache: VerifyCache, sorted_out: Sorted,
                  columns: dict[str, list[str]], done: int, old_runs: pd.DataFrame | None,
                  failed: list[dict[str, Any]], use_cache: bool, replaced: Replaced | None,
                  copying: Copying | None) -> Aggregate:
    """The tables of the sorted-out runs written, the first `done` runs' rows kept from the last
    pass (appendable; old_runs: its runs table, or None); the cache's state and table updated
    and saved."""
    streams = {name: TableStream(out / f"{name}.csv", columns[name],
                                 cache.state["rows"][name] if done else None, replaced, copying)
               for name in TABLES}
    carried = len(sorted_out.carried)  # the first runs, in the files already
    rows, written = [], list(sorted_out.carried)
    try:
        for i, (job, level) in enumerate(sorted_out.kept, start=carried):
            if i >= done or old_runs is None:
                rows.append(run_row(unpacked(job, cache), level))
            if i >= done:  # runs before `done` are in the files already, unchanged
                try:
                    texts = {name: read_text(os.path.join(job.folder, file))
                             if job.headers.get(name) else ""
                             for name, (file, _) in TABLES.items()}
                except (OSError, UnicodeDecodeError) as error:  # changed since it was verified
                    failed.append({**problem_row(level), "status": "unreadable",
                                   "error": f"{job.run_id}: {type(error).__name__}: "
                                            f"{short_error(error, root)}"})
                    cache.drop(job.run_id)
                    rows.pop()
                    continue
                for name, text in texts.items():
                    streams[name].add(level, text)
            written.append(stream_key(job, level) if i >= done else cache.state["kept"][i])
        previous = cache.state
        runs, extended = _runs_table(
            old_runs, rows, lambda: uncarried(sorted_out, cache) + sorted_out.kept[:done - carried],
            cache)
        if use_cache and runs is not old_runs:  # the cache keeps the table, or the rows added
            added = pack_table(runs.iloc[done:]) if extended else None
            if added is None or not cache.append_rows(added):
                cache.table, cache.table_changed = pack_table(runs), True
        sweep = Sweep(root, runs, **{name: _empty(RUN_COLUMNS) for name in TABLES},
                      failed=failed_table(failed),
                      duplicates=pd.DataFrame(sorted_out.duplicates, columns=DUPLICATE_COLUMNS))
        runs_layout = table_layout(sweep.runs)
        # runs.csv as the other tables: the last pass's rows kept, the new runs' rows appended,
        # when that pass wrote the file as it is, the same leading runs (`done`), the same layout
        if done and previous.get("runs_layout") == runs_layout \
                and stamp(out, ["runs.csv"]) == previous.get("runs_file"):
            if len(sweep.runs) > done:
                append_table(out / "runs.csv", sweep.runs.iloc[done:], replaced, copying)
        else:
            results.write_table(out / "runs.csv", sweep.runs)
        write_run_level(out, sweep, None)
        # the streamed tables renamed last: the copies appended to are on disk by then (Copying)
        for stream in streams.values():
            stream.finish()
    except BaseException:
        for stream in streams.values():
            stream.discard()
        raise
    cache.state = {"kept": written, "columns": columns, "in_all_kept": sorted_out.in_all_kept,
                   "everywhere": sorted_out.everywhere,
                   "rows": {name: stream.rows for name, stream in streams.items()},
                   "files": {name: stamp(out, [f"{name}.csv"]) for name in TABLES},
                   "runs_layout": runs_layout, "runs_file": stamp(out, ["runs.csv"])}
    cache.save()
    shapes = {"runs": sweep.runs.shape,
              **{name: (s.rows, len(RUN_COLUMNS) + len(s.columns)) for name, s in streams.items()},
              "failed": sweep.failed.shape, "duplicates": sweep.duplicates.shape}
    kept_files = {name: previous["files"][name] for name in TABLES} if done else {}
    return Aggregate(sweep, out, shapes, cache.hits, kept_files)


def _runs_table(old_runs: pd.DataFrame | None, rows: list[dict[str, Any]],
                kept_before: Callable[[], list[tuple[Job, dict[str, Any]]]], cache: VerifyCache
                ) -> tuple[pd.DataFrame, bool]:
    """The runs table: the last pass's (`old_runs`, rows of the runs `kept_before()`) with the new
    `rows` after it, or all made anew (old_runs None, or its layout differs); and whether it is
    old_runs extended."""
    if old_runs is None:
        return runs_table(rows), False
    if not rows:
        return old_runs, False
    runs = extend_table(old_runs, runs_table(rows))  # while their columns and dtypes agree
    if runs is not None:
        return runs, True
    return runs_table([run_row(unpacked(job, cache), level) for job, level in kept_before()]
                      + rows), False


def unpacked(job: Job, cache: VerifyCache) -> Job:
    """The job with its runs-table values (unpacked from the cache when they come from it)."""
    if job.values_packed is not None:
        job.values, job.values_packed = cache.values(job.values_packed), None
    return job


def extend_table(table: pd.DataFrame, more: pd.DataFrame) -> pd.DataFrame | None:
    """`more` rows after `table`'s when both have the same columns and dtypes (then the result is
    the table runs_table makes of all the rows); None otherwise."""
    if table_layout(more) != table_layout(table):
        return None
    return pd.concat([table, more], ignore_index=True)


def read_aggregate(out: Path | str, sweep: Sweep) -> Sweep:
    """`sweep` with its per-run tables (TABLES) read back from the aggregate CSVs."""
    out = Path(out)
    tables = {name: pd.read_csv(out / f"{name}.csv", dtype={"run_id": str, "condition": str})
              for name in TABLES}
    return Sweep(sweep.path, sweep.runs, **tables, failed=sweep.failed,
                 duplicates=sweep.duplicates)
