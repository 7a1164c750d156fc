"""Cross-condition action decoding: closed-form ridge vs sklearn, nulls, planted codes."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import RidgeClassifier

from mirror_sweep.analysis.decoding import (
    decoding_table,
    fit_ridge_classifiers,
    permuted_label_sets,
    score_ridge_classifiers,
    split_sequences,
)

N, T, H, K = 60, 8, 12, 4


def coded(rng, actions, gain):
    """(N, T, H) noise plus a fixed random pattern per current action, scaled by gain."""
    patterns = rng.standard_normal((K, H))
    return rng.standard_normal((N, T, H)) + gain * patterns[actions]


@pytest.mark.parametrize("n_classes", [2, 3, 4])
def test_closed_form_matches_sklearn_ridge_classifier(n_classes):
    rng = np.random.default_rng(n_classes)
    x = rng.standard_normal((300, H)) * rng.uniform(0.5, 2, H)
    y = rng.integers(0, n_classes, 300) * 2 + 1  # non-contiguous labels 1, 3, 5, ...
    x_test, y_test = rng.standard_normal((200, H)), rng.integers(0, n_classes, 200) * 2 + 1
    x[:, 0] += y  # some signal so predictions are not all one class
    x_test[:, 0] += y_test
    ref = RidgeClassifier(alpha=3.0).fit(x, y)
    classes = np.unique(y)
    w, b = fit_ridge_classifiers(x, y[None, :], classes, alpha=3.0)
    scores = x_test @ w[:, 0] + b[0]
    np.testing.assert_array_equal(classes[scores.argmax(axis=1)], ref.predict(x_test))
    acc = score_ridge_classifiers(w, b, classes, x_test, y_test)
    assert acc[0] == pytest.approx(ref.score(x_test, y_test))
    if n_classes > 2:  # sklearn keeps one column for two classes
        np.testing.assert_allclose(w[:, 0].T, ref.coef_, atol=1e-10)
        np.testing.assert_allclose(b[0], ref.intercept_, atol=1e-10)


def test_stacked_label_sets_equal_separate_fits():
    rng = np.random.default_rng(10)
    x = rng.standard_normal((120, H))
    labels = rng.integers(0, K, (5, 120))
    classes = np.arange(K)
    w, _ = fit_ridge_classifiers(x, labels, classes, alpha=1.0)
    for i, y in enumerate(labels):
        ref = RidgeClassifier(alpha=1.0).fit(x, y)
        np.testing.assert_allclose(w[:, i].T, ref.coef_, atol=1e-10)


def test_permuted_labels_move_whole_sequences():
    rng = np.random.default_rng(11)
    actions = rng.integers(0, K, (20, T))
    sets = permuted_label_sets(actions, 30, rng)
    assert sets.shape == (31, 20 * T)
    np.testing.assert_array_equal(sets[0], actions.ravel())
    truth_rows = {tuple(row) for row in actions}
    for labels in sets[1:]:
        rows = labels.reshape(20, T)
        assert sorted(map(tuple, rows)) == sorted(map(tuple, actions))
        assert {tuple(row) for row in rows} <= truth_rows
    assert not (sets[1:] == sets[0]).all(axis=1).all()


def test_split_is_by_sequence_and_seeded():
    train, test = split_sequences(N, 0.3, np.random.default_rng(0))
    assert len(test) == 18 and len(train) == 42
    assert set(train).isdisjoint(test) and set(train) | set(test) == set(range(N))
    again = split_sequences(N, 0.3, np.random.default_rng(0))
    np.testing.assert_array_equal(test, again[1])


def table(perform, observe, a_perform, a_observe, seed=0, n_null=100):
    return decoding_table({"perform": perform, "observe": observe},
                          {"perform": a_perform, "observe": a_observe}, seed=seed,
                          test_fraction=0.3, n_null=n_null, ridge_alpha=1.0).set_index(
        ["train_mode", "test_mode"])


def test_planted_shared_action_code_decodes_across_modes():
    rng = np.random.default_rng(1)
    actions = rng.integers(0, K, (N, T))
    shared = coded(rng, actions, gain=1.5)
    perform = shared + 0.5 * rng.standard_normal((N, T, H))
    observe = shared + 0.5 * rng.standard_normal((N, T, H))
    result = table(perform, observe, actions, actions)
    assert len(result) == 4
    assert (result["accuracy"] > 0.7).all()
    assert (result["chance"].between(1 / K - 0.1, 1 / K + 0.1)).all()
    assert (result["p_value"] == 1 / 101).all()
    assert (result["accuracy"] > result["chance"] + 5 * result["null_sd"]).all()
    assert (result["n_train_sequences"] == 42).all() and (result["n_test_sequences"] == 18).all()


@pytest.mark.parametrize("shared_code", [True, False])
def test_each_mode_is_scored_with_its_own_actions(shared_code):
    """Broken pairing: each mode codes its own, different, action sequence. With one code for
    both modes every direction decodes (scored against the test mode's own labels); with a
    separate code per mode only the within-mode decoders do."""
    rng = np.random.default_rng(2)
    a_perform, a_observe = rng.integers(0, K, (N, T)), rng.integers(0, K, (N, T))
    patterns_p = rng.standard_normal((K, H))
    patterns_o = patterns_p.copy()
    if not shared_code:  # codes on disjoint units
        patterns_p[:, H // 2:] = 0
        patterns_o[:, : H // 2] = 0
    perform = rng.standard_normal((N, T, H)) + 2 * patterns_p[a_perform]
    observe = rng.standard_normal((N, T, H)) + 2 * patterns_o[a_observe]
    result = table(perform, observe, a_perform, a_observe)
    assert result.loc[("perform", "perform"), "accuracy"] > 0.7
    assert result.loc[("observe", "observe"), "accuracy"] > 0.7
    for cross in (("perform", "observe"), ("observe", "perform")):
        if shared_code:
            assert result.loc[cross, "accuracy"] > 0.7
        else:
            assert result.loc[cross, "accuracy"] < 0.4
            assert result.loc[cross, "p_value"] > 0.01


def test_unrelated_labels_sit_at_chance():
    """Labels independent of the hidden states: p-values spread over (0, 1], not small."""
    rng = np.random.default_rng(3)
    p_values, excess = [], []
    for seed in range(15):
        actions = rng.integers(0, K, (N, T))
        perform = coded(rng, rng.integers(0, K, (N, T)), gain=1.0)  # codes other actions
        observe = coded(rng, rng.integers(0, K, (N, T)), gain=1.0)
        result = table(perform, observe, actions, actions, seed=seed, n_null=40)
        p_values.extend(result["p_value"])
        excess.extend((result["accuracy"] - result["chance"]) / result["null_sd"])
    assert np.mean(np.array(p_values) < 0.05) <= 0.15
    assert 0.3 < np.mean(p_values) < 0.7
    assert abs(np.mean(excess)) < 0.6


def test_relabelled_accuracy_sees_a_code_shared_up_to_a_permutation_of_actions():
    """Observe states code action a with perform's pattern for action planted[a]: plain
    cross-decoding sits below chance, decoding up to relabelling recovers the planted map."""
    rng = np.random.default_rng(4)
    actions = rng.integers(0, K, (N, T))
    patterns = rng.standard_normal((K, H))
    planted = np.array([2, 0, 3, 1])
    perform = rng.standard_normal((N, T, H)) + 2 * patterns[actions]
    observe = rng.standard_normal((N, T, H)) + 2 * patterns[planted[actions]]
    result = table(perform, observe, actions, actions, n_null=20)
    cross = result.loc[("perform", "observe")]
    assert cross["accuracy"] < 0.15 and cross["accuracy_relabelled"] > 0.7
    # the perform decoder reads observe's action a as planted[a]; the map sends it back to a
    mapping = np.array(cross["relabelling"].split(), dtype=int)
    np.testing.assert_array_equal(mapping[planted], np.arange(K))
    within = result.loc[("perform", "perform")]
    assert within["relabelling"] == "0 1 2 3"
    assert within["accuracy_relabelled"] == within["accuracy"]
