"""Shared fixtures: a composed, shrunk config, a small model and data, a tiny real sweep (made
once per session), the config groups, and a helper to run the CLI in a subprocess.

Tests that start a subprocess are marked `slow`; so, automatically, is every test that uses
the `tiny_sweep` fixture (a subprocess sweep).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from mirror_sweep.config import (
    CONFIG_DIR,
    ObjectiveConfig,
    RunConfig,
    register_configs,
    to_run_config,
)
from mirror_sweep.run.env import make_effects, make_sequences
from mirror_sweep.run.experiment import build_model

# A run small enough for a test: seconds, not minutes.
TINY = [
    "data.n_train=48", "data.n_test=20", "train.epochs=2", "train.batch_size=16",
    "model.hidden_size=8", "analysis.n_permutations=100",
    "analysis.decoding_null_permutations=10", "train.progress=false",
]


def compose_config(overrides: list[str] | None = None, tiny: bool = True):
    """The composed DictConfig for these overrides (on top of TINY unless tiny=False)."""
    register_configs()  # the schema config.yaml extends
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="config",
                       overrides=(TINY if tiny else []) + list(overrides or []))


def small_setup(objective=None, hidden=16, n_train=128):
    """A small model, train and test sets of the default env (fixed seeds), and an objective."""
    cfg = RunConfig()
    effects = make_effects(cfg.env, np.random.default_rng(0))
    rng = np.random.default_rng(1)
    train_set = make_sequences(n_train, cfg.data_pairing.train, effects, cfg.env, rng)
    test_set = make_sequences(32, cfg.data_pairing.test, effects, cfg.env, rng)
    cfg.model.hidden_size = hidden
    return build_model(cfg, 0), train_set, test_set, objective or ObjectiveConfig()


@pytest.fixture
def tiny_config() -> RunConfig:
    return to_run_config(compose_config())


GROUPS = ["env", "model", "objective", "data_pairing", "condition"]
TINY_SWEEP_CONDITIONS = ("shared_bidirectional", "separate_cores")


def group_options(group: str) -> list[str]:
    """The options of a config group: the YAML files of conf/GROUP."""
    return sorted(p.stem for p in (Path(CONFIG_DIR) / group).glob("*.yaml"))


@pytest.fixture(scope="session")
def tiny_sweep(tmp_path_factory) -> Path:
    """A real tiny sweep folder: TINY_SWEEP_CONDITIONS x seeds 0, 1, run once per session."""
    folder = tmp_path_factory.mktemp("tiny_sweep") / "sweep"
    proc = run_cli(["-m", *TINY, "seed=0,1", f"condition={','.join(TINY_SWEEP_CONDITIONS)}",
                    f"hydra.sweep.dir={folder}"], cwd=folder.parent)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return folder


def pytest_collection_modifyitems(items):
    for item in items:
        if "tiny_sweep" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


def run_cli(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `python -m mirror_sweep ARGS` in cwd (the app's own thread policy), capturing output."""
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    return subprocess.run([sys.executable, "-m", "mirror_sweep", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)
