"""Figures 5 and 6: population geometry and causal ablation by condition (house style of 1-4).

Figure 5 reads the per-run table (summary.json scalars of `analysis.geometry`) and its
across-seed statistics (`report.stats`); Figure 6 reads the aggregated ablation table
(`ablation.csv` of every run) and its across-seed statistics (`ablation_stats`, the one place
this figure's means and CIs are computed). Nothing here reruns an analysis.
`figures.draw_figures` draws them after Figures 1-4 (it imports this module when drawing).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from mirror_sweep.report.figures import figure_title, long_measures, long_stats
from mirror_sweep.report.panels import label, note, plot_condition_measures
from mirror_sweep.report.paper import ABS_THRESHOLD
from mirror_sweep.sweep.summaries import summarise

# Figure 5's panels: (title, x label, {measure: per-run column}); the first measure is the
# trained network's value, the others its baselines. Their across-seed statistics come from
# report.stats (FIGURE_METRICS lists these columns; a test keeps the two in step).
GEOMETRY_PANELS = [
    ("A  Linear CKA\n(perform vs observe states)", "linear CKA",
     {"trained": "cka", "initial weights": "untrained_cka",
      "sequences re-paired (null mean)": "cka_null_mean"}),
    ("B  RSA of the action centroids\n(K x K dissimilarities)", "Pearson r of the two modes' RDMs",
     {"trained": "rsa_actions", "initial weights": "untrained_rsa_actions",
      "labels permuted (null mean)": "rsa_actions_null_mean"}),
    ("C  RSA of the action x timestep\ncentroids", "Pearson r of the two modes' RDMs",
     {"trained": "rsa_action_time", "initial weights": "untrained_rsa_action_time",
      "labels permuted within timestep (null mean)": "rsa_action_time_null_mean"}),
    ("D  Subspace alignment (observe variance\nin the perform top-d subspace)",
     "alignment index (1: same subspace)",
     {"trained": "subspace_alignment_observe_in_perform",
      "initial weights": "untrained_subspace_alignment_observe_in_perform",
      "random subspace (expected)": "subspace_random_observe_in_perform"}),
    ("E  Units over the threshold:\nbest-matched vs same-unit pairing",
     f"fraction of units with |r| > {ABS_THRESHOLD:g}",
     {"trained, best-matched pairs": "best_match_frac_abs_r_gt",
      "initial weights, best-matched": "untrained_best_match_frac_abs_r_gt",
      "sequences re-paired, best-matched (null mean)": "best_match_frac_abs_r_gt_null_mean",
      "trained, unit u with unit u (the paper's)": "frac_abs_r_gt"}),
    ("F  Cross-decoding perform -> observe,\nup to a relabelling of classes", "held-out accuracy",
     {"plain": "decode_perform_to_observe_accuracy",
      "after the best relabelling of classes": "decode_perform_to_observe_accuracy_relabelled",
      "chance (label-permutation null)": "decode_perform_to_observe_chance"}),
]
# Figure 6: rows (metric, clamp), what each shows, and the selections' colours.
ABLATION_ROWS = [("forward_loss", "mean"), ("observe_accuracy", "mean"),
                 ("forward_loss", "zero"), ("observe_accuracy", "zero")]
METRIC_WORDS = {"forward_loss": "Δ forward loss (perform)",
                "observe_accuracy": "Δ observe accuracy", "inverse_loss": "Δ inverse loss"}
SELECTION_COLORS = {"mirror": "#1b6ca8", "anti": "#d1495b", "random": "0.45"}
ABLATION_KEYS = ["condition", "mode", "metric", "clamp", "selection", "frac_units"]


def figure5(runs: pd.DataFrame, conditions: list[str], stats: pd.DataFrame) -> Figure:
    """Population geometry by condition: each measure per seed (points), mean and 95% CI,
    beside the same network at its initial weights and the measure's null or chance."""
    fig = Figure(figsize=(16, 14), layout="constrained")
    axes = fig.subplots(2, 3, sharey=True).ravel()
    for ax, (title, xlabel, columns) in zip(axes, GEOMETRY_PANELS):
        plot_condition_measures(ax, long_measures(runs, columns), long_stats(stats, columns),
                                conditions, list(columns), xlabel)
        ax.set_title(title, loc="left")
    return fig


def ablation_stats(ablation: pd.DataFrame, n_boot: int = 10_000, seed: int = 0,
                   level: float = 0.95) -> pd.DataFrame:
    """Across-seed mean and CI of each run's delta per ABLATION_KEYS group.

    ablation: the aggregated ablation table (one row per run, mode, metric, clamp, selection,
    k; `delta` is the run's change, the mean over draws for random units).
    Returns: ABLATION_KEYS + n, mean, sd, ci_low, ci_high (summaries.summarise).
    """
    columns = [*ABLATION_KEYS, "n", "mean", "sd", "ci_low", "ci_high"]
    if ablation.empty or "delta" not in ablation:
        return pd.DataFrame(columns=columns)
    rows = []
    for keys, group in ablation.groupby(ABLATION_KEYS, sort=True):
        n, mean, sd, low, high = summarise(group[["delta"]].to_numpy(float), n_boot, seed,
                                           level)[0]
        rows.append([*keys, int(n), mean, sd, low, high])
    return pd.DataFrame(rows, columns=columns)


def plot_ablation_curves(ax, values: pd.DataFrame, stats: pd.DataFrame) -> None:
    """Δ metric against the fraction of units silenced: per-seed points and mean ± 95% CI per
    unit selection (top-k mirror, top-k anti-mirror, k random units: mean over draws).

    values: rows of one condition, metric and clamp (frac_units, selection, seed, delta);
    stats: the same slice of ablation_stats.
    """
    if values.empty:
        return note(ax, "not measured")
    for i, (selection, color) in enumerate(SELECTION_COLORS.items()):
        part = values[values["selection"] == selection]
        offset = (i - 1) * 0.004  # side by side at each k
        ax.scatter(part["frac_units"] + offset, part["delta"], s=9, color=color, alpha=0.45,
                   lw=0)
        row = stats[stats["selection"] == selection].sort_values("frac_units")
        if row.empty:
            continue
        err = np.nan_to_num(np.vstack([row["mean"] - row["ci_low"], row["ci_high"] - row["mean"]]))
        ax.errorbar(row["frac_units"] + offset, row["mean"], yerr=err, color=color, marker="D",
                    ms=4, mec="black", mew=0.5, capsize=2, lw=1.2, label=selection)
    ax.axhline(0, color="0.6", lw=0.8)


def figure6(ablation: pd.DataFrame, conditions: list[str], stats: pd.DataFrame) -> Figure:
    """Causal ablation: Δ metric against k for mirror, anti-mirror and random units, one column
    per condition, rows forward loss / observe accuracy under the mean and the zero clamp."""
    present = [c for c in conditions if not ablation.empty and c in set(ablation["condition"])]
    fig = Figure(figsize=(max(11.0, 3.0 * len(present)), 12), layout="constrained")
    if not present:
        note(fig.subplots(), "no ablation results in this sweep (ablation.enabled=false, or "
             "runs from before the ablation existed)")
        return fig
    axes = np.asarray(fig.subplots(len(ABLATION_ROWS), len(present), squeeze=False,
                                   sharex=True))
    for i, (metric, clamp) in enumerate(ABLATION_ROWS):
        for j, condition in enumerate(present):
            ax = axes[i, j]
            part = ablation[(ablation["condition"] == condition) & (ablation["metric"] == metric)
                            & (ablation["clamp"] == clamp)]
            rows = stats[(stats["condition"] == condition) & (stats["metric"] == metric)
                         & (stats["clamp"] == clamp)]
            plot_ablation_curves(ax, part, rows)
            if i == 0:
                n = part["seed"].nunique() if len(part) else 0
                ax.set_title(f"{label(condition)}\n(n = {n} seeds)", loc="left")
            if j == 0:
                ax.set_ylabel(f"{METRIC_WORDS[metric]}\n{clamp} clamp")
            if i == len(ABLATION_ROWS) - 1:
                ax.set_xlabel("fraction of units silenced (k / H)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=3, frameon=False,
               title="points: seeds; ◆: mean over seeds, 95% CI; top-k units by r (mirror: "
               "highest, anti: lowest); random: mean over draws", title_fontsize=8)
    return fig


def figure_series(sweep, conditions: list[str], stats: pd.DataFrame, n_boot: int, seed: int):
    """{file stem: figure factory} of Figures 5 and 6 for figures.draw_figures."""
    ablation = sweep.ablation if sweep.ablation is not None else pd.DataFrame()
    return {
        "figure5_population": lambda: titled(
            figure5(sweep.runs, conditions, stats),
            "Figure 5 — Population geometry (beyond single units)", sweep),
        "figure6_causal": lambda: titled(
            figure6(ablation, conditions, ablation_stats(ablation, n_boot, seed)),
            "Figure 6 — Causal ablation: silencing mirror, anti-mirror and random units", sweep),
    }


def titled(fig: Figure, text: str, sweep) -> Figure:
    figure_title(fig, text, sweep)
    return fig
