"""Whole-process timings: the default run vs the plain script, start-up, imports, a CPU hog.

Everything here runs a fresh interpreter (as a user does), so imports, Hydra's composition and
file writing are part of each figure.
"""

from __future__ import annotations

import contextlib
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CLI = str(Path(sys.executable).parent / "mirror-sweep")
PLAIN_SCRIPT = str(Path(__file__).resolve().parent / "plain_script.py")
DATA_LINE = " - data ..."  # the app's log line when data generation starts (experiment stage)
# Heavy packages a job must not import before it generates data (each >= ~0.3 s).
HEAVY = ("torch", "pandas", "scipy", "sklearn", "matplotlib")


def time_default_run(overrides: tuple[str, ...] = ()) -> dict[str, float]:
    """`mirror-sweep` (the default run) in a fresh process into a temporary folder.

    Returns wall_s (spawn to exit) and startup_s (spawn to the "data ..." log line, read from
    the pipe as it arrives: interpreter, imports, Hydra's composition and the run folder).
    """
    with tempfile.TemporaryDirectory(prefix="bench-default-") as folder:
        cmd = [CLI, f"hydra.run.dir={folder}", *overrides]
        start = time.perf_counter()
        startup = None
        with subprocess.Popen(cmd, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) as proc:
            lines = []
            for line in proc.stdout:
                if DATA_LINE in line and startup is None:
                    startup = time.perf_counter() - start
                lines.append(line)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"default run failed ({' '.join(cmd)}):\n{''.join(lines)[-2000:]}")
        summary = json.loads((Path(folder) / "summary.json").read_text())
    keys = ["time_data_s", "time_train_s", "time_analysis_s", "time_ablation_s", "torch_threads"]
    return {"wall_s": wall, "startup_s": float("nan") if startup is None else startup, **{key: summary[key] for key in keys}}


def time_plain_script(threads: int | None = None, cap: float = 600) -> float:
    """Wall seconds of benchmarks/plain_script.py in a fresh process (torch's default threads,
    i.e. one per core, unless `threads`); stopped after `cap` seconds (a 2-thread script on a
    busy machine can take 10-20x its quiet time), which then returns inf."""
    args = [] if threads is None else ["--threads", str(threads)]
    start = time.perf_counter()
    try:
        subprocess.run([sys.executable, PLAIN_SCRIPT, *args], cwd=REPO, capture_output=True,
                       check=True, timeout=cap)
    except subprocess.TimeoutExpired:
        return float("inf")
    return time.perf_counter() - start


def compile_package() -> None:
    """Byte-compile mirror_sweep, as a pip install does: where PYTHONDONTWRITEBYTECODE is set
    (this machine), an editable checkout would otherwise compile its ~100 modules from source
    in every process (~0.05-0.07 s each), which an installed package never does."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "mirror_sweep")],
                   check=True)


def alternate(functions: dict[str, callable], rounds: int) -> dict[str, list]:
    """Call each function once per round, in turn (A B A B ...), so slow spells on a shared
    machine hit every contestant alike; returns each one's results in order."""
    results = {name: [] for name in functions}
    for _ in range(rounds):
        for name, function in functions.items():
            results[name].append(function())
    return results


def median(values: list[float]) -> float:
    return statistics.median(values)


def import_summary(modules: str = "mirror_sweep.app, mirror_sweep.run.experiment",
                   top: int = 6) -> dict:
    """`python -X importtime -c 'import MODULES'`: what a job imports before it generates data.

    Returns total_s (sum of self times), the `top` packages by the self time of their modules
    as (name, seconds), and which HEAVY packages were imported.
    """
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {modules}"],
                          cwd=REPO, capture_output=True, text=True, check=True)
    by_package = {}
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)", line)
        if match:
            package = match[2].split(".")[0]
            by_package[package] = by_package.get(package, 0) + int(match[1])
    ranked = sorted(by_package.items(), key=lambda item: -item[1])[:top]
    return {"total_s": sum(by_package.values()) / 1e6,
            "top": [(name, us / 1e6) for name, us in ranked],
            "heavy": sorted(set(HEAVY) & set(by_package))}


@contextlib.contextmanager
def cpu_hog(delay: float = 0.0) -> Iterator[subprocess.Popen]:
    """One other CPU-bound process (a busy Python loop) for the duration of the block; with a
    delay, it starts spinning `delay` seconds into the block."""
    proc = subprocess.Popen([sys.executable, "-c",
                             f"import time\ntime.sleep({delay})\nwhile True: pass"])
    try:
        if not delay:
            time.sleep(0.3)  # let it reach the scheduler's steady state
        yield proc
    finally:
        proc.kill()
        proc.wait()
