"""The paper module: one rule for the main condition and the paper's hidden size, shared by the
claims report and the figures."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd

from mirror_sweep.config import RunConfig
from mirror_sweep.report import figures, paper, verdicts
from mirror_sweep.report.stats import report_stats
from mirror_sweep.sweep.aggregate import Sweep

matplotlib.use("Agg")


def runs_table(**columns) -> pd.DataFrame:
    base = {"run_id": ["0", "1"], "seed": [0, 1], "model": "shared_gru",
            "objective": "bidirectional", "data_pairing": "paired", "env": "linear",
            "hidden_size": 96, "frac_abs_r_gt": [0.3, 0.4], "frac_r_gt": [0.2, 0.3]}
    return pd.DataFrame({**base, **columns})


def test_main_condition_is_the_papers_label_or_a_plain_default_run():
    assert paper.main_condition(runs_table(condition=[paper.MAIN, "x"])) == paper.MAIN
    assert paper.main_condition(runs_table(condition="default")) == "default"
    assert paper.main_condition(runs_table(condition="default", model="separate_gru")) is None
    untrained = runs_table(condition="default", **{"train.enabled": False})
    assert paper.main_condition(untrained) is None
    # A preset that fixes another objective for every run is not the paper's condition either.
    assert paper.main_condition(runs_table(condition=paper.MAIN,
                                           objective="forward_only")) is None
    assert paper.main_condition(pd.DataFrame({"condition": []})) is None


def test_paper_size_runs_keeps_h96_or_nothing():
    runs = runs_table(condition="x", hidden_size=[32, 96])
    kept, note = paper.paper_size_runs(runs)
    assert list(kept["run_id"]) == ["1"] and "96" in note
    kept, note = paper.paper_size_runs(runs_table(condition="x", hidden_size=[32, 64]))
    assert kept.empty and "no run has H = 96" in note
    kept, note = paper.paper_size_runs(runs_table(condition="x", hidden_size=8))
    assert len(kept) == 2 and note == ""


def test_the_default_config_is_the_papers():
    flat = pd.json_normalize(asdict(RunConfig())).iloc[0]
    for key, value in paper.PAPER_CONFIG.items():
        assert np.isclose(flat[key], value), key


def band_labels(fig) -> list[str]:
    return [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().texts]


def test_a_single_separate_gru_run_is_not_the_main_condition_in_claims_or_figures():
    runs = runs_table(condition="default", model="separate_gru")
    empty = pd.DataFrame(columns=["run_id", "condition", "seed"])
    sweep = Sweep(Path("one_run"), runs, empty, empty, empty, empty)
    _, context = verdicts.measure(sweep, n_boot=50)
    table = verdicts.evaluate_claims(*verdicts.measure(sweep, n_boot=50))
    assert context["main"] is None
    assert table.loc[table["claim_id"] == "C1", "verdict"].item() == verdicts.NOT_MEASURED
    fig = figures.figure2(sweep, None, ["default"], report_stats(runs, n_boot=50))
    assert not any("paper's claim" in text for text in band_labels(fig))
    tick_labels = [t.get_text() for ax in fig.axes for t in ax.get_yticklabels()]
    assert not any("main" in text for text in tick_labels)
    plain = Sweep(Path("one_run"), runs_table(condition="default"), empty, empty, empty, empty)
    assert verdicts.measure(plain, n_boot=50)[1]["main"] == "default"
    fig = figures.figure2(plain, None, ["default"], report_stats(plain.runs, n_boot=50))
    assert any("paper's claim" in text for text in band_labels(fig))


def test_paper_runs_hold_every_other_swept_factor_at_its_reference():
    runs = pd.DataFrame({"condition": ["shared_bidirectional"] * 6, "hidden_size": 96,
                         "n_actions": [2, 4, 8] * 2, "cell": ["gru"] * 3 + ["lstm"] * 3})
    kept, note = paper.paper_size_runs(runs)
    assert list(zip(kept.n_actions, kept.cell)) == [(4, "gru")]
    assert "n_actions = 4" in note and "cell = gru" in note
