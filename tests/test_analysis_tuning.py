"""Action tuning, ANOVA selectivity and congruence against pandas/scipy and planted tuning."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from mirror_sweep.analysis.tuning import (
    action_means,
    anova_units,
    congruence_chance,
    tuning_correlation,
    tuning_table,
)

N, T, H, K = 60, 8, 12, 4
ALPHA = 0.05


def tuned(rng, actions, preferred, gain=1.0):
    """(N, T, H) noise plus `gain` on units whose preferred[u] action is current (-1: none)."""
    x = rng.standard_normal((N, T, H))
    for u, a in enumerate(preferred):
        if a >= 0:
            x[..., u] += gain * (actions == a)
    return x


def test_action_means_match_pandas_groupby():
    rng = np.random.default_rng(0)
    actions = rng.integers(0, K, (N, T))
    x = rng.standard_normal((N, T, H))
    means, counts = action_means(x, actions, K)
    frame = pd.DataFrame(x.reshape(-1, H)).assign(a=actions.ravel())
    np.testing.assert_allclose(means, frame.groupby("a").mean().to_numpy())
    np.testing.assert_array_equal(counts, np.bincount(actions.ravel(), minlength=K))


def test_missing_action_gives_nan_mean_and_is_left_out_of_anova():
    rng = np.random.default_rng(1)
    actions = rng.integers(0, K - 1, (N, T))  # action K-1 never occurs
    x = rng.standard_normal((N, T, H))
    means, _ = action_means(x, actions, K)
    assert np.isnan(means[K - 1]).all() and np.isfinite(means[: K - 1]).all()
    f, _ = anova_units(x, actions, K)
    groups = [x.reshape(-1, H)[actions.ravel() == a] for a in range(K - 1)]
    np.testing.assert_allclose(f, scipy.stats.f_oneway(*groups).statistic)


def test_anova_matches_scipy_f_oneway():
    rng = np.random.default_rng(2)
    actions = rng.integers(0, K, (N, T))
    x = tuned(rng, actions, [0, 1, 2, 3] + [-1] * (H - 4), gain=0.3)
    f, p = anova_units(x, actions, K)
    groups = [x.reshape(-1, H)[actions.ravel() == a] for a in range(K)]
    ref = scipy.stats.f_oneway(*groups)
    np.testing.assert_allclose(f, ref.statistic)
    np.testing.assert_allclose(p, ref.pvalue, atol=1e-12)


def test_planted_congruent_and_incongruent_units():
    rng = np.random.default_rng(3)
    a_perform = rng.integers(0, K, (N, T))
    a_observe = rng.integers(0, K, (N, T))  # a different (broken-pairing) label set
    pref_p = [1, 2, 3, 1] + [-1] * (H - 4)
    pref_o = [1, 2, 3, 2] + [-1] * (H - 4)  # unit 3 is selective in both but incongruent
    perform = tuned(rng, a_perform, pref_p)
    observe = tuned(rng, a_observe, pref_o)
    units, summary = tuning_table(perform, observe, a_perform, a_observe, n_actions=K,
                                  alpha=ALPHA)
    assert units["selective_both"][:4].all() and not units["selective_both"][4:].any()
    assert units["congruent"].tolist() == [True] * 3 + [False] * (H - 3)
    assert units["preferred_action_perform"][:4].tolist() == pref_p[:4]
    assert units["preferred_action_observe"][:4].tolist() == pref_o[:4]
    assert (units["tuning_r"][:3] > 0.8).all() and units["tuning_r"][3] < 0.5
    assert summary["frac_congruent"] == pytest.approx(3 / H)
    assert summary["frac_selective_both"] == pytest.approx(4 / H)
    # chance: among the 4 selective units, perform prefs {1,2,3,1}, observe prefs {1,2,3,2}
    assert summary["frac_congruent_chance"] == pytest.approx(4 / H * (2 * 1 + 1 * 2 + 1) / 16)


def test_congruence_chance_is_one_over_k_for_uniform_preferences():
    pref = np.repeat(np.arange(K), 3)
    both = np.ones(len(pref), bool)
    assert congruence_chance(pref, np.roll(pref, 3), both, K) == pytest.approx(1 / K)
    assert congruence_chance(pref, pref, np.zeros(len(pref), bool), K) == 0.0


def test_tuning_correlation_matches_pearsonr_per_unit():
    rng = np.random.default_rng(4)
    m_p, m_o = rng.standard_normal((K, H)), rng.standard_normal((K, H))
    ref = [scipy.stats.pearsonr(m_p[:, u], m_o[:, u]).statistic for u in range(H)]
    np.testing.assert_allclose(tuning_correlation(m_p, m_o), ref)


def test_constant_unit_has_no_tuning_and_no_warning():
    rng = np.random.default_rng(5)
    actions = rng.integers(0, K, (N, T))
    perform = tuned(rng, actions, [1] * H)
    observe = tuned(rng, actions, [1] * H)
    perform[..., 0] = 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        units, _ = tuning_table(perform, observe, actions, actions, n_actions=K, alpha=ALPHA)
    row = units.loc[0]
    assert np.isnan(row["anova_f_perform"]) and np.isnan(row["tuning_r"])
    assert row["preferred_action_perform"] == -1 and not row["congruent"]
    assert units["congruent"][1:].all()
