"""Exit codes of the command-line tools and the one-line messages for environment errors.

One owner for what `mirror-sweep` and `mirror-aggregate` return (docs/sweeps.md lists them).
"""

from __future__ import annotations

import errno
import os
import sys

EXIT_OK = 0
EXIT_RUN_FAILED = 1  # a run failed (mirror-sweep) / no complete run to aggregate
EXIT_BAD_INPUT = 2  # an invalid config key or value, option, or folder: nothing was run
EXIT_FILESYSTEM = 3  # disk full, permission denied, read-only folder: named in the message
EXIT_BUSY = 4  # the job folder is locked by another live process (a single run)

_FILESYSTEM_ERRNOS = {errno.ENOSPC: "no space left on the device",
                      errno.EDQUOT: "disk quota exceeded",
                      errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
                      errno.EROFS: "read-only file system"}


def filesystem_message(error: BaseException) -> str | None:
    """A one-line message for a full disk / permission / read-only error, else None."""
    if isinstance(error, OSError) and error.errno in _FILESYSTEM_ERRNOS:
        where = f" {error.filename}" if error.filename else ""
        return f"cannot write{where}: {_FILESYSTEM_ERRNOS[error.errno]}"
    return None


def silence_closed_stdout() -> None:
    """After a BrokenPipeError on stdout (output piped to `head`), send the rest to /dev/null,
    so the work goes on and the interpreter does not complain at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


class _PipeSafeStream:
    """sys.stdout that, once its reader has gone (`| head`), drops what follows instead of
    raising BrokenPipeError in the middle of the work."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            silence_closed_stdout()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            silence_closed_stdout()

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def guard_stdout() -> None:
    """Make sys.stdout survive a closed pipe (idempotent)."""
    if not isinstance(sys.stdout, _PipeSafeStream) and sys.stdout is not None:
        sys.stdout = _PipeSafeStream(sys.stdout)


def say(text: str) -> None:
    """print(text) that survives a closed stdout."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        silence_closed_stdout()
