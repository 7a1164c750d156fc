"""Population geometry of perform vs observe states: what single-unit r cannot see.

A shared core may share the *geometry* of its states across modes while rotating it away from the
unit axes, so that unit u in perform mode need not be unit u in observe mode. Each measure here
compares the two modes' states (N, T, H), aligned by sequence and timestep:

- linear CKA (Kornblith et al. 2019) on centred states pooled over sequences x timesteps,
  invariant to rotations and isotropic scaling of either mode; its null re-pairs sequences (the
  same re-pairing as the per-unit permutation test: perform sequence n with observe pi(n));
- RSA: Pearson correlation of the two modes' representational dissimilarity matrices (Euclidean
  distances between action centroids: K x K, and action x timestep), with a label-permutation
  null (the observe side's action labels permuted; within each timestep for action x timestep,
  so the shared time course is kept and only the action correspondence is broken);
- subspace alignment: principal angles between the top-d principal subspaces of each mode, and
  the alignment index (share of one mode's top-d variance captured by the other's top-d
  subspace; Elsayed et al. 2016), both directions, beside its random-subspace expectation;
- best-matched pairing: r of each perform unit with its observe partner under the one-to-one
  pairing that maximises the summed |r| (Hungarian algorithm), and fractions over thresholds;
- decoding up to a relabelling of classes: the best one-to-one map of predicted to true classes,
  fitted on training sequences only (used by ``decoding.decoding_table``).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import pdist, squareform

from .correlation import CONSTANT_RTOL, flatten_samples


# ---------------------------------------------------------------- CKA and re-paired cross-cov
def centre(x: np.ndarray) -> np.ndarray:
    """Columns minus their means: (S, H) -> (S, H) float64."""
    x = np.asarray(x, dtype=np.float64)
    return x - x.mean(axis=0)


def cka_from_cross(cross: np.ndarray, gram_x_norm: float, gram_y_norm: float) -> float:
    """Linear CKA ||X'Y||_F^2 / (||X'X||_F ||Y'Y||_F) from the centred cross-product X'Y (H, H)."""
    denom = gram_x_norm * gram_y_norm
    return float(np.sum(cross**2) / denom) if denom > 0 else float("nan")


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA between two sets of samples x (S, H1) and y (S, H2), rows paired.

    1 when y is a rotation (or orthogonal transform) of x up to an isotropic scale; near 0 for
    independent data with S >> H. nan when either set is constant.
    """
    xc, yc = centre(x), centre(y)
    return cka_from_cross(xc.T @ yc, np.linalg.norm(xc.T @ xc), np.linalg.norm(yc.T @ yc))


def repaired_cross(perform: np.ndarray, observe: np.ndarray, perms: np.ndarray):
    """Centred cross-products of perform with re-paired observe states, one per permutation.

    Args:
        perform, observe: (N, T, H) states; perms: (B, N) int, perform n is paired with
            observe perms[b, n] (at every timestep).

    Returns:
        (B, H, H) float64 sum over n, t of pc[n, t, :]' oc[perms[b, n], t, :] (states centred
        over all samples: re-pairing keeps each mode's means and covariances).
    """
    n, t, h = perform.shape
    pc = centre(flatten_samples(perform)).reshape(n, t, h)
    oc = centre(flatten_samples(observe)).reshape(n, t, h)
    p_flat = pc.reshape(n * t, h)
    return np.stack([p_flat.T @ oc[perm].reshape(n * t, h) for perm in perms])


def cross_correlation(cross: np.ndarray, sd_x: np.ndarray, sd_y: np.ndarray, n_samples: int
                      ) -> np.ndarray:
    """Unit-by-unit Pearson r (H1, H2) from a centred cross-product and the units' sds.

    Units with sd 0 get r = nan.
    """
    sd_x = np.where(sd_x > 0, sd_x, np.nan)
    sd_y = np.where(sd_y > 0, sd_y, np.nan)
    return np.clip(cross / n_samples / np.outer(sd_x, sd_y), -1.0, 1.0)


def unit_sd(x: np.ndarray) -> np.ndarray:
    """Population sd of each column of x (S, H); 0 for (numerically) constant columns."""
    x = np.asarray(x, dtype=np.float64)
    sd = x.std(axis=0)
    return np.where(sd <= CONSTANT_RTOL * np.abs(x).max(axis=0), 0.0, sd)


# ---------------------------------------------------------------- best-matched pairing
def best_matched_pairs(r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The one-to-one pairing of rows with columns that maximises the summed |r|.

    Args:
        r: (H, H) r[i, j] = corr(perform unit i, observe unit j); nan counts as 0.

    Returns:
        (partner, matched_r): partner (H,) int, observe unit paired with perform unit i;
        matched_r (H,) float64, r[i, partner[i]] (nan stays nan).
    """
    weight = np.nan_to_num(np.abs(r), nan=0.0)
    rows, cols = linear_sum_assignment(weight, maximize=True)
    partner = np.empty(r.shape[0], dtype=np.int64)
    partner[rows] = cols
    return partner, r[np.arange(r.shape[0]), partner]


def matched_fractions(matched_r: np.ndarray, abs_threshold: float, pos_threshold: float
                      ) -> dict[str, float]:
    """Fractions of units over the paper's thresholds (nan counts in the denominator only)."""
    with np.errstate(invalid="ignore"):
        return {"frac_abs_r_gt": float(np.mean(np.abs(matched_r) > abs_threshold)),
                "frac_r_gt": float(np.mean(matched_r > pos_threshold))}


# ---------------------------------------------------------------- RSA
def condition_centroids(x: np.ndarray, actions: np.ndarray, n_actions: int, by_time: bool
                        ) -> np.ndarray:
    """Mean state per action (by_time=False: (K, H)) or per (timestep, action) ((T*K, H)).

    Conditions without a sample are nan. Rows of the action x timestep set are ordered t-major
    (row t*K + k).
    """
    _, t, h = x.shape
    cond = actions if not by_time else np.arange(t)[None, :] * n_actions + actions
    n_cond = n_actions * (t if by_time else 1)
    flat = cond.ravel()
    sums = np.zeros((n_cond, h))
    np.add.at(sums, flat, np.asarray(x, np.float64).reshape(-1, h))
    counts = np.bincount(flat, minlength=n_cond).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts[:, None]


def rdm(centroids: np.ndarray) -> np.ndarray:
    """Square matrix (C, C) of Euclidean distances between condition centroids (C, H)."""
    return squareform(pdist(centroids, metric="euclidean"))


def rsa_null(rdm_perform: np.ndarray, rdm_observe: np.ndarray, perms: np.ndarray) -> np.ndarray:
    """RSA with the observe conditions permuted: Pearson r of upper triangles, one per row.

    Args:
        rdm_perform, rdm_observe: (C, C) square RDMs; perms: (B, C) permutations of conditions
            (row 0 may be the identity, giving the observed RSA).

    Returns:
        (B,) float64; nan where an RDM's upper triangle is constant.
    """
    iu = np.triu_indices(rdm_perform.shape[0], k=1)
    a = rdm_perform[iu]
    b = rdm_observe[perms[:, iu[0]], perms[:, iu[1]]]  # (B, P)
    a = a - a.mean()
    b = b - b.mean(axis=1, keepdims=True)
    denom = np.sqrt((a**2).sum() * (b**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, b @ a / denom, np.nan)


def label_permutations(n_actions: int, n_blocks: int, n_draws: int, rng: np.random.Generator
                       ) -> np.ndarray:
    """Permutations of conditions that permute action labels within each block of K conditions.

    With one block and K! <= n_draws + 1, all K! permutations (identity first: an exact null);
    otherwise the identity followed by n_draws random ones (each block permuted independently).

    Returns:
        (1 + B, n_blocks * K) int64; row 0 is the identity.
    """
    size = n_blocks * n_actions
    if n_blocks == 1 and math.factorial(n_actions) <= n_draws + 1:
        return np.array(list(itertools.permutations(range(n_actions))), dtype=np.int64)
    within = rng.permuted(np.tile(np.arange(n_actions), (n_draws, n_blocks, 1)), axis=2)
    drawn = (within + n_actions * np.arange(n_blocks)[None, :, None]).reshape(n_draws, size)
    return np.vstack([np.arange(size)[None, :], drawn])


def rsa_test(perform, observe, perform_actions, observe_actions, n_actions: int, by_time: bool,
             n_draws: int, rng: np.random.Generator) -> dict[str, float]:
    """RSA of the two modes' action-conditioned RDMs with its label-permutation null.

    Conditions missing in either mode are dropped (before the null; then the null permutes the
    remaining conditions of each block freely only if no condition was dropped, else all remaining
    conditions are permuted as one block).

    Returns:
        {"r", "null_mean", "null_sd", "p"}: p = share of null draws (the identity included) with
        RSA >= r, i.e. exact for an enumerated null, (1 + #{>=}) / (B + 1) for a drawn one.
    """
    cents = [condition_centroids(x, a, n_actions, by_time)
             for x, a in ((perform, perform_actions), (observe, observe_actions))]
    keep = np.all(np.isfinite(cents[0]), axis=1) & np.all(np.isfinite(cents[1]), axis=1)
    if keep.sum() < 3:
        return {"r": math.nan, "null_mean": math.nan, "null_sd": math.nan, "p": math.nan}
    n_blocks = perform.shape[1] if by_time else 1
    if keep.all():
        perms = label_permutations(n_actions, n_blocks, n_draws, rng)
    else:
        perms = label_permutations(int(keep.sum()), 1, n_draws, rng)
    stats = rsa_null(rdm(cents[0][keep]), rdm(cents[1][keep]), perms)
    null = stats[1:][np.isfinite(stats[1:])]
    if not np.isfinite(stats[0]) or null.size == 0:
        return {"r": float(stats[0]), "null_mean": math.nan, "null_sd": math.nan, "p": math.nan}
    return {"r": float(stats[0]), "null_mean": float(null.mean()), "null_sd": _sd(null),
            "p": float(np.mean(stats[np.isfinite(stats)] >= stats[0] - 1e-12))}


# ---------------------------------------------------------------- principal subspaces
def principal_subspace(x: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-d principal axes of the samples x (S, H).

    Returns:
        (basis, eigenvalues, cov): basis (H, d) orthonormal columns, eigenvalues (H,) of the
        covariance in descending order, cov (H, H) (population covariance).
    """
    xc = centre(x)
    cov = xc.T @ xc / len(xc)
    values, vectors = np.linalg.eigh(cov)
    order = np.argsort(values)[::-1]
    return vectors[:, order[:d]], np.clip(values[order], 0.0, None), cov


def principal_angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Principal angles (radians, ascending) between the spans of orthonormal a (H, d), b (H, d)."""
    cosines = np.linalg.svd(a.T @ b, compute_uv=False)
    return np.arccos(np.clip(cosines, -1.0, 1.0))


def alignment_index(cov: np.ndarray, eigenvalues: np.ndarray, basis: np.ndarray) -> float:
    """Variance of a mode (cov (H, H), its eigenvalues descending) captured by `basis` (H, d),
    relative to the variance its own top-d axes capture: in [0, 1]."""
    d = basis.shape[1]
    top = eigenvalues[:d].sum()
    return float(np.trace(basis.T @ cov @ basis) / top) if top > 0 else math.nan


def random_alignment(eigenvalues: np.ndarray, d: int) -> float:
    """Expected alignment index of a uniformly random d-dim subspace: d/H * total / top-d var."""
    top = eigenvalues[:d].sum()
    return float(d / len(eigenvalues) * eigenvalues.sum() / top) if top > 0 else math.nan


def subspace_summary(perform: np.ndarray, observe: np.ndarray, d: int) -> dict[str, float]:
    """Principal angles and alignment indices between the top-d subspaces of the two modes.

    d is capped at H. Keys: angle_min_deg, angle_median_deg, angle_max_deg, alignment_observe_in_
    perform (observe variance in the perform subspace), alignment_perform_in_observe, and their
    random-subspace expectations random_observe_in_perform, random_perform_in_observe.
    """
    x_p, x_o = flatten_samples(perform), flatten_samples(observe)
    d = min(d, x_p.shape[1])
    basis_p, eig_p, cov_p = principal_subspace(x_p, d)
    basis_o, eig_o, cov_o = principal_subspace(x_o, d)
    angles = np.degrees(principal_angles(basis_p, basis_o))
    return {"angle_min_deg": float(angles.min()), "angle_median_deg": float(np.median(angles)),
            "angle_max_deg": float(angles.max()),
            "alignment_observe_in_perform": alignment_index(cov_o, eig_o, basis_p),
            "alignment_perform_in_observe": alignment_index(cov_p, eig_p, basis_o),
            "random_observe_in_perform": random_alignment(eig_o, d),
            "random_perform_in_observe": random_alignment(eig_p, d)}


# ---------------------------------------------------------------- decoding up to relabelling
def best_relabelling(predicted: np.ndarray, true: np.ndarray, n_classes: int) -> np.ndarray:
    """The one-to-one map of predicted to true classes that maximises the matches.

    Args:
        predicted, true: (S,) int class labels in 0..n_classes-1.

    Returns:
        (n_classes,) int64 mapping: predicted class c is read as class mapping[c].
    """
    confusion = np.zeros((n_classes, n_classes))
    np.add.at(confusion, (predicted, true), 1.0)
    rows, cols = linear_sum_assignment(confusion, maximize=True)
    mapping = np.empty(n_classes, dtype=np.int64)
    mapping[rows] = cols
    return mapping


def relabelled_accuracy(fit_predicted, fit_true, eval_predicted, eval_true, n_classes: int
                        ) -> tuple[float, np.ndarray]:
    """Accuracy on (eval_predicted, eval_true) after the relabelling fitted on the fit pair.

    Returns:
        (accuracy, mapping (n_classes,) int64).
    """
    mapping = best_relabelling(np.asarray(fit_predicted), np.asarray(fit_true), n_classes)
    accuracy = float(np.mean(mapping[np.asarray(eval_predicted)] == np.asarray(eval_true)))
    return accuracy, mapping


# ---------------------------------------------------------------- one run
def population_geometry(perform, observe, perform_actions, observe_actions, *, n_actions: int,
                        abs_threshold: float, pos_threshold: float, n_components: int,
                        n_null: int, rng: np.random.Generator):
    """Every population measure of one run, with its nulls when n_null > 0.

    Args:
        perform, observe: (N, T, H) float64 states aligned by sequence and timestep.
        perform_actions, observe_actions: (N, T) int64 actions of each mode.
        n_actions: K; abs_threshold, pos_threshold: the paper's thresholds on r;
        n_components: d of the principal subspaces; n_null: re-pairings of sequences (CKA and
        best-matched null) and label permutations (RSA); rng: their generator.

    Returns:
        (summary, units): summary of flat scalars (cka, rsa_actions, rsa_action_time,
        subspace_*, best_match_*; with n_null > 0 also each null's mean / sd / p); units, a
        dict of (H,) columns best_match_unit and best_match_r.
    """
    n, t, h = perform.shape
    x_p, x_o = flatten_samples(perform), flatten_samples(observe)
    sd_p, sd_o = unit_sd(x_p), unit_sd(x_o)
    gram_norms = (np.linalg.norm(centre(x_p).T @ centre(x_p)),
                  np.linalg.norm(centre(x_o).T @ centre(x_o)))
    perms = np.vstack([np.arange(n)[None, :],
                       rng.permuted(np.tile(np.arange(n), (n_null, 1)), axis=1)])
    summary: dict[str, float] = {}
    cka, matched = [], []
    for cross in repaired_cross(perform, observe, perms):
        cka.append(cka_from_cross(cross, *gram_norms))
        pairs = best_matched_pairs(cross_correlation(cross, sd_p, sd_o, n * t))
        matched.append(matched_fractions(pairs[1], abs_threshold, pos_threshold))
        if len(matched) == 1:  # row 0: the true pairing
            partner, matched_r = pairs
    summary["cka"] = cka[0]
    summary.update({f"best_match_{k}": v for k, v in matched[0].items()})
    summary["best_match_frac_same_unit"] = float(np.mean(partner == np.arange(h)))
    if n_null > 0:
        null = np.array(cka[1:])
        summary.update(cka_null_mean=float(null.mean()), cka_null_sd=_sd(null),
                       cka_p=float((1 + np.sum(null >= cka[0])) / (n_null + 1)))
        for key in matched[0]:
            summary[f"best_match_{key}_null_mean"] = float(np.mean([m[key] for m in matched[1:]]))
    for name, by_time in (("rsa_actions", False), ("rsa_action_time", True)):
        test = rsa_test(perform, observe, perform_actions, observe_actions, n_actions, by_time,
                        max(n_null, 1), rng)
        summary[name] = test["r"]
        if n_null > 0:
            summary.update({f"{name}_null_mean": test["null_mean"],
                            f"{name}_null_sd": test["null_sd"], f"{name}_p": test["p"]})
    summary.update({f"subspace_{k}": v
                    for k, v in subspace_summary(perform, observe, n_components).items()})
    return summary, {"best_match_unit": partner, "best_match_r": matched_r}


def _sd(values: np.ndarray) -> float:
    return float(values.std(ddof=1)) if len(values) > 1 else math.nan
