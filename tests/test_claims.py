"""Claims verdicts on constructed tables (pure rules), then the report from a tiny real sweep."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from mirror_sweep.cli import aggregate_main
from mirror_sweep.report import claims, claims_report, paper, rules
from mirror_sweep.report.claims import CLAIMS, Claim
from mirror_sweep.report.verdicts import FAILS, HOLDS, NOT_MEASURED, TRIVIAL, evaluate_claims
from mirror_sweep.sweep.aggregate import load_sweep

MAIN = "shared_bidirectional"
CONTEXT = {"main": MAIN, "threshold_mismatch": []}


def stats(*rows) -> pd.DataFrame:
    """Rows (condition, metric, n, mean, ci_low, ci_high) as a robustness-like table."""
    return pd.DataFrame(rows, columns=["condition", "metric", "n", "mean", "ci_low", "ci_high"])


def verdicts(table: pd.DataFrame, ids: list[str]) -> dict:
    table = evaluate_claims(table, CONTEXT, [c for c in CLAIMS if c.claim_id in ids])
    return dict(zip(table["claim_id"], table["verdict"]))


def test_a_claim_that_holds_one_that_does_not_and_one_not_measured():
    table = stats((MAIN, "frac_abs_r_gt", 10, 0.33, 0.31, 0.36),   # CI overlaps [0.35, 0.40]
                  (MAIN, "frac_r_gt", 10, 0.10, 0.08, 0.12))       # CI below [0.25, 0.30]
    assert verdicts(table, ["C1", "C2", "C6a"]) == {
        "C1": HOLDS, "C2": FAILS, "C6a": NOT_MEASURED}  # separate_cores absent
    out = evaluate_claims(table, CONTEXT, [c for c in CLAIMS if c.claim_id == "C6a"])
    assert "absent" in out["note"].iloc[0] and out["n_seeds"].iloc[0] == 0


def test_one_seed_or_a_nan_ci_is_not_measured():
    table = stats((MAIN, "frac_abs_r_gt", 1, 0.37, 0.37, 0.37),
                  (MAIN, "frac_r_gt", 3, 0.27, np.nan, np.nan))
    assert verdicts(table, ["C1", "C2"]) == {"C1": NOT_MEASURED, "C2": NOT_MEASURED}


def test_no_main_condition_makes_every_main_claim_unmeasured():
    table = stats(("forward_only", "frac_abs_r_gt", 5, 0.1, 0.05, 0.15))
    out = evaluate_claims(table, {"main": None}, CLAIMS)
    assert (out.loc[out["condition"] == MAIN, "verdict"] == NOT_MEASURED).all()


def paired_rows(*rows) -> pd.DataFrame:
    """Rows (condition, reference, metric, n_pairs, mean_difference, ci_low, ci_high, p)."""
    return pd.DataFrame(rows, columns=["condition", "reference", "metric", "n_pairs",
                                       "mean_difference", "ci_low", "ci_high", "p"])


@pytest.mark.parametrize("ablation,paired,rule,verdict", [
    ((0.05, 0.02, 0.08), (-0.35, -0.40, -0.30, 0.002), rules.removes(), HOLDS),
    ((0.25, 0.22, 0.28), (-0.15, -0.20, -0.10, 0.002), rules.removes(), FAILS),  # > half
    ((0.25, 0.22, 0.28), (-0.15, -0.20, -0.10, 0.002), rules.reduces(), HOLDS),
    # unpaired CIs overlap, but the seed-paired difference is clearly below 0: reduces
    ((0.37, 0.32, 0.42), (-0.03, -0.05, -0.01, 0.004), rules.reduces(), HOLDS),
    # unpaired CIs apart, but the paired CI reaches 0: does not reduce
    ((0.25, 0.22, 0.28), (-0.15, -0.40, 0.05, 0.10), rules.reduces(), FAILS),
    ((0.25, 0.22, 0.28), (-0.15, -0.20, -0.10, 0.08), rules.reduces(), FAILS),  # p >= 0.05
])
def test_comparisons_between_conditions_use_the_seed_paired_contrast(ablation, paired, rule,
                                                                     verdict):
    table = stats((MAIN, "frac_abs_r_gt", 10, 0.40, 0.35, 0.45),
                  ("forward_only", "frac_abs_r_gt", 10, *ablation))
    context = {**CONTEXT, "paired": paired_rows(
        ("forward_only", MAIN, "frac_abs_r_gt", 10, *paired))}
    claim = Claim("X", "x", "x", "forward_only", "frac_abs_r_gt", rule, reference="main")
    out = evaluate_claims(table, context, [claim]).iloc[0]
    assert out["verdict"] == verdict
    assert out["reference_condition"] == MAIN and out["reference_mean"] == 0.40
    assert out["paired_difference"] == paired[0] and out["paired_n"] == 10
    without = evaluate_claims(table, CONTEXT, [claim]).iloc[0]  # no paired table: not decided
    assert without["verdict"] == NOT_MEASURED and "paired" in without["note"]


def test_a_claim_that_also_holds_for_a_control_is_trivial_with_the_paired_effect_shown():
    table = stats((MAIN, "min_r", 10, -0.78, -0.80, -0.76),
                  ("separate_cores", "min_r", 10, -0.725, -0.793, -0.650),  # overlaps too
                  ("untrained", "min_r", 10, -0.666, -0.70, -0.63))
    context = {**CONTEXT, "paired": paired_rows(
        (MAIN, "separate_cores", "min_r", 10, -0.055, -0.09, -0.02, 0.01),
        (MAIN, "untrained", "min_r", 10, -0.11, -0.15, -0.07, 0.002))}
    out = evaluate_claims(table, context, [c for c in CLAIMS if c.claim_id == "C4"]).iloc[0]
    assert out["verdict"] == f"{TRIVIAL}: also holds for separate_cores"
    assert out["vs_separate_cores_difference"] == -0.055 and out["vs_untrained_p"] == 0.002
    assert "vs untrained: -0.110 [-0.150, -0.070], p = 0.002 (n = 10)" in out["control_effects"]
    specific = table[table["condition"] != "separate_cores"]
    assert evaluate_claims(specific, context, [c for c in CLAIMS if c.claim_id == "C4"]
                           ).iloc[0]["verdict"] == HOLDS


def test_a_built_in_claim_is_reported_as_trivial():
    table = stats((MAIN, "frac_abs_r_gt", 10, 0.40, 0.35, 0.45),
                  ("randomized_dynamics", "frac_abs_r_gt", 10, 0.1, 0.05, 0.15))
    context = {**CONTEXT, "paired": paired_rows(
        ("randomized_dynamics", MAIN, "frac_abs_r_gt", 10, -0.3, -0.35, -0.25, 0.002))}
    out = evaluate_claims(table, context, [c for c in CLAIMS if c.claim_id == "C8"]).iloc[0]
    assert out["verdict"].startswith(f"{TRIVIAL}: randomized dynamics")


def test_a_claim_that_needs_an_analysis_not_yet_run_is_not_measured():
    table = stats((MAIN, "frac_abs_r_gt", 10, 0.40, 0.35, 0.45))
    waiting = [dataclasses.replace(c, claim_id="X1", metric="a_metric_no_run_writes",
                                   needs="an analysis still to come") for c in CLAIMS[:1]]
    out = evaluate_claims(table, CONTEXT, waiting)
    assert (out["verdict"] == NOT_MEASURED).all()
    assert out["note"].str.startswith("needs an analysis still to come").all()


def test_the_causal_claims_read_metrics_that_runs_write():
    causal = {c.metric for c in CLAIMS if c.claim_id in ("N1", "D1", "D2")}
    assert causal == {"ablation_mirror_mean_forward_loss_z",
                      "subset_decode_perform_to_observe_mirror_z",
                      "subset_decode_observe_to_perform_mirror_z"}
    assert all(c.needs is None for c in CLAIMS)


@pytest.mark.parametrize("ci_low,share,min_p,verdict", [
    (0.02, 0.9, 0.005, HOLDS),
    (0.02, 0.5, 0.005, FAILS),          # too few seeds significant
    (-0.01, 1.0, 0.005, FAILS),         # CI reaches chance
    (0.02, 1.0, 1 / 11, NOT_MEASURED),  # a null of 10 permutations cannot give p < 0.05
])
def test_decoding_needs_the_ci_above_chance_and_most_seeds_significant(ci_low, share, min_p,
                                                                      verdict):
    metric = "decode_perform_to_observe"
    table = stats((MAIN, f"{metric}_above_chance", 5, 0.1, ci_low, 0.2),
                  (MAIN, f"{metric}_significant", 5, share, 0.0, 1.0),
                  (MAIN, "decode_min_p", 5, min_p, min_p, min_p))
    assert verdicts(table, ["C5a"]) == {"C5a": verdict}


def test_threshold_claims_are_unmeasured_when_the_sweep_used_other_thresholds():
    table = stats((MAIN, "frac_abs_r_gt", 10, 0.37, 0.35, 0.39))
    out = evaluate_claims(table, {"main": MAIN, "threshold_mismatch": [MAIN]},
                          [c for c in CLAIMS if c.claim_id == "C1"])
    assert out["verdict"].iloc[0] == NOT_MEASURED and "thresholds" in out["note"].iloc[0]


def test_derived_per_run_metrics():
    runs = pd.DataFrame({
        "condition": [MAIN] * 2, "seed": [0, 1],
        "decode_perform_to_observe_accuracy": [0.6, 0.3],
        "decode_perform_to_observe_chance": [0.25, 0.25],
        "decode_perform_to_observe_p": [0.01, 0.2],
        "frac_abs_r_gt": [0.4, 0.3], "untrained_frac_abs_r_gt": [0.1, 0.1],
        "analysis.decoding_null_permutations": [199, 199]})
    out = claims.derive_metrics(runs)
    np.testing.assert_allclose(out["decode_perform_to_observe_above_chance"], [0.35, 0.05])
    np.testing.assert_allclose(out["decode_perform_to_observe_significant"], [1.0, 0.0])
    np.testing.assert_allclose(out["frac_abs_r_gt_over_untrained"], [0.3, 0.2])
    np.testing.assert_allclose(out["decode_min_p"], 0.005)
    assert "decode_perform_to_observe_above_chance" not in runs  # the input is not modified


def test_unit_counted_and_share_of_seed_metrics():
    runs = pd.DataFrame({"run_id": ["0", "1"], "condition": [MAIN] * 2, "seed": [0, 1],
                         "max_r": [0.90, 0.80], "min_r": [-0.5, -0.77]})
    units = pd.DataFrame({"run_id": ["0"] * 4 + ["1"] * 4,
                          "r": [0.9, 0.87, 0.45, -0.55, 0.8, 0.2, 0.31, np.nan]})
    out = claims.derive_metrics(runs, units=units).set_index("run_id")
    assert out["reaches_max_r"].tolist() == [1.0, 0.0]       # max r >= 0.862
    assert out["reaches_abs_r"].tolist() == [1.0, 1.0]       # max |r| >= 0.75
    assert out["n_units_near_max_r"].tolist() == [2, 0]
    assert out["frac_abs_r_gt_strong"].tolist() == [0.75, 0.25]  # |r| > 0.5 of all units
    assert out["frac_r_gt_weak"].tolist() == [0.75, 0.5]  # a nan unit counts in the denominator


def test_main_condition_label():
    assert paper.main_condition(pd.DataFrame({"condition": [MAIN, "x"]})) == MAIN
    plain = pd.DataFrame({"condition": ["default"], "model": ["shared_gru"]})
    assert paper.main_condition(plain) == "default"
    other = pd.DataFrame({"condition": ["default"], "model": ["separate_gru"]})
    assert paper.main_condition(other) is None


def test_every_claim_has_a_rule_and_unique_id():
    ids = [c.claim_id for c in CLAIMS]
    assert len(ids) == len(set(ids))
    for claim in CLAIMS:
        assert isinstance(claim.rule, rules.Rule) and claim.rule_text().startswith("holds")


def test_claims_report_from_a_tiny_sweep(tiny_sweep, tmp_path):
    sweep = load_sweep(tiny_sweep)
    table = claims_report.write_claims(sweep, tmp_path, n_boot=500)
    saved = pd.read_csv(tmp_path / "claims.csv")
    assert list(saved.columns[:11]) == ["claim_id", "claim", "paper_value", "condition", "metric",
                                        "measured_mean", "ci_low", "ci_high", "n_seeds",
                                        "verdict", "rule"]
    assert len(saved) == len(CLAIMS)
    assert all(v in {HOLDS, FAILS, NOT_MEASURED} or v.startswith(TRIVIAL)
               for v in saved["verdict"])
    by_id = table.set_index("claim_id")
    assert by_id.loc["C1", "n_seeds"] == 2 and by_id.loc["C1", "verdict"] != NOT_MEASURED
    assert by_id.loc["C7a", "verdict"] == NOT_MEASURED  # independent_pairing not swept
    assert by_id.loc["C5a", "verdict"] == NOT_MEASURED  # B = 10: p >= 1/11 always
    text = (tmp_path / "claims.md").read_text()
    assert "## Rules" in text and "model.hidden_size: 8 (paper: 96)" in text


def test_mirror_aggregate_prints_the_claims_and_skips_figures_on_request(tiny_sweep, tmp_path,
                                                                        capsys):
    out = tmp_path / "aggregate"
    assert aggregate_main([str(tiny_sweep), "--out", str(out), "--no-figures",
                           "--n-boot", "200"]) == 0
    printed = capsys.readouterr().out
    assert "C1" in printed and "n=2" in printed and "claims.md" in printed
    assert (out / "claims.csv").exists() and not (out / "figures").exists()


def test_without_an_untrained_condition_the_runs_own_initial_weights_are_the_control():
    table = stats((MAIN, "min_r", 10, -0.78, -0.80, -0.76),
                  (MAIN, "untrained_min_r", 10, -0.77, -0.79, -0.75))  # overlaps [-1, -0.741]
    context = {**CONTEXT, "paired": paired_rows(
        (MAIN, "initial_weights", "min_r", 10, -0.01, -0.03, 0.01, 0.3))}
    out = evaluate_claims(table, context, [c for c in CLAIMS if c.claim_id == "C4"]).iloc[0]
    assert out["verdict"] == f"{TRIVIAL}: also holds for untrained"
    assert out["vs_untrained_difference"] == -0.01 and out["vs_untrained_n_pairs"] == 10


def test_population_claims_are_judged_on_their_own_and_against_both_controls():
    ids = [c.claim_id for c in claims.population_claims()]
    assert ids[:3] == ["P1", "P1u", "P1s"] and len(ids) == 3 * len(claims.POPULATION_CLAIMS)
    table = stats((MAIN, "cka_over_null", 10, 0.6, 0.55, 0.65),
                  (MAIN, "cka", 10, 0.7, 0.65, 0.75),
                  ("untrained", "cka", 10, 0.3, 0.25, 0.35),
                  ("separate_cores", "cka", 10, 0.68, 0.6, 0.76))
    context = {**CONTEXT, "paired": paired_rows(
        (MAIN, "untrained", "cka", 10, 0.4, 0.35, 0.45, 0.002),
        # the paired CI is above 0 but the sign-flip p is not below 0.05: not "exceeds"
        (MAIN, "separate_cores", "cka", 10, 0.02, 0.001, 0.04, 0.08))}
    out = evaluate_claims(table, context, [c for c in CLAIMS if c.claim_id in
                                           ("P1", "P1u", "P1s", "N1")])
    assert dict(zip(out["claim_id"], out["verdict"])) == {
        "P1": HOLDS, "P1u": HOLDS, "P1s": FAILS, "N1": NOT_MEASURED}
    row = out.set_index("claim_id").loc["P1s"]
    assert row["reference_condition"] == "separate_cores" and row["paired_p"] == 0.08
    assert "sign-flip p" in row["rule"]


def test_without_an_untrained_condition_the_runs_initial_weights_stand_in():
    table = stats((MAIN, "cka", 10, 0.7, 0.65, 0.75), (MAIN, "untrained_cka", 10, 0.3, 0.25, 0.35))
    context = {**CONTEXT, "paired": paired_rows(
        (MAIN, "initial_weights", "cka", 10, 0.4, 0.35, 0.45, 0.002))}
    out = evaluate_claims(table, context, [c for c in CLAIMS if c.claim_id == "P1u"]).iloc[0]
    assert out["verdict"] == HOLDS and out["paired_difference"] == 0.4
    assert out["reference_condition"] == "untrained (the runs' initial weights)"
    assert out["reference_mean"] == 0.3
    # neither an untrained condition nor a twin: not measured
    out = evaluate_claims(table.iloc[:1], context,
                          [c for c in CLAIMS if c.claim_id == "P1u"]).iloc[0]
    assert out["verdict"] == NOT_MEASURED


def test_population_contrasts_come_from_the_seed_paired_table():
    from mirror_sweep.report.stats import report_contrasts
    runs = pd.DataFrame({
        "condition": [MAIN] * 3 + ["separate_cores"] * 3, "seed": [0, 1, 2] * 2,
        "cka": [0.7, 0.8, 0.75, 0.5, 0.4, 0.45],
        "untrained_cka": [0.3, 0.35, 0.3, 0.3, 0.2, 0.25]})
    paired = report_contrasts(runs, n_boot=200)
    row = paired[(paired["condition"] == MAIN) & (paired["reference"] == "separate_cores")
                 & (paired["metric"] == "cka")].iloc[0]
    assert row["n_pairs"] == 3 and np.isclose(row["mean_difference"], 0.3)
    assert row["p"] == 0.25  # exact sign-flip p: 2 of 2^3 sign vectors as extreme
    twin = paired[(paired["condition"] == MAIN) & (paired["reference"] == "initial_weights")
                  & (paired["metric"] == "cka")].iloc[0]
    assert np.isclose(twin["mean_difference"], (0.4 + 0.45 + 0.45) / 3)


def test_derived_population_metrics():
    runs = pd.DataFrame({"condition": [MAIN, "separate_cores"], "seed": [0, 0],
                         "cka": [0.7, 0.5], "cka_null_mean": [0.05, 0.02],
                         "ablation_mirror_mean_observe_accuracy_z": [-2.0, 0.5]})
    out = claims.derive_metrics(runs)
    np.testing.assert_allclose(out["cka_over_null"], [0.65, 0.48])
    np.testing.assert_allclose(out["ablation_mirror_mean_observe_accuracy_harm_z"], [2.0, -0.5])
    assert not [c for c in out if "_minus_" in c]  # the controls are compared in contrasts
