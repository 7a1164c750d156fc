"""Per-unit r, headline fractions, time-centred r and input checks of mirror_sweep.analysis."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.stats

from mirror_sweep.analysis import analyze_activations, headline_metrics
from mirror_sweep.analysis.correlation import time_centred_r

N, T, H, K = 60, 8, 12, 4


def correlated_pair(rng, strengths):
    """(N, T, H) perform/observe whose unit u shares a latent with weight strengths[u]."""
    latent = rng.standard_normal((N, T, H))
    perform = latent * strengths + rng.standard_normal((N, T, H))
    observe = latent * strengths + rng.standard_normal((N, T, H))
    return perform.astype(np.float32), observe.astype(np.float32)


def test_pooled_r_matches_scipy_pearsonr():
    rng = np.random.default_rng(0)
    strengths = np.linspace(-3, 3, H)
    perform, observe = correlated_pair(rng, strengths)
    observe[..., :3] *= -1  # include anti-correlated units
    r, _ = headline_metrics(perform, observe)
    ref = [scipy.stats.pearsonr(perform[..., u].ravel(), observe[..., u].ravel()).statistic
           for u in range(H)]
    np.testing.assert_allclose(r, ref, atol=1e-6)


def test_headline_scalars_follow_their_definitions():
    rng = np.random.default_rng(1)
    perform, observe = correlated_pair(rng, np.linspace(-3, 3, H))
    r, s = headline_metrics(perform, observe, abs_threshold=0.5, pos_threshold=0.7,
                            anti_threshold=-0.4)
    assert s["frac_abs_r_gt"] == pytest.approx(np.mean(np.abs(r) > 0.5))
    assert s["frac_r_gt"] == pytest.approx(np.mean(r > 0.7))
    assert s["n_anti_mirror"] == int(np.sum(r < -0.4))
    assert s["max_r"] == pytest.approx(r.max()) and s["min_r"] == pytest.approx(r.min())
    assert s["mean_abs_r"] == pytest.approx(np.abs(r).mean())
    assert 0 < s["frac_r_gt"] < s["frac_abs_r_gt"] < 1  # the data span both thresholds


def test_constant_unit_is_nan_silently_and_counts_in_denominator():
    rng = np.random.default_rng(2)
    perform, observe = correlated_pair(rng, np.zeros(H))
    perform[..., 0] = observe[..., 0]          # perfect mirror unit
    perform[..., 1] = 0.25                    # dead in perform
    observe[..., 2] = -1.0                    # dead in observe
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r, s = headline_metrics(perform, observe)
    assert np.isnan(r[1]) and np.isnan(r[2]) and np.isfinite(np.delete(r, [1, 2])).all()
    assert s["frac_r_gt"] == pytest.approx(1 / H)
    assert s["max_r"] == pytest.approx(1.0)


def test_all_units_constant_gives_nan_scalars():
    x = np.ones((N, T, H), np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r, s = headline_metrics(x, x)
    assert np.isnan(r).all() and np.isnan(s["max_r"]) and s["frac_abs_r_gt"] == 0.0


def test_time_centring_removes_a_shared_time_course():
    rng = np.random.default_rng(3)
    time_course = 3.0 * rng.standard_normal((1, T, H))
    perform = time_course + rng.standard_normal((N, T, H))
    observe = time_course + rng.standard_normal((N, T, H))
    r, _ = headline_metrics(perform, observe)
    r_tc = time_centred_r(perform, observe)
    assert (r > 0.7).all()
    assert (np.abs(r_tc) < 4 / np.sqrt(N * T)).all()


def test_time_centred_r_matches_pearsonr_of_centred_data():
    rng = np.random.default_rng(4)
    perform, observe = correlated_pair(rng, np.linspace(0, 2, H))
    perform = perform + np.arange(T)[None, :, None]
    centred = [x - x.mean(axis=0, keepdims=True) for x in (perform, observe)]
    ref = [scipy.stats.pearsonr(centred[0][..., u].ravel(), centred[1][..., u].ravel()).statistic
           for u in range(H)]
    np.testing.assert_allclose(time_centred_r(perform, observe), ref, atol=1e-6)


def test_unit_driven_only_by_time_has_nan_time_centred_r():
    rng = np.random.default_rng(5)
    perform, observe = correlated_pair(rng, np.ones(H))
    perform[..., 0] = np.arange(T, dtype=np.float32)[None, :]
    observe[..., 0] = np.arange(T, dtype=np.float32)[None, :]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r_tc = time_centred_r(perform, observe)
    assert np.isnan(r_tc[0]) and np.isfinite(r_tc[1:]).all()


def _valid_inputs():
    rng = np.random.default_rng(6)
    perform, observe = correlated_pair(rng, np.ones(H))
    actions = rng.integers(0, K, (N, T))
    return {"perform": perform, "observe": observe, "perform_actions": actions,
            "observe_actions": actions.copy()}


@pytest.mark.parametrize("name", ["perform", "observe", "perform_actions", "observe_actions"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_input_raises_naming_the_argument(name, bad):
    inputs = _valid_inputs()
    arr = inputs[name].astype(np.float64)
    arr[3, 2, ...] = bad
    inputs[name] = arr
    with pytest.raises(ValueError, match=rf"^{name} "):
        analyze_activations(**inputs, seed=0, n_permutations=10, decoding_null_permutations=5)


@pytest.mark.parametrize("name", ["perform", "observe"])
def test_headline_metrics_rejects_non_finite(name):
    inputs = _valid_inputs()
    inputs[name][0, 0, 0] = np.nan
    with pytest.raises(ValueError, match=rf"^{name} "):
        headline_metrics(inputs["perform"], inputs["observe"])


def test_mismatched_shapes_and_bad_settings_raise():
    inputs = _valid_inputs()
    with pytest.raises(ValueError, match="^observe "):
        headline_metrics(inputs["perform"], inputs["observe"][:, :-1])
    with pytest.raises(ValueError, match="^perform_actions "):
        analyze_activations(**{**inputs, "perform_actions": inputs["perform_actions"][:-1]},
                            seed=0)
    with pytest.raises(ValueError, match="^max_lag "):
        analyze_activations(**inputs, seed=0, max_lag=T)
    with pytest.raises(ValueError, match="^observe_actions "):
        analyze_activations(**{**inputs, "observe_actions": -inputs["observe_actions"] - 1},
                            seed=0)
