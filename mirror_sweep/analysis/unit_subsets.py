"""Subsets of units (top-k mirror, top-k anti-mirror, k random) and decoding from them.

The paper says mirror units "help decode action in either mode". Here the ridge action decoder
of ``decoding`` is trained on k units only: the k with the highest r (mirror), the k with the
lowest r (anti-mirror) and, as the null, many draws of k units at random; trained in one mode and
tested in each. The units are ranked by r on the decoders' *train-split* sequences, so the held-out
accuracy is not inflated by selecting on it. The same selections (ranked on r of the whole test
set, the paper's r) are silenced by the causal ablation (``mirror_sweep.run.ablation``).

Table columns: train_mode, test_mode, selection (mirror | anti | random), k, frac_units,
accuracy (mean over draws for random), accuracy_sd (sd over random draws, ddof=1), n_draws,
random_mean, random_sd, z_vs_random ((accuracy - random_mean) / random_sd) and
percentile_vs_random (share of random draws below, ties counted half), the last four on the
mirror and anti rows.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import scipy.linalg

from .correlation import pooled_r
from .decoding import MODES, fit_standardizer

SELECTIONS = ("mirror", "anti", "random")


def subset_sizes(fractions, n_units: int) -> list[int]:
    """k for each fraction of H: round(f * H) clipped to [1, H], sorted, duplicates dropped."""
    return sorted({int(np.clip(round(f * n_units), 1, n_units)) for f in fractions})


def select_units(r: np.ndarray, k: int, selection: str) -> np.ndarray:
    """The k units with the highest r (mirror) or the lowest r (anti); nan r ranks last.

    Returns:
        (k,) int64 unit indices, best first; ties broken by the lower index.
    """
    r = np.asarray(r, dtype=np.float64)
    if selection == "mirror":
        key = np.where(np.isnan(r), np.inf, -r)
    elif selection == "anti":
        key = np.where(np.isnan(r), np.inf, r)
    else:
        raise ValueError(f"selection must be 'mirror' or 'anti'; got {selection!r}")
    return np.argsort(key, kind="stable")[:k].astype(np.int64)


def random_subsets(n_units: int, k: int, n_draws: int, rng: np.random.Generator) -> np.ndarray:
    """n_draws subsets of k distinct units, uniformly at random: (n_draws, k) int64."""
    return np.argsort(rng.random((n_draws, n_units)), axis=1)[:, :k].astype(np.int64)


def compare_to_random(value: float, random: np.ndarray) -> dict[str, float]:
    """Mean, sd (ddof=1), z and percentile of `value` against random draws (nan-safe)."""
    random = np.asarray(random, dtype=np.float64)
    random = random[np.isfinite(random)]
    if random.size == 0 or not np.isfinite(value):
        return {"random_mean": math.nan, "random_sd": math.nan, "z_vs_random": math.nan,
                "percentile_vs_random": math.nan}
    sd = float(random.std(ddof=1)) if random.size > 1 else math.nan
    mean = float(random.mean())
    z = (value - mean) / sd if sd and np.isfinite(sd) and sd > 0 else math.nan
    percentile = float(np.mean((random < value) + 0.5 * (random == value)))
    return {"random_mean": mean, "random_sd": sd, "z_vs_random": z,
            "percentile_vs_random": percentile}


def subset_accuracies(gram, cross, target_mean, tests, subsets, ridge_alpha):
    """Accuracy of ridge decoders on unit subsets, from the train split's sufficient statistics.

    Args:
        gram: (H, H) X'X of the standardized (hence centred) train features; cross: (H, K) X'Y
            with Y the centred +-1 class codes; target_mean: (K,) mean code (the intercept).
        tests: {mode: (x (S, H) standardized like the train features, y (S,) class indices)}.
        subsets: (M, k) int units; ridge_alpha: the penalty.

    Returns:
        {mode: (M,) accuracies}. Equals refitting ``decoding.ridge_fit_multi`` on x[:, subset].
    """
    out = {mode: np.empty(len(subsets)) for mode in tests}
    eye = ridge_alpha * np.eye(subsets.shape[1])
    for i, units in enumerate(subsets):
        w = scipy.linalg.solve(gram[np.ix_(units, units)] + eye, cross[units], assume_a="pos")
        for mode, (x, y) in tests.items():
            out[mode][i] = np.mean((x[:, units] @ w + target_mean).argmax(axis=1) == y)
    return out


def subset_decoding_table(hidden: dict, actions: dict, split, *, fractions, n_random: int,
                          ridge_alpha: float, rng: np.random.Generator) -> pd.DataFrame:
    """Decoding from the top-k mirror, top-k anti and k random units, all mode pairs.

    Args:
        hidden: {"perform", "observe"}: (N, T, H) states; actions: the same keys, (N, T) int.
        split: (train_idx, test_idx) sequence indices (``decoding.split_sequences``).
        fractions: k as fractions of H; n_random: random subsets per k; rng: their generator.

    Returns:
        The table of the module docstring, one row per (train_mode, test_mode, selection, k).
    """
    train_idx, test_idx = split
    n_units = hidden["perform"].shape[2]
    n_classes = int(max(np.max(actions[m]) for m in MODES)) + 1
    r_train = pooled_r(hidden["perform"][train_idx], hidden["observe"][train_idx])
    sizes = subset_sizes(fractions, n_units)
    subsets = {k: {"mirror": select_units(r_train, k, "mirror")[None],
                   "anti": select_units(r_train, k, "anti")[None],
                   "random": random_subsets(n_units, k, n_random, rng)} for k in sizes}
    rows = []
    for train_mode in MODES:
        x_tr = np.asarray(hidden[train_mode], np.float64)[train_idx].reshape(-1, n_units)
        mean, sd = fit_standardizer(x_tr)
        x_tr = (x_tr - mean) / sd
        codes = -np.ones((len(x_tr), n_classes))
        codes[np.arange(len(x_tr)), actions[train_mode][train_idx].ravel()] = 1.0
        target_mean = codes.mean(axis=0)
        gram, cross = x_tr.T @ x_tr, x_tr.T @ (codes - target_mean)
        tests = {m: ((np.asarray(hidden[m], np.float64)[test_idx].reshape(-1, n_units) - mean)
                     / sd, actions[m][test_idx].ravel()) for m in MODES}
        for k in sizes:
            acc = {sel: subset_accuracies(gram, cross, target_mean, tests, subsets[k][sel],
                                          ridge_alpha) for sel in SELECTIONS}
            for test_mode in MODES:
                rows.extend(subset_rows(train_mode, test_mode, k, n_units,
                                        {sel: acc[sel][test_mode] for sel in SELECTIONS}))
    return pd.DataFrame(rows)


def subset_rows(train_mode, test_mode, k, n_units, accuracies) -> list[dict]:
    """The mirror, anti and random rows of one (train_mode, test_mode, k)."""
    random = accuracies["random"]
    rows = []
    for sel in SELECTIONS:
        values = accuracies[sel]
        row = {"train_mode": train_mode, "test_mode": test_mode, "selection": sel, "k": k,
               "frac_units": k / n_units, "accuracy": float(np.mean(values)),
               "accuracy_sd": float(np.std(values, ddof=1)) if len(values) > 1 else math.nan,
               "n_draws": len(values)}
        # random sets are the reference, not compared with themselves: nan columns
        versus = compare_to_random(row["accuracy"] if sel != "random" else math.nan, random)
        rows.append({**row, **versus})
    return rows


def subset_decoding_summary(table: pd.DataFrame, k: int) -> dict[str, float]:
    """At one k: subset_decode_{train}_to_{test}_{mirror,anti}_{accuracy,z} and _random_mean."""
    out = {}
    for row in table[table["k"] == k].itertuples():
        prefix = f"subset_decode_{row.train_mode}_to_{row.test_mode}"
        if row.selection == "random":
            out[f"{prefix}_random_mean"] = row.accuracy
        else:
            out[f"{prefix}_{row.selection}_accuracy"] = row.accuracy
            out[f"{prefix}_{row.selection}_z"] = row.z_vs_random
    return out
