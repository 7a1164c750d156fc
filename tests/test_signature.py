"""The signature table ("which design reproduces the paper's pattern") on planted per-run data."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mirror_sweep.report.signature import signature_markdown, signature_table
from mirror_sweep.report.verdicts import FAILS, HOLDS, NOT_MEASURED


def planted_runs(n_seeds: int = 8) -> pd.DataFrame:
    """A paper-like main condition, a weak ablation, and a strong design with no anti-mirrors."""
    rng = np.random.default_rng(3)
    designs = {  # frac_abs, frac_pos, n_anti, decoding accuracy
        "shared_bidirectional": (0.37, 0.27, 3, 0.60),
        "separate_cores": (0.02, 0.00, 0, 0.25),
        "shared_readout": (0.86, 0.68, 0, 0.90),
    }
    rows = []
    for condition, (frac_abs, frac_pos, n_anti, accuracy) in designs.items():
        for seed in range(n_seeds):
            noise = rng.normal(0, 0.01)
            rows.append({"run_id": f"{condition}{seed}", "condition": condition, "seed": seed,
                         "hidden_size": 96, "frac_abs_r_gt": frac_abs + noise,
                         "frac_r_gt": frac_pos + noise, "n_anti_mirror": n_anti,
                         "min_r": -0.8 if n_anti else 0.1,
                         "decode_perform_to_observe_accuracy": accuracy + noise,
                         "decode_perform_to_observe_chance": 0.25,
                         "decode_observe_to_perform_accuracy": accuracy + noise,
                         "decode_observe_to_perform_chance": 0.25,
                         "analysis.abs_threshold": 0.6, "analysis.pos_threshold": 0.75})
    return pd.DataFrame(rows)


def test_each_condition_is_scored_on_the_measured_values():
    table = signature_table(planted_runs(), n_boot=500).set_index("condition")
    main = table.loc["shared_bidirectional"]
    assert [main[s] for s in ("S1", "S2", "S3", "S4", "S5")] == [HOLDS] * 5
    assert main["score"] == "5 of 5 measured hold"
    assert abs(main["frac_abs_r_gt_mean"] - 0.37) < 0.01
    readout = table.loc["shared_readout"]
    assert [readout[s] for s in ("S1", "S2", "S3", "S4")] == [FAILS, FAILS, FAILS, HOLDS]
    assert readout["S5"] == NOT_MEASURED  # ablations are ablations of the paper's design
    assert table.loc["separate_cores", "S4"] == FAILS


def test_other_thresholds_leave_the_fractions_unmeasured_and_factors_split_rows():
    runs = planted_runs()
    runs.loc[runs.condition == "shared_readout", "analysis.abs_threshold"] = 0.5
    runs = pd.concat([runs, runs.assign(hidden_size=32)], ignore_index=True)
    table = signature_table(runs, n_boot=200)
    assert len(table) == 6 and list(table.columns[:2]) == ["condition", "hidden_size"]
    readout = table[table.condition == "shared_readout"]
    assert (readout["S1"] == NOT_MEASURED).all()
    text = signature_markdown(table)
    assert "## Which design reproduces the paper's pattern" in text
    assert text.count("| shared_bidirectional |") == 2
    rows = [line.replace("\\|", "") for line in text.splitlines() if line.startswith("|")]
    assert len({row.count("|") for row in rows}) == 1  # every row has the header's columns


def test_the_ci_method_of_mirror_aggregate_reaches_the_signature_table():
    runs = planted_runs()
    t = signature_table(runs, n_boot=500, ci="t").set_index("condition")
    percentile = signature_table(runs, n_boot=500, ci="percentile").set_index("condition")
    low = [c for c in t.columns if c.endswith("ci_low")][0]
    main = "shared_bidirectional"
    assert t.loc[main, low] != percentile.loc[main, low]  # a t interval is wider at n = 8
    assert t.loc[main, low] < percentile.loc[main, low]
