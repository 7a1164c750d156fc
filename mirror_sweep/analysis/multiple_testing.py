"""Multiple-comparison adjustments across units, nan-aware.

The family is the set of units with a finite p-value: a constant (dead) unit cannot be tested, so
it is not counted in m. With no constant units m = H. nan p-values stay nan. The step-up
adjustments are scipy's `false_discovery_control` on the finite p-values, written out here (the
same operations, so the same values) because importing scipy.stats takes ~0.6 s of every run.
"""

from __future__ import annotations

import numpy as np


def bh_qvalues(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values).

    Args:
        p: (H,) p-values, nan allowed.

    Returns:
        (H,) q = min(1, min_{j >= i} p_(j) m / j) in the original order; nan where p is nan.
    """
    return _finite_only(p, "bh")


def by_qvalues(p: np.ndarray) -> np.ndarray:
    """Benjamini-Yekutieli adjusted p-values: BH times c(m) = sum_{i<=m} 1/i (any dependence).

    Args:
        p: (H,) p-values, nan allowed.

    Returns:
        (H,) adjusted p-values; nan where p is nan.
    """
    return _finite_only(p, "by")


def bonferroni(p: np.ndarray) -> np.ndarray:
    """Bonferroni adjusted p-values min(1, p m), m = number of finite p-values.

    Args:
        p: (H,) p-values, nan allowed.

    Returns:
        (H,) adjusted p-values; nan where p is nan.
    """
    p = np.asarray(p, dtype=np.float64)
    m = int(np.isfinite(p).sum())
    return np.minimum(1.0, p * m)


def _finite_only(p: np.ndarray, method: str) -> np.ndarray:
    """The step-up adjustment over the finite p-values; nan elsewhere."""
    p = np.asarray(p, dtype=np.float64)
    q = np.full_like(p, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        q[ok] = false_discovery_control(p[ok], method=method)
    return q


def false_discovery_control(p: np.ndarray, method: str = "bh") -> np.ndarray:
    """scipy.stats.false_discovery_control(p, method=method) for a 1-D array of p-values in
    [0, 1]: p_(i) m / i (times sum_{i<=m} 1/i for "by"), the running minimum from the largest p
    down, back in the original order, clipped to [0, 1]."""
    if not np.all((p >= 0.0) & (p <= 1.0)):
        raise ValueError("p-values must lie in [0, 1]")
    if p.size <= 1:
        return p.copy()
    m = p.size
    order = np.argsort(p)
    i = np.arange(1, m + 1, dtype=np.float64)
    ranked = p[order] * (m / i)
    if method == "by":
        ranked *= np.sum(1 / i)
    np.minimum.accumulate(ranked[::-1], out=ranked[::-1])
    q = np.empty_like(ranked)
    q[order] = ranked
    return np.clip(q, 0.0, 1.0)
