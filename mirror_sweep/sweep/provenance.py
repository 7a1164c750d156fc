"""Where a run came from: the code version, the package and library versions, host and times.

`code_version()` is a hash of the package's Python sources, so it changes exactly when the code
that computes a result changes (a README commit does not; a fix in the analysis does), and it is
the same for a checkout and an installed wheel of the same code. The git commit and a dirty flag
are recorded beside it for people, when the package runs from a git checkout.
"""

from __future__ import annotations

import functools
import hashlib
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # mirror_sweep/


@functools.cache
def code_version() -> str:
    """sha256 (16 hex digits) of every .py file of the package, by relative path and bytes."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        digest.update(path.relative_to(PACKAGE_DIR).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str | None:
    try:
        proc = subprocess.run(["git", "-C", str(PACKAGE_DIR), *args], capture_output=True,
                              text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


@functools.cache
def git_state() -> dict[str, object]:
    """{"git_commit", "git_dirty"} when the package runs from a git checkout, else {}."""
    top = _git("rev-parse", "--show-toplevel")
    if not top or not PACKAGE_DIR.is_relative_to(Path(top).resolve()):
        return {}
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no", "--", ".")
    return {"git_commit": commit, "git_dirty": None if status is None else bool(status)}


@functools.cache
def environment() -> dict[str, object]:
    """Everything but the times: code version, package, git, Python, torch, numpy, host."""
    return {"code_version": code_version(), "package_version": _version("mirror-sweep"),
            **git_state(), "python": platform.python_version(),
            "torch": _version("torch"), "numpy": _version("numpy"),
            "host": socket.gethostname(), "executable": sys.executable}
