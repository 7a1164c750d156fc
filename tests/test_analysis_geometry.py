"""Population geometry: CKA, RSA, principal subspaces, best-matched pairs and relabelling on
planted data, each against a brute-force or library reference."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
from scipy.stats import ortho_group

from mirror_sweep.analysis.geometry import (
    best_matched_pairs,
    best_relabelling,
    condition_centroids,
    label_permutations,
    linear_cka,
    population_geometry,
    principal_angles,
    principal_subspace,
    rdm,
    relabelled_accuracy,
    repaired_cross,
    rsa_null,
    rsa_test,
    subspace_summary,
)

N, T, H, K = 40, 6, 10, 4


def kernel_cka(x, y):
    """CKA by its definition on n x n Gram matrices: HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))."""
    n = len(x)
    centring = np.eye(n) - np.ones((n, n)) / n
    k, l = centring @ x @ x.T @ centring, centring @ y @ y.T @ centring
    return np.sum(k * l) / np.sqrt(np.sum(k * k) * np.sum(l * l))


def test_cka_matches_the_kernel_definition():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((80, 7))
    y = x @ rng.standard_normal((7, 5)) + rng.standard_normal((80, 5))
    assert linear_cka(x, y) == pytest.approx(kernel_cka(x, y), abs=1e-12)


def test_cka_of_a_rotated_scaled_shifted_copy_is_one_and_of_noise_near_zero():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3000, H)) * rng.uniform(0.2, 3.0, H)
    rotated = 2.5 * x @ ortho_group.rvs(H, random_state=2) + 4.0
    assert linear_cka(x, rotated) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(x, rng.standard_normal((3000, H))) < 0.02


def test_repaired_cross_equals_a_loop_over_permutations():
    rng = np.random.default_rng(3)
    perform, observe = rng.standard_normal((2, N, T, H))
    perms = np.vstack([np.arange(N), rng.permutation(N), rng.permutation(N)])
    cross = repaired_cross(perform, observe, perms)
    for b, perm in enumerate(perms):
        p = perform.reshape(-1, H) - perform.reshape(-1, H).mean(0)
        o = observe[perm].reshape(-1, H) - observe.reshape(-1, H).mean(0)
        np.testing.assert_allclose(cross[b], p.T @ o, atol=1e-10)


def brute_force_best_pairing(weight):
    """max over all permutations of the summed weight."""
    h = len(weight)
    return max(sum(weight[i, p[i]] for i in range(h)) for p in itertools.permutations(range(h)))


def test_best_matched_pairs_maximise_summed_abs_r_like_brute_force():
    rng = np.random.default_rng(4)
    r = np.tanh(rng.standard_normal((6, 6)))
    partner, matched = best_matched_pairs(r)
    assert sorted(partner) == list(range(6))
    np.testing.assert_array_equal(matched, r[np.arange(6), partner])
    assert np.abs(matched).sum() == pytest.approx(brute_force_best_pairing(np.abs(r)))


def test_best_matching_recovers_units_shuffled_across_modes():
    """Observe units are a permutation (and some sign flips) of perform units: unit-to-same-unit r
    is near zero, the best-matched r is near one for every unit."""
    rng = np.random.default_rng(5)
    perform = rng.standard_normal((N, T, H))
    shuffle = rng.permutation(H)
    signs = np.where(rng.random(H) < 0.3, -1.0, 1.0)
    observe = perform[..., shuffle] * signs + 0.05 * rng.standard_normal((N, T, H))
    actions = rng.integers(0, K, (N, T))
    summary, units = population_geometry(
        perform, observe, actions, actions, n_actions=K, abs_threshold=0.6, pos_threshold=0.75,
        n_components=3, n_null=20, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(units["best_match_unit"][shuffle], np.arange(H))
    assert summary["best_match_frac_abs_r_gt"] == 1.0
    assert summary["best_match_frac_r_gt"] == pytest.approx(np.mean(signs > 0))
    assert summary["best_match_frac_same_unit"] == pytest.approx(np.mean(shuffle == np.arange(H)))
    assert summary["cka"] > 0.99 and summary["cka_null_mean"] < 0.3
    assert summary["best_match_frac_abs_r_gt_null_mean"] < 0.2
    assert summary["cka_p"] == pytest.approx(1 / 21)


def test_condition_centroids_match_a_loop():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((N, T, H))
    actions = rng.integers(0, K, (N, T))
    by_action = condition_centroids(x, actions, K, by_time=False)
    by_time = condition_centroids(x, actions, K, by_time=True)
    for k in range(K):
        np.testing.assert_allclose(by_action[k], x[actions == k].mean(axis=0))
        for t in range(T):
            np.testing.assert_allclose(by_time[t * K + k], x[:, t][actions[:, t] == k].mean(0))


def test_rsa_of_identical_geometry_is_one_in_any_rotation():
    rng = np.random.default_rng(7)
    actions = rng.integers(0, K, (N, T))
    centroids = 3 * rng.standard_normal((K, H))
    perform = centroids[actions] + 0.01 * rng.standard_normal((N, T, H))
    observe = 2 * perform @ ortho_group.rvs(H, random_state=8)
    for by_time in (False, True):
        test = rsa_test(perform, observe, actions, actions, K, by_time, 200,
                        np.random.default_rng(1))
        assert test["r"] == pytest.approx(1.0, abs=1e-6)
        assert test["null_mean"] < 0.5
    exact = rsa_test(perform, observe, actions, actions, K, False, 200, np.random.default_rng(1))
    assert exact["p"] == pytest.approx(1 / math.factorial(K))  # only the identity reaches 1


def test_rsa_null_equals_recomputing_centroids_with_permuted_labels():
    """Null row b puts observe condition perm[c] in place of c: the same as relabelling every
    observe sample of condition perm[c] as c and recomputing centroids and RDM."""
    rng = np.random.default_rng(9)
    perform, observe = rng.standard_normal((2, N, T, H))
    actions = rng.integers(0, K, (N, T))
    perms = label_permutations(K, T, 5, rng)
    assert (perms[0] == np.arange(T * K)).all()
    rdm_p = rdm(condition_centroids(perform, actions, K, True))
    stats = rsa_null(rdm_p, rdm(condition_centroids(observe, actions, K, True)), perms)
    upper = np.triu_indices(T * K, 1)
    for b, perm in enumerate(perms):
        condition = np.arange(T)[None, :] * K + actions
        new_condition = np.argsort(perm)[condition]
        new_actions = new_condition - np.arange(T)[None, :] * K
        assert new_actions.min() >= 0 and new_actions.max() < K  # stays within its timestep
        rdm_o = rdm(condition_centroids(observe, new_actions, K, True))
        assert stats[b] == pytest.approx(scipy.stats.pearsonr(rdm_p[upper], rdm_o[upper])[0])


def test_label_permutations_enumerate_small_k_and_stay_within_blocks():
    rng = np.random.default_rng(10)
    exact = label_permutations(3, 1, 100, rng)
    assert sorted(map(tuple, exact)) == sorted(itertools.permutations(range(3)))
    drawn = label_permutations(4, 5, 50, rng)
    assert drawn.shape == (51, 20)
    for row in drawn:
        for block in range(5):
            assert sorted(row[4 * block: 4 * block + 4]) == list(range(4 * block, 4 * block + 4))


def test_principal_angles_of_a_known_rotation():
    """Observe states span e1 and a copy of e2 rotated by theta towards e3."""
    theta = 0.4
    rng = np.random.default_rng(11)
    coeffs = rng.standard_normal((2, 5000, 2)) * [3.0, 1.0]
    axes_p = np.zeros((H, 2))
    axes_p[0, 0] = axes_p[1, 1] = 1.0
    axes_o = axes_p.copy()
    axes_o[1, 1], axes_o[2, 1] = np.cos(theta), np.sin(theta)
    perform = (coeffs[0] @ axes_p.T).reshape(500, 10, H)
    observe = (coeffs[1] @ axes_o.T).reshape(500, 10, H)
    basis_p, _, _ = principal_subspace(perform.reshape(-1, H), 2)
    basis_o, _, _ = principal_subspace(observe.reshape(-1, H), 2)
    angles = principal_angles(basis_p, basis_o)
    np.testing.assert_allclose(angles, [0.0, theta], atol=1e-6)
    np.testing.assert_allclose(np.sort(angles), np.sort(scipy.linalg.subspace_angles(
        basis_p, basis_o)), atol=1e-10)
    summary = subspace_summary(perform, observe, 2)
    assert summary["angle_max_deg"] == pytest.approx(np.degrees(theta), abs=1e-4)
    # observe variance in the perform plane: e1 fully, the rotated axis by cos^2(theta)
    expected = (9 + np.cos(theta) ** 2) / 10
    assert summary["alignment_observe_in_perform"] == pytest.approx(expected, rel=0.02)
    assert summary["random_observe_in_perform"] == pytest.approx(2 / H, rel=1e-6)


def test_alignment_index_is_one_for_a_shared_subspace_and_random_baseline_for_noise():
    rng = np.random.default_rng(12)
    shared = rng.standard_normal((3000, 3)) @ rng.standard_normal((3, H))
    same = subspace_summary(shared.reshape(300, 10, H), (2 * shared).reshape(300, 10, H), 3)
    assert same["alignment_observe_in_perform"] == pytest.approx(1.0, abs=1e-9)
    assert same["alignment_perform_in_observe"] == pytest.approx(1.0, abs=1e-9)
    noise = rng.standard_normal((2, 300, 10, 40))
    result = subspace_summary(noise[0], noise[1], 5)
    assert abs(result["alignment_observe_in_perform"] - result["random_observe_in_perform"]) < 0.1


def test_relabelling_recovers_a_planted_permutation():
    rng = np.random.default_rng(13)
    true = rng.integers(0, K, 2000)
    planted = np.array([2, 0, 3, 1])
    predicted = planted[true]
    noisy = np.where(rng.random(2000) < 0.2, rng.integers(0, K, 2000), predicted)
    mapping = best_relabelling(noisy, true, K)
    np.testing.assert_array_equal(mapping[planted], np.arange(K))
    accuracy, _ = relabelled_accuracy(noisy[:1000], true[:1000], noisy[1000:], true[1000:], K)
    assert accuracy == pytest.approx(np.mean(mapping[noisy[1000:]] == true[1000:]))
    assert accuracy > 0.8 > np.mean(noisy == true) + 0.5


def test_best_relabelling_matches_brute_force():
    rng = np.random.default_rng(14)
    predicted, true = rng.integers(0, 5, 300), rng.integers(0, 5, 300)
    mapping = best_relabelling(predicted, true, 5)
    best = max(np.sum(np.array(p)[predicted] == true) for p in itertools.permutations(range(5)))
    assert np.sum(mapping[predicted] == true) == best


def test_population_geometry_without_null_has_no_null_keys_and_finite_values():
    rng = np.random.default_rng(15)
    perform, observe = rng.standard_normal((2, N, T, H))
    actions = rng.integers(0, K, (N, T))
    summary, units = population_geometry(
        perform, observe, actions, actions, n_actions=K, abs_threshold=0.6, pos_threshold=0.75,
        n_components=4, n_null=0, rng=np.random.default_rng(0))
    assert not any(key.endswith(("_null_mean", "_p")) for key in summary)
    assert all(np.isfinite(value) for value in summary.values())
    assert len(units["best_match_r"]) == H
