"""The verification cache of `mirror-aggregate`: what a run was found to hold, keyed by its files.

A run verified once (status complete, checksums and tables checked, Hydra records read) is stored
in AGGREGATE_DIR/.verified.marshal with a signature: the size and mtime (ns) of its status.json,
its three .hydra/*.yaml files and every file its status lists. The next aggregation reuses the
entry, without re-reading or re-hashing the run, while every one of those files has the same size
and mtime; any change (a rerun, an edited, truncated or touched file) re-verifies the run in full.
Only complete, verified runs are cached: failed and unreadable ones are looked at every time.
An entry also keeps its job folder's own size and mtime when the folder had no subfolder to
search: aggregate's walk does not list such a folder again while they hold (`leaves`); creating,
removing or renaming anything in the folder moves its mtime. On a file system with coarse mtimes
a same-size change within one tick of the stamp goes unseen (delete the cache to verify all).

The file is Python's `marshal` format (plain data only: loading it runs no code, unlike pickle),
behind a magic line and a CRC-32 of the rest, with a version number: a cache of another version,
another marshal format, or one that is damaged, unreadable or malformed in any way is ignored,
which only costs a full verification. Each run's entry is a few bytes objects (its signature,
its Hydra record, its runs-table values), so loading a large cache creates a few objects per
run, and a run's values are only unpacked when the runs table has to be rebuilt. The cache also
keeps what the last pass wrote (`state`, aggregate_sweep's business) and its runs table
(`table`, packed columns). `check` stats a run's files against its entry without taking it, and
`token` names the file loaded: the forked pre-pass (sweep/prepass.py) checks every run in a child
process, and the parent, which loaded the same file, takes each hit with `lookup(checked=)`.
"""

from __future__ import annotations

import json
import marshal
import os
import struct
import zlib
from pathlib import Path
from typing import Any

CACHE_FILE = ".verified.marshal"
# Caches of earlier versions (JSON): removed when the cache is written.
LEGACY_FILES = (".verified.json",)
_MAGIC = b"mirror-sweep verification cache\n"
# Bump when what a cached entry holds or how a run is verified changes: old caches are ignored.
CACHE_VERSION = 6  # 6: marshal; entries of packed bytes, the folder stamps; the runs table
HYDRA_FILES = (".hydra/config.yaml", ".hydra/overrides.yaml", ".hydra/hydra.yaml")


def stamp(folder: Path | str, names: list[str]) -> bytes | None:
    """The size and mtime (ns) of each of these files of `folder`, packed (what a run's entry
    keeps); None when one is missing."""
    base = f"{folder}/"
    numbers = []
    try:
        for name in names:
            st = os.stat(base + name)
            numbers += (st.st_size, st.st_mtime_ns)
    except OSError:
        return None
    return struct.pack(f"<{len(numbers)}q", *numbers)


def signed_names(status: dict) -> list[str]:
    """The files whose sizes and mtimes stand for a verified run."""
    return ["status.json", *HYDRA_FILES, *sorted(status.get("files", {}))]


class _Shared:
    """Values most runs share, kept once in a list; an entry holds the index."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.index: dict[Any, int] = {}

    def id(self, value: Any, key: Any) -> int:
        if key not in self.index:
            self.index[key] = len(self.items)
            self.items.append(value)
        return self.index[key]


class VerifyCache:
    """Entries {run_id: (signed names id, stamp, Hydra record, values, leaf)} in a marshal file.

    `stamp` is the packed sizes and mtimes of the run's signed files; the Hydra record (config,
    overrides, group choices id, config hash, table header ids) and the values (key list id,
    runs-table values) are marshal bytes, unpacked when looked up / when needed. What nearly every
    run shares is kept once, in shared lists the entries point into: the signed file names, the
    table headers, the key lists of `values` and the group choices. `leaf` is the job folder's own
    stamp when it had no subfolder to search (`leaves`), else None.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = Path(path) if path is not None else None
        self.new: dict[str, Any] = {}  # entries looked up unchanged or stored in this pass
        self.stored = 0  # entries stored (verified) or dropped in this pass
        self.hits = 0
        self.table_changed = False  # set by whoever replaces `table`
        self._forget()
        if self.path is not None and self.path.exists():
            try:
                self._load(self.path.read_bytes())
            except Exception:  # noqa: BLE001 - a broken cache only costs a full verification
                self._forget()

    def _forget(self) -> None:
        """No entries: what an absent, old or broken cache file gives."""
        self.old: dict[str, Any] = {}  # the file's entries, until looked up
        self.state: dict[str, Any] = {}  # what the last pass wrote (aggregate_sweep's business)
        self.table: Any = None  # the last pass's runs table, packed (aggregate_sweep's business)
        self.loaded: dict[str, Any] | None = None  # what the file held: {"runs": n, "state": ..}
        self.token: bytes | None = None  # which file was loaded: its checksum and size
        self.names, self.headers, self.keys, self.choices = _Shared(), _Shared(), _Shared(), \
            _Shared()

    def _load(self, data: bytes) -> None:
        head = len(_MAGIC) + 4
        body = memoryview(data)[head:]
        if not data.startswith(_MAGIC) or \
                zlib.crc32(body).to_bytes(4, "little") != data[len(_MAGIC):head]:
            return  # not a cache, or damaged (truncated, a changed byte)
        content = marshal.loads(body)
        if not (isinstance(content, dict) and content.get("version") == CACHE_VERSION
                and content.get("marshal") == marshal.version
                and isinstance(content.get("runs"), dict)):
            return
        state = content.get("state")
        self.state = state if isinstance(state, dict) else {}
        for shared, name, key in [(self.names, "names", tuple), (self.headers, "headers", tuple),
                                  (self.keys, "keys", tuple), (self.choices, "choices", _json)]:
            for value in content[name]:
                shared.id(value, key(value))
        self.table = content.get("table")
        self.old = content["runs"]
        self.token = data[len(_MAGIC):head] + len(data).to_bytes(8, "little")
        self.loaded = {"runs": len(self.old), "state": state}

    def leaves(self, root: Path | str) -> dict[str, bytes]:
        """{job folder: its own stamp} of the runs whose folder had no subfolder to search
        (jobs._Walk): such a folder is not listed again while its stamp holds."""
        base = str(root).rstrip("/") + "/"
        known = {}
        for run_id, entry in self.old.items():
            leaf = entry[4] if isinstance(entry, tuple) and len(entry) == 5 else None
            if isinstance(leaf, bytes):
                known[base + run_id] = leaf
        return known

    def check(self, run_id: str, folder: Path | str) -> bytes | None:
        """The stamp of the run's signed files when it is its entry's (the files unchanged),
        else None; the entry stays for `lookup`. What the forked pre-pass (sweep/prepass.py)
        finds out for `lookup(..., checked=)` in the parent, which loaded the same file."""
        try:
            names_id, sig = self.old[run_id][:2]
            return sig if stamp(folder, self.names.items[names_id]) == sig else None
        except Exception:  # noqa: BLE001 - no entry, or a malformed one: the run is verified
            return None

    def lookup(self, run_id: str, folder: Path, leaf: bytes | None = None,
               checked: bytes | None = None) -> dict | None:
        """The cached Hydra record of the run when its files are unchanged, else None. Its
        runs-table values come as `values_packed` (see `values`). leaf: the folder's own stamp
        when this pass's walk found it without a subfolder (kept in the entry). checked: the
        stamp `check` found in this pass (by a cache loaded from the same file: `token`),
        compared with the entry's instead of stat'ing the files again."""
        entry = self.old.pop(run_id, None)
        try:
            names_id, sig, record, values, old_leaf = entry
            if (checked if checked is not None else stamp(folder, self.names.items[names_id])) \
                    != sig:
                return None
            config, overrides, choices, digest, headers = marshal.loads(record)
            job = {"config": config, "overrides": overrides, "choices": self.choices.items[choices],
                   "digest": digest, "values_packed": values,
                   "headers": {name: self.headers.items[i] for name, i in headers.items()}}
        except Exception:  # noqa: BLE001 - a malformed entry re-verifies the run
            return None
        self.hits += 1
        if leaf != old_leaf:
            entry = (names_id, sig, record, values, leaf)
            self.stored += 1  # (a change to save)
        self.new[run_id] = entry
        return job

    def values(self, packed: bytes) -> dict[str, Any]:
        """The runs-table values of an entry (`values_packed` of lookup's answer)."""
        keys_id, values = marshal.loads(packed)
        keys = self.keys.items[keys_id]
        if len(keys) != len(values):
            raise ValueError("verification cache: values do not match their keys")
        return dict(zip(keys, values))

    def store(self, run_id: str, sig: tuple[list[str], bytes] | None, job: dict,
              leaf: bytes | None = None) -> None:
        """Keep a verified run: sig is (signed names, stamp) taken before it was read; leaf as
        in `lookup`."""
        if sig is None:
            return
        names, packed = sig
        headers = {name: self.headers.id(columns, tuple(columns))
                   for name, columns in job["headers"].items()}
        record = marshal.dumps((job["config"], job["overrides"],
                                self.choices.id(job["choices"], _json(job["choices"])),
                                job["digest"], headers))
        keys = list(job["values"])
        values = marshal.dumps((self.keys.id(keys, tuple(keys)), list(job["values"].values())))
        self.new[run_id] = (self.names.id(names, tuple(names)), packed, record, values, leaf)
        self.stored += 1

    def drop(self, run_id: str) -> None:
        self.new.pop(run_id, None)
        self.stored += 1  # (a change all the same)

    def unchanged(self) -> bool:
        """Whether saving would write what the file holds: every entry looked up unchanged,
        none stored or dropped, the same state and runs table."""
        return self.loaded is not None and self.stored == 0 and not self.table_changed \
            and self.hits == self.loaded["runs"] == len(self.new) \
            and self.state == self.loaded["state"]  # (replaced, never changed in place)

    def save(self) -> None:
        """Write the entries looked up or stored in this pass (runs gone from the sweep drop out);
        nothing when the file already holds them (`unchanged`). Removes a legacy cache."""
        if self.path is None:
            return
        for name in LEGACY_FILES:
            self.path.with_name(name).unlink(missing_ok=True)
        if self.unchanged():
            return
        content = {"version": CACHE_VERSION, "marshal": marshal.version,
                   "names": self.names.items, "headers": self.headers.items,
                   "keys": self.keys.items, "choices": self.choices.items,
                   "runs": self.new, "state": self.state}
        try:
            data = marshal.dumps({**content, "table": self.table})
        except ValueError:  # a value marshal cannot write in the table: rebuilt next pass
            data = marshal.dumps(content)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with open(tmp, "wb") as handle:
            handle.write(_MAGIC + zlib.crc32(data).to_bytes(4, "little") + data)
        os.replace(tmp, self.path)


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)
