"""Per-unit perform-vs-observe Pearson correlations and the paper's headline scalars.

Convention for constant units (e.g. dead units): their r is nan. Fractions count them in the
denominator (all H units) but never in the numerator, so a dead unit lowers a fraction rather than
silently shrinking the population; ``max_r``/``min_r``/``mean_abs_r`` ignore them (nan if every
unit is constant).
"""

from __future__ import annotations

import numpy as np

# A unit is constant when its sd is below this fraction of its largest |value|: exactly-equal
# float32 samples give sd 0, float64 rounding leaves ~1e-16 relative residue, real data far more.
CONSTANT_RTOL = 1e-12


def flatten_samples(x: np.ndarray) -> np.ndarray:
    """Pool sequences and timesteps: (N, T, H) -> (N*T, H) float64."""
    x = np.asarray(x, dtype=np.float64)
    return x.reshape(-1, x.shape[-1])


def constant_units(x: np.ndarray, scale: np.ndarray | None = None) -> np.ndarray:
    """Flag columns with (numerically) zero variance.

    Args:
        x: (S, H) samples by units.
        scale: (H,) reference magnitude per unit; default max |x| of the column.

    Returns:
        (H,) bool, True where sd <= CONSTANT_RTOL * scale.
    """
    x = np.asarray(x, dtype=np.float64)
    if scale is None:
        scale = np.abs(x).max(axis=0)
    sd = np.sqrt(((x - x.mean(axis=0)) ** 2).mean(axis=0))
    return sd <= CONSTANT_RTOL * scale


def standardize_units(x: np.ndarray, scale: np.ndarray | None = None) -> np.ndarray:
    """Z-score each column (population sd); constant columns (see ``constant_units``) become nan.

    Args:
        x: (S, H) samples by units.
        scale: (H,) reference magnitude for the constancy test; default max |x| per column.

    Returns:
        (S, H) float64.
    """
    x = np.asarray(x, dtype=np.float64)
    xc = x - x.mean(axis=0)
    sd = np.sqrt((xc**2).mean(axis=0))
    const = constant_units(x, scale)
    return xc / np.where(const, np.nan, sd)


def pooled_r(perform: np.ndarray, observe: np.ndarray, scale=None) -> np.ndarray:
    """Per-unit Pearson r over all sequence x timestep samples.

    Args:
        perform, observe: (N, T, H) activations aligned by sequence and timestep.
        scale: optional pair of (H,) reference magnitudes for the constancy test.

    Returns:
        (H,) float64 in [-1, 1]; nan for units constant in either mode.
    """
    s_p, s_o = (None, None) if scale is None else scale
    z_p = standardize_units(flatten_samples(perform), s_p)
    z_o = standardize_units(flatten_samples(observe), s_o)
    return np.clip((z_p * z_o).mean(axis=0), -1.0, 1.0)


def time_centred_r(perform: np.ndarray, observe: np.ndarray) -> np.ndarray:
    """Pooled r after removing each timestep's mean over sequences, in each mode separately.

    This removes any time course shared by all sequences (e.g. a common ramp after reset), so a
    unit correlated only through that shared time course gets r close to 0.

    Args:
        perform, observe: (N, T, H) activations.

    Returns:
        (H,) float64; nan where a unit has no variance left after centring (e.g. it depends on t
        only).
    """
    scales = tuple(np.abs(flatten_samples(x)).max(axis=0) for x in (perform, observe))
    centred = [np.asarray(x, np.float64) - np.mean(x, axis=0, dtype=np.float64)
               for x in (perform, observe)]
    return pooled_r(centred[0], centred[1], scale=scales)


def threshold_fractions(r: np.ndarray, abs_threshold: float, pos_threshold: float) -> dict:
    """Fractions of units with |r| > abs_threshold and r > pos_threshold.

    Args:
        r: (..., H) correlations; nan entries count in the denominator H only.

    Returns:
        dict with ``frac_abs_r_gt`` and ``frac_r_gt``, each an array of shape (...).
    """
    r = np.asarray(r, dtype=np.float64)
    return {
        "frac_abs_r_gt": (np.abs(r) > abs_threshold).mean(axis=-1),
        "frac_r_gt": (r > pos_threshold).mean(axis=-1),
    }


def headline_summary(r: np.ndarray, *, abs_threshold: float, pos_threshold: float,
                     anti_threshold: float) -> dict:
    """The paper's scalars from per-unit r.

    Args:
        r: (H,) per-unit correlations (nan = constant unit).

    Returns:
        dict of python scalars: frac_abs_r_gt, frac_r_gt, max_r, min_r, n_anti_mirror,
        mean_abs_r.
    """
    r = np.asarray(r, dtype=np.float64)
    finite = r[np.isfinite(r)]
    fractions = threshold_fractions(r, abs_threshold, pos_threshold)
    return {
        "frac_abs_r_gt": float(fractions["frac_abs_r_gt"]),
        "frac_r_gt": float(fractions["frac_r_gt"]),
        "max_r": float(finite.max()) if finite.size else float("nan"),
        "min_r": float(finite.min()) if finite.size else float("nan"),
        "n_anti_mirror": int((r < anti_threshold).sum()),
        "mean_abs_r": float(np.abs(finite).mean()) if finite.size else float("nan"),
    }
