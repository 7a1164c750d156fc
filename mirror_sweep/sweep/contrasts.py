"""Seed-paired contrasts between conditions (pure pandas/numpy, no files, no torch).

For a given seed every condition of a sweep shares the environment, the training data and the
test set (run/experiment.py derives them from the seed alone), so two conditions are compared
through their per-seed differences d_s = metric(condition, s) - metric(reference, s), over the
seeds both have a finite value for. The contrast is the mean of d with a CI (``summaries.mean_ci``,
the same method as the across-seed summaries) and a two-sided sign-flip permutation p: under the
null that the condition does not matter, each d_s is as likely to be -d_s, so
p = #{sign vectors e : |mean(e d)| >= |mean(d)|} / #{sign vectors}, enumerated exactly over all
2^n sign vectors for n <= EXACT_MAX_PAIRS seeds (the smallest possible p is 2 / 2^n: 0.002 at
n = 10), Monte Carlo up to MONTE_CARLO_MAX_PAIRS and, beyond (cluster-scale sweeps, hundreds of
seeds per condition), the normal approximation of the sign-flip distribution: sum(e d) has mean 0
and variance sum(d^2) over the 2^n sign vectors, and is close to normal at that n. The p-values of
one table are computed together (`sign_flip_pvalues`): the contrasts with the same number of pairs
share their sign vectors, one matrix product for all of them, drawn in bounded chunks.

A run's own network at its initial weights is a paired control too: ``INITIAL_WEIGHTS`` rows
compare a metric with its ``untrained_`` twin in the same runs (named apart from an `untrained`
condition, which a sweep may also have).
"""

from __future__ import annotations

import itertools
from collections import defaultdict

import numpy as np
import pandas as pd

from mirror_sweep.sweep.summaries import (
    DEFAULT_CI,
    HEADLINE_METRICS,
    check_ci_method,
    mean_ci,
    robustness_keys,
    special,
)

CONTRAST_COLUMNS = ["condition", "reference", "metric", "n_pairs", "mean_difference", "ci_low",
                    "ci_high", "p"]
# Exact enumeration up to 2^16 sign vectors; Monte Carlo (this many draws, seeded) up to
# MONTE_CARLO_MAX_PAIRS pairs; the normal approximation beyond (O(n) per contrast: at 10^3 seeds
# the Monte Carlo would cost 10^8 operations per contrast, thousands of contrasts per sweep).
EXACT_MAX_PAIRS = 16
MONTE_CARLO_FLIPS = 100_000
MONTE_CARLO_MAX_PAIRS = 100
# Random sign vectors drawn at a time (an even count keeps numpy's stream that of one draw) and
# the most float64 values of one signs x differences product: memory stays bounded.
_FLIP_CHUNK = 2_000
_PRODUCT_MAX = 4_000_000
_CI_BLOCK = 512  # contrasts whose t CIs are computed in one array (mean_cis)
# The reference name of a run's own initial-weight network, and the prefix of its metrics.
INITIAL_WEIGHTS = "initial_weights"
TWIN_PREFIX = "untrained_"
# |mean| within this of the observed |mean| counts as a tie (float rounding of the identity).
_TIE_RTOL = 1e-12


def sign_flip_pvalue(d: np.ndarray, seed: int = 0) -> float:
    """Two-sided sign-flip permutation p of mean(d) = 0 for paired differences d (n,).

    Exact (all 2^n sign vectors, the identity included) for n <= EXACT_MAX_PAIRS; up to
    MONTE_CARLO_MAX_PAIRS, (1 + #{draws at least as extreme}) / (1 + MONTE_CARLO_FLIPS) from
    seeded random signs; beyond, 2 P(Z >= |sum d| / sqrt(sum d^2)) (normal approximation).
    nan for n = 0; 1.0 when every d is 0.
    """
    return float(sign_flip_pvalues([d], seed)[0])


def sign_flip_pvalues(ds: list[np.ndarray], seed: int = 0) -> np.ndarray:
    """``sign_flip_pvalue`` of each of `ds`: those of equal length share their sign vectors
    (the same ones a single call draws) and one matrix product."""
    out = np.full(len(ds), np.nan)
    by_length: dict[int, list[int]] = defaultdict(list)
    for i, d in enumerate(ds):
        by_length[len(d)].append(i)
    for n, where in by_length.items():
        if n == 0:
            continue
        d = np.column_stack([np.asarray(ds[i], dtype=np.float64) for i in where])  # (n, k)
        observed = np.abs(d.sum(axis=0))
        if n <= EXACT_MAX_PAIRS:
            signs = 1.0 - 2.0 * ((np.arange(2**n)[:, None] >> np.arange(n)) & 1)
            out[where] = _count_extreme(signs, d, _limit(d, observed)) / 2**n
        elif n <= MONTE_CARLO_MAX_PAIRS:
            limit = _limit(d, observed)
            rng = np.random.default_rng(seed)
            hits = np.zeros(len(where))
            for start in range(0, MONTE_CARLO_FLIPS, _FLIP_CHUNK):
                rows = min(_FLIP_CHUNK, MONTE_CARLO_FLIPS - start)
                hits += _count_extreme(rng.choice([-1.0, 1.0], size=(rows, n)), d, limit)
            out[where] = (1 + hits) / (1 + MONTE_CARLO_FLIPS)
        else:
            scale = np.sqrt((d**2).sum(axis=0))
            with np.errstate(divide="ignore", invalid="ignore"):
                z = np.where(scale > 0, observed / scale, 0.0)
            out[where] = np.minimum(2 * special().ndtr(-z), 1.0)  # 2 P(Z >= z)
    return out


def _limit(d: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """The |sum| a sign vector must reach to count as extreme: observed, less float rounding."""
    return observed - _TIE_RTOL * np.maximum(np.abs(d).sum(axis=0), 1e-300)


def _count_extreme(signs: np.ndarray, d: np.ndarray, limit: np.ndarray) -> np.ndarray:
    """Per column of d: how many rows of signs give |signs @ d| >= limit (columns in chunks)."""
    step = max(1, _PRODUCT_MAX // len(signs))
    return np.concatenate([
        (np.abs(signs @ d[:, j:j + step]) >= limit[j:j + step]).sum(axis=0)
        for j in range(0, d.shape[1], step)]).astype(float)


def mean_cis(ds: list[np.ndarray], ci: str = DEFAULT_CI, n_boot: int = 10_000, seed: int = 0,
             level: float = 0.95) -> np.ndarray:
    """(len(ds), 3): the mean of each of `ds` (1-D, finite, non-empty) and its CI
    (``summaries.mean_ci``). For the t CI, those of equal length are computed together, as the
    columns of one Fortran-ordered array: each column is summed as the 1-D array alone is
    (pairwise), so the numbers are those of one call each, bit for bit."""
    out = np.empty((len(ds), 3))
    if ci != "t":  # a bootstrap: one (seeded) call each
        for i, d in enumerate(ds):
            out[i, 0] = d.mean()
            out[i, 1:] = mean_ci(d[:, None], ci, n_boot, seed, level)[0]
        return out
    by_length: dict[int, list[int]] = defaultdict(list)
    for i, d in enumerate(ds):
        by_length[len(d)].append(i)
    for where in by_length.values():
        for start in range(0, len(where), _CI_BLOCK):
            block = where[start:start + _CI_BLOCK]
            x = np.array([ds[i] for i in block], dtype=np.float64).T  # (n, k), F-ordered
            out[block, 0] = x.mean(axis=0)
            out[block, 1:] = mean_ci(x, ci, n_boot, seed, level)
    return out


def paired_differences(runs: pd.DataFrame, condition: str, reference: str, metric: str,
                       reference_metric: str | None = None) -> pd.Series:
    """Per-seed metric(condition) - reference_metric(reference), indexed by seed.

    Only seeds with a finite value in both; repeated runs of a (condition, seed) are averaged.
    reference_metric defaults to metric (use TWIN_PREFIX + metric with reference = condition
    for the within-run control).
    """
    reference_metric = reference_metric or metric
    if metric not in runs or reference_metric not in runs:
        return pd.Series(dtype=float)
    left = runs.loc[runs["condition"] == condition].groupby("seed")[metric].mean()
    right = runs.loc[runs["condition"] == reference].groupby("seed")[reference_metric].mean()
    d = (left - right).dropna()
    return d[np.isfinite(d)]


def paired_contrast(d, ci: str = DEFAULT_CI, n_boot: int = 10_000, seed: int = 0,
                    level: float = 0.95) -> dict[str, float]:
    """n_pairs, mean_difference, ci_low, ci_high, p of paired differences d (n,)."""
    d = np.asarray(d, dtype=np.float64)
    if len(d) == 0:
        return {"n_pairs": 0, "mean_difference": np.nan, "ci_low": np.nan, "ci_high": np.nan,
                "p": np.nan}
    low, high = mean_ci(d[:, None], ci, n_boot, seed, level)[0]
    return {"n_pairs": len(d), "mean_difference": float(d.mean()), "ci_low": float(low),
            "ci_high": float(high), "p": sign_flip_pvalue(d, seed)}


def contrasts(runs: pd.DataFrame, metrics: list[str] | None = None,
              pairs: list[tuple[str, str]] | None = None, ci: str = DEFAULT_CI,
              n_boot: int = 10_000, seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """Seed-paired contrasts for every ordered pair of conditions sharing seeds.

    Args:
        runs: the per-run table (condition, seed, metrics; hidden_size when it varies: then
            pairs are formed within each hidden size, which becomes a column).
        metrics: default HEADLINE_METRICS (those present).
        pairs: (condition, reference) pairs; default every ordered pair of distinct conditions
            with at least one shared seed, plus (condition, INITIAL_WEIGHTS) for every metric with an
            ``untrained_`` twin.
        ci, n_boot, seed, level: the CI of the mean difference (``summaries.mean_ci``).

    Returns:
        CONTRAST_COLUMNS (after the extra grouping keys), one row per (pair, metric) with at
        least one pair of seeds, sorted.
    """
    check_ci_method(ci)
    metrics = [m for m in (metrics or HEADLINE_METRICS) if m in runs.columns]
    extra = [key for key in robustness_keys(runs) if key != "condition"]
    rows: list[list] = []
    differences: list[np.ndarray] = []
    if runs.empty or not metrics or "seed" not in runs:
        return pd.DataFrame(columns=extra + CONTRAST_COLUMNS)
    groups = runs.groupby(extra, sort=True, dropna=False) if extra else [((), runs)]
    for values, group in groups:
        values = values if isinstance(values, tuple) else (values,)
        conditions = sorted(group["condition"].dropna().unique())
        wanted = pairs if pairs is not None else [
            *itertools.permutations(conditions, 2), *((c, INITIAL_WEIGHTS) for c in conditions)]
        # every metric's (and twin's) per-seed means in one groupby: seeds x (column, condition)
        twins = [f"{TWIN_PREFIX}{metric}" for metric in metrics]
        means = group.groupby(["seed", "condition"])[list(dict.fromkeys(
            [*metrics, *(twin for twin in twins if twin in group)]))].mean().unstack("condition")
        for metric, twin in zip(metrics, twins):
            table = means[metric]
            untrained = means[twin].reindex(index=table.index, columns=table.columns) \
                if twin in group else None
            # seeds x conditions as arrays: one subtraction per pair, no pandas per pair
            column = {name: i for i, name in enumerate(table.columns)}
            trained = table.to_numpy(dtype=float)
            initial = untrained.to_numpy(dtype=float) if untrained is not None else None
            for condition, reference in wanted:
                if condition not in column:
                    continue
                if reference == INITIAL_WEIGHTS:
                    if initial is None:
                        continue
                    d = trained[:, column[condition]] - initial[:, column[condition]]
                elif reference in column:
                    d = trained[:, column[condition]] - trained[:, column[reference]]
                else:
                    continue
                d = d[np.isfinite(d)]
                if len(d) == 0:
                    continue
                rows.append([*values, condition, reference, metric, len(d)])
                differences.append(d)
    if rows:  # every CI and p at once: contrasts with as many pairs are computed together
        for row, (mean, low, high), p in zip(rows, mean_cis(differences, ci, n_boot, seed, level),
                                             sign_flip_pvalues(differences, seed)):
            row += [float(mean), float(low), float(high), float(p)]
    out = pd.DataFrame(rows, columns=extra + CONTRAST_COLUMNS)
    if out.empty:
        return out
    return out.sort_values(extra + ["condition", "reference", "metric"], kind="stable",
                           ignore_index=True).astype({"n_pairs": int})
