"""The verification cache of `mirror-aggregate`: what a run was found to hold, keyed by its files.

A run verified once (status complete, checksums and tables checked, Hydra records read) is stored
in AGGREGATE_DIR/.verified.json with a signature: the size and mtime (ns) of its status.json, its
three .hydra/*.yaml files and every file its status lists. The next aggregation reuses the entry,
without re-reading or re-hashing the run, while every one of those files has the same size and
mtime; any change (a rerun, an edited or truncated file) re-verifies the run in full. Only
complete, verified runs are cached: failed and unreadable ones are looked at every time.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

CACHE_FILE = ".verified.json"
# Bump when what a cached entry holds or how a run is verified changes: old caches are ignored.
CACHE_VERSION = 5  # 5: values as one shared key list + a value list; choices shared
HYDRA_FILES = (".hydra/config.yaml", ".hydra/overrides.yaml", ".hydra/hydra.yaml")


def signature(folder: Path, names: list[str]) -> dict[str, list[int]] | None:
    """{name: [size, mtime_ns]} of these files of `folder`; None when one is missing."""
    sig = {}
    for name in names:
        try:
            st = os.stat(os.path.join(folder, name))
        except OSError:
            return None
        sig[name] = [st.st_size, st.st_mtime_ns]
    return sig


def signed_names(status: dict) -> list[str]:
    """The files whose sizes and mtimes stand for a verified run."""
    return ["status.json", *HYDRA_FILES, *sorted(status.get("files", {}))]


class VerifyCache:
    """Entries {run_id: {"sig": signature, "job": data}} read from and written to one JSON file.

    What nearly every run shares is kept once, in shared lists the entries point into: the table
    headers, the key lists of `values` (an entry holds [key list id, its values]) and the group
    choices. That halves the file (the keys were most of an entry) and its reading and writing,
    and the jobs looked up share their key strings and choices dicts in memory.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = Path(path) if path is not None else None
        self.old: dict[str, Any] = {}
        self.new: dict[str, Any] = {}
        self.headers: list[list[str]] = []
        self._header_index: dict[tuple[str, ...], int] = {}
        self.keys: list[list[str]] = []  # key lists of `values`
        self._keys_index: dict[tuple[str, ...], int] = {}
        self.choices: list[dict[str, Any]] = []
        self._choices_index: dict[str, int] = {}
        self.stored = 0  # entries stored (verified) in this pass
        self.loaded: dict[str, Any] | None = None  # what the file held: {"runs": n, "state": ..}
        self.hits = 0
        self.state: dict[str, Any] = {}  # what the last pass wrote (aggregate_sweep's business)
        if self.path is not None and self.path.exists():
            try:
                data = json.loads(self.path.read_text())
                if isinstance(data, dict) and data.get("version") == CACHE_VERSION \
                        and isinstance(data.get("runs"), dict):
                    self.old = data["runs"]
                    self.state = data.get("state") if isinstance(data.get("state"), dict) else {}
                    self.loaded = {"runs": len(self.old), "state": json.dumps(self.state, default=str)}
                    for columns in data.get("headers", []):
                        self._header_id(columns)
                    for keys in data.get("keys", []):
                        self._keys_id(keys)
                    for choices in data.get("choices", []):
                        self._choices_id(choices)
            except (OSError, ValueError):
                self.old = {}  # a broken cache only costs a full verification

    def _header_id(self, columns: list[str]) -> int:
        key = tuple(columns)
        if key not in self._header_index:
            self._header_index[key] = len(self.headers)
            self.headers.append(list(columns))
        return self._header_index[key]

    def _keys_id(self, keys: list[str]) -> int:
        key = tuple(keys)
        if key not in self._keys_index:
            self._keys_index[key] = len(self.keys)
            self.keys.append(list(keys))
        return self._keys_index[key]

    def _choices_id(self, choices: dict[str, Any]) -> int:
        key = json.dumps(choices, sort_keys=True, default=str)
        if key not in self._choices_index:
            self._choices_index[key] = len(self.choices)
            self.choices.append(choices)
        return self._choices_index[key]

    def lookup(self, run_id: str, folder: Path) -> dict | None:
        """The cached data of the run when its files are unchanged, else None."""
        entry = self.old.pop(run_id, None)
        if not isinstance(entry, dict) or not isinstance(entry.get("sig"), dict):
            return None
        if signature(folder, list(entry["sig"])) != entry["sig"]:
            return None
        try:
            data = entry["job"]
            keys_id, values = data["values"]
            keys = self.keys[keys_id]
            if len(keys) != len(values):
                return None
            job = {**data, "headers": {name: self.headers[i]
                                       for name, i in data["headers"].items()},
                   "values": dict(zip(keys, values)), "choices": self.choices[data["choices"]]}
        except (KeyError, IndexError, TypeError, AttributeError, ValueError):
            return None
        self.hits += 1
        self.new[run_id] = entry
        return job

    def store(self, run_id: str, sig: dict | None, job: dict) -> None:
        if sig is not None:
            headers = {name: self._header_id(columns) for name, columns in job["headers"].items()}
            values = [self._keys_id(list(job["values"])), list(job["values"].values())]
            self.new[run_id] = {"sig": sig, "job": {**job, "headers": headers, "values": values,
                                                    "choices": self._choices_id(job["choices"])}}
            self.stored += 1

    def drop(self, run_id: str) -> None:
        self.new.pop(run_id, None)
        self.stored += 1  # (a change all the same)

    def unchanged(self) -> bool:
        """Whether saving would write what the file holds: every entry looked up unchanged,
        none stored or dropped, and the same state."""
        return self.loaded is not None and self.stored == 0 \
            and self.hits == self.loaded["runs"] == len(self.new) \
            and json.dumps(self.state, default=str) == self.loaded["state"]

    def save(self) -> None:
        """Write the entries looked up or stored in this pass (runs gone from the sweep drop out);
        nothing when the file already holds them (`unchanged`)."""
        if self.path is None or self.unchanged():
            return
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        text = json.dumps({"version": CACHE_VERSION, "headers": self.headers, "keys": self.keys,
                           "choices": self.choices, "runs": self.new, "state": self.state},
                          separators=(",", ":"), default=str)
        with open(tmp, "w") as handle:
            handle.write(text)
        os.replace(tmp, self.path)
