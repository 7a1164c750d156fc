"""Multiple-comparison adjustments across units, nan-aware.

The family is the set of units with a finite p-value: a constant (dead) unit cannot be tested, so
it is not counted in m. With no constant units m = H. nan p-values stay nan.
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
    return _step_up(p, dependence_factor=False)


def by_qvalues(p: np.ndarray) -> np.ndarray:
    """Benjamini-Yekutieli adjusted p-values: BH times c(m) = sum_{i<=m} 1/i (any dependence).

    Args:
        p: (H,) p-values, nan allowed.

    Returns:
        (H,) adjusted p-values; nan where p is nan.
    """
    return _step_up(p, dependence_factor=True)


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


def _step_up(p: np.ndarray, dependence_factor: bool) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    q = np.full_like(p, np.nan)
    ok = np.isfinite(p)
    m = int(ok.sum())
    if m == 0:
        return q
    order = np.argsort(p[ok])
    ranked = p[ok][order] * m / np.arange(1, m + 1)
    if dependence_factor:
        ranked *= np.sum(1.0 / np.arange(1, m + 1))
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(ranked, 1.0)
    q[ok] = adjusted
    return q
