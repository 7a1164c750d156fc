"""Each unit's r from the aggregate's units.csv, what the claims read of it, kept between passes.

units.csv is the largest table an aggregation writes (~6 kB per run): reading its run_id and r
takes ~0.07 s at 10^4 runs, a large part of a re-aggregation after a few new runs. A pass after
new runs keeps the last pass's file and appends the new runs' rows (aggregate_sweep), so
`mirror-aggregate` keeps what it read beside the file, in R_FILE (sweep/packed.py's marshal
format), with the file's stamp (size and mtime, verify_cache.stamp). The next pass takes it from
there while its forked pre-pass scans the sweep (`read_before`; without such a file, or with one
for another units.csv, it reads the CSV), then reads only the rows the pass appended
(`read_after`, given the stamp the pass says the file had where it kept it,
Aggregate.kept_files) and writes R_FILE again (`keep`). Anything else (the file written anew,
changed while read, another header, other column types) reads the whole CSV again, so the table
is always that of one read of the final file (tested).
"""

from __future__ import annotations

import csv
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mirror_sweep.sweep import packed, results
from mirror_sweep.sweep.verify_cache import stamp

UNITS_CSV = "units.csv"
R_FILE = ".unit_r.marshal"
COLUMNS = ["run_id", "r"]
_DTYPES = {"run_id": str}
_MAGIC = b"mirror-sweep units' r\n"
_VERSION = 1  # bump when what R_FILE holds changes: an old file is then read as absent


@dataclass
class UnitR:
    """The units' r of one units.csv, and which file that was."""

    table: pd.DataFrame  # run_id, r: what read_unit_r gives
    stamp: bytes | None  # verify_cache.stamp of the file read (None: it changed while read)
    header: bytes  # its first line
    saved: bool = False  # what R_FILE holds (loaded from it, or written by keep)


def read_unit_r(path: Path | str) -> pd.DataFrame:
    """run_id and r of an aggregated units table, the whole file."""
    return pd.read_csv(path, usecols=COLUMNS, dtype=_DTYPES)


def read_before(out: Path | str) -> UnitR | None:
    """The units' r of out/units.csv as it is now: from R_FILE when it was kept for this very
    file, else from the CSV; None when there is no such file with rows, or it changed while read."""
    out = Path(out)
    now = stamp(out, [UNITS_CSV])
    if now is None:
        return None
    kept = _load(out / R_FILE)
    if kept is not None and kept.stamp == now:
        return kept
    try:
        earlier = _read_whole(out / UNITS_CSV)
    except (OSError, ValueError):  # gone, or not a units table: read after the pass, or fail then
        return None
    return earlier if earlier.stamp == now and not earlier.table.empty else None


def read_after(out: Path | str, earlier: UnitR | None, kept: bytes | None) -> UnitR:
    """The units' r of out/units.csv now: `earlier`'s rows and those appended since, when the
    pass kept the file `earlier` read as the start of its own (`kept`, its stamp then, is
    earlier's); else the whole file."""
    path = Path(out) / UNITS_CSV
    if earlier is None or kept is None or kept != earlier.stamp:
        return _read_whole(path)
    size = struct.unpack("<2q", earlier.stamp)[0]
    now = stamp(path.parent, [path.name])
    with open(path, "rb") as handle:
        if handle.readline() != earlier.header:
            return _read_whole(path)
        if os.fstat(handle.fileno()).st_size == size:  # no rows appended
            return earlier if now == earlier.stamp else UnitR(earlier.table, now, earlier.header)
        handle.seek(size)
        names = next(csv.reader([earlier.header.decode()]))
        added = pd.read_csv(handle, header=None, names=names, usecols=COLUMNS, dtype=_DTYPES)
    if not added.dtypes.equals(earlier.table.dtypes):  # as one read would type the column
        return _read_whole(path)
    table = pd.concat([earlier.table, added], ignore_index=True)
    return UnitR(table, now if stamp(path.parent, [path.name]) == now else None, earlier.header)


def keep(out: Path | str, unit_r: UnitR) -> None:
    """Write R_FILE for `unit_r` unless it came from there (nothing when its file changed while
    it was read, or a column has a dtype packed.pack_table does not keep)."""
    path = Path(out) / R_FILE
    if unit_r.saved or unit_r.stamp is None or stamp(path.parent, [UNITS_CSV]) != unit_r.stamp:
        return
    table = packed.pack_table(unit_r.table)
    if table is None:
        return
    data = packed.dump(_MAGIC, {"version": _VERSION, "stamp": unit_r.stamp,
                                "header": unit_r.header, "table": table})
    # (a cache with a CRC, not fsync'ed: that waits on the disk's journal, ~1-30 ms)
    results.write_atomic(path, lambda handle: handle.write(data), binary=True, durable=False)
    unit_r.saved = True


def _read_whole(path: Path) -> UnitR:
    before = stamp(path.parent, [path.name])
    with open(path, "rb") as handle:
        header = handle.readline()
        handle.seek(0)
        table = pd.read_csv(handle, usecols=COLUMNS, dtype=_DTYPES)
    return UnitR(table, before if stamp(path.parent, [path.name]) == before else None, header)


def _load(path: Path) -> UnitR | None:
    """What R_FILE holds; None when absent, of another version, damaged or malformed."""
    try:
        content = packed.load(_MAGIC, path.read_bytes())
        if not isinstance(content, dict) or content.get("version") != _VERSION:
            return None
        table = packed.unpack_table(content["table"], content["table"]["rows"])
        header, kept = content["header"], content["stamp"]
        if table is None or list(table.columns) != COLUMNS or not isinstance(header, bytes) \
                or not isinstance(kept, bytes):
            return None
        return UnitR(table, kept, header, saved=True)
    except (OSError, KeyError, TypeError):
        return None
