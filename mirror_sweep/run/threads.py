"""How many torch threads a job gets, so parallel jobs x threads never exceed the cores."""

from __future__ import annotations

import os

from omegaconf import DictConfig


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def torch_threads(requested: int | None, launcher: DictConfig) -> int:
    """Threads per job so that parallel jobs x threads never exceed this machine's cores."""
    if requested is not None:
        return requested
    if launcher.get("cpus_per_task"):  # submitit: the scheduler gives each job its own cpus
        return int(launcher.cpus_per_task)
    cores = available_cores()
    n_jobs = launcher.get("n_jobs") or 1  # joblib: n_jobs workers share this machine
    if n_jobs < 0:
        n_jobs = max(1, cores + 1 + n_jobs)  # joblib's convention: -1 is every core
    return max(1, cores // n_jobs)


def limit_threads(threads: int) -> None:
    """Give torch and every BLAS/OpenMP pool loaded so far `threads` threads.

    Call it again after importing a library that brings its own pool (scipy's OpenBLAS).
    """
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    threadpool_limits(limits=threads)
