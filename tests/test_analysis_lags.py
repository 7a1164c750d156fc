"""Per-unit perform/observe cross-correlation by lag: definition and lag recovery."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.stats

from mirror_sweep.analysis.lags import lag_labels, lag_table, mean_cross_correlation

N, T, H = 60, 8, 12
MAX_LAG = 3


def shifted(rng, shift):
    """observe[:, t] = perform[:, t - shift] (fresh noise where undefined); white in time."""
    perform = rng.standard_normal((N, T, H))
    observe = rng.standard_normal((N, T, H))
    if shift > 0:
        observe[:, shift:] = perform[:, :-shift]
    elif shift < 0:
        observe[:, :shift] = perform[:, -shift:]
    else:
        observe = perform.copy()
    return perform, observe


@pytest.mark.parametrize("shift", [-2, -1, 0, 1, 2])
def test_known_shift_is_recovered(shift):
    perform, observe = shifted(np.random.default_rng(abs(shift)), shift)
    units, summary = lag_table(perform, observe, max_lag=MAX_LAG)
    assert (units["peak_lag"] == shift).all()
    assert (units["peak_xcorr"] > 0.5).all()
    assert summary["median_abs_peak_lag"] == abs(shift)
    assert summary["frac_peak_lag_zero"] == float(shift == 0)


def test_lag_zero_is_the_mean_per_sequence_pearson_r():
    rng = np.random.default_rng(5)
    perform = rng.standard_normal((N, T, H))
    observe = 0.5 * perform + rng.standard_normal((N, T, H))
    xcorr = mean_cross_correlation(perform, observe, MAX_LAG)
    ref = [np.mean([scipy.stats.pearsonr(perform[n, :, u], observe[n, :, u]).statistic
                    for n in range(N)]) for u in range(H)]
    np.testing.assert_allclose(xcorr[MAX_LAG], ref, atol=1e-12)


def test_lag_one_follows_the_documented_formula():
    rng = np.random.default_rng(6)
    perform, observe = rng.standard_normal((N, T, 2)), rng.standard_normal((N, T, 2))
    xcorr = mean_cross_correlation(perform, observe, 1)
    p = perform - perform.mean(axis=1, keepdims=True)
    o = observe - observe.mean(axis=1, keepdims=True)
    for u in range(2):
        vals = [np.dot(p[n, :-1, u], o[n, 1:, u])
                / np.sqrt(np.dot(p[n, :, u], p[n, :, u]) * np.dot(o[n, :, u], o[n, :, u]))
                for n in range(N)]
        assert xcorr[2, u] == pytest.approx(np.mean(vals))


def test_anti_mirror_unit_peaks_negative_at_zero():
    rng = np.random.default_rng(7)
    perform = rng.standard_normal((N, T, H))
    units, _ = lag_table(perform, -perform, max_lag=MAX_LAG)
    assert (units["peak_lag"] == 0).all()
    np.testing.assert_allclose(units["peak_xcorr"], -1.0)


def test_constant_units_and_sequences_are_skipped_silently():
    rng = np.random.default_rng(8)
    perform, observe = shifted(rng, 1)
    perform[..., 0] = 2.0              # dead unit
    observe[:5, :, 1] = 1.0            # constant in a few sequences only
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        units, summary = lag_table(perform, observe, max_lag=MAX_LAG)
    assert np.isnan(units.loc[0, "peak_lag"]) and np.isnan(units.loc[0, "xcorr_lag_0"])
    assert units.loc[1, "peak_lag"] == 1
    ref = mean_cross_correlation(perform[5:, :, 1:2], observe[5:, :, 1:2], MAX_LAG)[:, 0]
    np.testing.assert_allclose(units.loc[1, lag_labels(MAX_LAG)].to_numpy(float), ref)
    assert summary["frac_peak_lag_zero"] == 0.0 and summary["median_abs_peak_lag"] == 1.0


def test_lag_labels():
    assert lag_labels(2) == ["xcorr_lag_neg2", "xcorr_lag_neg1", "xcorr_lag_0",
                             "xcorr_lag_pos1", "xcorr_lag_pos2"]


def test_mirror_units_and_all_units_are_summarised_apart():
    rng = np.random.default_rng(9)
    perform, observe = shifted(rng, 0)
    observe[:, 2:, 4:] = perform[:, :-2, 4:]  # units 4.. peak at lag 2, units 0..3 at lag 0
    observe[:, :2, 4:] = rng.standard_normal((N, 2, H - 4))
    mirror = np.arange(H) < 4
    _, summary = lag_table(perform, observe, max_lag=MAX_LAG, mirror=mirror)
    assert summary["median_abs_peak_lag_mirror"] == 0 and summary["frac_peak_lag_zero_mirror"] == 1
    assert summary["n_lag_mirror_units"] == 4
    assert summary["frac_peak_lag_zero"] == pytest.approx(4 / H)
    _, none = lag_table(perform, observe, max_lag=MAX_LAG, mirror=np.zeros(H, bool))
    assert np.isnan(none["median_abs_peak_lag_mirror"]) and none["n_lag_mirror_units"] == 0
