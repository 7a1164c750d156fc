"""The run-folder contract: what a finished run writes, written atomically, and how to read it.

A run folder holds, once complete: summary.json, units.csv, decoding.csv, history.csv,
subset_decoding.csv and ablation.csv (when the run gives them), (optionally)
activations.npz, and last of all status.json with {"status": "complete",
"config_hash": ..., "files": {name: sha256}, provenance...}. status.json says "running" while a
run works and "failed" (with the error) when it raised, so a run killed mid-way is never mistaken
for a finished one.

`run_state` is THE rule for "is this run complete", used by resume (app.py), the sweep summary
and aggregation: status complete, AND the recorded config hash equals the hash of the folder's
.hydra/config.yaml (so a config rewritten by a later, failed or killed job never labels old
data), AND every recorded checksum matches, AND (when asked) the recorded code version is the
current one. `job_dirname` is the rule that names a sweep's job folders from their overrides.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import re
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from mirror_sweep.config import RunConfig

if TYPE_CHECKING:  # pandas (~0.4 s) is imported where a table is read, not by every job's start;
    # numpy where activations are written or read (aggregation's forked pre-pass has neither)
    import numpy as np
    import pandas as pd

STATUS_FILE = "status.json"
SUMMARY_FILE = "summary.json"
UNITS_FILE = "units.csv"
DECODING_FILE = "decoding.csv"
HISTORY_FILE = "history.csv"
SUBSET_DECODING_FILE = "subset_decoding.csv"
ABLATION_FILE = "ablation.csv"
ACTIVATIONS_FILE = "activations.npz"
TABLE_FILES = (UNITS_FILE, DECODING_FILE, HISTORY_FILE)
NULL_FILE = "top_unit_null.csv"  # unit, null_r, max_abs_z: the largest-r unit's null, max-stat null
# the population / causal tables: written when a run gives them, read as empty when absent
EXTRA_TABLE_FILES = (SUBSET_DECODING_FILE, ABLATION_FILE)
RUN_FILES = (*TABLE_FILES, *EXTRA_TABLE_FILES, SUMMARY_FILE, ACTIVATIONS_FILE, NULL_FILE,
             STATUS_FILE)
HYDRA_CONFIG = Path(".hydra") / "config.yaml"
SWEEP_FILE = ".sweep.json"  # written when a multirun starts (sweep/callbacks.py)
SUPERSEDED_DIR = "superseded"  # where a complete run of another config or code is moved aside
# Task config keys that never change a run's numbers: left out of the config hash and of job
# folder names (`experiment` names the preset, whose values are in the config already).
RESULT_NEUTRAL_KEYS = ("train.progress", "output.resume")
UNNAMED_OVERRIDE_KEYS = (*RESULT_NEUTRAL_KEYS, "experiment")
MAX_DIRNAME = 200  # a folder name stays below the usual 255-byte limit


class RunFileError(ValueError):
    """A run file is missing, truncated or corrupted; the message names the file."""


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: Path, write: Callable[[io.IOBase], None], binary: bool = False,
                 replace: Callable[[str, Path], None] = os.replace, durable: bool = True) -> None:
    """Write through a temporary file in the same folder, then rename over `path` (`replace`:
    how, os.replace or one that does the same). durable: on disk (fsync) before the rename;
    False for a cache that checks itself (a write lost in a crash only costs reading again).

    The file gets the permissions a plain open() would give (0666 minus the umask), not
    mkstemp's 0600, so colleagues can read a shared sweep folder.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb" if binary else "w") as handle:
            write(handle)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: dict) -> None:
    write_atomic(path, lambda f: json.dump(data, f, indent=2, allow_nan=True))


def write_table(path: Path, table: pd.DataFrame) -> None:
    write_atomic(path, lambda f: table.to_csv(f, index=False))


def update_table(path: Path, table: pd.DataFrame) -> bool:
    """write_table, unless the file already holds exactly that table (a small one: it is
    rendered in memory); whether it wrote. A file left as it is keeps its mtime, and costs no
    fsync (which waits for the disk's journal: ~1-30 ms while other files are written out)."""
    text = table.to_csv(index=False)
    try:
        if Path(path).read_text() == text:
            return False
    except (OSError, UnicodeDecodeError):
        pass
    write_atomic(path, lambda f: f.write(text))
    return True


def write_status(folder: Path, status: str, **fields) -> None:
    write_json(Path(folder) / STATUS_FILE, {"status": status, "time": time.time(), **fields})


def mark_failed(folder: Path, error: BaseException) -> None:
    """Record a failed run with its error, so the sweep can list it."""
    write_status(folder, "failed", error=f"{type(error).__name__}: {error}",
                 traceback="".join(traceback.format_exception(error)))


def write_run(folder: Path, summary: dict, tables: dict[str, pd.DataFrame],
              activations: dict[str, np.ndarray] | None, config_hash: str,
              **status_fields: Any) -> None:
    """Write every file of a finished run, then the completion marker (with checksums) last.

    status_fields (provenance, start time, ...) are recorded in status.json beside the hash.
    """
    folder = Path(folder)
    names = [*TABLE_FILES, *(name for name in EXTRA_TABLE_FILES if name in tables)]
    for name in names:
        write_table(folder / name, tables[name])
    written = [*names, SUMMARY_FILE]
    if NULL_FILE in tables:  # optional: runs written before it existed have none
        write_table(folder / NULL_FILE, tables[NULL_FILE])
        written.append(NULL_FILE)
    if activations is not None:
        import numpy as np

        write_atomic(folder / ACTIVATIONS_FILE,
                     lambda f: np.savez_compressed(f, **activations), binary=True)
        written.append(ACTIVATIONS_FILE)
    write_json(folder / SUMMARY_FILE, summary)
    write_status(folder, "complete", **status_fields, config_hash=config_hash,
                 files={name: file_digest(folder / name) for name in written})


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def verify_files(folder: Path, status: dict) -> None:
    """Check every file recorded at completion against its checksum; raise naming the first bad."""
    files = status.get("files")
    if not isinstance(files, dict) or not files:
        raise RunFileError(f"{Path(folder) / STATUS_FILE}: no file checksums recorded")
    for name, digest in files.items():
        path = Path(folder) / name
        if not path.exists():
            raise RunFileError(f"{path}: missing (recorded when the run completed)")
        try:
            actual = file_digest(path)
        except OSError as error:
            raise RunFileError(f"{path}: unreadable ({error.strerror})") from error
        if actual != digest:
            raise RunFileError(f"{path}: contents differ from the checksum recorded when the run "
                               "completed (truncated, corrupted or edited)")


def read_status(folder: Path) -> dict:
    """The run's status record; {"status": "missing"} when none was written."""
    path = Path(folder) / STATUS_FILE
    if not path.exists():
        return {"status": "missing"}
    try:
        status = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as error:
        raise RunFileError(f"{path}: corrupted status file ({error})") from error
    if not isinstance(status, dict) or not isinstance(status.get("status"), str):
        raise RunFileError(f"{path}: corrupted status file (not an object with a 'status')")
    return status


@functools.cache
def later_key_defaults() -> dict[str, Any]:
    """Keys added after runs were made, with their schema defaults (config.py): at the default
    they are left out of the hash, so a run from before the key existed keeps its hash."""
    defaults = RunConfig()
    return {"env.action_process": defaults.env.action_process.value,
            "env.stay_prob": defaults.env.stay_prob, "model.cell": defaults.model.cell.value}


def task_hash(task: dict) -> str:
    """Stable hash of a task config (plain data, no `hydra` node), minus RESULT_NEUTRAL_KEYS."""
    task = json.loads(json.dumps(task, default=str))  # a deep copy as plain JSON data
    task.pop("hydra", None)
    for key in RESULT_NEUTRAL_KEYS:
        section, name = key.split(".")
        if isinstance(task.get(section), dict):
            task[section].pop(name, None)
    objective = task.get("objective")
    if isinstance(objective, dict) and not objective.get("extra_terms", True):
        objective.pop("extra_terms")  # runs from before the key existed keep their hash
    output = task.get("output")
    if isinstance(output, dict) and str(output.get("save_activations")).lower() in (
            "all", "true", "none", "false"):  # "all"/"none" hash as the booleans they replaced
        output["save_activations"] = str(output["save_activations"]).lower() in ("all", "true")
    for key, default in later_key_defaults().items():  # the same for these keys at default
        section, name = key.split(".")
        if isinstance(task.get(section), dict) and task[section].get(name, default) == default:
            task[section].pop(name, None)
    text = json.dumps(task, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_task_config(folder: Path, known: tuple[str, Any] | None = None) -> dict:
    """The folder's .hydra/config.yaml as plain data; RunFileError when missing or corrupt.
    known: (text, data) of a read of it made just before: the data when the file still holds
    that text (not parsed twice)."""
    path = Path(folder) / HYDRA_CONFIG
    try:
        text = path.read_text()
        config = known[1] if known is not None and known[0] == text else \
            yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except FileNotFoundError as error:
        raise RunFileError(f"{path}: missing") from error
    except (yaml.YAMLError, UnicodeDecodeError, OSError) as error:
        raise RunFileError(f"{path}: corrupted YAML ({type(error).__name__})") from error
    if not isinstance(config, dict):
        raise RunFileError(f"{path}: not a mapping of config keys")
    return config


def folder_config_hash(folder: Path, known: tuple[str, Any] | None = None) -> str:
    """task_hash of the folder's .hydra/config.yaml (what the run folder says it ran); known as
    in read_task_config."""
    return task_hash(read_task_config(folder, known))


# The states of run_state. Only "complete" is a result; the others say why not.
COMPLETE, MISSING, RUNNING, FAILED, UNREADABLE = "complete", "missing", "running", "failed", \
    "unreadable"
CONFIG_CHANGED, CODE_CHANGED = "config_changed", "code_changed"
PENDING = "pending"  # submitted by a submitit launcher (hydra_plugins/), not started yet


@dataclass(frozen=True)
class RunState:
    """What a run folder holds: `state` (one of the constants above) and a one-line `reason`."""

    state: str
    reason: str
    status: dict = field(default_factory=dict, compare=False)

    @property
    def complete(self) -> bool:
        return self.state == COMPLETE

    @property
    def finished_result(self) -> bool:
        """A whole, verified run (of whatever config/code): worth moving aside, not deleting."""
        return self.state in (COMPLETE, CONFIG_CHANGED, CODE_CHANGED)


def run_state(folder: Path, config_hash: str | None = None,
              code_version: str | None = None,
              known_config: tuple[str, Any] | None = None) -> RunState:
    """THE completeness rule (resume, sweep summary and aggregation all call it).

    Complete when status.json says complete, its config hash equals the hash of
    `.hydra/config.yaml` when the folder has one (and `config_hash` when given: the config about to run), every recorded
    file matches its checksum, and, when `code_version` is given, the run recorded that code
    version. Never raises: a missing or corrupt file is a state with a reason naming it.
    known_config: (text, data) of .hydra/config.yaml as the caller just read it (aggregation):
    not parsed again while the file holds that text.
    """
    folder = Path(folder)
    try:
        status = read_status(folder)
    except RunFileError as error:
        return RunState(UNREADABLE, str(error))
    state = status["status"]
    if state == "missing":
        return RunState(MISSING, "no status.json: the job was killed or never started", status)
    if state == "running":
        return RunState(RUNNING, f"status running (pid {status.get('pid')}, host "
                                 f"{status.get('host')}): killed, or still running", status)
    if state == PENDING:
        return RunState(PENDING, f"queued, not started ({status.get('launcher')} job "
                                 f"{status.get('job_id')})", status)
    if state == "failed":
        return RunState(FAILED, str(status.get("error", "failed (no error recorded)")), status)
    if state != "complete":
        return RunState(UNREADABLE, f"{folder / STATUS_FILE}: unknown status {state!r}", status)
    try:
        verify_files(folder, status)
        # a folder without .hydra/ (hydra.output_subdir=null, or written through the API) has no
        # config file to compare; a job folder always has one (aggregation finds jobs by it)
        on_disk = (folder_config_hash(folder, known_config) if (folder / HYDRA_CONFIG).exists()
                   else status.get("config_hash"))
    except RunFileError as error:
        return RunState(UNREADABLE, str(error), status)
    recorded = status.get("config_hash")
    if recorded != on_disk:
        return RunState(CONFIG_CHANGED, f"{folder / HYDRA_CONFIG} is not the config this run "
                        f"completed with (hash {on_disk} vs recorded {recorded}): a later job "
                        "rewrote it", status)
    if config_hash is not None and recorded != config_hash:
        return RunState(CONFIG_CHANGED, f"{folder}: holds a complete run of another config "
                        f"(hash {recorded}, this job {config_hash})", status)
    if code_version is not None and status.get("code_version") != code_version:
        return RunState(CODE_CHANGED, f"{folder}: completed by code version "
                        f"{status.get('code_version')}, this is {code_version}", status)
    return RunState(COMPLETE, "complete", status)


def is_complete(folder: Path, config_hash: str | None = None,
                code_version: str | None = None) -> bool:
    """run_state(...).complete, and the run's files read back."""
    if not run_state(folder, config_hash, code_version).complete:
        return False
    try:
        read_run(folder)
    except RunFileError:
        return False
    return True


def move_aside(folder: Path, reason: str) -> Path:
    """Move a run's result files (and status) into FOLDER/superseded/<time>/; returns it.

    The run's recorded config (from status.json) is written there as config.yaml, since the
    folder's .hydra/ now describes the new job. The moved run is no job folder (no .hydra/).
    """
    folder = Path(folder)
    status = read_status(folder)
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S", time.gmtime())
    target = folder / SUPERSEDED_DIR / stamp
    n = 1
    while target.exists():
        n += 1
        target = folder / SUPERSEDED_DIR / f"{stamp}_{n}"
    target.mkdir(parents=True)
    for name in RUN_FILES:
        if (folder / name).exists():
            os.replace(folder / name, target / name)
    if isinstance(status.get("config"), dict):
        write_atomic(target / "config.yaml", lambda f: yaml.safe_dump(status["config"], f))
    write_atomic(target / "REASON.txt", lambda f: f.write(reason + "\n"))
    return target


def read_sweep_file(sweep_dir: Path | str) -> dict:
    """SWEEP_DIR/.sweep.json ({} when missing or unreadable)."""
    try:
        data = json.loads((Path(str(sweep_dir)) / SWEEP_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def job_dirname(overrides: Iterable[str], num: int | str, sweep_dir: str | Path) -> str:
    """A sweep job's folder name: the overrides that vary across the sweep, sorted, e.g.
    `condition=forward_only,seed=2` (those all jobs share, listed in .sweep.json, and
    UNNAMED_OVERRIDE_KEYS are left out); `default` when none. Names longer than MAX_DIRNAME are
    cut and end in a hash of the whole. A sweep folder made before this rule (job folders 0, 1,
    ...) keeps its numbered layout, so it still resumes."""
    sweep_dir = Path(str(sweep_dir))
    if sweep_dir.is_dir() and any(child.name.isdigit() and (child / HYDRA_CONFIG).is_file()
                                  for child in sweep_dir.iterdir()):
        return str(num)
    shared = set(read_sweep_file(sweep_dir).get("shared_overrides") or [])
    parts = []
    for override in overrides:
        if str(override) in shared:
            continue
        key, _, value = str(override).partition("=")
        key = key.lstrip("+~")
        if key in UNNAMED_OVERRIDE_KEYS:
            continue
        parts.append(f"{key}={value}".replace("/", "_"))
    name = ",".join(sorted(parts)) or "default"
    name = re.sub(r"[\x00-\x1f]", "_", name)
    if len(name) > MAX_DIRNAME:
        name = f"{name[:MAX_DIRNAME - 17]}-{hashlib.sha256(name.encode()).hexdigest()[:16]}"
    return name


@dataclass
class RunRecord:
    """A finished run read back from its folder."""

    folder: Path
    summary: dict
    units: pd.DataFrame
    decoding: pd.DataFrame
    history: pd.DataFrame
    subset_decoding: pd.DataFrame
    ablation: pd.DataFrame


def read_summary(path: Path) -> dict:
    try:
        summary = json.loads(Path(path).read_text())
    except FileNotFoundError as error:
        raise RunFileError(f"{path}: missing") from error
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RunFileError(f"{path}: corrupted or truncated JSON ({error})") from error
    if not isinstance(summary, dict):
        raise RunFileError(f"{path}: expected a JSON object of metrics")
    return summary


def read_table(path: Path, required: tuple[str, ...] = ()) -> pd.DataFrame:
    import pandas as pd

    try:
        table = pd.read_csv(path)
    except FileNotFoundError as error:
        raise RunFileError(f"{path}: missing") from error
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise RunFileError(f"{path}: corrupted or truncated table ({error})") from error
    missing = [column for column in required if column not in table.columns]
    if missing:
        raise RunFileError(f"{path}: missing columns {missing}")
    return table


def read_run(folder: Path) -> RunRecord:
    """Read a complete run's files, checking they are whole; raises RunFileError naming a file."""
    folder = Path(folder)
    status = read_status(folder)
    if status.get("status") != "complete":
        raise RunFileError(f"{folder / STATUS_FILE}: run is {status.get('status')}, not complete")
    verify_files(folder, status)
    if (folder / HYDRA_CONFIG).exists() and "config_hash" in status and \
            folder_config_hash(folder) != status["config_hash"]:
        raise RunFileError(f"{folder / HYDRA_CONFIG}: not the config this run completed with "
                           "(a later job rewrote it)")
    summary = read_summary(folder / SUMMARY_FILE)
    units = read_table(folder / UNITS_FILE, ("unit", "r"))
    n_units = summary.get("n_units")
    if isinstance(n_units, int) and len(units) != n_units:
        raise RunFileError(f"{folder / UNITS_FILE}: {len(units)} rows, expected {n_units} units")
    decoding = read_table(folder / DECODING_FILE, ("train_mode", "test_mode", "accuracy"))
    history = read_table(folder / HISTORY_FILE)
    import pandas as pd

    extra = [read_table(folder / name) if name in status.get("files", {}) else pd.DataFrame()
             for name in EXTRA_TABLE_FILES]
    return RunRecord(folder, summary, units, decoding, history, *extra)


def load_activations(folder: Path) -> dict[str, np.ndarray]:
    """The saved test-set hidden states and actions of a run."""
    import numpy as np

    path = Path(folder) / ACTIVATIONS_FILE
    try:
        with np.load(path) as data:
            return {key: data[key] for key in data.files}
    except FileNotFoundError as error:
        raise RunFileError(f"{path}: missing (run with output.save_activations=true)") from error
    except (ValueError, OSError, EOFError) as error:
        raise RunFileError(f"{path}: corrupted or truncated ({error})") from error

