"""The run-folder contract: what a finished run writes, written atomically, and how to read it.

A run folder holds, once complete: summary.json, units.csv, decoding.csv, history.csv,
(optionally) activations.npz, and last of all status.json with {"status": "complete",
"config_hash": ..., "files": {name: sha256}}. Reading a run checks every file against its
recorded checksum, so a truncated or altered file is named instead of being read as a result.
status.json says "running" while a run works and "failed" (with the error) when it raised, so a
run killed mid-way is never mistaken for a finished one.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pandas (~0.4 s) is imported where a table is read, not by every job's start
    import pandas as pd

STATUS_FILE = "status.json"
SUMMARY_FILE = "summary.json"
UNITS_FILE = "units.csv"
DECODING_FILE = "decoding.csv"
HISTORY_FILE = "history.csv"
ACTIVATIONS_FILE = "activations.npz"
TABLE_FILES = (UNITS_FILE, DECODING_FILE, HISTORY_FILE)


class RunFileError(ValueError):
    """A run file is missing, truncated or corrupted; the message names the file."""


def write_atomic(path: Path, write: Callable[[io.IOBase], None], binary: bool = False) -> None:
    """Write through a temporary file in the same folder, then rename over `path`."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if binary else "w") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: dict) -> None:
    write_atomic(path, lambda f: json.dump(data, f, indent=2, allow_nan=True))


def write_table(path: Path, table: pd.DataFrame) -> None:
    write_atomic(path, lambda f: table.to_csv(f, index=False))


def write_status(folder: Path, status: str, **fields) -> None:
    write_json(Path(folder) / STATUS_FILE, {"status": status, "time": time.time(), **fields})


def mark_failed(folder: Path, error: BaseException) -> None:
    """Record a failed run with its error, so the sweep can list it."""
    write_status(folder, "failed", error=f"{type(error).__name__}: {error}",
                 traceback="".join(traceback.format_exception(error)))


def write_run(folder: Path, summary: dict, tables: dict[str, pd.DataFrame],
              activations: dict[str, np.ndarray] | None, config_hash: str) -> None:
    """Write every file of a finished run, then the completion marker (with checksums) last."""
    folder = Path(folder)
    for name in TABLE_FILES:
        write_table(folder / name, tables[name])
    written = [*TABLE_FILES, SUMMARY_FILE]
    if activations is not None:
        write_atomic(folder / ACTIVATIONS_FILE,
                     lambda f: np.savez_compressed(f, **activations), binary=True)
        written.append(ACTIVATIONS_FILE)
    write_json(folder / SUMMARY_FILE, summary)
    write_status(folder, "complete", config_hash=config_hash,
                 files={name: file_digest(folder / name) for name in written})


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def verify_files(folder: Path, status: dict) -> None:
    """Check every file recorded at completion against its checksum; raise naming the first bad."""
    for name, digest in status.get("files", {}).items():
        path = Path(folder) / name
        if not path.exists():
            raise RunFileError(f"{path}: missing (recorded when the run completed)")
        if file_digest(path) != digest:
            raise RunFileError(f"{path}: contents differ from the checksum recorded when the run "
                               "completed (truncated, corrupted or edited)")


def read_status(folder: Path) -> dict:
    """The run's status record; {"status": "missing"} when none was written."""
    path = Path(folder) / STATUS_FILE
    if not path.exists():
        return {"status": "missing"}
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RunFileError(f"{path}: corrupted status file ({error})") from error


def is_complete(folder: Path, config_hash: str | None = None) -> bool:
    """True when the run finished (and, if given, with this config hash) and its files read."""
    try:
        status = read_status(folder)
        if config_hash is not None and status.get("config_hash") != config_hash:
            return False
        read_run(folder)
    except RunFileError:
        return False
    return True


@dataclass
class RunRecord:
    """A finished run read back from its folder."""

    folder: Path
    summary: dict
    units: pd.DataFrame
    decoding: pd.DataFrame
    history: pd.DataFrame


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
    summary = read_summary(folder / SUMMARY_FILE)
    units = read_table(folder / UNITS_FILE, ("unit", "r"))
    n_units = summary.get("n_units")
    if isinstance(n_units, int) and len(units) != n_units:
        raise RunFileError(f"{folder / UNITS_FILE}: {len(units)} rows, expected {n_units} units")
    decoding = read_table(folder / DECODING_FILE, ("train_mode", "test_mode", "accuracy"))
    history = read_table(folder / HISTORY_FILE)
    return RunRecord(folder, summary, units, decoding, history)


def load_activations(folder: Path) -> dict[str, np.ndarray]:
    """The saved test-set hidden states and actions of a run."""
    path = Path(folder) / ACTIVATIONS_FILE
    try:
        with np.load(path) as data:
            return {key: data[key] for key in data.files}
    except FileNotFoundError as error:
        raise RunFileError(f"{path}: missing (run with output.save_activations=true)") from error
    except (ValueError, OSError, EOFError) as error:
        raise RunFileError(f"{path}: corrupted or truncated ({error})") from error

