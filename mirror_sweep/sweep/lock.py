"""One job, one process: an exclusive lock per job folder that the OS drops when its holder dies.

`JobLock(folder)` takes `fcntl.flock(LOCK_EX | LOCK_NB)` on FOLDER/.lock. The lock belongs to the
open file, so it lasts as long as the holding process (and any child it forks) lives, and the
kernel releases it however that process ends (exit, exception, SIGKILL, OOM killer): there is no
stale lock to clean up. A second process that finds the lock held gets `LockHeld`, naming the
holder's pid and host (written into the file), and must leave the folder alone.

flock is reliable on local file systems; on NFS it depends on the mount (see docs/sweeps.md).
"""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path
from typing import Self

LOCK_FILE = ".lock"


class LockHeld(RuntimeError):
    """The job folder is locked by another live process; the message names its pid and host."""


class JobLock:
    """Exclusive, non-blocking lock on a job folder; use as a context manager or acquire/release."""

    def __init__(self, folder: Path | str) -> None:
        self.path = Path(folder) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> JobLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise LockHeld(f"{self.path.parent}: running elsewhere ({holder})") from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> Self:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def is_locked(folder: Path | str) -> bool:
    """True when a live process holds FOLDER's job lock (probes read-only, keeps nothing)."""
    try:
        fd = os.open(Path(folder) / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
