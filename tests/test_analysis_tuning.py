"""Action tuning, ANOVA selectivity and congruence against pandas/scipy and planted tuning."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from mirror_sweep.analysis.tuning import (
    MIN_ETA2,
    action_means,
    anova_units,
    congruence_chance,
    eta_squared,
    mode_index,
    pair_chance,
    sequence_permutation_eta2,
    sequence_selectivity,
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


def loop_eta2(x, actions):
    """Plain reference: SS_between / SS_total per unit, one unit and one action at a time."""
    flat, a = x.reshape(-1, x.shape[2]), actions.ravel()
    out = []
    for u in range(flat.shape[1]):
        v = flat[:, u]
        between = sum(np.sum(a == k) * (v[a == k].mean() - v.mean()) ** 2 for k in set(a))
        out.append(between / np.sum((v - v.mean()) ** 2))
    return np.array(out)


def test_sequence_permutation_null_equals_a_plain_loop():
    rng = np.random.default_rng(6)
    actions = rng.integers(0, K, (N, T))
    x = tuned(rng, actions, [0, 1, 2, 3] + [-1] * (H - 4), gain=0.5)
    np.testing.assert_allclose(eta_squared(x, actions, K), loop_eta2(x, actions))
    null = sequence_permutation_eta2(x, actions, K, 20, seed=3)
    perms = np.random.default_rng(3).permuted(np.tile(np.arange(N), (20, 1)), axis=1)
    for b in (0, 13):
        # float32 product: agreement to ~1e-6 relative
        np.testing.assert_allclose(null[b], loop_eta2(x, actions[perms[b]]), rtol=1e-5)


def test_sequence_level_test_is_not_fooled_by_shared_sequence_structure():
    """Labels constant within a sequence + a per-sequence offset: the pooled ANOVA calls every
    unit selective, the sequence-level test (correctly) almost none."""
    rng = np.random.default_rng(7)
    actions = np.repeat(rng.integers(0, K, (N, 1)), T, axis=1)
    x = rng.standard_normal((N, T, H)) * 0.3 + rng.standard_normal((N, 1, H))
    _, p_anova = anova_units(x, actions, K)
    _, p_seq = sequence_selectivity(x, actions, K, 500, seed=0)
    assert np.mean(p_anova < ALPHA) > 0.15  # pooled samples: anti-conservative
    units, _ = tuning_table(x, x, actions, actions, n_actions=K, alpha=ALPHA,
                            n_permutations=500)
    assert units["selective_perform"].sum() <= 1
    assert abs(np.mean(p_seq < ALPHA) - ALPHA) < 0.2


def test_effect_size_floor_drops_tiny_but_significant_tuning():
    rng = np.random.default_rng(8)
    actions = rng.integers(0, K, (400, T))
    x = rng.standard_normal((400, T, 2))
    x[..., 0] += 0.25 * (actions == 1)   # eta^2 ~ 0.01: significant with 3,200 samples, tiny
    x[..., 1] += 1.5 * (actions == 1)    # eta^2 ~ 0.3
    units, _ = tuning_table(x, x, actions, actions, n_actions=K, alpha=ALPHA,
                            n_permutations=200)
    assert units["selectivity_p_perform"].max() < 0.01
    assert units["eta2_perform"][0] < MIN_ETA2 < units["eta2_perform"][1]
    assert units["selective_perform"].tolist() == [False, True]


def test_strict_broad_and_argmax_congruence_on_planted_curves():
    """Units: 0 same curve (strict); 1 top two actions swapped (broad, argmax-incongruent);
    2 opposite curves (neither); 3 not selective in observe."""
    rng = np.random.default_rng(9)
    actions = rng.integers(0, K, (N, T))
    curves_p = np.array([[0, 1, 2, 3], [0, 1, 2, 3], [0, 1, 2, 3], [0, 1, 2, 3]], float)
    curves_o = np.array([[0, 1, 2, 3], [0, 1, 3, 2.6], [3, 2, 1, 0], [0, 0, 0, 0]], float)
    noise = lambda: 0.5 * rng.standard_normal((N, T, 4))
    perform = curves_p.T[actions] + noise()
    observe = curves_o.T[actions] + noise()
    units, summary = tuning_table(perform, observe, actions, actions, n_actions=K, alpha=ALPHA,
                                  n_permutations=200)
    assert units["selective_both"].tolist() == [True, True, True, False]
    assert units["congruent"].tolist() == [True, False, False, False]
    assert units["congruent_strict"].tolist() == [True, False, False, False]
    assert units["congruent_broad"].tolist() == [False, True, False, False]
    assert units["tuning_r"][1] > 0.8  # the case the argmax rule calls incongruent
    assert summary["frac_congruent_strict"] == 0.25 and summary["frac_congruent_broad"] == 0.25


def test_pair_chance_is_the_off_diagonal_share():
    classes = np.array([[1, 1, 0], [0, 1, 0], [1, 0, 0]], bool)
    assert pair_chance(classes) == pytest.approx(2 / 6)


def test_mode_index_of_a_planted_anti_mirror_unit():
    rng = np.random.default_rng(10)
    shared = rng.standard_normal((N, T, 1))
    perform = np.concatenate([1.0 + shared, shared], axis=2)     # unit 0: higher in perform
    observe = np.concatenate([-shared, shared], axis=2)          # r = -1 / +1
    index = mode_index(perform, observe)
    expected = (1.0 + 2 * shared.mean()) / shared.std()
    assert index[0] == pytest.approx(expected, rel=1e-9) and index[1] == 0
    _, summary = tuning_table(perform, observe, rng.integers(0, K, (N, T)),
                                  rng.integers(0, K, (N, T)), n_actions=K, alpha=ALPHA,
                                  n_permutations=50, r=np.array([-1.0, 1.0]))
    assert summary["n_anti_mode_units"] == 1
    assert summary["median_mode_index_anti"] == pytest.approx(index[0])
    assert summary["frac_anti_perform_over_observe"] == 1.0
    assert summary["frac_anti_mode_selective"] == 1.0
