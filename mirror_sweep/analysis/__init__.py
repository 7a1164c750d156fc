"""Per-run analysis of perform vs observe hidden activations (pure numpy/scipy/pandas).

``analyze_activations`` is the pipeline's entry point (its result carries the permutation null,
of which the run writes the top unit's for the figures); ``headline_metrics`` gives the paper's
scalars alone (used e.g. on an untrained network); ``permutation_null`` draws the permutation
null alone. Each stage lives in its own module: correlation, permutation,
multiple_testing, tuning, decoding, lags, geometry (population measures),
unit_subsets (decoding from the top-k mirror / anti / random units).

Seeds: the permutation test uses ``np.random.default_rng(seed)`` (so ``permutation_null`` with
the same seed reproduces it); the decoding split and label permutations use the independent
stream ``np.random.default_rng([seed, 1])``; the sequence-level selectivity null of tuning the
streams [seed, 2, 0] (perform) and [seed, 2, 1] (observe); the geometry nulls ``[seed, 4]``
and the random unit subsets of the subset decoders ``[seed, 3]``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mirror_sweep.config import AnalysisConfig

from .correlation import headline_summary, pooled_r, time_centred_r
from .decoding import decoding_summary, decoding_table, split_sequences
from .geometry import population_geometry
from .lags import lag_table
from .permutation import permutation_null, permutation_table
from .tuning import tuning_table
from .unit_subsets import subset_decoding_summary, subset_decoding_table, subset_sizes
from .validation import check_actions, check_activations, check_parameters

__all__ = ["AnalysisResult", "analyze_activations", "control_metrics", "headline_metrics",
           "permutation_null", "population_geometry"]

_DECODING_STREAM = 1
_DEFAULT = AnalysisConfig()  # the keyword defaults below are the run config's (one source)
_TUNING_STREAM = 2
_SUBSET_STREAM = 3
_GEOMETRY_STREAM = 4


@dataclass
class AnalysisResult:
    """Everything one run's analysis produces.

    Attributes:
        units: one row per hidden unit; first column ``unit`` (0..H-1), then ``r``, then the
            per-unit statistics of each stage.
        decoding: one row per (train_mode, test_mode): train_mode, test_mode, accuracy,
            accuracy_relabelled, relabelling, chance, null_sd, p_value, n_train_sequences,
            n_test_sequences.
        subset_decoding: decoding from unit subsets (columns in ``unit_subsets``).
        summary: flat snake_case scalars (python float/int; nan where undefined).
        null: (B, H) float, the permutation null of every unit's r (NaN for constant units).
    """

    units: pd.DataFrame
    decoding: pd.DataFrame
    subset_decoding: pd.DataFrame
    summary: dict[str, float | int]
    null: np.ndarray | None = None


def headline_metrics(perform, observe, *, abs_threshold=_DEFAULT.abs_threshold,
                     pos_threshold=_DEFAULT.pos_threshold,
                     anti_threshold=_DEFAULT.anti_threshold) -> tuple[np.ndarray, dict]:
    """Per-unit pooled Pearson r and the paper's headline scalars.

    Args:
        perform, observe: (N, T, H) activations aligned by sequence and timestep.
        abs_threshold, pos_threshold, anti_threshold: thresholds on r.

    Returns:
        (r, summary): r (H,) float64, nan for units constant in either mode. summary:
        frac_abs_r_gt (|r| > abs_threshold), frac_r_gt (r > pos_threshold), max_r, min_r,
        n_anti_mirror (r < anti_threshold), mean_abs_r. Constant units count in the fractions'
        denominators (H) but never in their numerators; max/min/mean ignore them.

    Raises:
        ValueError: naming the argument, if an array is malformed or non-finite.
    """
    perform, observe = check_activations(perform, observe)
    check_parameters(n_timesteps=perform.shape[1], abs_threshold=abs_threshold,
                     pos_threshold=pos_threshold, anti_threshold=anti_threshold)
    r = pooled_r(perform, observe)
    return r, headline_summary(r, abs_threshold=abs_threshold, pos_threshold=pos_threshold,
                               anti_threshold=anti_threshold)


def control_metrics(perform, observe, *, abs_threshold=_DEFAULT.abs_threshold,
                    pos_threshold=_DEFAULT.pos_threshold, anti_threshold=_DEFAULT.anti_threshold,
                    max_lag=_DEFAULT.max_lag) -> tuple[np.ndarray, dict]:
    """The cheap per-run statistics of a control network (e.g. the run's initial weights).

    Returns:
        (r, summary): ``headline_metrics`` and the lag summary of ``lag_table`` over all units
        and over the units with |r| > abs_threshold (median_abs_peak_lag[_mirror],
        frac_peak_lag_zero[_mirror], n_lag_mirror_units), so the control is comparable with
        the trained network's summary.
    """
    r, summary = headline_metrics(perform, observe, abs_threshold=abs_threshold,
                                  pos_threshold=pos_threshold, anti_threshold=anti_threshold)
    check_parameters(n_timesteps=np.shape(perform)[1], max_lag=max_lag)
    _, lags = lag_table(perform, observe, max_lag=max_lag, mirror=np.abs(r) > abs_threshold)
    return r, {**summary, **lags}


def analyze_activations(perform, observe, perform_actions, observe_actions, *, seed: int,
                        abs_threshold=_DEFAULT.abs_threshold,
                        pos_threshold=_DEFAULT.pos_threshold,
                        anti_threshold=_DEFAULT.anti_threshold,
                        n_permutations=_DEFAULT.n_permutations, alpha=_DEFAULT.alpha,
                        max_lag=_DEFAULT.max_lag,
                        decoding_test_fraction=_DEFAULT.decoding_test_fraction,
                        decoding_null_permutations=_DEFAULT.decoding_null_permutations,
                        ridge_alpha=_DEFAULT.ridge_alpha,
                        tuning_null_permutations=_DEFAULT.tuning_null_permutations,
                        geometry_components=_DEFAULT.geometry_components,
                        geometry_null_permutations=_DEFAULT.geometry_null_permutations,
                        unit_fractions=tuple(_DEFAULT.unit_fractions),
                        unit_fraction_summary=_DEFAULT.unit_fraction_summary,
                        subset_decoding_random_draws=_DEFAULT.subset_decoding_random_draws,
                        n_threads=1) -> AnalysisResult:
    """Run every per-run analysis on one pair of activation sets.

    Args:
        perform, observe: (N, T, H) activations aligned by sequence n and timestep t.
        perform_actions: (N, T) int actions performed in perform mode.
        observe_actions: (N, T) int actions that generated the observed sensory sequence.
        seed: non-negative int; see the module docstring for the streams.
        The rest: thresholds on r, permutation count and level, maximum lag, decoding split,
        null size and ridge penalty, the selectivity null's size; d of the principal subspaces
        and the size of the geometry nulls; k of the unit subsets as fractions of H, the
        fraction whose subset decoding goes into the summary, random subsets per k;
        n_threads: with 2 or more, the permutation null runs in a thread of its own (its chunks
        in n_threads - 1) beside the other analyses (results do not depend on it).
        The number of actions K is max(action) + 1 over both action arrays.

    Returns:
        AnalysisResult (units, decoding, subset_decoding, summary).

    Raises:
        ValueError: naming the argument, if an input is malformed or non-finite.
    """
    perform, observe = check_activations(perform, observe)
    n_seq, n_t, n_units = perform.shape
    acts = {name: check_actions(a, name, (n_seq, n_t))
            for name, a in (("perform_actions", perform_actions),
                            ("observe_actions", observe_actions))}
    thresholds = {"abs_threshold": abs_threshold, "pos_threshold": pos_threshold}
    check_parameters(n_timesteps=n_t, seed=seed, n_permutations=n_permutations, alpha=alpha,
                     max_lag=max_lag, decoding_test_fraction=decoding_test_fraction,
                     decoding_null_permutations=decoding_null_permutations,
                     ridge_alpha=ridge_alpha, anti_threshold=anti_threshold,
                     tuning_null_permutations=tuning_null_permutations,
                     geometry_components=geometry_components,
                     geometry_null_permutations=geometry_null_permutations,
                     unit_fractions=unit_fractions, unit_fraction_summary=unit_fraction_summary,
                     subset_decoding_random_draws=subset_decoding_random_draws, **thresholds)
    if unit_fraction_summary not in unit_fractions:
        raise ValueError(f"unit_fraction_summary has an invalid value: {unit_fraction_summary!r} "
                         f"(must be one of unit_fractions {list(unit_fractions)})")
    r, summary = headline_metrics(perform, observe, anti_threshold=anti_threshold, **thresholds)
    r_tc = time_centred_r(perform, observe)
    summary.update({f"time_centred_{k}": v for k, v in headline_summary(
        r_tc, anti_threshold=anti_threshold, **thresholds).items()})
    with ThreadPoolExecutor(1) as background:
        # With a thread to spare, the permutation null (the longest analysis, in C with the GIL
        # released) runs beside the others; each analysis draws from its own stream.
        pending = (background.submit(permutation_null, perform, observe, n_permutations, seed,
                                     n_threads - 1) if n_threads > 1 else None)
        n_actions = int(max(acts["perform_actions"].max(), acts["observe_actions"].max())) + 1
        tune_units, tune_summary = tuning_table(
            perform, observe, acts["perform_actions"], acts["observe_actions"],
            n_actions=n_actions, alpha=alpha, n_permutations=tuning_null_permutations,
            seed=[seed, _TUNING_STREAM], anti_threshold=anti_threshold, r=r)
        lag_units, lag_summary = lag_table(perform, observe, max_lag=max_lag,
                                           mirror=np.abs(r) > abs_threshold)
        hidden = {"perform": perform, "observe": observe}
        labels = {"perform": acts["perform_actions"], "observe": acts["observe_actions"]}
        decoding = decoding_table(hidden, labels, seed=[seed, _DECODING_STREAM],
                                  test_fraction=decoding_test_fraction,
                                  n_null=decoding_null_permutations, ridge_alpha=ridge_alpha)
        # the decoders' split again: decoding_table draws it first from the same stream
        split = split_sequences(n_seq, decoding_test_fraction,
                                np.random.default_rng([seed, _DECODING_STREAM]))
        subsets = subset_decoding_table(hidden, labels, split, fractions=unit_fractions,
                                        n_random=subset_decoding_random_draws,
                                        ridge_alpha=ridge_alpha,
                                        rng=np.random.default_rng([seed, _SUBSET_STREAM]))
        geometry, geometry_units = population_geometry(
            perform, observe, acts["perform_actions"], acts["observe_actions"],
            n_actions=n_actions, n_components=geometry_components,
            n_null=geometry_null_permutations, rng=np.random.default_rng([seed, _GEOMETRY_STREAM]),
            **thresholds)
        null = (pending.result() if pending is not None
                else permutation_null(perform, observe, n_permutations, seed))
    perm_units, perm_summary = permutation_table(r, null, alpha=alpha, **thresholds)
    units = pd.concat([pd.DataFrame({"unit": np.arange(n_units), "r": r,
                                     "r_time_centred": r_tc}),
                       perm_units, tune_units, lag_units, pd.DataFrame(geometry_units)], axis=1)
    sizes = {"n_units": n_units, "n_sequences": n_seq, "n_timesteps": n_t,
             "n_actions": n_actions, "n_constant_units": int(np.isnan(r).sum())}
    k_summary = subset_sizes([unit_fraction_summary], n_units)[0]
    summary = {**sizes, **summary, **perm_summary, **tune_summary, **lag_summary,
               **decoding_summary(decoding), **geometry,
               **subset_decoding_summary(subsets, k_summary)}
    return AnalysisResult(units=units, decoding=decoding, subset_decoding=subsets,
                          summary=_to_python(summary), null=null)


def _to_python(summary: dict) -> dict:
    """Cast numpy scalars to python int/float (bools to int) so the dict is JSON-serialisable."""
    out = {}
    for key, value in summary.items():
        if isinstance(value, (bool, np.bool_, int, np.integer)):
            out[key] = int(value)
        else:
            out[key] = float(value)
    return out
