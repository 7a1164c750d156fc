"""Action tuning and perform/observe congruence (the neurophysiological mirror-neuron criterion).

Selectivity. The effect size is eta^2 = SS_between / SS_total of the unit's activation across the
current action, on the pooled sequence x timestep samples of one mode. Those samples are NOT
independent (they share sequences and recurrent state), so the one-way ANOVA's p-values (kept as
descriptive columns) are far too small. The test is at the level of sequences instead: the action
label sequences are permuted across sequences (sequence n gets the labels of sequence pi(n); the
time structure of both is kept), eta^2 is recomputed, and p = (1 + #{eta^2_perm >= eta^2}) / (B+1).
A unit is selective in a mode when its BH-adjusted sequence-level p (across units, within the
mode) is below alpha AND eta^2 >= MIN_ETA2 (Cohen's "medium" effect: with thousands of samples a
negligible tuning can be significant).

Congruence (Gallese et al. 1996 sorted mirror neurons into strictly congruent, broadly congruent
and non-congruent; here, among units selective in both modes, by their tuning curves, i.e. the
per-action mean activations of each mode):
- ``congruent`` (argmax match): the same preferred action in both modes;
- ``congruent_strict``: the same preferred action AND the tuning curves agree as a whole
  (tuning-curve Pearson r >= STRICT_TUNING_R): "the same action, coded the same way";
- ``congruent_broad`` (not strict): the effective actions overlap: each mode's preferred action is
  among the other mode's TOP_EFFECTIVE most effective actions, and the tuning curves correlate
  positively. A unit whose two top actions swap between modes (argmax mismatch, tuning r 0.8) is
  broadly congruent, not incongruent.
Each fraction has a chance level from pairing a unit's perform tuning with ANOTHER unit's observe
tuning (all ordered pairs of distinct units).

Mode selectivity: ``mode_index`` = (mean perform - mean observe) / sqrt((var perform + var observe)
/ 2), a standardised difference of the unit's mean level between modes that r cannot see (an
anti-mirror unit that "activates for self-execution but is suppressed for observation" has r < 0
AND a positive mode index).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.special

from .correlation import CONSTANT_RTOL, constant_units, flatten_samples
from .multiple_testing import bh_qvalues

# Effect-size floor of selectivity: eta^2 >= 0.06 (Cohen's medium effect).
MIN_ETA2 = 0.06
# Strict congruence: tuning-curve r at least this (and the same preferred action).
STRICT_TUNING_R = 0.8
# Broad congruence: each mode's preferred action among the other mode's this many best actions.
TOP_EFFECTIVE = 2
# A mode index at least this (a medium standardised difference) counts as a mode preference.
MIN_MODE_INDEX = 0.5
# eta^2_perm within this of eta^2 counts as a tie (the identity permutation always counts).
_TIE_ATOL = 1e-12
# Permutations per dense product in the selectivity null (~7 MB per 100 at N T = 3,600, K = 4).
_ETA_CHUNK = 100


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
    sums = (a[None, :] == np.arange(n_actions)[:, None]).astype(np.float64) @ flat
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
    return f, scipy.special.fdtrc(k - 1, s - k, f)  # scipy.stats.f.sf, without its import


def eta_squared(x: np.ndarray, actions: np.ndarray, n_actions: int) -> np.ndarray:
    """SS_between / SS_total across actions per unit: (H,) float64, nan for constant units."""
    flat = flatten_samples(x)
    means, counts = action_means(x, actions, n_actions)
    present = counts > 0
    grand = flat.mean(axis=0)
    ss_between = (counts[present, None] * (means[present] - grand) ** 2).sum(axis=0)
    ss_total = ((flat - grand) ** 2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(constant_units(flat), np.nan, ss_between / ss_total)


def sequence_permutation_eta2(x: np.ndarray, actions: np.ndarray, n_actions: int,
                              n_permutations: int, seed) -> np.ndarray:
    """eta^2 of every unit with the label sequences permuted across sequences.

    Permutation b gives sequence n the labels of sequence perms[b, n], drawn with
    ``np.random.default_rng(seed)`` (row-wise ``permuted``). The per-action counts do not change
    under these permutations, so only the per-action sums are recomputed: for a chunk of
    permutations, one dense (chunk K, N T) 0/1 matrix times the (N T, H) centred activations.

    Args:
        x: (N, T, H) activations; actions: (N, T) int labels.

    Returns:
        (B, H) float64; nan columns for constant units.
    """
    n, t, _ = x.shape
    flat = flatten_samples(x)
    centred = flat - flat.mean(axis=0)
    centred32 = centred.astype(np.float32)
    ss_total = (centred**2).sum(axis=0)
    actions = np.asarray(actions)
    counts = np.bincount(actions.ravel(), minlength=n_actions).astype(np.float64)
    inverse_counts = np.where(counts > 0, 1.0 / np.where(counts > 0, counts, 1.0), 0.0)
    perms = np.random.default_rng(seed).permuted(
        np.tile(np.arange(n), (n_permutations, 1)), axis=1)
    levels = np.arange(n_actions)[None, :, None]
    ss_between = np.empty((n_permutations, flat.shape[1]))
    for start in range(0, n_permutations, _ETA_CHUNK):
        labels = actions[perms[start:start + _ETA_CHUNK]].reshape(-1, 1, n * t)
        onehot = (labels == levels).reshape(-1, n * t).astype(np.float32)   # (b K, N T)
        # float32 product (0/1 weights, half the memory traffic); the sums are accumulated by
        # BLAS in float32: ~1e-6 relative error in the null's eta^2, far below its spread.
        sums = (onehot @ centred32).astype(np.float64).reshape(-1, n_actions, flat.shape[1])
        ss_between[start:start + len(labels)] = (sums**2 * inverse_counts[None, :, None]
                                                  ).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = ss_between / ss_total
    return np.where(constant_units(flat), np.nan, out)


def sequence_selectivity(x, actions, n_actions: int, n_permutations: int, seed):
    """eta^2 per unit and its sequence-level permutation p (see the module docstring).

    Returns:
        (eta2, p), each (H,) float64; nan for constant units.
    """
    eta2 = eta_squared(x, actions, n_actions)
    null = sequence_permutation_eta2(x, actions, n_actions, n_permutations, seed)
    p = (1.0 + (null >= eta2 - _TIE_ATOL).sum(axis=0)) / (n_permutations + 1.0)
    return eta2, np.where(np.isfinite(eta2), p, np.nan)


def mode_index(perform: np.ndarray, observe: np.ndarray) -> np.ndarray:
    """(mean perform - mean observe) / sqrt((var perform + var observe) / 2) per unit.

    Returns:
        (H,) float64; nan where the unit is constant in both modes.
    """
    fp, fo = flatten_samples(perform), flatten_samples(observe)
    pooled = np.sqrt((fp.var(axis=0) + fo.var(axis=0)) / 2)
    scale = np.maximum(np.abs(fp).max(axis=0), np.abs(fo).max(axis=0))
    ok = pooled > CONSTANT_RTOL * np.where(scale > 0, scale, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ok, (fp.mean(axis=0) - fo.mean(axis=0)) / pooled, np.nan)


def action_ranks(means: np.ndarray) -> np.ndarray:
    """(K, H) rank of each action per unit, 0 = most effective (highest mean; absent = last)."""
    filled = np.where(np.isfinite(means), means, -np.inf)
    order = np.argsort(-filled, axis=0, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(means.shape[0])[:, None].repeat(means.shape[1], 1),
                      axis=0)
    return ranks


def congruence_classes(means_p, means_o, pref_p, pref_o, selective_p, selective_o):
    """Argmax, strict and broad congruence of pairs (perform unit i, observe unit j).

    Args:
        means_p, means_o: (K, H) per-action means; pref_p, pref_o: (H,) preferred actions
        (-1: constant); selective_p, selective_o: (H,) bool.

    Returns:
        (argmax, strict, broad), each (H, H) bool, [i, j] for perform unit i against observe unit
        j; the diagonal is each unit's own class.
    """
    keep = np.isfinite(means_p).all(axis=1) & np.isfinite(means_o).all(axis=1)
    mp, mo = means_p[keep], means_o[keep]
    cp, co = mp - mp.mean(axis=0), mo - mo.mean(axis=0)
    norm_p, norm_o = np.sqrt((cp**2).sum(axis=0)), np.sqrt((co**2).sum(axis=0))
    with np.errstate(divide="ignore", invalid="ignore"):
        r = (cp.T @ co) / np.outer(norm_p, norm_o)                       # (H, H)
    r = np.nan_to_num(r, nan=-np.inf) if keep.sum() >= 2 else np.full(r.shape, -np.inf)
    both = selective_p[:, None] & selective_o[None, :] & (pref_p[:, None] >= 0) & (
        pref_o[None, :] >= 0)
    same = pref_p[:, None] == pref_o[None, :]
    ranks_p, ranks_o = action_ranks(means_p), action_ranks(means_o)
    h = len(pref_p)
    # rank of observe unit j's preferred action in perform unit i's curve, and vice versa.
    rank_in_p = ranks_p[np.clip(pref_o, 0, None)[None, :], np.arange(h)[:, None]]   # [i, j]
    rank_in_o = ranks_o[np.clip(pref_p, 0, None)[:, None], np.arange(h)[None, :]]   # [i, j]
    argmax = both & same
    strict = argmax & (r >= STRICT_TUNING_R)
    broad = both & ~strict & (rank_in_p < TOP_EFFECTIVE) & (rank_in_o < TOP_EFFECTIVE) & (r > 0)
    return argmax, strict, broad


def pair_chance(classes: np.ndarray) -> float:
    """Share of ordered pairs of distinct units (i, j) in a class: its chance level."""
    h = classes.shape[0]
    if h < 2:
        return float("nan")
    return float((classes.sum() - np.trace(classes)) / (h * (h - 1)))


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


def tuning_table(perform, observe, perform_actions, observe_actions, *, n_actions, alpha,
                 n_permutations=200, seed=0, anti_threshold=-0.6, r=None):
    """Per-unit tuning columns and the congruence summary.

    Args:
        perform, observe: (N, T, H) activations.
        perform_actions: (N, T) labels for perform mode; observe_actions: (N, T) for observe mode.
        n_actions: K.
        alpha: BH level for calling a unit selective within a mode.
        n_permutations, seed: the sequence-level selectivity null (B label permutations across
            sequences per mode, from the streams [*seed, 0] for perform and [*seed, 1] for
            observe; seed an int or a list of ints).
        anti_threshold, r: the anti-mirror units (r < anti_threshold) whose mode index is
            summarised; r (H,) the per-unit perform/observe correlation (None: not summarised).

    Returns:
        (units, summary). units columns: mean_perform_a{k}, mean_observe_a{k} (k < K),
        anova_f_perform, anova_p_perform, eta2_perform, selectivity_p_perform,
        selectivity_q_perform (and the same for observe), tuning_r, preferred_action_perform,
        preferred_action_observe, selective_perform, selective_observe, selective_both,
        congruent (argmax), congruent_strict, congruent_broad, mode_index. summary:
        frac_selective_perform, frac_selective_observe, frac_selective_both, frac_congruent,
        frac_congruent_chance (see ``congruence_chance``), frac_congruent_strict,
        frac_congruent_broad and their _chance (``pair_chance``), n_anti_mode_units,
        median_mode_index_anti, frac_anti_perform_over_observe (anti-mirror units with mode
        index >= MIN_MODE_INDEX; nan without anti-mirror units), frac_anti_mode_selective (the
        same with |mode index|: either mode higher), mean_abs_mode_index.
        Fractions are over all H units.
    """
    cols, per_mode = {}, {}
    for stream, (mode, x, acts) in enumerate((("perform", perform, perform_actions),
                                              ("observe", observe, observe_actions))):
        means, _ = action_means(x, acts, n_actions)
        f, p = anova_units(x, acts, n_actions)
        eta2, p_seq = sequence_selectivity(x, acts, n_actions, n_permutations,
                                           [*np.ravel(seed).tolist(), stream])
        q = bh_qvalues(p_seq)
        selective = (q < alpha) & (eta2 >= MIN_ETA2)
        per_mode[mode] = (means, preferred_action(means, constant_units(flatten_samples(x))),
                          selective)
        cols.update({f"mean_{mode}_a{k}": means[k] for k in range(n_actions)})
        cols.update({f"anova_f_{mode}": f, f"anova_p_{mode}": p, f"eta2_{mode}": eta2,
                     f"selectivity_p_{mode}": p_seq, f"selectivity_q_{mode}": q})
    (m_p, pref_p, sel_p), (m_o, pref_o, sel_o) = per_mode["perform"], per_mode["observe"]
    both = sel_p & sel_o
    argmax, strict, broad = congruence_classes(m_p, m_o, pref_p, pref_o, sel_p, sel_o)
    congruent, c_strict, c_broad = np.diag(argmax), np.diag(strict), np.diag(broad)
    index = mode_index(perform, observe)
    cols.update({"tuning_r": tuning_correlation(m_p, m_o), "preferred_action_perform": pref_p,
                 "preferred_action_observe": pref_o, "selective_perform": sel_p,
                 "selective_observe": sel_o, "selective_both": both, "congruent": congruent,
                 "congruent_strict": c_strict, "congruent_broad": c_broad, "mode_index": index})
    summary = {"frac_selective_perform": float(sel_p.mean()),
               "frac_selective_observe": float(sel_o.mean()),
               "frac_selective_both": float(both.mean()),
               "frac_congruent": float(congruent.mean()),
               "frac_congruent_chance": congruence_chance(pref_p, pref_o, both, n_actions),
               "frac_congruent_strict": float(c_strict.mean()),
               "frac_congruent_strict_chance": pair_chance(strict),
               "frac_congruent_broad": float(c_broad.mean()),
               "frac_congruent_broad_chance": pair_chance(broad),
               "mean_abs_mode_index": float(np.nanmean(np.abs(index)))
               if np.isfinite(index).any() else float("nan"),
               **anti_mode_summary(index, r, anti_threshold)}
    return pd.DataFrame(cols), summary


def anti_mode_summary(index: np.ndarray, r, anti_threshold: float) -> dict[str, float]:
    """Mode index of the anti-mirror units (r < anti_threshold): count, median, the share with
    index >= MIN_MODE_INDEX (higher in perform) and with |index| >= MIN_MODE_INDEX."""
    anti = (np.asarray(r) < anti_threshold) & np.isfinite(index) if r is not None else None
    if anti is None or not anti.any():
        return {"n_anti_mode_units": 0, "median_mode_index_anti": float("nan"),
                "frac_anti_perform_over_observe": float("nan"),
                "frac_anti_mode_selective": float("nan")}
    return {"n_anti_mode_units": int(anti.sum()),
            "median_mode_index_anti": float(np.median(index[anti])),
            "frac_anti_perform_over_observe": float(np.mean(index[anti] >= MIN_MODE_INDEX)),
            "frac_anti_mode_selective": float(np.mean(np.abs(index[anti]) >= MIN_MODE_INDEX))}


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
