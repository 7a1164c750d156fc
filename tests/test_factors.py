"""Grouping by any swept factor: planted per-run tables and fabricated job folders (no torch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from mirror_sweep.sweep import results
from mirror_sweep.sweep.aggregate import RUN_COLUMNS, load_sweep
from mirror_sweep.sweep.factors import (
    FACTORS,
    at_reference,
    factor_values,
    reference_values,
    varying_factors,
)
from mirror_sweep.sweep.summaries import GROUPED_BY, robustness, robustness_keys


def planted_runs(n_seeds: int = 12) -> pd.DataFrame:
    """condition x K x action process x seed; frac_abs_r_gt planted as a known function + noise."""
    rng = np.random.default_rng(0)
    rows = []
    for condition, base in [("shared_bidirectional", 0.3), ("untrained", 0.1)]:
        for k in (2, 4, 8):
            for process, bump in [("iid", 0.0), ("constant", 0.2)]:
                for seed in range(n_seeds):
                    rows.append({"condition": condition, "seed": seed, "hidden_size": 96,
                                 "cell": "gru", "n_actions": k, "action_process": process,
                                 "stay_prob": 0.9,
                                 "frac_abs_r_gt": base + bump + 0.4 / k + rng.normal(0, 0.01)})
    return pd.DataFrame(rows)


def test_robustness_groups_by_every_varying_factor_and_names_them():
    runs = planted_runs()
    assert robustness_keys(runs) == ["condition", "n_actions", "action_process"]
    table = robustness(runs, ["frac_abs_r_gt"], n_boot=500, seed=1)
    assert len(table) == 2 * 3 * 2 and (table["n"] == 12).all()
    assert (table[GROUPED_BY] == "condition,n_actions,action_process").all()
    assert list(table.columns[:4]) == ["condition", "n_actions", "action_process", "metric"]
    for _, row in table.iterrows():
        base = 0.3 if row.condition == "shared_bidirectional" else 0.1
        planted = base + (0.2 if row.action_process == "constant" else 0) + 0.4 / row.n_actions
        assert row["mean"] == pytest.approx(planted, abs=0.01)
        assert row.ci_low < planted + 0.01 and row.ci_high > planted - 0.01


def test_a_factor_held_constant_is_not_a_key():
    runs = planted_runs()
    runs = runs[(runs.n_actions == 4) & (runs.action_process == "iid")]
    assert robustness_keys(runs) == ["condition"]
    table = robustness(runs, ["frac_abs_r_gt"], n_boot=100)
    assert list(table.columns[:2]) == ["condition", "metric"] and len(table) == 2
    assert (table[GROUPED_BY] == "condition").all()


def test_at_reference_keeps_the_default_values_else_the_most_common():
    runs = planted_runs(n_seeds=2)
    kept, note = at_reference(runs)
    assert set(kept.n_actions) == {4} and set(kept.action_process) == {"iid"}
    assert "n_actions = 4" in note and "action_process = iid" in note
    kept, _ = at_reference(runs, {"n_actions": 8})
    assert set(kept.n_actions) == {8}
    no_four = runs[runs.n_actions != 4]
    kept, _ = at_reference(no_four.iloc[2:])  # K = 2 is then the less common value
    assert set(kept.n_actions) == {8}
    same, note = at_reference(runs[(runs.n_actions == 4) & (runs.action_process == "iid")])
    assert note is None and len(same) == 2 * 2


def test_reference_values_are_the_schema_defaults():
    assert reference_values() == {"hidden_size": 96, "cell": "gru", "n_actions": 4,
                                  "action_process": "iid", "stay_prob": 0.9}
    assert varying_factors(pd.DataFrame({"condition": ["a", "b"]})) == []


def make_job(root: Path, run_id: str, seed: int, overrides: list[str], env: dict) -> None:
    folder = root / run_id
    (folder / ".hydra").mkdir(parents=True)
    config = {"seed": seed, "model": {"hidden_size": 8, "cell": "gru"}, "env": env}
    choices = {"condition": "shared_bidirectional", "env": "linear", "model": "shared_gru",
               "objective": "bidirectional", "data_pairing": "paired"}
    OmegaConf.save(OmegaConf.create(config), folder / ".hydra" / "config.yaml")
    OmegaConf.save(OmegaConf.create(overrides + [f"seed={seed}"]),
                   folder / ".hydra" / "overrides.yaml")
    OmegaConf.save(OmegaConf.create({"hydra": {"runtime": {"choices": choices}}}),
                   folder / ".hydra" / "hydra.yaml")
    summary = {"seed": seed, "frac_abs_r_gt": env["n_actions"] / 10 + seed / 1000}
    tables = {results.UNITS_FILE: pd.DataFrame({"unit": [0], "r": [0.5]}),
              results.DECODING_FILE: pd.DataFrame({"train_mode": ["perform"],
                                                   "test_mode": ["observe"], "accuracy": [0.5]}),
              results.HISTORY_FILE: pd.DataFrame({"epoch": [1]})}
    results.write_run(folder, summary, tables, None, results.folder_config_hash(folder))


def test_swept_factors_are_columns_of_every_table_and_not_part_of_the_label(tmp_path):
    i = 0
    for k in (2, 8):
        for process in ("iid", "sticky"):
            for seed in range(3):
                make_job(tmp_path, str(i), seed,
                         ["condition=shared_bidirectional", f"env.n_actions={k}",
                          f"env.action_process={process}", "train.lr=0.01"],
                         {"n_actions": k, "action_process": process, "stay_prob": 0.9})
                i += 1
    sweep = load_sweep(tmp_path)
    assert set(FACTORS) <= set(RUN_COLUMNS)
    assert set(sweep.runs.condition) == {"shared_bidirectional"}  # lr is constant: no label
    for table in (sweep.runs, sweep.units, sweep.decoding, sweep.history):
        assert {"n_actions", "action_process", "cell"} <= set(table.columns)
    table = robustness(sweep.runs, ["frac_abs_r_gt"], n_boot=100)
    assert table[GROUPED_BY].iloc[0] == "condition,n_actions,action_process"
    means = table.set_index(["n_actions", "action_process"])["mean"]
    assert means[(2, "iid")] == pytest.approx(0.201) and means[(8, "sticky")] == pytest.approx(0.801)


def test_factor_values_read_the_nested_config_and_tolerate_old_runs():
    values = factor_values({"model": {"hidden_size": 32}, "env": {"n_actions": 2}})
    assert values == {"hidden_size": 32, "cell": None, "n_actions": 2, "action_process": None,
                      "stay_prob": None}
