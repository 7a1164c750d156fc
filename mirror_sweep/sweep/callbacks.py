"""Hydra callbacks for sweeps (`hydra/callbacks=sweep_summary`, on in every sweep by default).

When a multirun starts, `SweepSummary` writes SWEEP_DIR/.sweep.json: the start time, the number of
jobs, and the overrides every job shares (job folders are named from the others, see
results.job_dirname). After each job it prints one progress line (done/total, failed, elapsed,
ETA), from the job's own process, whatever the launcher; when the multirun ends, the counts and
the failed jobs. Everything is read from the job folders' status.json, so it counts jobs run by
any launcher (joblib workers and submitit jobs run in other processes than the sweep's).
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from mirror_sweep import errors, validation
from mirror_sweep.sweep import results
from mirror_sweep.sweep.lock import is_locked

SWEEP_FILE = results.SWEEP_FILE
OUTCOMES = ["complete", "failed", "skipped", "running elsewhere", "incomplete", "unreadable"]


def job_outcome(folder: Path, since: float) -> str:
    """One of OUTCOMES: complete (this sweep), skipped (complete before `since`), failed,
    running elsewhere (a live process holds its lock), incomplete or unreadable."""
    state = results.run_state(folder)
    if state.complete:
        return "skipped" if float(state.status.get("time", since)) < since else "complete"
    if state.state == results.FAILED:
        return "failed"
    if is_locked(folder):
        return "running elsewhere"
    if state.state in (results.RUNNING, results.MISSING, results.PENDING):
        return "incomplete"  # killed, or never started
    return "unreadable"  # a corrupt file, or a config rewritten by a later job


def job_outcomes(sweep_dir: Path, since: float) -> dict[Path, str]:
    """The outcome of every job folder under `sweep_dir`."""
    from mirror_sweep.sweep.jobs import find_job_folders

    return {folder: job_outcome(folder, since) for folder in find_job_folders(sweep_dir)}


def count_outcomes(sweep_dir: Path, since: float) -> Counter:
    """How many job folders under `sweep_dir` ended in each outcome of `job_outcome`."""
    return Counter(job_outcomes(sweep_dir, since).values())


def planned_jobs(config: DictConfig) -> list[list[str]] | None:
    """The jobs Hydra's basic sweeper will launch (each a list of overrides), or None when
    another sweeper is used; computed the way the sweeper does it."""
    sweeper = config.hydra.sweeper
    if not str(sweeper.get("_target_", "")).endswith("BasicSweeper"):
        return None
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = OmegaConf.to_container(sweeper.params, resolve=False) if sweeper.get("params") else {}
    arguments = [f"{k}={v}" for k, v in (params or {}).items()]
    arguments += list(config.hydra.overrides.task)
    try:
        overrides = OverridesParser.create().parse_overrides(arguments)
        return [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]
    except Exception:  # noqa: BLE001  (a glob sweep needs the config loader): no plan
        return None


def refuse(message: str, code: int) -> None:
    """One line on stderr and the documented exit code, before any job starts."""
    print(f"mirror-sweep: {message}", file=sys.stderr, flush=True)
    raise SystemExit(code)


def check_writable(folder: Path) -> None:
    """Create `folder` and a file in it, or refuse in one line (read-only, permission, full)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as error:
        message = errors.filesystem_message(error) or f"cannot write {folder}: {error.strerror}"
        refuse(message, errors.EXIT_FILESYSTEM)


class Preflight(Callback):
    """Checks before any job: the output folder can be written, the launcher settings hold."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        errors.guard_stdout()
        check_writable(Path(str(config.hydra.run.dir)))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        errors.guard_stdout()
        try:
            validation.check_launcher(config.hydra.launcher)
        except validation.SettingError as error:
            refuse(str(error), errors.EXIT_BAD_INPUT)
        check_writable(Path(str(config.hydra.sweep.dir)))


def clock(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class SweepSummary(Callback):
    """Progress lines while a multirun runs; 'N complete, M failed, ...' when it ends."""

    def __init__(self) -> None:
        self.start = time.time()

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.start = time.time()
        jobs = planned_jobs(config)
        shared = sorted(set.intersection(*(set(job) for job in jobs))) if jobs else []
        sweep_dir = Path(str(config.hydra.sweep.dir))
        check_writable(sweep_dir)
        results.write_json(sweep_dir / SWEEP_FILE, {
            "started": self.start, "total": len(jobs) if jobs is not None else None,
            "shared_overrides": shared})

    def on_job_end(self, config: DictConfig, job_return: Any = None, **kwargs: Any) -> None:
        hydra_cfg = config.get("hydra")
        if hydra_cfg is None or hydra_cfg.mode != RunMode.MULTIRUN:
            return
        sweep_dir = Path(str(hydra_cfg.sweep.dir))
        plan = results.read_sweep_file(sweep_dir)
        started = float(plan.get("started", self.start))
        counts = count_outcomes(sweep_dir, started)
        done = counts["complete"] + counts["failed"] + counts["skipped"]
        total = plan.get("total")
        ran = counts["complete"] + counts["failed"]
        elapsed = time.time() - started
        eta = ""
        if isinstance(total, int) and ran:
            eta = f", ETA {clock(elapsed / ran * max(0, total - done))}"
        folder = Path(str(hydra_cfg.runtime.output_dir))
        outcome = job_outcome(folder, started)
        errors.say(f"[{done}/{total if total is not None else '?'}] {folder.name}: {outcome}"
                   f"  ({counts['failed']} failed, elapsed {clock(elapsed)}{eta})")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        outcomes = job_outcomes(sweep_dir, self.start)
        counts = Counter(outcomes.values())
        parts = [f"{counts[key]} {key}" for key in OUTCOMES if counts[key]]
        lines = [f"sweep {sweep_dir}: {sum(counts.values())} jobs: {', '.join(parts) or 'none'}"]
        for folder, outcome in outcomes.items():
            if outcome not in ("complete", "skipped"):
                reason = results.run_state(folder).reason.replace(f"{sweep_dir}/", "")
                name = folder.relative_to(sweep_dir).as_posix() if folder != sweep_dir else "."
                lines.append(f"  {outcome}: {name}: {reason[:300]}")
        lines.append(f"  aggregate with: mirror-aggregate {sweep_dir}")
        errors.say("\n".join(lines))
