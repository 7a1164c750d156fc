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
CACHE_VERSION = 4  # 4: the subset_decoding and ablation tables
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

    A job's table headers (the same for nearly every run) are kept once, in a shared list.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = Path(path) if path is not None else None
        self.old: dict[str, Any] = {}
        self.new: dict[str, Any] = {}
        self.headers: list[list[str]] = []
        self._header_index: dict[tuple[str, ...], int] = {}
        self.hits = 0
        self.state: dict[str, Any] = {}  # what the last pass wrote (aggregate_sweep's business)
        if self.path is not None and self.path.exists():
            try:
                data = json.loads(self.path.read_text())
                if isinstance(data, dict) and data.get("version") == CACHE_VERSION \
                        and isinstance(data.get("runs"), dict):
                    self.old = data["runs"]
                    self.state = data.get("state") if isinstance(data.get("state"), dict) else {}
                    for columns in data.get("headers", []):
                        self._header_id(columns)
            except (OSError, ValueError):
                self.old = {}  # a broken cache only costs a full verification

    def _header_id(self, columns: list[str]) -> int:
        key = tuple(columns)
        if key not in self._header_index:
            self._header_index[key] = len(self.headers)
            self.headers.append(list(columns))
        return self._header_index[key]

    def lookup(self, run_id: str, folder: Path) -> dict | None:
        """The cached data of the run when its files are unchanged, else None."""
        entry = self.old.pop(run_id, None)
        if not isinstance(entry, dict) or not isinstance(entry.get("sig"), dict):
            return None
        if signature(folder, list(entry["sig"])) != entry["sig"]:
            return None
        try:
            job = {**entry["job"], "headers": {name: self.headers[i]
                                               for name, i in entry["job"]["headers"].items()}}
        except (KeyError, IndexError, TypeError, AttributeError):
            return None
        self.hits += 1
        self.new[run_id] = entry
        return job

    def store(self, run_id: str, sig: dict | None, job: dict) -> None:
        if sig is not None:
            headers = {name: self._header_id(columns) for name, columns in job["headers"].items()}
            self.new[run_id] = {"sig": sig, "job": {**job, "headers": headers}}

    def drop(self, run_id: str) -> None:
        self.new.pop(run_id, None)

    def save(self) -> None:
        """Write the entries looked up or stored in this pass (runs gone from the sweep drop out)."""
        if self.path is None:
            return
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        text = json.dumps({"version": CACHE_VERSION, "headers": self.headers, "runs": self.new,
                           "state": self.state},
                          separators=(",", ":"), default=str)
        with open(tmp, "w") as handle:
            handle.write(text)
        os.replace(tmp, self.path)
