"""The vectorized sequence re-pairing permutation test against loops, scipy and planted data."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from mirror_sweep.analysis import headline_metrics, permutation_null
from mirror_sweep.analysis.multiple_testing import bh_qvalues, bonferroni, by_qvalues
from mirror_sweep.analysis.permutation import (
    draw_sequence_permutations,
    maxstat_threshold,
    null_from_cross_products,
    one_sided_pvalues,
    pairing_cross_products,
    permutation_pvalues,
    permutation_table,
)

N, T, H = 60, 8, 12
ALPHA = 0.05


def ar_noise(rng, n=N, t=T, h=H, rho=0.8):
    """(n, t, h) AR(1)-in-time noise plus a per-sequence offset: samples are far from iid."""
    x = np.empty((n, t, h))
    x[:, 0] = rng.standard_normal((n, h))
    for step in range(1, t):
        x[:, step] = rho * x[:, step - 1] + np.sqrt(1 - rho**2) * rng.standard_normal((n, h))
    return x + rng.standard_normal((n, 1, h))


def planted(rng, n_planted=4, weight=0.7):
    """Units < n_planted share a sequence-specific latent across modes; the rest are noise."""
    perform, observe = ar_noise(rng), ar_noise(rng)
    shared = ar_noise(rng, h=n_planted)
    perform[..., :n_planted] += weight * shared
    observe[..., :n_planted] += weight * shared
    return perform, observe


def loop_null_one_unit(p_unit, o_unit, perms):
    """Plain reference: Pearson r of (perform[n], observe[perm[n]]) for each permutation."""
    out = []
    for perm in perms:
        out.append(np.corrcoef(p_unit.ravel(), o_unit[perm].ravel())[0, 1])
    return np.array(out)


def test_vectorized_null_equals_a_plain_loop_for_the_same_permutations():
    rng = np.random.default_rng(0)
    perform, observe = planted(rng)
    perms = draw_sequence_permutations(N, 300, seed=11)
    null = permutation_null(perform, observe, 300, seed=11)
    for unit in (0, 7):
        ref = loop_null_one_unit(perform[..., unit], observe[..., unit], perms)
        np.testing.assert_allclose(null[:, unit], ref, atol=1e-12)


def test_null_has_the_bits_of_a_sparse_product_summing_in_sequence_order():
    """The null sums cross[n, pi(n)] in increasing n, as a 0/1 sparse product does: the values
    of runs made before the sums were reordered for the cache stay the same, bit for bit."""
    import scipy.sparse

    rng = np.random.default_rng(2)
    perform, observe = planted(rng)
    perform[..., 3] = 1.5  # a constant unit: its column is nan either way
    cross = pairing_cross_products(perform, observe)
    perms = draw_sequence_permutations(N, 4500, seed=8)  # 3 chunks, the last one partial
    offsets = np.arange(N) * N
    select = scipy.sparse.csr_matrix(
        (np.ones(perms.size), (offsets + perms).ravel(), np.arange(0, perms.size + 1, N)),
        shape=(len(perms), N * N))
    expected = select @ cross.reshape(N * N, H)
    np.testing.assert_array_equal(null_from_cross_products(cross, perms), expected)
    assert np.isnan(expected[:, 3]).all()


def test_permutations_keep_time_structure():
    perms = draw_sequence_permutations(N, 50, seed=3)
    assert perms.shape == (50, N)
    assert (np.sort(perms, axis=1) == np.arange(N)).all()  # each row is a permutation
    assert not (perms == np.arange(N)).all(axis=1).all()


def test_pvalue_agrees_with_independent_loop_within_monte_carlo_error():
    rng = np.random.default_rng(1)
    perform, observe = planted(rng, n_planted=1, weight=0.15)  # a weak, borderline unit
    b = 2000
    r, _ = headline_metrics(perform, observe)
    p_fast = permutation_pvalues(r, permutation_null(perform, observe, b, seed=5))[0]
    gen = np.random.default_rng(123)
    ref_perms = np.array([gen.permutation(N) for _ in range(b)])
    ref_null = loop_null_one_unit(perform[..., 0], observe[..., 0], ref_perms)
    p_ref = min(1, 2 * min(1 + np.sum(ref_null >= r[0]), 1 + np.sum(ref_null <= r[0])) / (b + 1))
    p_mid = max((p_fast + p_ref) / 2, 1 / b)
    assert abs(p_fast - p_ref) <= 5 * np.sqrt(2 * p_mid * (1 - p_mid) / b) + 2 / b


def test_single_timestep_case_matches_scipy_pairings_permutation_test():
    rng = np.random.default_rng(2)
    n, b = 80, 4000
    x = rng.standard_normal(n)
    y = 0.2 * x + rng.standard_normal(n)
    perform, observe = x.reshape(n, 1, 1), y.reshape(n, 1, 1)
    r, _ = headline_metrics(perform, observe)
    p_fast = permutation_pvalues(r, permutation_null(perform, observe, b, seed=7))[0]

    def stat(a, c, axis):
        a = a - a.mean(axis=axis, keepdims=True)
        c = c - c.mean(axis=axis, keepdims=True)
        return (a * c).sum(axis) / np.sqrt((a * a).sum(axis) * (c * c).sum(axis))

    ref = scipy.stats.permutation_test((x, y), stat, permutation_type="pairings",
                                       vectorized=True, n_resamples=b, alternative="two-sided",
                                       random_state=np.random.default_rng(8))
    assert ref.statistic == pytest.approx(r[0])
    # scipy's two-sided p is 2 min(one-sided p), as ours: compare within Monte Carlo error, and
    # the two null samples as distributions.
    p_mid = (p_fast + ref.pvalue) / 2
    assert 0.005 < p_mid < 0.5  # a regime where the comparison has power to fail
    assert abs(p_fast - ref.pvalue) <= 5 * np.sqrt(2 * p_mid * (1 - p_mid) / b) + 4 / b
    null = permutation_null(perform, observe, b, seed=9)[:, 0]
    assert scipy.stats.ks_2samp(null, ref.null_distribution).pvalue > 1e-3


def test_null_is_reproducible_from_seed():
    rng = np.random.default_rng(3)
    perform, observe = planted(rng)
    a = permutation_null(perform, observe, 100, seed=4)
    np.testing.assert_array_equal(a, permutation_null(perform, observe, 100, seed=4))
    assert not np.array_equal(a, permutation_null(perform, observe, 100, seed=5))


def test_null_does_not_depend_on_the_thread_count():
    rng = np.random.default_rng(6)
    perform, observe = planted(rng)
    one = permutation_null(perform, observe, 5000, seed=1)  # 3 chunks of permutations
    np.testing.assert_array_equal(one, permutation_null(perform, observe, 5000, seed=1,
                                                        n_threads=2))


def test_multiple_testing_matches_scipy_and_bounds():
    rng = np.random.default_rng(4)
    p = np.concatenate([rng.uniform(size=40), rng.uniform(0, 0.01, size=10), [0.5] * 5])  # ties
    q_bh, q_by = bh_qvalues(p), by_qvalues(p)
    # The written-out adjustment performs scipy's operations, so the values are identical.
    np.testing.assert_array_equal(q_bh, scipy.stats.false_discovery_control(p, method="bh"))
    np.testing.assert_array_equal(q_by, scipy.stats.false_discovery_control(p, method="by"))
    assert (q_bh >= p).all() and (q_by >= q_bh).all() and (q_by <= 1).all()
    np.testing.assert_allclose(bonferroni(p), np.minimum(1, p * len(p)))


def test_multiple_testing_skips_nan_units():
    rng = np.random.default_rng(5)
    p = rng.uniform(size=20)
    p_nan = np.insert(p, [3, 10], np.nan)
    for adjust, method in ((bh_qvalues, "bh"), (by_qvalues, "by")):
        q = adjust(p_nan)
        assert np.isnan(q[[3, 11]]).all()
        np.testing.assert_allclose(q[np.isfinite(q)],
                                   scipy.stats.false_discovery_control(p, method=method))
    np.testing.assert_allclose(bonferroni(p_nan)[np.isfinite(p_nan)], np.minimum(1, p * 20))


def run_table(perform, observe, b=500, seed=0):
    r, _ = headline_metrics(perform, observe)
    null = permutation_null(perform, observe, b, seed)
    units, summary = permutation_table(r, null, alpha=ALPHA, abs_threshold=0.3,
                                       pos_threshold=0.4)
    return r, null, units, summary


def test_planted_units_are_detected_and_noise_units_are_not():
    rng = np.random.default_rng(6)
    perform, observe = planted(rng, n_planted=4, weight=1.0)
    observe[..., 3] *= -1  # one planted anti-mirror unit
    _, _, units, summary = run_table(perform, observe)
    for column in ("q_bh", "q_by", "p_bonferroni"):
        assert (units[column][:4] < ALPHA).all(), column
        assert (units[column][4:] >= ALPHA).all(), column
    assert units["sig_maxstat"][:4].all() and not units["sig_maxstat"][4:].any()
    assert (units["q_bh"] >= units["p_value"]).all()
    assert summary["n_sig_mirror_bh"] == 3 and summary["n_sig_anti_bh"] == 1
    assert summary["n_sig_mirror_maxstat"] == 3 and summary["n_sig_anti_maxstat"] == 1


def test_summary_null_fractions_and_maxstat_follow_definitions():
    rng = np.random.default_rng(7)
    perform, observe = planted(rng, weight=0.5)
    r, null, units, summary = run_table(perform, observe, b=300)
    null_frac = np.mean([np.mean(np.abs(row) > 0.3) for row in null])
    assert summary["null_mean_frac_abs_r_gt"] == pytest.approx(null_frac)
    assert summary["excess_frac_abs_r_gt"] == pytest.approx(np.mean(np.abs(r) > 0.3) - null_frac)
    mean, sd = null.mean(axis=0), null.std(axis=0, ddof=1)
    max_abs_z = [max(abs(v - m) / s for v, m, s in zip(row, mean, sd)) for row in null]
    assert summary["maxstat_threshold_z"] == pytest.approx(np.quantile(max_abs_z, 1 - ALPHA))
    np.testing.assert_allclose(units["null_sd_r"], sd)
    np.testing.assert_allclose(units["null_mean_r"], mean)
    np.testing.assert_allclose(units["z_r"], (r - mean) / sd)


def test_constant_unit_gets_nan_and_leaves_the_family():
    rng = np.random.default_rng(8)
    perform, observe = planted(rng)
    perform[..., 5] = 1.0
    _, null, units, _ = run_table(perform, observe, b=200)
    assert np.isnan(null[:, 5]).all() and np.isnan(units.loc[5, ["p_value", "q_bh"]]).all()
    assert not units.loc[5, "sig_maxstat"]
    p = units["p_value"].to_numpy()
    np.testing.assert_allclose(units["p_bonferroni"].dropna(),
                               np.minimum(1, p[np.isfinite(p)] * (H - 1)))
    threshold, _ = maxstat_threshold(null, ALPHA)
    assert np.isfinite(threshold)


def test_false_discoveries_are_controlled_on_autocorrelated_noise():
    """Over repeated pure-noise draws, BH's FDP and max-stat's FWER average <= alpha."""
    rng = np.random.default_rng(9)
    n_draws, b = 50, 199
    fdp, fwe, naive_fwe = [], [], []
    for draw in range(n_draws):
        perform, observe = ar_noise(rng, n=40, t=6, h=20), ar_noise(rng, n=40, t=6, h=20)
        units = run_table(perform, observe, b=b, seed=draw)[2]
        fdp.append(float((units["q_bh"] < ALPHA).any()))  # all nulls true: FDP = 1{any}
        fwe.append(float(units["sig_maxstat"].any()))
        naive_p = [scipy.stats.pearsonr(perform[..., u].ravel(), observe[..., u].ravel()).pvalue
                   for u in range(20)]
        naive_fwe.append(float((bh_qvalues(np.array(naive_p)) < ALPHA).any()))
    slack = 3 * np.sqrt(ALPHA * (1 - ALPHA) / n_draws)
    assert np.mean(fdp) <= ALPHA + slack
    assert np.mean(fwe) <= ALPHA + slack
    # The noise is autocorrelated enough that treating samples as iid would fail this check.
    assert np.mean(naive_fwe) > ALPHA + slack


def loop_one_sided(r, null_column):
    """Plain reference: counts of the unit's null at or above / at or below r."""
    b = len(null_column)
    above = sum(1 for v in null_column if v >= r - 1e-10)
    below = sum(1 for v in null_column if v <= r + 1e-10)
    return (1 + above) / (b + 1), (1 + below) / (b + 1)


def off_centre_null(rng, b=999, h=6):
    """A planted (B, H) null whose units are centred far from 0 (shared time courses)."""
    centres = np.array([-0.39, 0.38, -0.3, 0.35, 0.0, 0.2])[:h]
    return centres + 0.05 * rng.standard_normal((b, h)), centres


def test_off_centre_null_gets_the_right_one_and_two_sided_p():
    rng = np.random.default_rng(10)
    null, centres = off_centre_null(rng)
    sd = null.std(axis=0, ddof=1)
    # unit 0: null at -0.39, r = -0.1 is ~6 SD ABOVE its null (mirror-side, though r < 0 and
    # |r| < |null|); unit 1: null at 0.38, r = 0.1 is far below it; unit 4: r inside its null.
    r = centres + np.array([6, -6, 0, 6, 0.1, -6]) * 0.05
    p_mirror, p_anti = one_sided_pvalues(r, null)
    p_two = permutation_pvalues(r, null)
    for u in range(len(r)):
        ref_m, ref_a = loop_one_sided(r[u], null[:, u])
        assert p_mirror[u] == pytest.approx(ref_m) and p_anti[u] == pytest.approx(ref_a)
        assert p_two[u] == pytest.approx(min(1, 2 * min(ref_m, ref_a)))
    floor = 1 / (len(null) + 1)
    assert p_mirror[0] == floor and p_anti[0] == 1 and p_two[0] == 2 * floor
    assert p_anti[1] == floor and p_two[1] == 2 * floor
    assert p_two[4] > 0.5
    # The old |r| rule misses unit 0 and unit 1 completely:
    old = (1 + (np.abs(null) >= np.abs(r)).sum(axis=0)) / (len(null) + 1)
    assert old[0] > 0.9 and old[1] > 0.9
    units, summary = permutation_table(r, null, alpha=ALPHA, abs_threshold=0.3,
                                       pos_threshold=0.4)
    np.testing.assert_allclose(units["z_r"], (r - null.mean(axis=0)) / sd)
    assert units["sig_maxstat"][[0, 1, 3, 5]].all() and not units["sig_maxstat"][[2, 4]].any()
    # units 0 (above its null, r < 0) and 1 (below it, r > 0) are neither mirror nor anti;
    # unit 3 is a mirror unit (above, r > 0), unit 5 an anti-mirror unit (below, r < 0).
    assert summary["n_sig_mirror_bh"] == 1 and summary["n_sig_anti_bh"] == 1
    assert (units["p_maxstat"][[0, 1, 3, 5]] < ALPHA).all()


def test_studentised_maxstat_is_not_driven_by_one_wide_unit():
    """A unit with a wide null pushes a raw-|r| threshold up; the studentised one is unmoved."""
    rng = np.random.default_rng(11)
    narrow = 0.05 * rng.standard_normal((999, 10))
    wide = narrow.copy()
    wide[:, 0] = 0.4 + 0.3 * rng.standard_normal(999)
    raw = lambda null: np.quantile(np.abs(null).max(axis=1), 1 - ALPHA)
    assert raw(wide) > 2 * raw(narrow)
    t_narrow, _ = maxstat_threshold(narrow, ALPHA)
    t_wide, _ = maxstat_threshold(wide, ALPHA)
    assert abs(t_wide - t_narrow) < 0.3 * t_narrow
    r = np.r_[0.4, np.full(9, 4 * 0.05)]  # units 1..9 at 4 null SDs: found despite unit 0
    units, _ = permutation_table(r, wide, alpha=ALPHA, abs_threshold=0.3, pos_threshold=0.4)
    assert units["sig_maxstat"][1:].all() and not units["sig_maxstat"][0]
