"""Across-seed summaries of a sweep's per-run table (pure pandas/numpy, no files, no torch).

`robustness` gives, per condition and per value of every factor the sweep varies (hidden size, K,
action process, cell type: sweep/factors.py), each metric's mean, sd and a CI of the mean over
seeds; the seed is the unit of replication. `mean_ci` is the one place a CI
of a mean is computed (also for the paired contrasts of sweep/contrasts.py), by one of
CI_METHODS: "t" (Student t, the default: at n ~ 10 seeds the percentile bootstrap is ~15%
too narrow, see docs/figures_and_claims.md), "bca" (bias-corrected and accelerated bootstrap)
or "percentile" (bootstrap percentile).
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from mirror_sweep.sweep.ci import CI_METHODS, DEFAULT_CI
from mirror_sweep.sweep.factors import varying_factors


def special():
    """scipy.special, imported when first used: scipy.special, not scipy.stats (~4x slower to
    import): t quantiles are special.stdtrit, the normal's ppf / cdf special.ndtri / ndtr, the
    functions scipy.stats.t and norm call. Its import (~0.1 s) is not paid by whoever imports
    this module: mirror-aggregate makes it while its pre-pass scans the sweep (cli.py)."""
    import scipy.special

    return scipy.special

_BOOT_BLOCK = 2_000_000  # resample x replicate counts held at a time by bootstrap_means
ROBUSTNESS_STATS = ["metric", "n", "mean", "sd", "ci_low", "ci_high"]
GROUPED_BY = "grouped_by"  # last column of a grouped table: its grouping keys, comma-separated
# The headline metrics of summary.json that `robustness` summarises (those present are used).
HEADLINE_METRICS = [
    "frac_abs_r_gt", "frac_r_gt", "max_r", "min_r", "n_sig_mirror_bh", "excess_frac_abs_r_gt",
    "time_centred_frac_abs_r_gt", "untrained_frac_abs_r_gt", "untrained_frac_r_gt",
    "frac_congruent", "frac_congruent_chance", "decode_perform_to_observe_accuracy",
    "decode_perform_to_observe_chance", "decode_observe_to_perform_accuracy",
    "decode_observe_to_perform_chance", "final_test_observe_accuracy",
    # inference against controls (issue 12): tails, tuning, lags over mirror units, controls
    "n_sig_anti_bh", "n_sig_mirror_maxstat", "n_sig_anti_maxstat", "excess_frac_r_gt",
    "untrained_max_r", "untrained_min_r", "frac_congruent_strict", "frac_congruent_strict_chance",
    "frac_congruent_broad", "frac_congruent_broad_chance", "frac_selective_both",
    "median_mode_index_anti", "frac_anti_perform_over_observe", "frac_anti_mode_selective",
    "median_abs_peak_lag",
    "median_abs_peak_lag_mirror", "frac_peak_lag_zero_mirror", "untrained_median_abs_peak_lag",
    "untrained_median_abs_peak_lag_mirror", "untrained_frac_peak_lag_zero_mirror",
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
    # counts[b, i]: how often row i is drawn in resample b; means = counts @ values / n, in blocks
    # of resamples so that memory holds idx and one block (not three n_boot x n arrays).
    out = np.empty((n_boot, values.shape[1]))
    step = max(1, _BOOT_BLOCK // n)
    for start in range(0, n_boot, step):
        block = idx[start:start + step]
        flat = (np.arange(len(block))[:, None] * n + block).ravel()
        counts = np.bincount(flat, minlength=len(block) * n).reshape(len(block), n)
        out[start:start + len(block)] = counts @ values / n
    return out


def check_ci_method(ci: str) -> str:
    """`ci` if it is one of CI_METHODS, else ValueError naming it."""
    if ci not in CI_METHODS:
        raise ValueError(f"ci must be one of {', '.join(CI_METHODS)}, got {ci!r}")
    return ci


def mean_ci(x: np.ndarray, ci: str, n_boot: int, seed: int, level: float) -> np.ndarray:
    """CI of the mean of each column of x (n, m), n >= 1, no NaN: (m, 2) low, high.

    "t": mean +- t_{n-1} sd / sqrt(n) (nan for n = 1). "percentile": the percentiles of the
    bootstrap means (``bootstrap_means``, seeded). "bca": Efron's bias-corrected and accelerated
    percentiles of the same bootstrap means (bias z0 from the share of resample means below the
    mean, acceleration from the jackknife). A column with no spread gets [mean, mean].
    """
    check_ci_method(ci)
    n = len(x)
    mean = x.mean(axis=0)
    if ci == "t":
        if n < 2:
            return np.full((x.shape[1], 2), np.nan)
        half = t_quantile(0.5 + level / 2, n - 1) * x.std(axis=0, ddof=1) / np.sqrt(n)
        return np.column_stack([mean - half, mean + half])
    boot = bootstrap_means(x, n_boot, seed)
    tails = np.array([(1 - level) / 2, (1 + level) / 2])
    if ci == "percentile":
        return np.percentile(boot, 100 * tails, axis=0).T
    out = np.column_stack([mean, mean]).astype(float)
    spread = x.max(axis=0) > x.min(axis=0)
    for col in np.flatnonzero(spread):
        out[col] = _bca(x[:, col], boot[:, col], tails)
    return out


@functools.lru_cache(maxsize=4096)
def t_quantile(q: float, df: int) -> float:
    """Student t quantile (scipy.stats.t.ppf(q, df)), cached: thousands of CIs share few df."""
    return float(special().stdtrit(df, q))


def _bca(x: np.ndarray, boot: np.ndarray, tails: np.ndarray) -> np.ndarray:
    """BCa interval of the mean of x from its bootstrap means (x not constant)."""
    n = len(x)
    share = np.clip(np.mean(boot < x.mean()), 1 / (len(boot) + 1), len(boot) / (len(boot) + 1))
    z0 = special().ndtri(share)
    jack = (x.sum() - x) / (n - 1)
    d = jack.mean() - jack
    accel = (d**3).sum() / (6 * (d**2).sum() ** 1.5) if n > 1 else 0.0
    z = special().ndtri(tails)
    adjusted = special().ndtr(z0 + (z0 + z) / (1 - accel * (z0 + z)))
    return np.percentile(boot, 100 * adjusted)


def summarise(values: np.ndarray, n_boot: int, seed: int, level: float,
              ci: str = DEFAULT_CI) -> np.ndarray:
    """n, mean, sd, ci_low, ci_high of each column of values (n_runs, m), NaNs dropped per column.

    Returns: (m, 5) float. Columns that share their NaN pattern are bootstrapped together; the
    CI by ``mean_ci`` with method `ci`.
    """
    out = np.full((values.shape[1], 5), np.nan)
    finite = np.isfinite(values)
    for pattern in {tuple(column) for column in finite.T}:
        cols = np.flatnonzero([tuple(column) == pattern for column in finite.T])
        x = values[np.array(pattern, dtype=bool)][:, cols]
        out[cols, 0] = len(x)
        if len(x) == 0:
            continue
        out[cols, 1] = x.mean(axis=0)
        out[cols, 2] = x.std(axis=0, ddof=1) if len(x) > 1 else np.nan
        out[cols, 3:] = mean_ci(x, ci, n_boot, seed, level)
    return out


def robustness(runs: pd.DataFrame, metrics: list[str] | None = None, n_boot: int = 10_000,
               seed: int = 0, level: float = 0.95, ci: str = DEFAULT_CI) -> pd.DataFrame:
    """Across-seed summary per condition and varying factor (robustness_keys): one row per metric.

    Columns: condition, [each varying factor], metric, n (runs with a finite value), mean, sd
    (ddof=1), ci_low, ci_high (CI of the mean at `level` by method `ci`, see ``mean_ci``; the
    bootstrap methods use `n_boot` resamples, seeded), grouped_by (the grouping keys, e.g.
    "condition,hidden_size"). metrics: default HEADLINE_METRICS; only those present in `runs`
    are used.
    """
    check_ci_method(ci)
    keys = robustness_keys(runs)
    metrics = [m for m in (metrics or HEADLINE_METRICS) if m in runs.columns]
    rows = []
    if len(runs) and metrics:
        for group_values, group in runs.groupby(keys, sort=True, dropna=False):
            stats = summarise(group[metrics].to_numpy(dtype=float), n_boot, seed, level, ci)
            for metric, (n, mean, sd, low, high) in zip(metrics, stats):
                rows.append([*group_values, metric, int(n), mean, sd, low, high])
    table = pd.DataFrame(rows, columns=keys + ROBUSTNESS_STATS)
    table[GROUPED_BY] = ",".join(keys)
    return table.astype({"n": int}) if len(table) else table
