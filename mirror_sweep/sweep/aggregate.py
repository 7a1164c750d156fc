"""Load a sweep's run folders into tidy pandas tables and summarise them across seeds (no torch).

A sweep folder holds Hydra job folders (any folder with `.hydra/config.yaml`, at any depth); each
job folder holds a run written by `mirror_sweep.sweep.results`. `load_sweep` joins every job's config,
overrides and group choices to its tables; `write_aggregate` writes the tables as CSV files
(with the across-seed summaries of `mirror_sweep.sweep.summaries`). Per-run files are only read.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from mirror_sweep.sweep import results
from mirror_sweep.sweep.contrasts import contrasts
from mirror_sweep.sweep.factors import FACTORS, factor_values
from mirror_sweep.sweep.summaries import DEFAULT_CI, robustness

HYDRA_DIR = ".hydra"
GROUP_CHOICES = ["env", "model", "objective", "data_pairing"]
RUN_COLUMNS = ["run_id", "condition", "seed", *GROUP_CHOICES, *FACTORS]
FAILED_COLUMNS = ["run_id", "condition", "seed", "status", "error"]
AGGREGATE_DIR = "aggregate"
# per-run tables concatenated across runs (RunRecord attributes), each written as NAME.csv
PER_RUN_TABLES = ["units", "decoding", "history", "subset_decoding", "ablation"]
# Override keys left out of condition labels: the seed is the replicate, each factor (hidden size,
# K, action process, cell; sweep/factors.py) has its own column, `condition` is the label's head,
# and these others never change a run's numbers.
_UNLABELLED_KEYS = {"seed", *FACTORS.values(), "condition", "train.progress", "output.resume",
                    "output.save_activations"}


class SweepError(ValueError):
    """The sweep folder is missing, empty, or holds no job folder; the message names the path."""


@dataclass
class Sweep:
    """A sweep read back: one row per complete run, per unit, per decoder, per epoch, per failure,
    per unit-subset decoder and per ablation.

    Every table starts with the run-level columns RUN_COLUMNS (failed: FAILED_COLUMNS).
    """

    path: Path
    runs: pd.DataFrame
    units: pd.DataFrame
    decoding: pd.DataFrame
    history: pd.DataFrame
    failed: pd.DataFrame
    subset_decoding: pd.DataFrame = field(default_factory=pd.DataFrame)
    ablation: pd.DataFrame = field(default_factory=pd.DataFrame)


@dataclass
class Job:
    """A job folder's Hydra record: task config, overrides and group choices (or why unreadable)."""

    folder: Path
    run_id: str
    config: dict[str, Any]
    overrides: list[str]
    choices: dict[str, Any]
    error: str | None = None


def natural_key(run_id: str) -> tuple:
    """Sort key that puts job 10 after job 9."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part)
                 for part in re.split(r"[/_-]", run_id))


def find_job_folders(path: Path) -> list[Path]:
    """Job folders under `path` (itself included), in natural order of their relative path."""
    path = Path(path)
    folders = {config.parent.parent for config in path.rglob(f"{HYDRA_DIR}/config.yaml")}
    return sorted(folders, key=lambda folder: natural_key(relative_id(folder, path)))


def relative_id(folder: Path, root: Path) -> str:
    """The run_id: the folder relative to the sweep, or its own name when it is the sweep."""
    return folder.name if folder == root else folder.relative_to(root).as_posix()


# libyaml's loader is ~10x faster than OmegaConf.load; the files are Hydra's own plain YAML dumps.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(path: Path) -> Any:
    """A .hydra/*.yaml file as plain Python data (interpolations left as strings)."""
    try:
        return yaml.load(Path(path).read_text(), Loader=_YAML_LOADER)
    except FileNotFoundError as error:
        raise results.RunFileError(f"{path}: missing") from error
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise results.RunFileError(f"{path}: corrupted YAML ({type(error).__name__})") from error


def read_job(folder: Path, root: Path) -> Job:
    """The Hydra record of one job folder; on a bad file, a Job whose error names the file."""
    run_id = relative_id(folder, root)
    hydra_dir = folder / HYDRA_DIR
    try:
        config = read_yaml(hydra_dir / "config.yaml")
        overrides = read_yaml(hydra_dir / "overrides.yaml") or []
        hydra = read_yaml(hydra_dir / "hydra.yaml")
        choices = dict(hydra["hydra"]["runtime"]["choices"])
    except results.RunFileError as error:
        return Job(folder, run_id, {}, [], {}, short_error(error, root))
    except (KeyError, TypeError):
        return Job(folder, run_id, {}, [], {},
                   f"{run_id}/{HYDRA_DIR}/hydra.yaml: no hydra.runtime.choices")
    return Job(folder, run_id, config, [str(o) for o in overrides], choices)


def short_error(error: Exception, root: Path) -> str:
    """The error message with file paths relative to the sweep folder."""
    return str(error).replace(f"{root}/", "")


def override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def condition_labels(jobs: list[Job]) -> list[str]:
    """Each job's condition: its `condition` choice, plus the overrides that vary across the sweep
    (minus the seed and the other keys of _UNLABELLED_KEYS); "default" when there is none."""
    readable = [job for job in jobs if job.error is None]
    counts = Counter(override for job in readable for override in set(job.overrides))
    labels = []
    for job in jobs:
        varying = [o for o in job.overrides if counts[o] < len(readable)
                   and override_key(o) not in _UNLABELLED_KEYS
                   and not override_key(o).startswith("hydra")]
        head = [str(job.choices["condition"])] if job.choices.get("condition") else []
        labels.append(",".join(head + varying) or "default")
    return labels


def flatten(config: dict, prefix: str = "") -> dict[str, Any]:
    """{"train": {"lr": 0.001}} -> {"train.lr": 0.001}; lists become their string."""
    flat = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = str(value) if isinstance(value, list) else value
    return flat


def run_level(job: Job, label: str) -> dict[str, Any]:
    """The RUN_COLUMNS values of a job."""
    return {"run_id": job.run_id, "condition": label, "seed": job.config.get("seed"),
            **{group: job.choices.get(group) for group in GROUP_CHOICES},
            **factor_values(job.config)}


def failure(job: Job, level: dict[str, Any], root: Path) -> dict[str, Any] | None:
    """The failed-table row of a job that is not complete and readable, else None."""
    row = problem_row(level)
    if job.error is not None:
        return {**row, "status": "unreadable", "error": job.error}
    try:
        status = results.read_status(job.folder)
    except results.RunFileError as error:
        return {**row, "status": "unreadable", "error": short_error(error, root)}
    state = status.get("status")
    if state == "complete":
        return None
    messages = {
        "failed": status.get("error", "failed (no error recorded)"),
        "running": f"status running (pid {status.get('pid')}): killed, or still running",
        "missing": "no status.json: the job was killed or never started",
        "pending": f"queued, not started ({status.get('launcher')} job {status.get('job_id')})",
    }
    return {**row, "status": state, "error": messages.get(state, f"unknown status {state!r}")}


def tag(table: pd.DataFrame, level: dict[str, Any]) -> pd.DataFrame:
    """`table` with the run-level columns in front."""
    front = pd.DataFrame({key: [value] * len(table) for key, value in level.items()},
                         index=table.index)
    return pd.concat([front, table.drop(columns=[c for c in level if c in table])], axis=1)


def load_sweep(path: Path | str, progress_every: int = 100) -> Sweep:
    """Read every job folder under `path` (a sweep folder, or a single run's folder).

    Complete, readable runs go to runs/units/decoding/history; failed, killed (status running),
    never-finished (no status) and unreadable ones to `failed`, whose error names the bad file.
    Prints a progress line to stderr every `progress_every` jobs on sweeps at least that large
    (0: never). Raises SweepError when `path` is missing, empty, or holds no job folder.
    """
    root = Path(path)
    if not root.is_dir():
        raise SweepError(f"no such sweep folder: {root}")
    if not any(root.iterdir()):
        raise SweepError(f"the sweep folder is empty: {root}")
    folders = find_job_folders(root)
    if not folders:
        raise SweepError(f"no runs in {root}: no job folder (one holding {HYDRA_DIR}/config.yaml)")
    jobs = [read_job(folder, root) for folder in folders]
    rows, failed = [], []
    tables: dict[str, list[pd.DataFrame]] = {name: [] for name in PER_RUN_TABLES}
    for i, (job, label) in enumerate(zip(jobs, condition_labels(jobs)), start=1):
        level = run_level(job, label)
        problem = failure(job, level, root)
        if problem is None:
            try:
                record = results.read_run(job.folder)
            except results.RunFileError as error:
                problem = {**problem_row(level), "status": "unreadable",
                           "error": short_error(error, root)}
        if problem is not None:
            failed.append(problem)
        else:
            metrics = {k: v for k, v in record.summary.items() if k not in level}
            config = {k: v for k, v in flatten(job.config).items() if k != "seed"}
            rows.append({**level, **metrics, **config})
            for name, parts in tables.items():
                parts.append(tag(getattr(record, name), level))
        if progress_every and len(jobs) >= progress_every and (
                i % progress_every == 0 or i == len(jobs)):
            print(f"load_sweep: read {i}/{len(jobs)} job folders", file=sys.stderr, flush=True)
    concatenated = {name: concat(parts) for name, parts in tables.items()}
    return Sweep(root, pd.DataFrame(rows, columns=None if rows else RUN_COLUMNS),
                 *(concatenated[name] for name in ["units", "decoding", "history"]),
                 pd.DataFrame(failed, columns=FAILED_COLUMNS),
                 concatenated["subset_decoding"], concatenated["ablation"])


def problem_row(level: dict[str, Any]) -> dict[str, Any]:
    return {key: level[key] for key in ["run_id", "condition", "seed"]}


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
              "failed": sweep.failed,
              "robustness": robustness(sweep.runs, n_boot=n_boot, seed=seed, ci=ci)
              if summary is None else summary,
              "contrasts": contrasts(sweep.runs, n_boot=n_boot, seed=seed, ci=ci)
              if paired is None else paired}
    for name, table in tables.items():
        results.write_table(out / f"{name}.csv", table)
    return out
