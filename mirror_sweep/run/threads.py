"""How many torch threads a job's training gets: adaptive by default, fixed when asked.

Why adaptive: at the default size a training step is thousands of small matrix products
(128x96 @ 96x288) and elementwise ops, and each parallel region waits for every OpenMP worker.
When another process holds a core, the worker thread is descheduled and every region waits for
the scheduler: on a shared 2-core machine the default run's 2-thread training went from ~5 s to
26-127 s. On a quiet machine 2 threads are ~1.2-1.4x faster. So by default (train.torch_threads
null) training takes a second thread only while no other process needs the core: the load of the
cores this process may use is read from /proc/stat (minus this process's own CPU time) every
RECHECK_S of training, and the thread count follows it (1 as soon as others use more than
BUSY_CORES). A machine without /proc/stat gets 1 thread.

What stays on 1 thread, so that a run's files do not depend on the machine's load: the losses
of the evaluation during training, the read-out of hidden states, the analyses' BLAS and the
causal ablation (their large reductions would be split across threads and round differently).
The training steps themselves give the same parameters on 1 and 2 threads, and the evaluation's
forward pass the same states (their products split by rows; tests/test_threads.py); at large
batches the reported batch-mean losses can differ in the last bits. `train.torch_threads=1` pins
everything to one thread; `train.torch_threads=N` gives N fixed threads on a dedicated machine;
a scheduler's `cpus_per_task` (submitit) gives the job cores of its own; a parallel local
launcher's jobs share the cores (cap cores // n_jobs, so 2 workers on 2 cores get 1 thread each).
Measured in benchmarks/run.py (targets 1 and 2); results in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

AUTO_MAX_THREADS = 2  # the default size's products are small; more threads mostly wait
RECHECK_S = 0.5  # how often training re-reads the cores' load
MIN_WINDOW_S = 0.2  # a shorter window says too little (the kernel counts in 10 ms ticks)
BUSY_CORES = 0.5  # other processes using more than half a core take it from training
PROC_STAT = Path("/proc/stat")


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def cgroup_cores(path: Path = Path("/sys/fs/cgroup/cpu.max")) -> float | None:
    """The CPU quota of this process's cgroup (v2) in cores; None when there is none."""
    try:
        quota, period = path.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    return None if quota == "max" else int(quota) / int(period)


@dataclass(frozen=True)
class ThreadPolicy:
    """A job's torch threads: `fixed` threads, or adaptive (fixed None) between 1 and `cap`."""

    fixed: int | None
    cap: int = 1

    @property
    def adaptive(self) -> bool:
        return self.fixed is None and self.cap > 1

    @property
    def baseline(self) -> int:
        """Threads outside the training steps (evaluation losses, read-outs, analyses)."""
        return self.fixed or 1

    def describe(self) -> str:
        return f"adaptive 1-{self.cap}" if self.adaptive else "fixed"


def thread_policy(requested: int | None, launcher: DictConfig) -> ThreadPolicy:
    """`requested` (train.torch_threads) fixed if set, else the launcher's cpus_per_task (a
    scheduler's cores of its own) fixed, else adaptive up to AUTO_MAX_THREADS, the cores this
    process may use, its cgroup's quota and, under a parallel local launcher, cores // n_jobs.
    """
    if requested is not None:
        return ThreadPolicy(requested)
    if launcher.get("cpus_per_task"):  # submitit: the scheduler gives each job its own cpus
        return ThreadPolicy(int(launcher.cpus_per_task))
    cores = available_cores()
    n_jobs = launcher.get("n_jobs") or 1
    workers = n_jobs if n_jobs > 0 else max(1, cores + 1 + n_jobs)  # joblib's -1: one per core
    share = cores // workers
    quota = cgroup_cores()
    cap = min(AUTO_MAX_THREADS, share, int(quota) if quota is not None else cores)
    return ThreadPolicy(1) if cap <= 1 else ThreadPolicy(None, cap)


class CpuLoad:
    """Cores' worth of CPU used by other processes, on the cores this process may use, since the
    previous reading: their busy time in /proc/stat minus this process's own CPU time."""

    def __init__(self, stat: Path | None = None):
        self.stat, self.cpus = stat or PROC_STAT, available_cpus()
        self.last = self.sample()

    def sample(self) -> tuple[float, float, float] | None:
        """(wall s, busy s of the cores, this process's CPU s), or None if unreadable."""
        try:
            lines = self.stat.read_text().splitlines()
        except OSError:
            return None
        busy = 0
        for line in lines:
            name, *fields = line.split()
            if not (name.startswith("cpu") and name[3:].isdigit()):
                continue
            if self.cpus is not None and int(name[3:]) not in self.cpus:
                continue
            # user nice system idle iowait irq softirq steal (guest is inside user)
            ticks = [int(v) for v in fields[:8]]
            busy += sum(ticks) - ticks[3] - ticks[4]
        own = os.times()
        return time.monotonic(), busy / os.sysconf("SC_CLK_TCK"), own.user + own.system

    def others(self) -> float | None:
        """Other processes' cores since the last call that returned a value; None if the
        window is shorter than MIN_WINDOW_S (the reading is kept) or /proc/stat is unreadable."""
        now = self.sample()
        if now is None or self.last is None:
            return None
        wall = now[0] - self.last[0]
        if wall < MIN_WINDOW_S:
            return None
        others = ((now[1] - self.last[1]) - (now[2] - self.last[2])) / wall
        self.last = now
        return max(others, 0.0)


def available_cpus() -> set[int] | None:
    return os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None


class JobThreads:
    """Applies a ThreadPolicy during one job: the baseline everywhere, and while training,
    adaptive threads that follow the cores' load. Records what training used."""

    def __init__(self, policy: ThreadPolicy | None):
        self.policy = policy
        self.load = CpuLoad() if policy is not None and policy.adaptive else None
        self.training_threads: int | None = None
        self.decided: int | None = None  # the last count the load allowed
        self.used: set[int] = set()
        self.switches = 0
        self.checked = time.monotonic()

    def settle(self) -> None:
        """Give torch and every BLAS/OpenMP pool loaded so far the baseline. Call it again after
        importing a library that brings its own pool (scipy's OpenBLAS)."""
        if self.policy is not None:
            limit_threads(self.policy.baseline)

    def free_threads(self) -> int:
        """Threads the cores can give now: the policy's fixed count, or for an adaptive one
        the cap less the cores other processes use (the last such count when the window since
        the last reading is too short, 1 when the load was never read)."""
        if self.policy is None:
            import torch

            return torch.get_num_threads()
        if not self.policy.adaptive:
            return self.policy.baseline
        others = self.load.others()
        if others is not None:
            free = available_cores() - others
            self.decided = max(1, min(self.policy.cap, int(free + 1 - BUSY_CORES)))
        return self.decided or 1

    def start_training(self) -> None:
        if self.policy is not None:
            self._use(self.free_threads())

    def tick(self) -> None:
        """Between training steps: re-read the load every RECHECK_S (adaptive policy only)."""
        if self.load is None or time.monotonic() - self.checked < RECHECK_S:
            return
        self.checked = time.monotonic()
        self._use(self.free_threads())

    @contextmanager
    def baseline(self):
        """Run a block (an evaluation's losses) on the baseline, then go back to training's
        threads."""
        if self.policy is None or self.training_threads in (None, self.policy.baseline):
            yield
            return
        import torch

        torch.set_num_threads(self.policy.baseline)
        try:
            yield
        finally:
            torch.set_num_threads(self.training_threads)

    def end_training(self) -> None:
        if self.policy is not None:
            import torch

            torch.set_num_threads(self.policy.baseline)
            self.training_threads = None

    def _use(self, threads: int) -> None:
        import torch

        if threads != self.training_threads:
            self.switches += self.training_threads is not None
            torch.set_num_threads(threads)
            self.training_threads = threads
        self.used.add(threads)

    def summary(self) -> dict[str, int | str]:
        """torch_threads (the most training used), torch_threads_policy, torch_thread_switches."""
        if self.policy is None:
            return {}
        return {"torch_threads": max(self.used, default=self.policy.baseline),
                "torch_threads_policy": self.policy.describe(),
                "torch_thread_switches": self.switches}


def limit_threads(threads: int) -> None:
    """Give torch and every BLAS/OpenMP pool loaded so far `threads` threads."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    threadpool_limits(limits=threads)
