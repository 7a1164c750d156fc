"""Tables as plain data, for the marshal files an aggregation keeps beside its CSVs.

`pack_table` turns a DataFrame into lists and bytes that Python's marshal writes (loading such a
file runs no code, unlike pickle) and `unpack_table` gives the same DataFrame back, dtypes
included: the verification cache keeps the last pass's runs table so (sweep/verify_cache.py),
and the claims' units' r file so (sweep/unit_r.py). `dump` and `load` frame such content with a
magic line and a CRC-32, so that a damaged or foreign file reads as absent.
"""

from __future__ import annotations

import marshal
import zlib
from typing import Any

import numpy as np
import pandas as pd

# dtypes a packed table keeps as raw bytes (bool, integers, floats); object columns as lists
_RAW_KINDS = "biuf"
_STR = "str:"  # + storage: pandas' string dtype with NaN for missing values (pandas 3's `str`)


def pack_table(table: pd.DataFrame) -> dict[str, Any] | None:
    """A runs table as plain data for the verification cache: its number of rows and, per column,
    [name, dtype, raw bytes | list of values]; None when a column has a dtype of another kind."""
    columns = []
    for name, column in table.items():
        dtype = column.dtype  # a numpy dtype, or an extension one (str, category, ...)
        if isinstance(dtype, np.dtype) and dtype.kind in _RAW_KINDS:
            columns.append([name, dtype.str, column.to_numpy().tobytes()])
        elif isinstance(dtype, np.dtype) and dtype == object:
            columns.append([name, "O", column.tolist()])
        elif isinstance(dtype, pd.StringDtype) and isinstance(dtype.na_value, float) \
                and np.isnan(dtype.na_value):
            columns.append([name, _STR + dtype.storage, column.tolist()])
        else:
            return None
    return {"rows": len(table), "columns": columns}


def unpack_table(packed: Any, rows: int) -> pd.DataFrame | None:
    """The table pack_table packed, when it has `rows` rows (None otherwise, or when malformed:
    the caller rebuilds it)."""
    try:
        if packed["rows"] != rows:
            return None
        data = {}
        for name, dtype, values in packed["columns"]:
            if dtype == "O":  # a Series: from an object array, pandas 3 would infer `str`
                column = pd.Series(values, dtype=object)
            elif dtype.startswith(_STR):
                column = pd.array(values, dtype=pd.StringDtype(dtype[len(_STR):], np.nan))
            else:
                column = np.frombuffer(values, dtype=np.dtype(dtype)).copy()
            if len(column) != rows:
                return None
            data[name] = column
        return pd.DataFrame(data, copy=False)
    except (KeyError, TypeError, ValueError, ImportError):
        return None


def dump(magic: bytes, content: Any) -> bytes:
    """`content` marshalled behind `magic` and its CRC-32 (ValueError: a value marshal cannot
    write)."""
    data = marshal.dumps(content)
    return magic + zlib.crc32(data).to_bytes(4, "little") + data


def load(magic: bytes, data: bytes) -> Any:
    """What `dump` framed; None when `data` is not such a file, or damaged."""
    head = len(magic) + 4
    body = memoryview(data)[head:]
    if not data.startswith(magic) or zlib.crc32(body).to_bytes(4, "little") != data[len(magic):head]:
        return None
    try:
        return marshal.loads(body)
    except (EOFError, ValueError, TypeError):
        return None
