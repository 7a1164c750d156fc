"""Per-unit permutation test of perform-vs-observe r by re-pairing sequences.

Null hypothesis: which observe sequence is aligned with which perform sequence does not matter.
A null draw applies ONE random permutation pi of the N sequence indices at every timestep,
pairing perform sequence n with observe sequence pi(n); time structure within sequences (and
the marginal distribution of each mode) is kept.

Fast algorithm: each unit is z-scored over all N*T samples per mode (marginals are unchanged by
re-pairing), the cross-products C[n, m, u] = sum_t zP[n,t,u] zO[m,t,u] / (N T) are formed once,
and the re-paired correlation is r_pi[u] = sum_n C[n, pi(n), u]. A chunk of permutations is a
sparse 0/1 matrix (B_chunk, N*N) with N ones per row, so the null is one sparse-dense product per
chunk, vectorized over units and permutations.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .correlation import flatten_samples, standardize_units, threshold_fractions
from .multiple_testing import bh_qvalues, bonferroni, by_qvalues

# Permutations per sparse product: the chunk's matrix holds chunk*N entries (~24 MB at N=300).
_CHUNK = 2000
# |r_perm| within this of |r| counts as a tie (float rounding of the identity re-pairing).
_TIE_ATOL = 1e-10


def draw_sequence_permutations(n_sequences: int, n_permutations: int, seed) -> np.ndarray:
    """Random re-pairings of sequences, reproducible from ``seed``.

    Returns:
        (B, N) int64, row b is a uniformly random permutation of 0..N-1 (the identity may occur).
    """
    rng = np.random.default_rng(seed)
    base = np.tile(np.arange(n_sequences, dtype=np.int64), (n_permutations, 1))
    return rng.permuted(base, axis=1)


def pairing_cross_products(perform: np.ndarray, observe: np.ndarray) -> np.ndarray:
    """Cross-products from which any re-paired correlation is a sum.

    Args:
        perform, observe: (N, T, H) activations.

    Returns:
        (N, N, H) float64 C with C[n, m, u] = sum_t zP[n,t,u] zO[m,t,u] / (N T); the pooled r of
        unit u under pairing pi is sum_n C[n, pi(n), u] (nan for constant units).
    """
    n, t, h = perform.shape
    z_p = standardize_units(flatten_samples(perform)).reshape(n, t, h) / (n * t)
    z_o = standardize_units(flatten_samples(observe)).reshape(n, t, h)
    cross = np.matmul(z_p.transpose(2, 0, 1), z_o.transpose(2, 1, 0))  # (H, N, N), batched BLAS
    return np.ascontiguousarray(cross.transpose(1, 2, 0))  # contiguous, so the null can reshape


def null_from_cross_products(cross: np.ndarray, perms: np.ndarray, n_threads: int = 1
                             ) -> np.ndarray:
    """Re-paired correlations for many permutations.

    Args:
        cross: (N, N, H) from ``pairing_cross_products``.
        perms: (B, N) int permutations of sequence indices.
        n_threads: chunks of permutations run in this many threads (scipy's sparse product
            releases the GIL); the result does not depend on it.

    Returns:
        (B, H) float64 null correlations r_perm[b, u].
    """
    n, _, h = cross.shape
    flat = cross.reshape(n * n, h)
    offsets = np.arange(n, dtype=np.int64) * n
    out = np.empty((perms.shape[0], h))

    def fill(start: int) -> None:
        chunk = perms[start:start + _CHUNK]
        b = chunk.shape[0]
        select = sp.csr_matrix(
            (np.ones(b * n), (offsets + chunk).ravel(), np.arange(0, b * n + 1, n)),
            shape=(b, n * n),
        )
        out[start:start + b] = select @ flat

    starts = range(0, perms.shape[0], _CHUNK)
    if n_threads <= 1:
        for start in starts:
            fill(start)
    else:
        with ThreadPoolExecutor(n_threads) as pool:
            list(pool.map(fill, starts))
    return out


def permutation_null(perform, observe, n_permutations: int, seed, n_threads: int = 1
                     ) -> np.ndarray:
    """Null distribution of per-unit r under random re-pairing of sequences.

    ``analyze_activations(..., seed=s, n_permutations=B)`` uses exactly this null, so figures can
    redraw it with the same arguments.

    Args:
        perform, observe: (N, T, H) activations.
        n_permutations: B.
        seed: int seed (or anything ``np.random.default_rng`` accepts).
        n_threads: threads for the null (same result for any value).

    Returns:
        (B, H) float64; columns of constant units are nan.
    """
    perform = np.asarray(perform, dtype=np.float64)
    observe = np.asarray(observe, dtype=np.float64)
    perms = draw_sequence_permutations(perform.shape[0], n_permutations, seed)
    return null_from_cross_products(pairing_cross_products(perform, observe), perms, n_threads)


def permutation_pvalues(r: np.ndarray, null: np.ndarray) -> np.ndarray:
    """Two-sided p = (1 + #{b : |r_perm[b,u]| >= |r[u]|}) / (B + 1).

    |r_perm| within 1e-10 of |r| counts as a tie (so the identity re-pairing, whose r equals the
    observed r up to rounding, always counts). This |r| rule differs from scipy's two-sided
    2 min(one-sided p) when the null is asymmetric (its mean is not exactly 0 under re-pairing).

    Args:
        r: (H,) observed correlations.
        null: (B, H) null correlations.

    Returns:
        (H,) p-values; nan where r is nan.
    """
    exceed = (np.abs(null) >= np.abs(r) - _TIE_ATOL).sum(axis=0)
    p = (1.0 + exceed) / (null.shape[0] + 1.0)
    return np.where(np.isfinite(r), p, np.nan)


def maxstat_threshold(null: np.ndarray, alpha: float) -> tuple[float, np.ndarray]:
    """Family-wise threshold from the max over units of |r_perm|.

    Args:
        null: (B, H) null correlations (nan columns ignored).
        alpha: family-wise error rate; the threshold is the (1 - alpha) quantile
            (95th percentile at alpha = 0.05).

    Returns:
        (threshold, max_abs) with max_abs (B,) the per-permutation max over units; threshold is
        nan if every unit is constant.
    """
    valid = np.isfinite(null).all(axis=0)
    if not valid.any():
        return float("nan"), np.full(null.shape[0], np.nan)
    max_abs = np.abs(null[:, valid]).max(axis=1)
    return float(np.quantile(max_abs, 1.0 - alpha)), max_abs


def permutation_table(r, null, *, alpha, abs_threshold, pos_threshold):
    """Per-unit permutation statistics and their summary.

    Args:
        r: (H,) observed per-unit r.
        null: (B, H) from ``permutation_null``.

    Returns:
        (units, summary): units has columns p_value, q_bh, q_by, p_bonferroni, p_maxstat,
        sig_maxstat, null_mean_abs_r, null_sd_r; summary has maxstat_threshold, significant
        mirror (r > 0) / anti-mirror (r < 0) counts for bh, by, bonferroni, maxstat, and the
        null mean and excess of the headline fractions.
    """
    r = np.asarray(r, dtype=np.float64)
    p = permutation_pvalues(r, null)
    threshold, max_abs = maxstat_threshold(null, alpha)
    exceed_max = (max_abs[:, None] >= np.abs(r) - _TIE_ATOL).sum(axis=0)
    units = pd.DataFrame({
        "p_value": p,
        "q_bh": bh_qvalues(p),
        "q_by": by_qvalues(p),
        "p_bonferroni": bonferroni(p),
        "p_maxstat": np.where(np.isfinite(r), (1.0 + exceed_max) / (len(max_abs) + 1.0), np.nan),
        "sig_maxstat": np.abs(r) > threshold,
        "null_mean_abs_r": np.abs(null).mean(axis=0),
        "null_sd_r": null.std(axis=0, ddof=1) if null.shape[0] > 1 else np.full(len(r), np.nan),
    })
    summary = {"maxstat_threshold": threshold}
    flags = {"bh": units["q_bh"] < alpha, "by": units["q_by"] < alpha,
             "bonferroni": units["p_bonferroni"] < alpha, "maxstat": units["sig_maxstat"]}
    for name, sig in flags.items():
        summary[f"n_sig_mirror_{name}"] = int((sig & (r > 0)).sum())
        summary[f"n_sig_anti_{name}"] = int((sig & (r < 0)).sum())
    observed = threshold_fractions(r, abs_threshold, pos_threshold)
    under_null = threshold_fractions(null, abs_threshold, pos_threshold)
    for key, value in observed.items():
        summary[f"null_mean_{key}"] = float(under_null[key].mean())
        summary[f"excess_{key}"] = float(value - under_null[key].mean())
    return units, summary
