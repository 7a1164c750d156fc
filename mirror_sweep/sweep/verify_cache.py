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

The file is Python's `marshal` format (plain data only: loading it runs no code, unlike pickle)
behind a magic line, in segments with a CRC-32 each, each in three parts: the index (each run's
signed names, stamp and folder stamp, with a CRC-32 of its own), the payload (each run's Hydra
record and values), the rest (the state, the runs table); the forked pre-pass reads the index
parts alone (`index_only`). The first segment holds everything, with a version number; each later one what one pass changed (a pass after a few new runs appends
its changes, a few hundred kB at 10^4 runs, instead of writing ~24 MB again; the file is written
whole again after MAX_UPDATES such segments, when they outgrow half the first, or when anything
else changed). A cache of another version, another marshal format, or one that is damaged,
unreadable or malformed in any way is ignored, which only costs a full verification; a later
segment cut short or damaged is ignored with those after it (the cache is the pass before's;
the files it then no longer describes are streamed again). Each run's entry is a few bytes
objects (its signature, its Hydra record, its runs-table values), so loading a large cache
creates a few objects per run, and a run's values are only unpacked when the runs table has to
be rebuilt. The cache also keeps what the last pass wrote (`state`, aggregate_sweep's business)
and its runs table (`table`, packed columns). `check` stats a run's files against its entry
without taking it, and `token` names the file loaded: the forked pre-pass (sweep/prepass.py)
checks every run in a child process, and the parent, which loaded the same file, takes each hit
with `lookup(checked=)`, or carries it (`carry`).
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
CACHE_VERSION = 8  # 8: segments in parts; 7: segments; 6: marshal, packed entries, runs table
# Segments appended to a cache file before it is written anew (each one pass's changes).
MAX_UPDATES = 16
_HEAD = struct.Struct("<IQ")  # a segment's CRC-32 and size
_PARTS = struct.Struct("<IQQ")  # a segment's index part: its CRC-32 and size; its payload's size
_SHARED_NAMES = ("names", "headers", "keys", "choices")
# A segment's parts: the index (each run's signed names id, stamp and leaf: what `check` and
# `leaves` need, all the pre-pass reads), the payload (each run's Hydra record and values, and
# what they point into), then the rest (the state, the runs table).
_INDEX_KEYS = ("version", "marshal", "names", "gone")
_PAYLOAD_KEYS = ("headers", "keys", "choices")
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

    The file is a first segment holding everything and up to MAX_UPDATES later segments, each
    what one pass changed (entries stored and gone, shared items added, the state, the runs
    table's new rows): a pass after a few new runs appends one (`save`) instead of writing the
    whole file again, and loading applies them in order. Each segment has its own CRC-32: one
    cut short (a pass killed while appending) or damaged is ignored with all after it, so the
    cache is that of the pass before, and the next save writes the whole file anew.
    """

    def __init__(self, path: Path | None, index_only: bool = False) -> None:
        """index_only: read and load each segment's index part alone (the entries' stamps and
        leaves, not their records nor the state and runs table): what the pre-pass's `check`
        and `leaves` need, ~1 MB of the ~24 MB at 10^4 runs. Such a cache is not to be saved."""
        self.path = Path(path) if path is not None else None
        self.index_only = index_only
        self.new: dict[str, Any] = {}  # entries looked up unchanged or stored in this pass
        self.stored = 0  # entries stored (verified) or dropped in this pass
        self.hits = 0
        self.table_changed = False  # set by whoever replaces `table` (or by `append_rows`)
        self._forget()
        if self.path is not None and self.path.exists():
            try:
                if index_only:
                    with open(self.path, "rb") as handle:
                        fd = handle.fileno()
                        size = os.fstat(fd).st_size
                        self._load(lambda offset, n: os.pread(fd, n, offset), size)
                else:
                    data = memoryview(self.path.read_bytes())
                    size = len(data)
                    self._load(lambda offset, n: data[offset:offset + n], size)
                if self._file is not None:  # what an append checks the file still is
                    now = os.stat(self.path)
                    self._file["stat"] = (now.st_size, now.st_mtime_ns)
                    self._file["clean"] &= now.st_size == size
            except Exception:  # noqa: BLE001 - a broken cache only costs a full verification
                self._forget()

    def _forget(self) -> None:
        """No entries: what an absent, old or broken cache file gives."""
        self.old: dict[str, Any] = {}  # the file's entries, until looked up
        self.state: dict[str, Any] = {}  # what the last pass wrote (aggregate_sweep's business)
        self.table = None  # the last pass's runs table (the property below)
        self.loaded: dict[str, Any] | None = None  # what the file held: {"runs": n, "state": ..}
        self.token: bytes | None = None  # which file was loaded: its checksum and size
        self.names, self.headers, self.keys, self.choices = _Shared(), _Shared(), _Shared(), \
            _Shared()
        self._file: dict[str, Any] | None = None  # how the file loaded ends (for appending)
        self._changed: set[str] = set()  # entries stored or updated in this pass
        self._rows: list[Any] = []  # packed runs-table rows appended in this pass
        self._prepared: dict[str, dict[str, Any]] = {}  # lookup's answers decoded (`prepare`)

    def _load(self, read: Any, length: int) -> None:
        """Load the file whose `length` bytes read(offset, n) gives."""
        if bytes(read(0, len(_MAGIC))) != _MAGIC:
            return
        position, segments, updates_size, last_crc = len(_MAGIC), 0, 0, b""
        content: dict[str, Any] | None = None
        while position + _HEAD.size <= length:
            head = read(position, _HEAD.size)
            crc, size = _HEAD.unpack(head)
            if position + _HEAD.size + size > length:
                break  # cut short: this segment and any after are ignored
            segment = _read_segment(read, position + _HEAD.size, size, crc, self.index_only)
            if segment is None:
                break  # damaged: this segment and any after are ignored
            if content is None:
                if not (isinstance(segment, dict) and segment.get("version") == CACHE_VERSION
                        and segment.get("marshal") == marshal.version
                        and isinstance(segment.get("runs"), dict)):
                    return
                content, base_size = segment, size
            else:
                _apply(content, segment)
                updates_size += size
            position += _HEAD.size + size
            segments += 1
            last_crc = bytes(head[:4])
        if content is None:
            return
        state = content.get("state")
        self.state = state if isinstance(state, dict) else {}
        for name in _SHARED_NAMES:  # (index_only: the names alone)
            target, key = getattr(self, name), (_json if name == "choices" else tuple)
            for value in content.get(name, []):
                target.id(value, key(value))
        self.table = content.get("table")
        self.old = content["runs"]
        self.token = last_crc + position.to_bytes(8, "little")
        self.loaded = {"runs": len(self.old), "state": state, "ids": list(self.old),
                       "shared": {name: len(getattr(self, name).items)
                                  for name in _SHARED_NAMES}}
        self._file = {"end": position, "clean": position == length, "updates": segments - 1,
                      "base": base_size, "updates_size": updates_size}

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
               checked: bool = False) -> dict | None:
        """The cached Hydra record of the run when its files are unchanged, else None. Its
        runs-table values come as `values_packed` (see `values`). leaf: the folder's own stamp
        when this pass's walk found it without a subfolder (kept in the entry). checked: `check`
        found the files unchanged in this pass (by a cache loaded from the same file: `token`),
        so they are not stat'ed again."""
        entry = self.old.pop(run_id, None)
        job = self._prepared.pop(run_id, None)
        try:
            names_id, sig, record, values, old_leaf = entry
            if not checked and stamp(folder, self.names.items[names_id]) != sig:
                return None
            if job is None:
                job = self._job(record, values)
        except Exception:  # noqa: BLE001 - a malformed entry re-verifies the run
            return None
        self.hits += 1
        if leaf != old_leaf:
            entry = (names_id, sig, record, values, leaf)
            self.stored += 1  # (a change to save)
            self._changed.add(run_id)
        self.new[run_id] = entry
        return job

    def carry(self, keys: list[list], folders: list[str],
              leaves: dict[str, bytes] | None = None) -> None:
        """Take the entries of these runs (stream keys: run_id first; their job folders, as
        text) as lookup takes an unchanged run's, without decoding them: runs whose files were
        found unchanged (`check`) and that aggregate carries unchanged. leaves as in lookup (by
        folder)."""
        leaves = leaves or {}
        old, new, prepared = self.old, self.new, self._prepared
        for key, folder in zip(keys, folders):
            run_id = key[0]
            entry = old.pop(run_id)
            if prepared:
                prepared.pop(run_id, None)
            leaf = leaves.get(folder)
            if leaf != entry[4]:
                entry = (*entry[:4], leaf)
                self.stored += 1  # (a change to save)
                self._changed.add(run_id)
            new[run_id] = entry
        self.hits += len(keys)

    def entry(self, run_id: str) -> dict[str, Any]:
        """What lookup answered for a run taken in this pass (lookup or carry)."""
        _, _, record, values, _ = self.new[run_id]
        return self._job(record, values)

    def _job(self, record: bytes, values: bytes) -> dict[str, Any]:
        """What lookup answers for an entry's record and values."""
        config, overrides, choices, digest, headers = marshal.loads(record)
        return {"config": config, "overrides": overrides, "choices": self.choices.items[choices],
                "digest": digest, "values_packed": values,
                "headers": {name: self.headers.items[i] for name, i in headers.items()}}

    def prepare(self) -> None:
        """Decode every entry's record now, for `lookup` to answer without decoding it: what a
        command does while it waits for its forked pre-pass (sweep/prepass.py). An entry that
        does not decode is left to lookup (which then re-verifies its run)."""
        for run_id, entry in self.old.items():
            try:
                self._prepared[run_id] = self._job(entry[2], entry[3])
            except Exception:  # noqa: BLE001, S112 - malformed: lookup's business
                continue

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
        self._changed.add(run_id)

    def drop(self, run_id: str) -> None:
        self.new.pop(run_id, None)
        self.stored += 1  # (a change all the same)
        self._changed.discard(run_id)

    def append_rows(self, rows: Any) -> bool:
        """Add packed rows (sweep/packed.py's pack_table, the same columns and dtypes) after
        those of `table`; False (nothing changed) when they do not fit it. They are joined to
        the table when it is next read (a pass that saves them as a segment never reads it)."""
        if not _fits(self.table, rows):
            return False
        self.table_changed = True
        self._rows.append(rows)
        self._unjoined.append(rows)
        return True

    @property
    def table(self) -> Any:
        """The last pass's runs table, packed, with the rows appended since (aggregate_sweep's
        business)."""
        for rows in self._unjoined:
            self._table = _concat(self._table, rows)
        self._unjoined = []
        return self._table

    @table.setter
    def table(self, table: Any) -> None:
        self._table, self._unjoined = table, []

    def unchanged(self) -> bool:
        """Whether saving would write what the file holds: every entry looked up unchanged,
        none stored or dropped, the same state and runs table."""
        return self.loaded is not None and self.stored == 0 and not self.table_changed \
            and self.hits == self.loaded["runs"] == len(self.new) \
            and self.state == self.loaded["state"]  # (replaced, never changed in place)

    def save(self) -> None:
        """Write the entries looked up or stored in this pass (runs gone from the sweep drop out);
        nothing when the file already holds them (`unchanged`). What changed is appended as a
        segment to the file loaded when it is still that file and has room (`_update`); else
        the whole file is written anew. Removes a legacy cache."""
        if self.path is None:
            return
        for name in LEGACY_FILES:
            self.path.with_name(name).unlink(missing_ok=True)
        if self.unchanged():
            return
        update = self._update()
        if update is not None:
            try:
                body = _segment(update)
            except ValueError:  # a value marshal cannot write: the whole file below
                body = None
            if body is not None and self._append(body):
                return
        content = {"version": CACHE_VERSION, "marshal": marshal.version,
                   "names": self.names.items, "headers": self.headers.items,
                   "keys": self.keys.items, "choices": self.choices.items,
                   "runs": self.new, "state": self.state}
        try:
            body = _segment({**content, "table": self.table})
        except ValueError:  # a value marshal cannot write in the table: rebuilt next pass
            body = _segment(content)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with open(tmp, "wb") as handle:
            handle.write(_MAGIC + _HEAD.pack(zlib.crc32(body), len(body)) + body)
        os.replace(tmp, self.path)

    def _update(self) -> dict[str, Any] | None:
        """What changed since the file was loaded, as a segment; None when it cannot be one:
        another table than the loaded one's plus appended rows, or a state without the kept
        list's earlier items."""
        if self.loaded is None or (self.table_changed and not self._rows):
            return None
        kept, earlier = self.state.get("kept"), (self.loaded["state"] or {}).get("kept")
        if not isinstance(kept, list) or not isinstance(earlier, list):
            return None
        same = 0  # the kept list's leading items, unchanged (the same objects, or equal)
        for new_item, old_item in zip(kept, earlier):
            if new_item is not old_item and new_item != old_item:
                break
            same += 1
        shared = self.loaded["shared"]
        return {
            **{name: getattr(self, name).items[shared[name]:] for name in _SHARED_NAMES},
            "runs": {run_id: self.new[run_id] for run_id in self._changed if run_id in self.new},
            "gone": [run_id for run_id in self.loaded["ids"] if run_id not in self.new],
            "state": {key: value for key, value in self.state.items() if key != "kept"},
            "kept_from": same, "kept": kept[same:],
            "rows": self._rows}

    def _append(self, body: bytes) -> bool:
        """Append a segment to the file loaded, when it is still that file (its size and mtime,
        the segments read to its end), fewer than MAX_UPDATES were appended, and together they
        stay smaller than half the first; False (nothing written) otherwise."""
        loaded = self._file
        if loaded is None or not loaded["clean"] or loaded["updates"] >= MAX_UPDATES \
                or 2 * (loaded["updates_size"] + len(body)) > loaded["base"]:
            return False
        try:
            with open(self.path, "r+b") as handle:
                now = os.fstat(handle.fileno())
                if (now.st_size, now.st_mtime_ns) != loaded.get("stat"):
                    return False  # another pass wrote it since
                handle.seek(loaded["end"])
                handle.write(_HEAD.pack(zlib.crc32(body), len(body)) + body)
        except FileNotFoundError:
            return False
        return True


def _segment(content: dict[str, Any]) -> bytes:
    """A segment's body: its index, payload and rest parts (_INDEX_KEYS, _PAYLOAD_KEYS and each
    run's entry split between the first two), each marshalled, behind the index's CRC-32 and
    size and the payload's size (ValueError: a value marshal cannot write)."""
    runs = content.get("runs", {})
    index = {key: content[key] for key in _INDEX_KEYS if key in content}
    index["runs"] = {run_id: (entry[0], entry[1], entry[4]) for run_id, entry in runs.items()}
    payload = {key: content[key] for key in _PAYLOAD_KEYS if key in content}
    payload["runs"] = {run_id: (entry[2], entry[3]) for run_id, entry in runs.items()}
    rest = {key: value for key, value in content.items()
            if key not in (*_INDEX_KEYS, *_PAYLOAD_KEYS, "runs")}
    first, second = marshal.dumps(index), marshal.dumps(payload)
    return _PARTS.pack(zlib.crc32(first), len(first), len(second)) + first + second + \
        marshal.dumps(rest)


def _read_segment(read: Any, start: int, size: int, crc: int,
                  index_only: bool) -> dict[str, Any] | None:
    """The content of the segment whose body (`size` bytes at `start`, CRC-32 `crc`) read gives;
    index_only: its index part alone (checked by its own CRC), each entry's record and values
    None. None when damaged."""
    if size < _PARTS.size:
        return None
    if index_only:
        index_crc, index_size, _ = _PARTS.unpack(read(start, _PARTS.size))
        if _PARTS.size + index_size > size:
            return None
        first = read(start + _PARTS.size, index_size)
        if zlib.crc32(first) != index_crc:
            return None
        index = marshal.loads(first)
        index["runs"] = {run_id: (names, sig, None, None, leaf)
                         for run_id, (names, sig, leaf) in index["runs"].items()}
        return index
    body = read(start, size)
    if zlib.crc32(body) != crc:
        return None
    _, index_size, payload_size = _PARTS.unpack_from(body)
    middle = _PARTS.size + index_size
    index = marshal.loads(body[_PARTS.size:middle])
    payload = marshal.loads(body[middle:middle + payload_size])
    records = payload.pop("runs")
    index["runs"] = {run_id: (names, sig, *records[run_id], leaf)
                     for run_id, (names, sig, leaf) in index["runs"].items()}
    return {**index, **payload, **marshal.loads(body[middle + payload_size:])}


def _apply(content: dict[str, Any], update: dict[str, Any]) -> None:
    """A later segment applied to the first's content (in place; its index part alone when that
    is all that was read)."""
    for name in _SHARED_NAMES:
        if name in update:  # (index_only: the names alone)
            content[name] = content[name] + update[name]
    runs = content["runs"]
    for run_id in update["gone"]:
        runs.pop(run_id, None)
    runs.update(update["runs"])
    if "state" not in update:
        return
    kept = content["state"]["kept"][:update["kept_from"]] + update["kept"]
    content["state"] = {**update["state"], "kept": kept}
    for rows in update["rows"]:
        content["table"] = _concat(content.get("table"), rows)


def _fits(table: Any, rows: Any) -> bool:
    """Whether packed `rows` can follow packed `table`: the same column names and dtypes."""
    try:
        return all(name == more_name and dtype == more_dtype and type(values) is type(more)
                   for (name, dtype, values), (more_name, more_dtype, more)
                   in zip(table["columns"], rows["columns"], strict=True)) \
            and isinstance(table["rows"] + rows["rows"], int)
    except (KeyError, TypeError, ValueError):
        return False


def _concat(table: Any, rows: Any) -> Any:
    """Packed table `rows` after packed `table`: the same column names and dtypes, raw bytes and
    lists joined; None when they differ (the runs table is then rebuilt)."""
    if not _fits(table, rows):
        return None
    return {"rows": table["rows"] + rows["rows"],
            "columns": [[name, dtype, values + more] for (name, dtype, values), (_, _, more)
                        in zip(table["columns"], rows["columns"])]}


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)
