"""The pre-pass of `mirror-aggregate`: the job folders found and checked while pandas is imported.

Aggregation starts by finding the job folders (jobs.walk_sweep), stat'ing the signed files of
every cached run against the verification cache (VerifyCache.check) and examining the runs that
are new or changed (jobs.examine); none of it needs numpy or pandas, whose imports (~0.5 s) the
rest of the pass waits for. `Prepass.start` forks a child process (sweep/forked.py) that makes this
`scan` while the parent imports them; `Prepass.result` then takes the child's answer,
and aggregate_sweep goes on from it as from a scan made in process: the same folders, the same
cache hits (the parent compares each hit's stamp with its own copy of the same cache file,
VerifyCache.token, without stat'ing again), the same examined jobs. The child examines the new
runs only when fewer than jobs.PARALLEL_MIN (more are left to aggregate's process pool), half of
them in a child of its own (`examined`).

Failures: an error the scan raises in the child (a missing or empty sweep folder: SweepError, a
permission error) is raised by `result` as it would be in process, with the child's traceback as
a note. A child that ends without an answer (killed, out of memory) costs the scan made again in
process, with a line on stderr: runs are never lost. The command line forks it first thing
(`worth_forking`: before pandas, with no other thread); the child runs only the standard
library, PyYAML and the run-folder contract.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mirror_sweep.sweep.forked import ChildLost, Forked, can_fork

if TYPE_CHECKING:
    from mirror_sweep.sweep.jobs import Job
    from mirror_sweep.sweep.verify_cache import VerifyCache


# Fewer runs to examine than this are not split with a second process (a fork and two pickles
# cost about what examining ~3 runs does).
SPLIT_MIN = 16
# Job folders from which their cache check (nine stats a run, ~25 us) is split with a second
# process: beyond ~2x10^4 runs it outlasts the parent's imports and cache loading (~0.5-0.6 s),
# after which the parent's core would wait; below, both cores are busy and a split only slows
# the parent (session 7 measured no gain at 10^4 and 3x10^4 runs, when the parent had more to do
# before taking the scan).
CHECK_SPLIT_MIN = 20_000


@dataclass
class Scan:
    """The job folders of a sweep checked against the verification cache.

    root, folders, leaves: as jobs.walk_sweep(text=True) gives them (the folders as text: a
    Path per folder costs ~25 ms at 10^4 runs, and they travel through a pipe); token: the cache
    file's (VerifyCache.token, None without one); hits: the folders (the same str objects as in
    `folders`, so that they travel as references) whose run's files are those of its cache entry
    (VerifyCache.check); fresh: the other job folders examined (jobs.examine), in order, or None
    when there were too many (left to the caller).
    """

    root: Path
    folders: list[str]
    leaves: dict[str, bytes]
    token: bytes | None
    hits: set[str]
    fresh: list[Job] | None


def cache_path(path: Path | str, out_dir: Path | str | None, use_cache: bool) -> Path | None:
    """The verification cache aggregate_sweep reads (None: no cache)."""
    from mirror_sweep.sweep.jobs import output_dir
    from mirror_sweep.sweep.verify_cache import CACHE_FILE

    if not use_cache:
        return None
    return output_dir(path, out_dir) / CACHE_FILE


def scan(path: Path | str, cache_file: Path | None) -> Scan:
    """Find the job folders under `path`, check them against the cache at `cache_file` (None:
    none) and examine the others when fewer than jobs.PARALLEL_MIN. SweepError as walk_sweep."""
    return _scan(path, cache_file)  # (monkeypatched in the tests' child processes)


def _scan(path: Path | str, cache_file: Path | None) -> Scan:
    from mirror_sweep.sweep import jobs
    from mirror_sweep.sweep.verify_cache import VerifyCache

    cache = VerifyCache(cache_file, index_only=True)  # (check and leaves need no more)
    root, folders, leaves = jobs.walk_sweep(
        path, cache.leaves(Path(path)) if cache_file is not None else None, text=True)
    hits, todo = _check_each(cache, folders, root) if cache.old else (set(), list(folders))
    fresh = examined(todo, root) if len(todo) < jobs.PARALLEL_MIN else None
    return Scan(root, folders, leaves, cache.token, hits, fresh)


def _check_each(cache: VerifyCache, folders: list[str], root: Path
                ) -> tuple[set[str], list[str]]:
    """(the folders whose run is its cache entry's, VerifyCache.check; the other folders, in
    order), the second half checked by a forked child when there are at least CHECK_SPLIT_MIN
    and this process can fork (a child that dies costs its half checked here)."""
    flags = in_halves(lambda start, stop: _unchanged(cache, folders, root, start, stop),
                      len(folders), CHECK_SPLIT_MIN)
    hits = {folder for folder, flag in zip(folders, flags) if flag}
    return hits, [folder for folder, flag in zip(folders, flags) if not flag]


def _unchanged(cache: VerifyCache, folders: list[str], root: Path, start: int,
               stop: int) -> bytearray:
    """1 for each of folders[start:stop] whose run is its cache entry's, else 0."""
    from mirror_sweep.sweep.jobs import relative_id

    flags = bytearray(stop - start)
    for i in range(start, stop):
        if cache.check(relative_id(folders[i], root), folders[i]) is not None:
            flags[i - start] = 1
    return flags


def examined(folders: list[Path] | list[str], root: Path) -> list[Job]:
    """jobs.examine of each folder, in order; the second half by a forked child when there are
    at least SPLIT_MIN and this process can fork (the other core is free once the parent has
    imported pandas; a child that dies costs its half examined here)."""
    return in_halves(lambda start, stop: _examine_each(folders[start:stop], root),
                     len(folders), SPLIT_MIN)


def in_halves(work: Callable[[int, int], Any], n: int, least: int) -> Any:
    """work(0, n), as work(0, n // 2) + work(n // 2, n) with the second half done by a forked
    child when n >= least and this process can fork (a child that dies costs its half done
    here)."""
    if n < least or not can_fork():
        return work(0, n)
    half = n // 2
    child = Forked(work, half, n)
    try:
        first = work(0, half)
        try:
            second = child.result()
        except ChildLost:
            second = work(half, n)
    finally:
        child.close()
    return first + second


def _examine_each(folders: list[Path] | list[str], root: Path) -> list[Job]:
    from mirror_sweep.sweep.jobs import examine

    return [examine(folder, root) for folder in folders]


def worth_forking() -> bool:
    """Whether a pre-pass pays here, and forks safely: a process that has not imported pandas
    yet (the command line; not a notebook or the tests) and runs no other thread."""
    return "pandas" not in sys.modules and can_fork()


def _scan_in_child(path: Path, cache_file: Path | None) -> Scan:
    """scan, with no gc (a short-lived process of acyclic objects)."""
    gc.disable()
    return _scan(path, cache_file)


class Prepass:
    """`scan` made in a forked child process: `start` forks, `result` waits for the answer."""

    def __init__(self, path: Path | str, out_dir: Path | str | None, use_cache: bool) -> None:
        self.path, self.out_dir, self.use_cache = Path(path), out_dir, use_cache
        self.child: Forked | None = None
        self.taken = False  # result() was called

    @classmethod
    def start(cls, path: Path | str, out_dir: Path | str | None = None,
              use_cache: bool = True) -> Prepass:
        """Fork the child that scans the sweep at `path` for aggregate_sweep(path, out_dir,
        use_cache=use_cache)."""
        prepass = cls(path, out_dir, use_cache)
        prepass.child = Forked(_scan_in_child, prepass.path, prepass.cache_file())
        return prepass

    def cache_file(self) -> Path | None:
        return cache_path(self.path, self.out_dir, self.use_cache)

    def matches(self, path: Path | str, out_dir: Path | str | None, use_cache: bool) -> bool:
        """Whether this pre-pass scanned for aggregate_sweep(path, out_dir, use_cache=...)."""
        return (Path(path), cache_path(path, out_dir, use_cache)) == \
            (self.path, self.cache_file())

    def result(self) -> Scan:
        """The child's scan; the error it raised; or, when it ended without an answer, the scan
        made here (with a line on stderr)."""
        if self.child is None or self.taken:
            raise RuntimeError("the pre-pass was not started, or its result was taken")
        self.taken = True
        try:
            return self.child.result()
        except ChildLost as lost:
            print(f"mirror-aggregate: the pre-pass process {lost}; scanning the sweep again in "
                  "this process", file=sys.stderr)
            return scan(self.path, self.cache_file())

    def close(self) -> None:
        """Reap the child (stopped first when its result was not taken)."""
        if self.child is not None:
            self.child.close()
            self.child = None
