"""analyze_activations end to end: schema, JSON-ready summary, seeds, dead units."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from mirror_sweep.analysis import (
    AnalysisResult,
    analyze_activations,
    headline_metrics,
    permutation_null,
)

N, T, H, K = 60, 8, 12, 4
SMALL = {"n_permutations": 200, "decoding_null_permutations": 20}

REQUIRED_SUMMARY = [
    "frac_abs_r_gt", "frac_r_gt", "max_r", "min_r", "n_anti_mirror", "mean_abs_r",
    "null_mean_frac_abs_r_gt", "excess_frac_abs_r_gt", "null_mean_frac_r_gt", "excess_frac_r_gt",
    "time_centred_frac_abs_r_gt", "time_centred_frac_r_gt", "time_centred_max_r",
    "frac_congruent", "frac_congruent_chance", "median_abs_peak_lag", "frac_peak_lag_zero",
    *(f"n_sig_{kind}_{method}" for kind in ("mirror", "anti")
      for method in ("bh", "by", "bonferroni", "maxstat")),
    *(f"decode_{a}_to_{b}_{stat}" for a in ("perform", "observe") for b in ("perform", "observe")
      for stat in ("accuracy", "accuracy_relabelled", "chance", "p")),
    "cka", "cka_null_mean", "cka_p", "rsa_actions", "rsa_actions_null_mean", "rsa_action_time",
    "rsa_action_time_p", "subspace_alignment_observe_in_perform",
    "subspace_random_perform_in_observe", "best_match_frac_abs_r_gt",
    "best_match_frac_abs_r_gt_null_mean", "subset_decode_perform_to_observe_mirror_accuracy",
    "subset_decode_perform_to_observe_mirror_z", "subset_decode_observe_to_perform_random_mean",
]


def run_data(seed=0):
    """Half the units mirror a shared action-coded latent; one unit is dead."""
    rng = np.random.default_rng(seed)
    actions = rng.integers(0, K, (N, T))
    shared = rng.standard_normal((N, T, H)) + rng.standard_normal((K, H))[actions]
    perform = rng.standard_normal((N, T, H))
    observe = rng.standard_normal((N, T, H))
    perform[..., : H // 2] += 2 * shared[..., : H // 2]
    observe[..., : H // 2] += 2 * shared[..., : H // 2]
    perform[..., -1] = 0.0
    return perform.astype(np.float32), observe.astype(np.float32), actions


def test_result_schema_and_json_summary():
    perform, observe, actions = run_data()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = analyze_activations(perform, observe, actions, actions, seed=0, **SMALL)
    assert isinstance(result, AnalysisResult)
    assert list(result.units.columns[:2]) == ["unit", "r"]
    assert result.units["unit"].tolist() == list(range(H))
    assert result.units.columns.is_unique
    for column in ("p_value", "q_bh", "q_by", "p_bonferroni", "sig_maxstat", "r_time_centred",
                   "tuning_r", "congruent", "peak_lag", "peak_xcorr", "anova_p_observe",
                   "best_match_unit", "best_match_r",
                   *(f"mean_{m}_a{k}" for m in ("perform", "observe") for k in range(K))):
        assert column in result.units.columns, column
    assert list(result.decoding.columns) == [
        "train_mode", "test_mode", "accuracy", "accuracy_relabelled", "relabelling", "chance",
        "null_sd", "p_value", "n_train_sequences", "n_test_sequences"]
    assert set(result.subset_decoding["selection"]) == {"mirror", "anti", "random"}
    assert set(REQUIRED_SUMMARY) <= set(result.summary)
    assert all(type(v) in (int, float) for v in result.summary.values())
    assert all(k == k.lower() and " " not in k for k in result.summary)
    json.dumps(result.summary)


def test_results_are_consistent_across_stages():
    perform, observe, actions = run_data(1)
    result = analyze_activations(perform, observe, actions, actions, seed=3, **SMALL)
    units, summary = result.units, result.summary
    r, headline = headline_metrics(perform, observe)
    np.testing.assert_array_equal(units["r"], r)
    assert {k: summary[k] for k in headline} == pytest.approx(headline, nan_ok=True)
    assert summary["n_constant_units"] == 1 and units.iloc[-1].isna()["r"]
    assert summary["n_sig_mirror_bh"] == int(((units["q_bh"] < 0.05) & (units["r"] > 0)).sum())
    assert summary["n_sig_mirror_bh"] >= H // 2 - 1
    assert summary["frac_congruent"] == pytest.approx(units["congruent"].mean())
    null = permutation_null(perform, observe, SMALL["n_permutations"], seed=3)
    above = (1 + (null >= r - 1e-10).sum(axis=0)) / (len(null) + 1)
    below = (1 + (null <= r + 1e-10).sum(axis=0)) / (len(null) + 1)
    expected_p = np.minimum(1, 2 * np.minimum(above, below))
    np.testing.assert_allclose(units["p_value"][:-1], expected_p[:-1])
    decoding = result.decoding.set_index(["train_mode", "test_mode"])
    assert summary["decode_perform_to_observe_accuracy"] == decoding.loc[
        ("perform", "observe"), "accuracy"]


def test_same_seed_same_result_other_seed_other_null():
    perform, observe, actions = run_data(2)
    a = analyze_activations(perform, observe, actions, actions, seed=5, **SMALL)
    b = analyze_activations(perform, observe, actions, actions, seed=5, **SMALL)
    c = analyze_activations(perform, observe, actions, actions, seed=6, **SMALL)
    pd.testing.assert_frame_equal(a.units, b.units)
    pd.testing.assert_frame_equal(a.decoding, b.decoding)
    assert a.summary == pytest.approx(b.summary, nan_ok=True)
    assert not np.allclose(a.units["null_sd_r"][:-1], c.units["null_sd_r"][:-1])
    np.testing.assert_array_equal(a.units["r"], c.units["r"])


def test_threads_change_no_result():
    """With threads, the permutation null runs beside the other analyses: same results."""
    perform, observe, actions = run_data(3)
    one = analyze_activations(perform, observe, actions, actions, seed=5, **SMALL)
    for n_threads in [2, 3]:
        threaded = analyze_activations(perform, observe, actions, actions, seed=5,
                                       n_threads=n_threads, **SMALL)
        pd.testing.assert_frame_equal(threaded.units, one.units, check_exact=True)
        pd.testing.assert_frame_equal(threaded.decoding, one.decoding, check_exact=True)
        pd.testing.assert_frame_equal(threaded.subset_decoding, one.subset_decoding,
                                      check_exact=True)
        np.testing.assert_array_equal(threaded.null, one.null)
        assert json.dumps(threaded.summary) == json.dumps(one.summary)


def test_all_dead_network_does_not_crash():
    rng = np.random.default_rng(4)
    zeros = np.zeros((N, T, H), np.float32)
    actions = rng.integers(0, K, (N, T))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = analyze_activations(zeros, zeros, actions, actions, seed=0, **SMALL)
    assert result.units["r"].isna().all()
    assert result.summary["frac_abs_r_gt"] == 0.0 and result.summary["n_sig_mirror_bh"] == 0
    assert np.isnan(result.summary["maxstat_threshold_z"])
