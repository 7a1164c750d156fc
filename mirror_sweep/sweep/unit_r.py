"""Each unit's r from the aggregate's units.csv, what the claims read of it: read in two parts.

units.csv is the largest table an aggregation writes (~6 kB per run; reading its run_id and r
costs ~0.07 s at 10^4 runs). A pass after new runs keeps the last pass's file and appends the new
runs' rows (aggregate_sweep), so `mirror-aggregate` reads the file as the last pass left it while
its forked pre-pass scans the sweep (sweep/prepass.py: time the command otherwise spends
waiting), `read_before`, and after the pass only the rows appended since, `read_after`, given
the stamp the pass says the file had where it kept it (Aggregate.kept_files). Anything else (the
file written anew, changed while read, another header, other column types) reads the whole file
again, so the table is always that of one read of the final file (tested).
"""

from __future__ import annotations

import csv
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mirror_sweep.sweep.verify_cache import stamp

COLUMNS = ["run_id", "r"]
_DTYPES = {"run_id": str}


def read_unit_r(path: Path | str) -> pd.DataFrame:
    """run_id and r of an aggregated units table, the whole file."""
    return pd.read_csv(path, usecols=COLUMNS, dtype=_DTYPES)


@dataclass
class Earlier:
    """units.csv's r as read before a pass, and which file that was."""

    table: pd.DataFrame
    stamp: bytes  # verify_cache.stamp of the file read: its size and mtime
    header: bytes  # its first line


def read_before(path: Path | str) -> Earlier | None:
    """The r of units.csv as it is now, with its stamp; None when there is none with rows, or
    when it changed while it was read."""
    path = Path(path)
    before = stamp(path.parent, [path.name])
    if before is None:
        return None
    try:
        with open(path, "rb") as handle:
            header = handle.readline()
            handle.seek(0)
            table = pd.read_csv(handle, usecols=COLUMNS, dtype=_DTYPES)
    except (OSError, ValueError):  # gone, or not a units table: read after the pass, or fail then
        return None
    if table.empty or stamp(path.parent, [path.name]) != before:
        return None
    return Earlier(table, before, header)


def read_after(path: Path | str, earlier: Earlier | None, kept: bytes | None) -> pd.DataFrame:
    """The r of units.csv now: `earlier`'s rows and those appended since, when the pass kept the
    file `earlier` read as the start of its own (`kept`, its stamp then, is earlier's); else the
    whole file."""
    if earlier is None or kept is None or kept != earlier.stamp:
        return read_unit_r(path)
    size = struct.unpack("<2q", earlier.stamp)[0]
    with open(path, "rb") as handle:
        if handle.readline() != earlier.header:
            return read_unit_r(path)
        if os.fstat(handle.fileno()).st_size == size:  # no rows appended
            return earlier.table
        handle.seek(size)
        names = next(csv.reader([earlier.header.decode()]))
        added = pd.read_csv(handle, header=None, names=names, usecols=COLUMNS, dtype=_DTYPES)
    if not added.dtypes.equals(earlier.table.dtypes):  # as one read would type the column
        return read_unit_r(path)
    return pd.concat([earlier.table, added], ignore_index=True)
