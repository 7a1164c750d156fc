"""Temporal alignment of perform and observe time courses: per-unit cross-correlation by lag.

For sequence n and unit u, both time courses are centred over time within the sequence
(p~_t = p_t - mean_t p, likewise o~), and

    xcorr_n(k) = sum_t p~_t o~_{t+k} / sqrt(sum_t p~_t^2 * sum_t o~_t^2),

summing over the T - |k| overlapping steps. At k = 0 this is exactly the Pearson correlation of
the two time courses in sequence n; at |k| > 0 the fixed denominator makes it the usual biased
estimate (shorter overlaps shrink toward 0, favouring small lags). Positive k means observe lags
perform (observe at t + k matches perform at t). The per-unit curve is the mean over sequences in
which the unit varies in both modes. The peak is the lag of largest |mean xcorr| (ties go to the
smaller |k|, then to the negative lag); ``peak_xcorr`` keeps its sign, so anti-mirror units peak
at a negative value.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .correlation import CONSTANT_RTOL


def lag_labels(max_lag: int) -> list[str]:
    """Column names for lags -max_lag..max_lag: xcorr_lag_neg{k}, xcorr_lag_0, xcorr_lag_pos{k}."""
    return [f"xcorr_lag_neg{-k}" if k < 0 else f"xcorr_lag_pos{k}" if k > 0 else "xcorr_lag_0"
            for k in range(-max_lag, max_lag + 1)]


def mean_cross_correlation(perform: np.ndarray, observe: np.ndarray, max_lag: int) -> np.ndarray:
    """Sequence-averaged normalised cross-correlation per unit.

    Args:
        perform, observe: (N, T, H) activations; max_lag: 0 <= max_lag < T.

    Returns:
        (2 max_lag + 1, H) float64, row i is lag i - max_lag; nan for a unit that is constant
        within every sequence in one of the modes.
    """
    p = np.asarray(perform, np.float64)
    o = np.asarray(observe, np.float64)
    p = p - p.mean(axis=1, keepdims=True)
    o = o - o.mean(axis=1, keepdims=True)
    ss_p, ss_o = (p**2).sum(axis=1), (o**2).sum(axis=1)                    # (N, H)
    # Constant within a sequence: per-sequence sd <= CONSTANT_RTOL * the unit's max |value|.
    floor_p = p.shape[1] * (CONSTANT_RTOL * np.abs(perform).max(axis=(0, 1))) ** 2
    floor_o = p.shape[1] * (CONSTANT_RTOL * np.abs(observe).max(axis=(0, 1))) ** 2
    valid = (ss_p > floor_p) & (ss_o > floor_o)
    norm = np.sqrt(ss_p * ss_o)
    n_valid = valid.sum(axis=0)
    safe_norm = np.where(valid, norm, 1.0)
    t = p.shape[1]
    out = np.empty((2 * max_lag + 1, p.shape[2]))
    for i, k in enumerate(range(-max_lag, max_lag + 1)):
        if k >= 0:
            s = (p[:, : t - k] * o[:, k:]).sum(axis=1)
        else:
            s = (p[:, -k:] * o[:, : t + k]).sum(axis=1)
        total = np.where(valid, s / safe_norm, 0.0).sum(axis=0)
        out[i] = np.where(n_valid > 0, total / np.maximum(n_valid, 1), np.nan)
    return out


def peak_lags(xcorr: np.ndarray, max_lag: int):
    """Lag of the largest |xcorr| per unit.

    Args:
        xcorr: (2 max_lag + 1, H) from ``mean_cross_correlation``.

    Returns:
        (peak_lag, peak_xcorr), each (H,) float64; nan for units with an all-nan curve.
    """
    lags = np.arange(-max_lag, max_lag + 1)
    order = np.argsort(np.abs(lags) * 2 + (lags > 0), kind="stable")   # 0, -1, 1, -2, 2, ...
    ranked = np.abs(xcorr[order])
    ok = np.isfinite(ranked).all(axis=0)
    best = order[np.where(ok, np.nan_to_num(ranked, nan=-1.0).argmax(axis=0), 0)]
    cols = np.arange(xcorr.shape[1])
    peak_lag = np.where(ok, lags[best].astype(np.float64), np.nan)
    return peak_lag, np.where(ok, xcorr[best, cols], np.nan)


def lag_table(perform, observe, *, max_lag: int, mirror=None):
    """Per-unit lag columns and their summary, over all units and over the mirror units.

    Args:
        perform, observe: (N, T, H) activations; max_lag: 0 <= max_lag < T.
        mirror: (H,) bool, the units the ``_mirror`` statistics are over (e.g. |r| above the
            threshold); None: not computed.

    Returns:
        (units, summary): units has xcorr_lag_* columns (see ``lag_labels``), peak_lag,
        peak_xcorr; summary has median_abs_peak_lag (over units with a defined peak; nan if
        none) and frac_peak_lag_zero (over all H units), and with ``mirror`` the same over the
        mirror units (median_abs_peak_lag_mirror, frac_peak_lag_zero_mirror: nan when there is
        none) and n_lag_mirror_units.
    """
    xcorr = mean_cross_correlation(perform, observe, max_lag)
    peak_lag, peak_xcorr = peak_lags(xcorr, max_lag)
    units = pd.DataFrame(dict(zip(lag_labels(max_lag), xcorr)))
    units["peak_lag"] = peak_lag
    units["peak_xcorr"] = peak_xcorr
    summary = lag_summary(peak_lag)
    if mirror is not None:
        mirror = np.asarray(mirror, dtype=bool)
        summary.update({f"{key}_mirror": value
                        for key, value in lag_summary(peak_lag[mirror]).items()})
        summary["n_lag_mirror_units"] = int(mirror.sum())
    return units, summary


def lag_summary(peak_lag: np.ndarray) -> dict[str, float]:
    """median |peak lag| over defined peaks and the share of units peaking at 0 (nan if none)."""
    defined = np.abs(peak_lag[np.isfinite(peak_lag)])
    return {
        "median_abs_peak_lag": float(np.median(defined)) if defined.size else float("nan"),
        "frac_peak_lag_zero": float(np.mean(peak_lag == 0)) if peak_lag.size else float("nan"),
    }
