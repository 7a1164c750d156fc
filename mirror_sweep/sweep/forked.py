"""A function run in a forked child process, its answer taken later: aggregation's second core.

`Forked(function, *args)` forks; the child runs the function and sends back its return value or
the exception it raised (pickled, through a pipe), then exits at once (no clean-up of the
parent's state: os._exit). `result()` waits for the child's answer and returns that value or
raises that exception (with the child's traceback as a note); a child that ended without an
answer (killed, out of memory) raises `ChildLost`, which callers turn into the same work done in
process. `close()` reaps the child (it is not waited for before: its exit, freeing its memory,
takes a while), stopping it first when its result is not wanted. The child's CPU time is the
parent's children's (it is reaped), so timings of the whole command include it.

Fork only where it is safe: a process running no other thread (`can_fork`).
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any

# The capacity asked for the answer's pipe (Linux's default limit for unprivileged processes).
PIPE_BYTES = 1 << 20


class ChildLost(RuntimeError):
    """The forked child ended without an answer; the message says how."""


def can_fork() -> bool:
    """Whether this process can fork safely: a POSIX fork, and no other thread running."""
    if not hasattr(os, "fork") or threading.active_count() != 1:
        return False
    try:  # threads Python does not know of (a BLAS pool): one task is this thread alone
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return sys.platform != "linux"


class Forked:
    """`function(*args)` run in a forked child process; `result()` takes its answer."""

    def __init__(self, function: Callable[..., Any], *args: Any) -> None:
        read_end, write_end = os.pipe()
        _widen(write_end)
        for stream in (sys.stdout, sys.stderr):  # nothing buffered is written twice
            stream.flush()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            _answer(write_end, function, args)  # never returns
        os.close(write_end)
        self.pid: int | None = pid
        self.pipe: int | None = read_end
        self.answered = False  # the child sent its answer (and exits by itself)

    def result(self) -> Any:
        """The function's return value; the exception it raised; ChildLost without an answer.
        After an answer the child is left to exit on its own (freeing its memory takes it a
        while): close() reaps it."""
        if self.pipe is None:
            raise RuntimeError("the forked child's result was taken already")
        with open(self.pipe, "rb") as pipe:
            data = pipe.read()
        self.pipe = None
        try:
            kind, value = pickle.loads(data)
        except Exception:  # noqa: BLE001 - no (whole) answer
            _, status = os.waitpid(self.pid, 0)
            self.pid = None
            how = (f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status)
                   else f"exit code {os.waitstatus_to_exitcode(status)}")
            raise ChildLost(f"ended without an answer ({how})") from None
        self.answered = True
        if kind == "error":
            raise value
        return value

    def close(self) -> None:
        """Reap the child; stop it first when its result was not taken."""
        if self.pipe is not None:
            os.close(self.pipe)
            self.pipe = None
        if self.pid is not None:
            if not self.answered:
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            os.waitpid(self.pid, 0)
            self.pid = None


def _widen(pipe: int) -> None:
    """A pipe that holds an answer of a few MB in a few writes (Linux: F_SETPIPE_SZ, up to
    /proc/sys/fs/pipe-max-size), not in 64 kB ones each waiting for the parent to read: ~10 ms
    for the pre-pass's answer at 10^4 runs. Elsewhere, or when refused, the pipe stays as it is."""
    try:
        import fcntl

        fcntl.fcntl(pipe, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except (ImportError, AttributeError, OSError):
        pass


def _answer(write_end: int, function: Callable[..., Any], args: tuple) -> None:
    """In the child: run, send the value or the error, exit without cleaning up."""
    code = 0
    try:
        try:
            answer: tuple = ("value", function(*args))
        except BaseException as error:  # noqa: BLE001 - raised in the parent
            error.add_note("(in a forked child process)\n" + "".join(
                traceback.format_exception(error)).rstrip())
            answer = ("error", error)
        try:
            data = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as error:  # noqa: BLE001 - a value or error that does not pickle
            data = pickle.dumps(("error", RuntimeError(
                f"forked child: {type(answer[1]).__name__}: {answer[1]} ({error})")))
        with open(write_end, "wb") as pipe:
            pipe.write(data)
    except BaseException:  # noqa: BLE001 - the parent sees no answer
        code = 1
    finally:
        os._exit(code)
