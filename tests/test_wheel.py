"""The package as a user installs it: a wheel in a fresh virtualenv outside the repository runs
the default job and a preset sweep (offline: dependencies are borrowed from this venv)."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import TINY

REPO = Path(__file__).resolve().parent.parent


def sh(*args: str | Path, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    proc = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, check=False, env={**env, "HYDRA_FULL_ERROR": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.mark.slow
def test_a_wheel_installed_outside_the_repository_runs_a_job_and_a_preset(tmp_path):
    dist = tmp_path / "dist"
    sh(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
       "-w", dist, REPO, cwd=tmp_path)
    (wheel,) = dist.glob("mirror_sweep-*.whl")
    venv = tmp_path / "venv"
    sh(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    site = Path(sh(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                   cwd=tmp_path).stdout.strip())
    # torch, hydra, ... from this venv, after the new venv's own packages (a plain path line:
    # the editable install's finder in that folder is not activated)
    (site / "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    sh(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
       wheel, cwd=tmp_path)
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = sh(python, "-c", "import mirror_sweep; print(mirror_sweep.__file__)", cwd=work)
    assert Path(where.stdout.strip()).is_relative_to(venv)
    assert not Path(where.stdout.strip()).is_relative_to(REPO)
    app = venv / "bin" / "mirror-sweep"
    run = sh(app, *TINY, "hydra.run.dir=run", cwd=work)
    assert "mirror-sweep run" in run.stdout and (work / "run" / "status.json").exists()
    sweep = sh(app, "-m", "+experiment=ablations", *TINY, "condition=forward_only,untrained",
               "seed=0", "hydra.sweep.dir=sweep", cwd=work)
    assert "2 jobs: 2 complete" in sweep.stdout
    aggregate = sh(venv / "bin" / "mirror-aggregate", "sweep", "--n-boot", "50", "--no-figures",
                   cwd=work)
    assert "2 complete runs" in aggregate.stdout
    helptext = sh(app, "--help", cwd=work).stdout
    for needle in ["ablations", "condition:", "mirror-aggregate", "--config-dir"]:
        assert needle in helptext
