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


# Rows a stream appending to a copy still being made keeps in memory before it waits for the copy.
PENDING_MAX_CHARS = 1 << 24


class Copying:
    """Copies of files made one after another in a background thread: shutil.copyfile has the
    kernel copy the bytes (sendfile), without the GIL, so the copies of the aggregate's large files
    (~50 ms at 10^4 runs, most of it units.csv) are made on a core the pass leaves idle while it
    goes on. `take(path)` waits for a file's copy and hands it over; `close()` stops the thread
    and removes the copies not taken.

    Once all are made, the thread also writes them to disk (fdatasync): renaming a file over
    another makes ext4 (auto_da_alloc) start writing the new one's dirty pages out first, which
    for fresh copies (~90 MB at 10^4 runs) took ~25 ms of the renames at the end of a pass
    (aggregate renames the streamed tables last, when these writes are done).
    """

    def __init__(self, copies: dict[Path, Path]) -> None:
        """copies: {file: where its copy goes}, copied in that order."""
        self.copies = dict(copies)
        self.done = {path: threading.Event() for path in self.copies}
        self.made: set[Path] = set()
        self.taken: set[Path] = set()
        self.stopped = False
        self.thread = threading.Thread(target=self._copy_all, name="copy aggregate files")
        self.thread.start()

    def _copy_all(self) -> None:
        written: list[int] = []  # the copies, open (renamed or not) until written to disk
        try:
            for path, copy in self.copies.items():
                try:
                    if not self.stopped:
                        shutil.copyfile(path, copy)
                        written.append(os.open(copy, os.O_RDONLY))
                        self.made.add(path)
                except OSError:  # the caller copies it itself (and meets the error there)
                    Path(copy).unlink(missing_ok=True)
                finally:
                    self.done[path].set()
            for fd in written:
                if not self.stopped:
                    os.fdatasync(fd)
        except OSError:  # not written out now: the rename has it written
            pass
        finally:
            for fd in written:
                os.close(fd)

    def ready(self, path: Path) -> bool:
        """Whether the copy of `path` is finished (made or failed); True for a file not copied."""
        event = self.done.get(path)
        return event is None or event.is_set()

    def take(self, path: Path) -> Path | None:
        """The copy of `path`, once made (waits for it), now the caller's; None when it was not
        copied here or the copy failed."""
        if path not in self.done:
            return None
        self.done[path].wait()
        if path not in self.made:
            return None
        self.taken.add(path)
        return self.copies[path]

    def close(self) -> None:
        self.stopped = True
        self.thread.join()
        for path in self.made - self.taken:
            Path(self.copies[path]).unlink(missing_ok=True)


def temporary(path: Path) -> Path:
    """The hidden temporary file a table at `path` is written to, then renamed over it."""
    return path.with_name(f".{path.name}.tmp")


class TableStream:
    """One aggregate CSV written run by run: a hidden temporary file, renamed when complete
    (`replaced`: how, Replaced.replace; os.replace by default)."""

    def __init__(self, path: Path, columns: list[str], append_rows: int | None = None,
                 replaced: Replaced | None = None, copying: Copying | None = None) -> None:
        """append_rows: continue the file at `path`, which holds that many rows (None: anew);
        copying: where its copy is being made, if it is (else it is copied when first appended
        to). Rows appended while that copy is made are kept until it is (up to
        PENDING_MAX_CHARS)."""
        self.replace = replaced.replace if replaced is not None else os.replace
        self.path = path
        self.tmp = temporary(path)
        self.columns = columns
        self.index = {column: i for i, column in enumerate(columns)}
        self.appending = append_rows is not None
        self.copying = copying
        self.pending: list[str] = []
        self.pending_chars = 0
        self.handle = None  # opened on the first row when appending: an unchanged file stays
        if not self.appending:
            self._open()
            self._write(_csv_line(RUN_COLUMNS + columns))
        self.rows = append_rows or 0

    def _open(self) -> None:
        if self.appending:
            copy = self.copying.take(self.path) if self.copying is not None else None
            if copy is None:
                shutil.copyfile(self.path, self.tmp)
            elif copy != self.tmp:
                os.replace(copy, self.tmp)
        self.handle = open(self.tmp, "a" if self.appending else "w",  # noqa: SIM115
                           newline="")  # closed in finish() or discard()
        if self.pending:
            self.handle.write("".join(self.pending))
            self.pending, self.pending_chars = [], 0

    def _write(self, text: str) -> None:
        if self.handle is None:
            if self.copying is not None and not self.copying.ready(self.path) \
                    and self.pending_chars < PENDING_MAX_CHARS:
                self.pending.append(text)
                self.pending_chars += len(text)
                return
            self._open()
        self.handle.write(text)

    def add(self, level: dict[str, Any], text: str) -> None:
        """Append one run's table (its CSV text), with the run-level values in front."""
        if not text.strip():  # a run without this (optional) table
            return
        header, _, body = text.partition("\n")
        front = [level[key] for key in RUN_COLUMNS]
        if '"' not in text and header.rstrip("\r").split(",") == self.columns:
            prefix = _csv_line(front)[:-1] + ","
            lines = [line for line in body.splitlines() if line]
            self._write("".join(prefix + line + "\n" for line in lines))
            self.rows += len(lines)
            return
        rows = [row for row in csv.reader(io.StringIO(text)) if row]
        where = [self.index.get(column) for column in rows[0]]
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        for row in rows[1:]:
            values = [""] * len(self.columns)
            for position, value in zip(where, row):
                if position is not None:
                    values[position] = value
            writer.writerow(front + values)
            self.rows += 1
        self._write(out.getvalue())

    def finish(self) -> None:
        if self.handle is None and self.pending:
            self._open()
        if self.handle is not None:
            self.handle.close()
            self.replace(self.tmp, self.path)

    def discard(self) -> None:
        self.pending, self.pending_chars = [], 0
        if self.handle is not None:
            self.handle.close()
            Path(self.tmp).unlink(missing_ok=True)


def _csv_line(values: list[Any]) -> str:
    """One CSV row as the csv module writes it (with its newline)."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(values)
    return out.getvalue()


def read_text(path: Path) -> str:
    with open(path) as handle:
        return handle.read()


def table_layout(table: pd.DataFrame) -> list[list[str]]:
    """Columns and dtypes of a table: while they stay the same, its earlier rows' CSV lines do
    (pandas writes every value on its own, by its column's dtype)."""
    return [[str(column), str(dtype)] for column, dtype in table.dtypes.items()]


def append_table(path: Path, rows: pd.DataFrame, replaced: Replaced | None = None,
                 copying: Copying | None = None) -> None:
    """Append `rows` (no header) to the CSV table at `path`, through a copy renamed over it
    (by `replaced`, when given; the copy `copying` made of it, when it did)."""
    replace = replaced.replace if replaced is not None else os.replace
    copy = copying.take(path) if copying is not None else None
    if copy is None:
        def write(handle) -> None:
            with open(path) as old:
                shutil.copyfileobj(old, handle)
            rows.to_csv(handle, index=False, header=False)
        results.write_atomic(path, write, replace=replace)
        return
    try:  # as write_atomic does: the rows flushed to disk before the rename
        with open(copy, "a", newline="") as handle:
            rows.to_csv(handle, index=False, header=False)
            handle.flush()
            os.fsync(handle.fileno())
        replace(copy, path)
    except BaseException:
        Path(copy).unlink(missing_ok=True)
        raise
