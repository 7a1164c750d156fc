"""Cross-condition decoding of the current action from hidden states.

A ridge least-squares classifier (the model of sklearn's ``RidgeClassifier``: targets +1 for the
true class and -1 otherwise, intercept fitted by centring, prediction = argmax of the scores) is
trained on one mode's hidden states and tested on the other's (perform->observe, observe->perform)
and on its own (perform->perform, observe->observe: the within-mode ceiling).

- Split: one seeded split of sequence indices, shared by all four directions; a
  ``test_fraction`` of sequences is held out. Train on the train-split sequences of the train mode
  with the train mode's own actions, test on the test-split sequences of the test mode with the
  test mode's own actions.
- Features are standardized with the mean and sd of the train mode's train split (features with
  zero sd are only centred) and the same transform is applied to the test mode.
- Null: the train labels are re-assigned across train sequences (row n of actions goes with the
  hidden states of sequence pi(n); the order within a sequence is kept) and the decoder is refit
  for each of B permutations; test labels stay true. chance = mean null accuracy, null_sd its sd
  (ddof=1), p = (1 + #{null >= accuracy}) / (B + 1). As X is fixed, the true and all permuted
  label sets are solved in one linear solve against stacked +-1 target columns.
- Up to a relabelling: a decoder may carry the action geometry across modes while reading each
  action cluster as another class. ``accuracy_relabelled`` scores the held-out sequences after the
  one-to-one map of predicted to true classes that maximises the matches on the *train-split*
  sequences of the test mode (``geometry.best_relabelling``); ``relabelling`` is that map
  (predicted class c read as class map[c], written "2 0 3 1"); within a mode it is usually the
  identity.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.linalg

from .geometry import relabelled_accuracy

MODES = ("perform", "observe")


def split_sequences(n_sequences: int, test_fraction: float, rng: np.random.Generator):
    """Random split of sequence indices.

    Returns:
        (train_idx, test_idx), sorted int64 arrays; the test set has
        clip(round(test_fraction * N), 1, N - 1) sequences.
    """
    n_test = int(np.clip(round(test_fraction * n_sequences), 1, n_sequences - 1))
    order = rng.permutation(n_sequences)
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def fit_standardizer(x: np.ndarray):
    """Mean and sd per feature of x (S, H); sd 0 is replaced by 1. Returns ((H,), (H,))."""
    mean = x.mean(axis=0)
    sd = x.std(axis=0)
    return mean, np.where(sd > 0, sd, 1.0)


def ridge_fit_multi(x: np.ndarray, targets: np.ndarray, alpha: float):
    """Ridge regression with intercept for many target columns in one solve.

    Args:
        x: (S, H) features; targets: (S, L) targets; alpha: L2 penalty (intercept unpenalized).

    Returns:
        (W, b): W (H, L), b (L,), minimizing ||targets - x W - b||^2 + alpha ||W||^2 per column.
    """
    x_mean, t_mean = x.mean(axis=0), targets.mean(axis=0)
    xc = x - x_mean
    gram = xc.T @ xc + alpha * np.eye(x.shape[1])
    w = scipy.linalg.solve(gram, xc.T @ (targets - t_mean), assume_a="pos")
    return w, t_mean - x_mean @ w


def fit_ridge_classifiers(x_train, label_sets, classes, alpha):
    """Fit one ridge classifier per label set (sklearn RidgeClassifier's +-1 coding).

    Args:
        x_train: (S, H) features; label_sets: (L, S) int labels, one row per label set.
        classes: (K,) sorted labels the classifiers can predict (those in the training labels).
        alpha: ridge penalty.

    Returns:
        (W, b): W (H, L, K) and b (L, K); the score of class k is x @ W[:, l, k] + b[l, k].
    """
    n_sets, k = label_sets.shape[0], len(classes)
    codes = np.searchsorted(classes, label_sets)                     # (L, S)
    targets = -np.ones((label_sets.shape[1], n_sets, k))
    np.put_along_axis(targets, codes.T[:, :, None], 1.0, axis=2)
    w, b = ridge_fit_multi(x_train, targets.reshape(-1, n_sets * k), alpha)
    return w.reshape(-1, n_sets, k), b.reshape(n_sets, k)


def score_ridge_classifiers(w, b, classes, x_test, y_test) -> np.ndarray:
    """Accuracy of each fitted classifier on (x_test (S_test, H), y_test (S_test,)).

    Returns:
        (L,) accuracies; ties in the scores go to the lower class (as in sklearn's argmax).
    """
    scores = (x_test @ w.reshape(w.shape[0], -1)).reshape(len(x_test), *b.shape) + b
    predicted = classes[scores.argmax(axis=2)]                        # (S_test, L)
    return (predicted == np.asarray(y_test)[:, None]).mean(axis=0)


def permuted_label_sets(actions_train: np.ndarray, n_permutations: int, rng) -> np.ndarray:
    """The true labels followed by labels re-assigned across sequences.

    Args:
        actions_train: (N_train, T) train-split actions.

    Returns:
        (1 + B, N_train * T) int64; row 0 is the truth, row b uses action row perm_b[n] for
        sequence n.
    """
    n = actions_train.shape[0]
    perms = rng.permuted(np.tile(np.arange(n), (n_permutations, 1)), axis=1)
    shuffled = actions_train[perms].reshape(n_permutations, -1)
    return np.vstack([actions_train.reshape(1, -1), shuffled])


def predict_ridge(w, b, classes, x) -> np.ndarray:
    """Predicted labels of the first fitted classifier (w (H, L, K), b (L, K)) on x (S, H)."""
    return classes[(x @ w[:, 0] + b[0]).argmax(axis=1)]


def decoding_table(hidden: dict, actions: dict, *, seed, test_fraction, n_null, ridge_alpha):
    """Accuracy (plain and up to relabelling), chance and p-value for the four mode pairs.

    Args:
        hidden: {"perform": (N, T, H), "observe": (N, T, H)} activations.
        actions: {"perform": (N, T), "observe": (N, T)} int labels of each mode.
        seed: seed for the split and the label permutations.
        test_fraction: fraction of sequences held out; n_null: B; ridge_alpha: penalty.

    Returns:
        DataFrame, one row per (train_mode, test_mode) with columns train_mode, test_mode,
        accuracy, accuracy_relabelled, relabelling, chance, null_sd, p_value,
        n_train_sequences, n_test_sequences.
    """
    rng = np.random.default_rng(seed)
    n_seq, _, h = hidden["perform"].shape
    train_idx, test_idx = split_sequences(n_seq, test_fraction, rng)
    n_classes = int(max(np.max(actions[mode]) for mode in MODES)) + 1
    rows = []
    for train_mode in MODES:
        x_tr = np.asarray(hidden[train_mode], np.float64)[train_idx].reshape(-1, h)
        mean, sd = fit_standardizer(x_tr)
        labels = permuted_label_sets(actions[train_mode][train_idx], n_null, rng)
        classes = np.unique(labels[0])
        w, b = fit_ridge_classifiers((x_tr - mean) / sd, labels, classes, ridge_alpha)
        for test_mode in MODES:
            x_test_mode = (np.asarray(hidden[test_mode], np.float64) - mean) / sd
            x_te = x_test_mode[test_idx].reshape(-1, h)
            y_te = actions[test_mode][test_idx].ravel()
            acc = score_ridge_classifiers(w, b, classes, x_te, y_te)
            relabelled, mapping = relabelled_accuracy(
                predict_ridge(w, b, classes, x_test_mode[train_idx].reshape(-1, h)),
                actions[test_mode][train_idx].ravel(), predict_ridge(w, b, classes, x_te), y_te,
                n_classes)
            null = acc[1:]
            rows.append({
                "train_mode": train_mode, "test_mode": test_mode, "accuracy": float(acc[0]),
                "accuracy_relabelled": relabelled,
                "relabelling": " ".join(map(str, mapping)),
                "chance": float(null.mean()),
                "null_sd": float(null.std(ddof=1)) if n_null > 1 else float("nan"),
                "p_value": float((1 + np.sum(null >= acc[0])) / (n_null + 1)),
                "n_train_sequences": len(train_idx), "n_test_sequences": len(test_idx)})
    return pd.DataFrame(rows)


def decoding_summary(table: pd.DataFrame) -> dict:
    """Flatten the decoding table:
    decode_{train}_to_{test}_{accuracy,accuracy_relabelled,relabelled_identity,chance,null_sd,p}.
    """
    out = {}
    for row in table.itertuples():
        prefix = f"decode_{row.train_mode}_to_{row.test_mode}"
        identity = " ".join(map(str, range(len(row.relabelling.split()))))
        out.update({f"{prefix}_accuracy": row.accuracy,
                    f"{prefix}_accuracy_relabelled": row.accuracy_relabelled,
                    f"{prefix}_relabelled_identity": int(row.relabelling == identity),
                    f"{prefix}_chance": row.chance,
                    f"{prefix}_null_sd": row.null_sd, f"{prefix}_p": row.p_value})
    return out
