"""Decoding from unit subsets: selection, the sufficient-statistics ridge against a refit, and
planted action codes carried by the mirror units only."""

from __future__ import annotations

import numpy as np
import pytest

from mirror_sweep.analysis.decoding import (
    fit_ridge_classifiers,
    fit_standardizer,
    score_ridge_classifiers,
    split_sequences,
)
from mirror_sweep.analysis.unit_subsets import (
    compare_to_random,
    random_subsets,
    select_units,
    subset_accuracies,
    subset_decoding_table,
    subset_sizes,
)

N, T, H, K = 80, 8, 20, 4


def test_subset_sizes_round_clip_and_deduplicate():
    assert subset_sizes([0.05, 0.1, 0.25], 96) == [5, 10, 24]
    assert subset_sizes([0.01, 0.02, 1.0], 8) == [1, 8]


def test_select_units_ranks_by_r_with_nan_last():
    r = np.array([0.1, np.nan, 0.9, -0.8, 0.5, -0.2])
    np.testing.assert_array_equal(select_units(r, 3, "mirror"), [2, 4, 0])
    np.testing.assert_array_equal(select_units(r, 2, "anti"), [3, 5])
    np.testing.assert_array_equal(select_units(r, 6, "mirror")[-1], 1)
    with pytest.raises(ValueError, match="selection"):
        select_units(r, 2, "random")


def test_random_subsets_hold_distinct_units():
    subsets = random_subsets(10, 4, 200, np.random.default_rng(0))
    assert subsets.shape == (200, 4)
    assert all(len(set(row)) == 4 for row in subsets)
    counts = np.bincount(subsets.ravel(), minlength=10)
    assert counts.min() > 50  # every unit is drawn (uniform: 80 each on average)


def test_compare_to_random_z_and_percentile():
    out = compare_to_random(3.0, np.array([0.0, 1.0, 2.0, 3.0]))
    assert out["random_mean"] == 1.5
    assert out["z_vs_random"] == pytest.approx(1.5 / np.std([0, 1, 2, 3], ddof=1))
    assert out["percentile_vs_random"] == pytest.approx((3 + 0.5) / 4)


def test_subset_accuracies_equal_refitting_the_ridge_decoder_on_the_subset():
    rng = np.random.default_rng(1)
    x, x_test = rng.standard_normal((300, H)), rng.standard_normal((100, H))
    y, y_test = rng.integers(0, K, 300), rng.integers(0, K, 100)
    x[np.arange(300), y] += 2.0
    x_test[np.arange(100), y_test] += 2.0
    mean, sd = fit_standardizer(x)
    xs, xts = (x - mean) / sd, (x_test - mean) / sd
    codes = -np.ones((300, K))
    codes[np.arange(300), y] = 1.0
    subsets = random_subsets(H, 6, 5, rng)
    acc = subset_accuracies(xs.T @ xs, xs.T @ (codes - codes.mean(0)), codes.mean(0),
                            {"test": (xts, y_test)}, subsets, ridge_alpha=2.0)["test"]
    for i, units in enumerate(subsets):
        w, b = fit_ridge_classifiers(xs[:, units], y[None], np.arange(K), 2.0)
        ref = score_ridge_classifiers(w, b, np.arange(K), xts[:, units], y_test)[0]
        assert acc[i] == pytest.approx(ref)


def test_mirror_units_carrying_the_shared_code_beat_random_units():
    """The first 4 units code the action identically in both modes (high r); the others are
    noise. The top-4 mirror units decode across modes far above random 4-unit subsets."""
    rng = np.random.default_rng(2)
    h = 60
    actions = rng.integers(0, K, (N, T))
    code = np.zeros((K, h))
    code[:, :4] = 2 * rng.standard_normal((K, 4))
    perform = rng.standard_normal((N, T, h)) + code[actions]
    observe = rng.standard_normal((N, T, h)) + code[actions]
    split = split_sequences(N, 0.3, np.random.default_rng(0))
    table = subset_decoding_table({"perform": perform, "observe": observe},
                                  {"perform": actions, "observe": actions}, split,
                                  fractions=[4 / h], n_random=50, ridge_alpha=1.0,
                                  rng=np.random.default_rng(3))
    assert len(table) == 4 * 3 and set(table["k"]) == {4}
    table = table.set_index(["train_mode", "test_mode", "selection"])
    for modes in [("perform", "observe"), ("observe", "perform"), ("perform", "perform")]:
        mirror = table.loc[(*modes, "mirror")]
        assert mirror["accuracy"] > 0.8
        assert mirror["z_vs_random"] > 3 and mirror["percentile_vs_random"] > 0.95
        assert table.loc[(*modes, "random"), "n_draws"] == 50
        assert np.isnan(table.loc[(*modes, "random"), ["z_vs_random", "percentile_vs_random"]]
                        .astype(float)).all()
        assert table.loc[(*modes, "anti"), "accuracy"] < 0.5
