"""Multiple-comparison adjustments across units, nan-aware.

The family is the set of units with a finite p-value: a constant (dead) unit cannot be tested, so
it is not counted in m. With no constant units m = H. nan p-values stay nan. The step-up
adjustments are scipy's `false_discovery_control` on the finite p-values.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import false_discovery_control


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
    """scipy.stats.false_discovery_control over the finite p-values; nan elsewhere."""
    p = np.asarray(p, dtype=np.float64)
    q = np.full_like(p, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        q[ok] = false_discovery_control(p[ok], method=method)
    return q
