"""The paper under test: its configuration, thresholds, claimed ranges, and which runs are its
main condition. The claims report, the figures and the panels import these; nothing else
defines them.

The paper's numbers are claims under test, never targets: they decide what a sweep is compared
with, not what a sweep is run with (the run's defaults live in mirror_sweep/config.py; a test
checks that the default config is PAPER_CONFIG). Its r thresholds are written once, as the
analysis defaults in config.py, and read from there.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mirror_sweep.config import AnalysisConfig
from mirror_sweep.sweep.factors import at_reference

# The paper's main condition (conf/condition/shared_bidirectional.yaml) and the label
# aggregation gives a run without varying overrides (sweep/aggregate.py condition_labels).
MAIN = "shared_bidirectional"
DEFAULT_LABEL = "default"
# The Hydra group choices of the paper's condition: a run with other choices is not the paper's.
MAIN_GROUPS = {"model": "shared_gru", "objective": "bidirectional", "data_pairing": "paired",
               "env": "linear"}

# The paper's r thresholds (Methods: |r| > 0.6 and r > 0.75 define its unit fractions) are the
# run's default analysis thresholds, written once in config.py:AnalysisConfig with that reason;
# the anti-mirror threshold there is ours (the paper reports one unit at r = -0.791).
ABS_THRESHOLD = AnalysisConfig.abs_threshold
POS_THRESHOLD = AnalysisConfig.pos_threshold
ANTI_THRESHOLD = AnalysisConfig.anti_threshold
PAPER_THRESHOLDS = {"analysis.abs_threshold": ABS_THRESHOLD,
                    "analysis.pos_threshold": POS_THRESHOLD}
HIDDEN_SIZE = 96
# The paper's configuration (Methods): deviations are listed in the claims report.
PAPER_CONFIG = {"model.hidden_size": HIDDEN_SIZE, "data.n_train": 2000, "data.n_test": 300,
                "train.epochs": 20, "train.batch_size": 64, "train.lr": 1e-3,
                "env.seq_len": 12, "env.sensory_dim": 16}

# The ranges the paper claims for the main condition (per-run metric -> [low, high]).
TOLERANCE = 0.05  # "r ≈ x" in the paper read as x ± TOLERANCE
MAX_R, MIN_R = 0.912, -0.791  # its best mirror unit and its anti-mirror unit 74
CLAIM_RANGES = {"frac_abs_r_gt": (0.35, 0.40), "frac_r_gt": (0.25, 0.30),
                "max_r": (MAX_R - TOLERANCE, 1.0), "min_r": (-1.0, MIN_R + TOLERANCE)}
NEAR_MAX_R = MAX_R - TOLERANCE  # "units reach r ≈ 0.9": r >= 0.862
SEVERAL = 2  # "several units reach r ≈ 0.9": at least this many per run
# Methods: "Units with |r| > 0.4-0.5 are strong candidates; r > 0.2-0.3 indicates weak/moderate
# mirroring" (the stricter end of each range).
STRONG_ABS_R, WEAK_R = 0.5, 0.3
# Discussion: "the strong mirror-neuron effect (|r| ≈ 0.75-0.92) reliably reappears".
REAPPEARS_ABS_R = 0.75
RELIABLE_SHARE = 0.8  # "reliably": in at least this share of seeds
# The controls every "exists / exceeds / aligned" claim is also judged on (paired by seed): a
# claim that holds as well for the untrained network or the separate cores is not specific.
UNTRAINED, SEPARATE_CORES = "untrained", "separate_cores"
CONTROLS = (UNTRAINED, SEPARATE_CORES)


def paper_thresholds_used(abs_threshold: float, pos_threshold: float) -> bool:
    """True if a sweep's thresholds are the paper's (so its claimed ranges apply)."""
    return bool(np.isclose([abs_threshold, pos_threshold], [ABS_THRESHOLD, POS_THRESHOLD]).all())


def main_condition(runs: pd.DataFrame) -> str | None:
    """The label of the paper's main condition among `runs`, or None when it is absent.

    MAIN, else DEFAULT_LABEL (a plain run or a sweep of seeds only), provided every run with
    that label uses the paper's group choices (MAIN_GROUPS) and is trained. So a single
    `model=separate_gru` run, labelled "default", is not the main condition.

    runs: the per-run table of aggregate.load_sweep (condition, the group columns,
    train.enabled); absent columns are not checked.
    """
    conditions = set(runs.get("condition", pd.Series(dtype=object)).dropna())
    for label in (MAIN, DEFAULT_LABEL):
        if label not in conditions:
            continue
        rows = runs[runs["condition"] == label]
        same = all(k not in rows or (rows[k] == v).all() for k, v in MAIN_GROUPS.items())
        trained = "train.enabled" not in rows or rows["train.enabled"].astype(bool).all()
        if same and trained:
            return label
    return None


def paper_size_runs(runs: pd.DataFrame, hidden_size: int | None = None
                    ) -> tuple[pd.DataFrame, str]:
    """The runs that stand for the paper when a sweep varies the hidden size.

    Every run when the hidden size does not vary; else those at `hidden_size` (default the
    paper's H = 96), none when no run has it. Any other swept factor (K, action process, cell:
    sweep/factors.py) is then held at its reference value (factors.at_reference). Returns
    (runs, note); note is "" when nothing was dropped.
    """
    notes = []
    if "hidden_size" in runs and runs["hidden_size"].nunique() > 1:
        h = HIDDEN_SIZE if hidden_size is None else hidden_size
        keep = runs["hidden_size"] == h
        if not keep.any():
            return runs.iloc[0:0], f"hidden size varies and no run has H = {h}"
        runs = runs[keep]
        notes.append(f"hidden size varies: H = {h} runs only")
    runs, other = at_reference(runs)
    return runs, "; ".join(notes + ([other] if other else []))
