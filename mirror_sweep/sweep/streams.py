"""The aggregate's CSV files written by `mirror-aggregate`: streamed run by run, appended to, and
renamed over atomically.

A `TableStream` writes one per-run table (units, decoding, ...) into a hidden temporary file, run
by run, and renames it over the table's file when complete; appending to the last pass's file, it
starts from a copy of it. `append_table` adds rows to a table the same way. `Replaced` does the
renames, leaving the old versions' removal to background threads, and `Copying` makes the copies
in a background thread while the pass does other work: in both the kernel moves the bytes without
the GIL, on a core the pass leaves idle.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import threading
from pathlib import Path
from typing import Any

import pandas as pd

from mirror_sweep.sweep import results
from mirror_sweep.sweep.jobs import RUN_COLUMNS


class Replaced:
    """Renames over the aggregate's files whose old versions are removed in background threads:
    freeing a large file's blocks and cached pages is most of the cost of renaming over it
    (~13 ms for the 64 MB units.csv of 10^4 runs), and nothing needs to wait for it.
    `replace(tmp, path)` renames as os.replace does (atomically), the old file first given a
    second, hidden name (`.NAME.replaced`) that a thread then removes; `close()` waits for those
    removals (aggregate_sweep's pass ends with it). Where hard links fail, a plain os.replace."""

    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []

    def replace(self, tmp: str | Path, path: Path) -> None:
        path = Path(path)
        old = path.with_name(f".{path.name}.replaced")
        try:
            old.unlink(missing_ok=True)  # left by a pass that was killed
            os.link(path, old)
        except OSError:  # no file there yet, or no hard links on this file system
            os.replace(tmp, path)
            return
        try:
            os.replace(tmp, path)
        except BaseException:
            old.unlink(missing_ok=True)
            raise
        thread = threading.Thread(target=_remove, args=(old,), name=f"remove {old.name}")
        thread.start()
        self.threads.append(thread)

    def close(self) -> None:
        for thread in self.threads:
            thread.join()
        self.threads = []


def _remove(path: Path) -> None:
    """Unlink, quietly: a file left behind is hidden, and removed by the next pass."""
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


class TableStream:
    """One aggregate CSV written run by run: a hidden temporary file, renamed when complete
    (`replaced`: how, Replaced.replace; os.replace by default)."""

    def __init__(self, path: Path, columns: list[str], append_rows: int | None = None,
                 replaced: Replaced | None = None) -> None:
        """append_rows: continue the file at `path`, which holds that many rows (None: anew)."""
        self.replace = replaced.replace if replaced is not None else os.replace
        self.path = path
        self.tmp = path.with_name(f".{path.name}.tmp")
        self.columns = columns
        self.index = {column: i for i, column in enumerate(columns)}
        self.appending = append_rows is not None
        self.handle = None  # opened on the first row when appending: an unchanged file stays
        if not self.appending:
            self._open()
            self.writer.writerow(RUN_COLUMNS + columns)
        self.rows = append_rows or 0

    def _open(self) -> None:
        if self.appending:
            shutil.copyfile(self.path, self.tmp)
        self.handle = open(self.tmp, "a" if self.appending else "w",  # noqa: SIM115
                           newline="")  # closed in finish() or discard()
        self.writer = csv.writer(self.handle, lineterminator="\n")

    def add(self, level: dict[str, Any], text: str) -> None:
        """Append one run's table (its CSV text), with the run-level values in front."""
        if not text.strip():  # a run without this (optional) table
            return
        if self.handle is None:
            self._open()
        header, _, body = text.partition("\n")
        front = io.StringIO()
        csv.writer(front, lineterminator="").writerow([level[key] for key in RUN_COLUMNS])
        prefix = front.getvalue() + ","
        if '"' not in text and header.rstrip("\r").split(",") == self.columns:
            lines = body.splitlines()
            self.handle.write("".join(prefix + line + "\n" for line in lines if line))
            self.rows += sum(1 for line in lines if line)
            return
        rows = [row for row in csv.reader(io.StringIO(text)) if row]
        where = [self.index.get(column) for column in rows[0]]
        for row in rows[1:]:
            out = [""] * len(self.columns)
            for position, value in zip(where, row):
                if position is not None:
                    out[position] = value
            self.writer.writerow([level[key] for key in RUN_COLUMNS] + out)
            self.rows += 1

    def finish(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.replace(self.tmp, self.path)

    def discard(self) -> None:
        if self.handle is not None:
            self.handle.close()
            Path(self.tmp).unlink(missing_ok=True)


def read_text(path: Path) -> str:
    with open(path) as handle:
        return handle.read()


def table_layout(table: pd.DataFrame) -> list[list[str]]:
    """Columns and dtypes of a table: while they stay the same, its earlier rows' CSV lines do
    (pandas writes every value on its own, by its column's dtype)."""
    return [[str(column), str(dtype)] for column, dtype in table.dtypes.items()]


def append_table(path: Path, rows: pd.DataFrame, replaced: Replaced | None = None) -> None:
    """Append `rows` (no header) to the CSV table at `path`, through a copy renamed over it
    (by `replaced`, when given)."""
    def write(handle) -> None:
        with open(path) as old:
            shutil.copyfileobj(old, handle)
        rows.to_csv(handle, index=False, header=False)
    results.write_atomic(path, write, replace=replaced.replace if replaced else os.replace)
