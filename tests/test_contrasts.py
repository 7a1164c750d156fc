"""Seed-paired contrasts and the CI methods of an across-seed mean, on planted run tables."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mirror_sweep.sweep import contrasts as contrasts_module
from mirror_sweep.sweep.contrasts import (
    CONTRAST_COLUMNS,
    INITIAL_WEIGHTS,
    MONTE_CARLO_MAX_PAIRS,
    contrasts,
    mean_cis,
    paired_differences,
    sign_flip_pvalue,
    sign_flip_pvalues,
)
from mirror_sweep.sweep.summaries import mean_ci, robustness


def planted_runs(n_seeds=10, shift=0.02, seed_sd=0.05, noise_sd=0.005, rng_seed=0):
    """Two conditions sharing seeds: a large per-seed effect common to both, plus `shift`."""
    rng = np.random.default_rng(rng_seed)
    seed_effect = rng.normal(0.3, seed_sd, n_seeds)
    rows = []
    for s in range(n_seeds):
        for condition, offset in (("main", shift), ("separate_cores", 0.0)):
            value = seed_effect[s] + offset + rng.normal(0, noise_sd)
            rows.append({"condition": condition, "seed": 100 + s, "frac_abs_r_gt": value,
                         "untrained_frac_abs_r_gt": seed_effect[s] - 0.1})
    return pd.DataFrame(rows)


def brute_force_sign_flip(d):
    """Every sign vector by itertools: share with |sum| at least the observed |sum|."""
    observed = abs(sum(d))
    hits = [abs(sum(e * x for e, x in zip(signs, d))) >= observed - 1e-12
            for signs in itertools.product([1, -1], repeat=len(d))]
    return sum(hits) / len(hits)


def test_sign_flip_p_is_exact_for_ten_pairs():
    rng = np.random.default_rng(1)
    for _ in range(5):
        d = rng.normal(0.3, 1.0, 10)
        assert sign_flip_pvalue(d) == pytest.approx(brute_force_sign_flip(d), abs=1e-15)
    assert sign_flip_pvalue(np.full(10, 0.1)) == pytest.approx(2 / 2**10)  # the exact floor
    assert sign_flip_pvalue(np.zeros(4)) == 1.0
    assert np.isnan(sign_flip_pvalue(np.array([])))


def test_sign_flip_p_monte_carlo_beyond_the_exact_limit_is_close():
    d = np.random.default_rng(2).normal(0.4, 1.0, 20)
    exact = brute_force_sign_flip(d[:16])
    assert sign_flip_pvalue(d[:16]) == pytest.approx(exact)
    ref = stats.permutation_test((d,), np.mean, permutation_type="samples", n_resamples=np.inf
                                 ).pvalue
    assert sign_flip_pvalue(d) == pytest.approx(ref, abs=0.01)


def test_batched_p_values_equal_one_call_each_and_bound_the_product(monkeypatch):
    rng = np.random.default_rng(3)
    ds = [rng.normal(0.2, 1.0, n) for n in (10, 10, 20, 20, 20, 0, 150, 150)]
    one_each = [sign_flip_pvalue(d, seed=4) for d in ds]
    monkeypatch.setattr(contrasts_module, "_PRODUCT_MAX", 3000)  # several column chunks
    together = sign_flip_pvalues(ds, seed=4)
    np.testing.assert_array_equal(np.isnan(together), np.isnan(one_each))
    assert together[~np.isnan(together)].tolist() == pytest.approx(
        [p for p in one_each if not np.isnan(p)], abs=1e-15)


@pytest.mark.parametrize("ci", ["t", "bca"])
def test_batched_means_and_cis_equal_one_call_each_bit_for_bit(monkeypatch, ci):
    """mean_cis computes t CIs of equal-length differences together: the same floats as one
    mean_ci call (and d.mean()) each, also across blocks; bootstrap CIs one call each."""
    rng = np.random.default_rng(5)
    ds = [rng.normal(rng.uniform(-1, 1), 10 ** rng.uniform(-4, 3), n)
          for n in (1, 2, 2, 7, 7, 7, 33, 33, 1000, 1000, 1000)]
    monkeypatch.setattr(contrasts_module, "_CI_BLOCK", 2)  # several blocks of one length
    together = mean_cis(ds, ci, n_boot=200, seed=3)
    one_each = np.array([[d.mean(), *mean_ci(d[:, None], ci, 200, 3, 0.95)[0]] for d in ds])
    np.testing.assert_array_equal(together, one_each)  # NaN CIs (n = 1) included


def test_sign_flip_p_beyond_the_monte_carlo_limit_is_the_normal_approximation():
    n = MONTE_CARLO_MAX_PAIRS + 50
    d = np.random.default_rng(5).normal(0.1, 1.0, n)
    z = abs(d.sum()) / np.sqrt((d**2).sum())
    assert sign_flip_pvalue(d) == pytest.approx(2 * stats.norm.sf(z), rel=1e-12)
    ref = stats.permutation_test((d,), np.mean, permutation_type="samples", n_resamples=20_000,
                                 random_state=0).pvalue
    assert sign_flip_pvalue(d) == pytest.approx(ref, abs=0.02)
    assert sign_flip_pvalue(np.zeros(n)) == 1.0


def test_paired_shift_is_found_where_the_unpaired_rule_misses_it():
    runs = planted_runs()
    table = robustness(runs, ["frac_abs_r_gt"]).set_index("condition")
    # The unpaired rule ("reduces": the CIs do not overlap) sees nothing: seed variation dominates.
    assert table.loc["separate_cores", "ci_high"] > table.loc["main", "ci_low"]
    result = contrasts(runs, ["frac_abs_r_gt"])
    assert list(result.columns) == CONTRAST_COLUMNS
    row = result.set_index(["condition", "reference"]).loc[("main", "separate_cores")]
    d = paired_differences(runs, "main", "separate_cores", "frac_abs_r_gt")
    assert row.n_pairs == 10 and row.mean_difference == pytest.approx(d.mean())
    assert row.ci_low > 0 and abs(row.mean_difference - 0.02) < 0.01  # the planted shift
    assert row.p == pytest.approx(brute_force_sign_flip(d.to_numpy())) and row.p < 0.01
    back = result.set_index(["condition", "reference"]).loc[("separate_cores", "main")]
    assert back.mean_difference == pytest.approx(-row.mean_difference) and back.p == row.p


def test_contrasts_pair_by_seed_only_and_use_the_untrained_twin():
    runs = planted_runs(shift=0.0)
    runs = runs.drop(index=runs.index[(runs.condition == "main") & (runs.seed == 100)])
    runs.loc[(runs.condition == "separate_cores") & (runs.seed == 101), "frac_abs_r_gt"] = np.nan
    result = contrasts(runs, ["frac_abs_r_gt"]).set_index(["condition", "reference"])
    assert result.loc[("main", "separate_cores"), "n_pairs"] == 8
    untrained = result.loc[("separate_cores", INITIAL_WEIGHTS)]
    assert untrained.n_pairs == 9
    sep = runs[runs.condition == "separate_cores"].dropna()
    assert untrained.mean_difference == pytest.approx(
        (sep.frac_abs_r_gt - sep.untrained_frac_abs_r_gt).mean())


def test_contrasts_within_each_hidden_size():
    runs = pd.concat([planted_runs().assign(hidden_size=h) for h in (8, 16)], ignore_index=True)
    result = contrasts(runs, ["frac_abs_r_gt"])
    assert list(result.columns[:2]) == ["hidden_size", "condition"]
    assert (result.n_pairs == 10).all() and len(result) == 2 * 4


def test_t_interval_is_the_textbook_one():
    x = np.random.default_rng(3).normal(0.5, 0.1, (10, 2))
    low, high = mean_ci(x, "t", 1000, 0, 0.95).T
    ref = stats.t.interval(0.95, 9, loc=x.mean(axis=0), scale=stats.sem(x, axis=0))
    np.testing.assert_allclose([low, high], ref)
    assert np.isnan(mean_ci(x[:1], "t", 1000, 0, 0.95)).all()


def test_bca_agrees_with_scipy_and_constant_columns_are_points():
    x = np.random.default_rng(4).lognormal(0, 0.8, (25, 1))  # skewed: BCa differs from percentile
    low, high = mean_ci(x, "bca", 20_000, 0, 0.95)[0]
    ref = stats.bootstrap((x[:, 0],), np.mean, n_resamples=20_000, method="BCa",
                          random_state=1).confidence_interval
    assert low == pytest.approx(ref.low, abs=0.03) and high == pytest.approx(ref.high, abs=0.05)
    pct = mean_ci(x, "percentile", 20_000, 0, 0.95)[0]
    assert high > pct[1]  # right skew moves the BCa interval up
    np.testing.assert_array_equal(mean_ci(np.full((5, 1), 0.3), "bca", 100, 0, 0.95), [[0.3, 0.3]])


def test_bad_ci_method_is_named():
    with pytest.raises(ValueError, match="ci must be one of t, bca, percentile, got 'z'"):
        robustness(planted_runs(), ["frac_abs_r_gt"], ci="z")


def test_bootstrap_means_in_blocks_equal_one_count_matrix(monkeypatch):
    from mirror_sweep.sweep import summaries

    values = np.random.default_rng(7).normal(size=(37, 3))
    whole = summaries.bootstrap_means(values, 500, seed=2)
    idx = np.random.default_rng(2).integers(0, 37, size=(500, 37))
    np.testing.assert_allclose(whole, values[idx].mean(axis=1), rtol=1e-12)
    monkeypatch.setattr(summaries, "_BOOT_BLOCK", 37 * 7)  # blocks of 7 resamples, last partial
    # the same resamples (a block's matrix product may round the last bit differently)
    np.testing.assert_allclose(summaries.bootstrap_means(values, 500, seed=2), whole,
                               rtol=1e-13, atol=1e-15)
