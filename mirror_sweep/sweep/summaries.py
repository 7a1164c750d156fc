"""Across-seed summaries of a sweep's per-run table (pure pandas/numpy, no files, no torch).

`robustness` gives, per condition and per value of every factor the sweep varies (hidden size, K,
action process, cell type: sweep/factors.py), each metric's mean, sd and a seeded bootstrap CI of
the mean over seeds; the seed is the unit of replication.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mirror_sweep.sweep.factors import varying_factors

ROBUSTNESS_STATS = ["metric", "n", "mean", "sd", "ci_low", "ci_high"]
GROUPED_BY = "grouped_by"  # last column of a grouped table: its grouping keys, comma-separated
# The headline metrics of summary.json that `robustness` summarises (those present are used).
HEADLINE_METRICS = [
    "frac_abs_r_gt", "frac_r_gt", "max_r", "min_r", "n_sig_mirror_bh", "excess_frac_abs_r_gt",
    "time_centred_frac_abs_r_gt", "untrained_frac_abs_r_gt", "untrained_frac_r_gt",
    "frac_congruent", "frac_congruent_chance", "decode_perform_to_observe_accuracy",
    "decode_perform_to_observe_chance", "decode_observe_to_perform_accuracy",
    "decode_observe_to_perform_chance", "final_test_observe_accuracy",
]


def robustness_keys(runs: pd.DataFrame) -> list[str]:
    """Group by condition and by every factor that varies across the runs (factors.FACTORS order:
    hidden_size, cell, n_actions, action_process, stay_prob); the seed is never a key."""
    return ["condition", *varying_factors(runs)]


def bootstrap_means(values: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """Means of `n_boot` resamples with replacement of the rows of `values`.

    Args: values (n, m) float, n >= 1 replicates of m metrics (no NaN).
    Returns: (n_boot, m). Resample b is rows rng.integers(0, n, (n_boot, n))[b] with
    rng = default_rng(seed), so equal-sized groups share their resamples (common random numbers).
    """
    n = len(values)
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    # counts[b, i]: how often row i is drawn in resample b; means = counts @ values / n.
    flat = (np.arange(n_boot)[:, None] * n + idx).ravel()
    counts = np.bincount(flat, minlength=n_boot * n).reshape(n_boot, n)
    return counts @ values / n


def summarise(values: np.ndarray, n_boot: int, seed: int, level: float) -> np.ndarray:
    """n, mean, sd, ci_low, ci_high of each column of values (n_runs, m), NaNs dropped per column.

    Returns: (m, 5) float. Columns that share their NaN pattern are bootstrapped together.
    """
    out = np.full((values.shape[1], 5), np.nan)
    finite = np.isfinite(values)
    tails = [50 * (1 - level), 100 - 50 * (1 - level)]
    for pattern in {tuple(column) for column in finite.T}:
        cols = np.flatnonzero([tuple(column) == pattern for column in finite.T])
        x = values[np.array(pattern, dtype=bool)][:, cols]
        out[cols, 0] = len(x)
        if len(x) == 0:
            continue
        out[cols, 1] = x.mean(axis=0)
        out[cols, 2] = x.std(axis=0, ddof=1) if len(x) > 1 else np.nan
        out[cols, 3:] = np.percentile(bootstrap_means(x, n_boot, seed), tails, axis=0).T
    return out


def robustness(runs: pd.DataFrame, metrics: list[str] | None = None, n_boot: int = 10_000,
               seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """Across-seed summary per condition and varying factor (robustness_keys): one row per metric.

    Columns: condition, [each varying factor], metric, n (runs with a finite value), mean, sd
    (ddof=1), ci_low, ci_high (bootstrap percentile CI of the mean at `level`, `n_boot`
    resamples, seeded), grouped_by (the grouping keys, e.g. "condition,hidden_size").
    metrics: default HEADLINE_METRICS; only those present in `runs` are used.
    """
    keys = robustness_keys(runs)
    metrics = [m for m in (metrics or HEADLINE_METRICS) if m in runs.columns]
    rows = []
    if len(runs) and metrics:
        for group_values, group in runs.groupby(keys, sort=True, dropna=False):
            stats = summarise(group[metrics].to_numpy(dtype=float), n_boot, seed, level)
            for metric, (n, mean, sd, low, high) in zip(metrics, stats):
                rows.append([*group_values, metric, int(n), mean, sd, low, high])
    table = pd.DataFrame(rows, columns=keys + ROBUSTNESS_STATS)
    table[GROUPED_BY] = ",".join(keys)
    return table.astype({"n": int}) if len(table) else table
