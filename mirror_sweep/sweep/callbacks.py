"""Hydra callbacks for sweeps (selected with `hydra/callbacks=sweep_summary`)."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from mirror_sweep.sweep import results


def job_outcome(folder: Path, since: float) -> str:
    """complete (this sweep), skipped (complete before `since`), failed, incomplete or unreadable."""
    try:
        status = results.read_status(folder)
    except results.RunFileError:
        return "unreadable"
    state = status.get("status")
    if state == "complete":
        return "skipped" if float(status.get("time", since)) < since else "complete"
    if state == "failed":
        return "failed"
    return "incomplete"  # running (killed, or still running) or missing


def count_outcomes(sweep_dir: Path, since: float) -> Counter:
    """How many job folders under `sweep_dir` ended in each outcome of `job_outcome`."""
    from mirror_sweep.sweep.aggregate import (
        find_job_folders,  # pandas: only once the sweep has ended
    )

    return Counter(job_outcome(folder, since) for folder in find_job_folders(sweep_dir))


class SweepSummary(Callback):
    """Print 'N complete, M failed, K skipped ...' for the sweep folder when a multirun ends.

    It reads the status.json of each job folder, so it counts jobs run by any launcher (joblib
    workers and submitit jobs run in other processes than this callback).
    """

    def __init__(self) -> None:
        self.start = time.time()

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.start = time.time()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        counts = count_outcomes(sweep_dir, self.start)
        parts = [f"{counts[key]} {key}" for key in
                 ["complete", "failed", "skipped", "incomplete", "unreadable"] if counts[key]]
        print(f"sweep {sweep_dir}: {sum(counts.values())} jobs: {', '.join(parts) or 'none'}"
              f"\n  aggregate with: mirror-aggregate {sweep_dir}", flush=True)
