"""How many torch threads a job gets: one, unless the user or the scheduler says otherwise.

Why one by default: at the default size a training step is thousands of small matrix products
(128x96 @ 96x288) and elementwise ops, and each parallel region waits for every OpenMP worker.
When another process holds a core, the worker thread is descheduled and every region waits for
the scheduler: on a shared 2-core machine the default run's 2-thread training went from ~5 s to
45-127 s, while 1-thread training took 8.6-9.7 s against 7.0-7.2 s quiet. On a quiet machine
2 threads are only ~1.3x faster. Users share lab machines and nodes, so the default is the
policy that cannot collapse; `train.torch_threads=N` opts in to N threads on a dedicated machine,
and a scheduler's `cpus_per_task` (submitit) gives the job cores of its own.
Measured in benchmarks/run.py (target 2, contention); results in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import os

from omegaconf import DictConfig

DEFAULT_THREADS = 1  # per job, when neither train.torch_threads nor cpus_per_task says otherwise


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def torch_threads(requested: int | None, launcher: DictConfig) -> int:
    """Threads per job: `requested` (train.torch_threads) if set, else the launcher's
    cpus_per_task (a scheduler's cores of its own), else DEFAULT_THREADS.

    Parallel local launchers (joblib's n_jobs workers) thus never oversubscribe the cores.
    """
    if requested is not None:
        return requested
    if launcher.get("cpus_per_task"):  # submitit: the scheduler gives each job its own cpus
        return int(launcher.cpus_per_task)
    return DEFAULT_THREADS


def limit_threads(threads: int) -> None:
    """Give torch and every BLAS/OpenMP pool loaded so far `threads` threads.

    Call it again after importing a library that brings its own pool (scipy's OpenBLAS).
    """
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    threadpool_limits(limits=threads)
