"""Action tuning and perform/observe congruence (the neurophysiological mirror-neuron criterion).

A unit is a congruent mirror unit when it is action-selective in both modes and prefers the same
action in both. Selectivity is a one-way ANOVA of the unit's activation across the current action,
on the pooled sequence x timestep samples of one mode. Those samples are NOT independent (they
share sequences and recurrent state), so the ANOVA p-values are a descriptive selectivity index,
not calibrated tests. A unit is called selective in a mode when its BH-adjusted ANOVA p-value
(across units, within that mode) is below alpha.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.stats

from .correlation import CONSTANT_RTOL, constant_units, flatten_samples
from .multiple_testing import bh_qvalues


def action_means(x: np.ndarray, actions: np.ndarray, n_actions: int):
    """Mean activation per action.

    Args:
        x: (N, T, H) activations.
        actions: (N, T) int actions in 0..n_actions-1.

    Returns:
        (means, counts): means (K, H) float64, nan for an action that never occurs; counts (K,).
    """
    flat = flatten_samples(x)
    a = np.asarray(actions).ravel()
    counts = np.bincount(a, minlength=n_actions).astype(np.float64)
    sums = np.zeros((n_actions, flat.shape[1]))
    np.add.at(sums, a, flat)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts[:, None], counts


def anova_units(x: np.ndarray, actions: np.ndarray, n_actions: int):
    """One-way ANOVA across actions for every unit at once (groups = actions that occur).

    Args:
        x: (N, T, H) activations.
        actions: (N, T) int actions.

    Returns:
        (F, p), each (H,) float64; nan for constant units or fewer than 2 occurring actions; F is
        inf and p 0 when a non-constant unit has no within-action variance.
    """
    flat = flatten_samples(x)
    a = np.asarray(actions).ravel()
    means, counts = action_means(x, actions, n_actions)
    present = counts > 0
    k, s = int(present.sum()), flat.shape[0]
    nan = np.full(flat.shape[1], np.nan)
    if k < 2 or s <= k:
        return nan, nan.copy()
    grand = flat.mean(axis=0)
    ss_between = (counts[present, None] * (means[present] - grand) ** 2).sum(axis=0)
    ss_within = ((flat - means[a]) ** 2).sum(axis=0)
    const = constant_units(flat)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = (ss_between / (k - 1)) / (ss_within / (s - k))
    f = np.where(const, np.nan, f)
    return f, scipy.stats.f.sf(f, k - 1, s - k)


def preferred_action(means: np.ndarray, constant: np.ndarray) -> np.ndarray:
    """Action with the highest mean activation.

    Args:
        means: (K, H) per-action means (nan = action absent).
        constant: (H,) bool, units constant in this mode.

    Returns:
        (H,) int64 action index; -1 for constant units (no preference).
    """
    filled = np.where(np.isfinite(means), means, -np.inf)
    return np.where(constant, -1, filled.argmax(axis=0)).astype(np.int64)


def tuning_correlation(means_p: np.ndarray, means_o: np.ndarray) -> np.ndarray:
    """Pearson r between the two modes' per-action mean vectors, per unit.

    Args:
        means_p, means_o: (K, H) per-action means; actions absent in either mode are dropped.

    Returns:
        (H,) float64; nan when fewer than 2 shared actions or a flat tuning curve.
    """
    keep = np.isfinite(means_p).all(axis=1) & np.isfinite(means_o).all(axis=1)
    if keep.sum() < 2:
        return np.full(means_p.shape[1], np.nan)
    mp, mo = means_p[keep], means_o[keep]
    cp, co = mp - mp.mean(axis=0), mo - mo.mean(axis=0)
    sp_, so_ = np.sqrt((cp**2).sum(axis=0)), np.sqrt((co**2).sum(axis=0))
    flat = (sp_ <= CONSTANT_RTOL * np.abs(mp).max(axis=0)) | (
        so_ <= CONSTANT_RTOL * np.abs(mo).max(axis=0))
    with np.errstate(divide="ignore", invalid="ignore"):
        r = (cp * co).sum(axis=0) / (sp_ * so_)
    return np.where(flat, np.nan, np.clip(r, -1.0, 1.0))


def tuning_table(perform, observe, perform_actions, observe_actions, *, n_actions, alpha):
    """Per-unit tuning columns and the congruence summary.

    Args:
        perform, observe: (N, T, H) activations.
        perform_actions: (N, T) labels for perform mode; observe_actions: (N, T) for observe mode.
        n_actions: K.
        alpha: BH level for calling a unit selective within a mode.

    Returns:
        (units, summary). units columns: mean_perform_a{k}, mean_observe_a{k} (k < K),
        anova_f_perform, anova_p_perform, anova_q_perform, anova_f_observe, anova_p_observe,
        anova_q_observe, tuning_r, preferred_action_perform, preferred_action_observe,
        selective_perform, selective_observe, selective_both, congruent. summary:
        frac_selective_perform, frac_selective_observe, frac_selective_both, frac_congruent,
        frac_congruent_chance (see ``congruence_chance``). Fractions are over all H units.
    """
    cols, per_mode = {}, {}
    for mode, x, acts in (("perform", perform, perform_actions),
                          ("observe", observe, observe_actions)):
        means, _ = action_means(x, acts, n_actions)
        f, p = anova_units(x, acts, n_actions)
        q = bh_qvalues(p)
        per_mode[mode] = (means, preferred_action(means, constant_units(flatten_samples(x))),
                          q < alpha)
        cols.update({f"mean_{mode}_a{k}": means[k] for k in range(n_actions)})
        cols.update({f"anova_f_{mode}": f, f"anova_p_{mode}": p, f"anova_q_{mode}": q})
    (m_p, pref_p, sel_p), (m_o, pref_o, sel_o) = per_mode["perform"], per_mode["observe"]
    both = sel_p & sel_o
    congruent = both & (pref_p == pref_o)
    cols.update({"tuning_r": tuning_correlation(m_p, m_o), "preferred_action_perform": pref_p,
                 "preferred_action_observe": pref_o, "selective_perform": sel_p,
                 "selective_observe": sel_o, "selective_both": both, "congruent": congruent})
    summary = {"frac_selective_perform": float(sel_p.mean()),
               "frac_selective_observe": float(sel_o.mean()),
               "frac_selective_both": float(both.mean()),
               "frac_congruent": float(congruent.mean()),
               "frac_congruent_chance": congruence_chance(pref_p, pref_o, both, n_actions)}
    return pd.DataFrame(cols), summary


def congruence_chance(pref_p, pref_o, selective_both, n_actions: int) -> float:
    """Expected frac_congruent if preferred actions were matched at random.

    Among the units selective in both modes, perform and observe preferences are treated as
    independent draws from their own empirical distributions, so the chance match rate is
    sum_k f_perform(k) f_observe(k) (1/K when preferences are uniform); the result is
    frac_selective_both times that rate.

    Args:
        pref_p, pref_o: (H,) preferred actions; selective_both: (H,) bool.

    Returns:
        float in [0, 1].
    """
    n_units = len(selective_both)
    n_both = int(np.sum(selective_both))
    if n_both == 0:
        return 0.0
    f_p = np.bincount(pref_p[selective_both], minlength=n_actions) / n_both
    f_o = np.bincount(pref_o[selective_both], minlength=n_actions) / n_both
    return float(n_both / n_units * np.dot(f_p, f_o))
