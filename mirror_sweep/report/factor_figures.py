"""Figures for sweeps over a factor: a metric against hidden size, K, action process or cell type,
per condition, and the mechanism figure over the readout variants.

They read only the aggregated per-run table (`Sweep.runs`) and its across-seed summary
(`summaries.robustness`, whose grouping keys are the condition and every varying factor); each
panel shows the per-seed points, the mean over seeds and its CI (the sweep's CI method). `draw_factor_figures`
draws whichever apply to the sweep: one figure per varying factor, and the mechanism figure when
the sweep holds at least two readout variants.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from mirror_sweep.report.claims import derive_metrics
from mirror_sweep.report.panels import label, note, ordered_conditions
from mirror_sweep.sweep.aggregate import Sweep
from mirror_sweep.sweep.factors import varying_factors
from mirror_sweep.sweep.summaries import DEFAULT_CI, GROUPED_BY, robustness

# metric -> (axis label, per-run chance column or None). Those present in the runs are drawn.
FACTOR_METRICS = {
    "frac_abs_r_gt": ("fraction |r| > abs threshold", None),
    "frac_r_gt": ("fraction r > pos threshold", None),
    "frac_abs_r_gt_over_untrained": ("|r| fraction minus untrained net's", None),
    "cka": ("CKA perform vs observe", None),
    "decode_perform_to_observe_accuracy": ("decoding perform → observe", 
                                           "decode_perform_to_observe_chance"),
    "decode_observe_to_perform_accuracy": ("decoding observe → perform",
                                           "decode_observe_to_perform_chance"),
}
# The mechanism figure adds the most negative unit r (anti-mirror units).
MECHANISM_METRICS = {**FACTOR_METRICS, "min_r": ("min r (anti-mirror units)", None)}
# Conditions that differ only in which readout is trained in which mode (conf/condition/).
READOUT_VARIANTS = ["shared_bidirectional", "action_head_both", "sensory_head_both",
                    "shared_readout"]
FACTOR_LABELS = {"hidden_size": "hidden size H", "n_actions": "K (actions)",
                 "action_process": "action process", "cell": "cell type",
                 "stay_prob": "stay probability", "condition": "condition"}
FORMATS = ("png", "pdf")
DPI = 150
JITTER_SEED = 0  # the per-seed points' horizontal jitter: the same figure every time


def factor_order(values: pd.Series, factor: str) -> list:
    """The x positions' values: conditions in the paper's order, numbers ascending, else sorted."""
    present = values.dropna().unique().tolist()
    if factor == "condition":
        return ordered_conditions(present)
    try:
        return sorted(present, key=float)
    except (TypeError, ValueError):
        return sorted(present, key=str)


def numeric(values: list) -> bool:
    """True when the factor's values are numbers (an ordered axis: the means are joined)."""
    try:
        [float(v) for v in values]
    except (TypeError, ValueError):
        return False
    return True


def seeds_range(n: pd.Series) -> str:
    low, high = int(n.min()), int(n.max())
    return f"n = {low} seeds" if low == high else f"n = {low}–{high} seeds"


def series_name(key: tuple, columns: list[str]) -> str:
    parts = [label(str(v)) if c == "condition" else f"{c} = {v}" for c, v in zip(columns, key)]
    return ", ".join(parts) or "all runs"


def plot_metric_vs_factor(ax, runs: pd.DataFrame, stats: pd.DataFrame, factor: str,
                          metric: str, ylabel: str, chance: str | None = None) -> None:
    """Per-seed points, mean and CI of `metric` at each value of `factor`, one series per value
    of the other grouping keys (stats' grouped_by). runs: per-run rows (derived metrics added);
    stats: robustness rows of `metric`."""
    rows = stats[stats["metric"] == metric]
    if metric not in runs or rows.empty or runs[metric].notna().sum() == 0:
        note(ax, f"{metric}: not in this sweep")
        return
    keys = rows[GROUPED_BY].iloc[0].split(",")
    others = [k for k in keys if k != factor]
    order = factor_order(runs[factor], factor)
    position = {value: i for i, value in enumerate(order)}
    groups = list(rows.groupby(others, sort=True)) if others else [((), rows)]
    width = 0.6 / max(len(groups), 1)
    rng = np.random.default_rng(JITTER_SEED)
    for i, (key, group) in enumerate(groups):
        key = key if isinstance(key, tuple) else (key,)
        offset = (i - (len(groups) - 1) / 2) * width
        color = f"C{i % 10}"
        members = runs
        for column, value in zip(others, key):
            members = members[members[column] == value]
        points = members[[factor, metric]].dropna()
        x = points[factor].map(position).to_numpy(dtype=float) + offset
        ax.scatter(x + rng.uniform(-width / 4, width / 4, len(x)), points[metric], s=9,
                   color=color, alpha=0.45, linewidths=0)
        group = group[group[factor].isin(position)].sort_values(
            factor, key=lambda s: s.map(position))
        gx = group[factor].map(position).to_numpy(dtype=float) + offset
        mean = group["mean"].to_numpy(dtype=float)
        ax.errorbar(gx, mean, yerr=[mean - group["ci_low"].to_numpy(dtype=float),
                                   group["ci_high"].to_numpy(dtype=float) - mean],
                    color=color, marker="o", ms=4, capsize=2, lw=1.2,
                    ls="-" if numeric(order) and factor != "condition" else "none",
                    label=f"{series_name(key, others)} ({seeds_range(group['n'])})")
    if chance is not None and chance in runs and runs[chance].notna().any():
        # chance depends on K: a dotted segment at each x value (its runs' mean chance)
        levels = runs.groupby(factor)[chance].mean()
        for i, value in enumerate(order):
            if value in levels.index and pd.notna(levels[value]):
                ax.hlines(levels[value], i - 0.4, i + 0.4, color="0.4", ls=":", lw=1,
                          label="chance" if i == 0 else None)
    ax.set_xticks(range(len(order)))
    ax.set_xticklabels([label(str(v)) if factor == "condition" else str(v) for v in order],
                       rotation=30 if factor == "condition" else 0,
                       ha="right" if factor == "condition" else "center")
    ax.set_xlabel(FACTOR_LABELS.get(factor, factor))
    ax.set_ylabel(ylabel)


def factor_figure(runs: pd.DataFrame, stats: pd.DataFrame, factor: str,
                  metrics: dict[str, tuple[str, str | None]], title: str) -> Figure:
    """One panel per metric present in `runs`, each against `factor`."""
    present = [m for m in metrics if m in runs and runs[m].notna().any()]
    fig = Figure(figsize=(4.2 * max(len(present), 1), 4.6), layout="constrained")
    axes = fig.subplots(1, max(len(present), 1), squeeze=False)[0]
    for ax, metric in zip(axes, present):
        ylabel, chance = metrics[metric]
        plot_metric_vs_factor(ax, runs, stats, factor, metric, ylabel, chance)
    if not present:
        note(axes[0], "no metric of this figure in the sweep")
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 3),
                   frameon=False, fontsize=8)
    fig.suptitle(title + " (points: seeds; bars: mean and 95% CI)", fontsize=11)
    return fig


def applicable_figures(runs: pd.DataFrame) -> dict[str, tuple[str, dict]]:
    """name -> (x factor, metrics) of every figure that applies to this per-run table."""
    figures = {f"factor_{factor}": (factor, FACTOR_METRICS) for factor in varying_factors(runs)}
    if "condition" in runs and runs["condition"].isin(READOUT_VARIANTS).sum() and \
            runs.loc[runs["condition"].isin(READOUT_VARIANTS), "condition"].nunique() >= 2:
        figures["mechanism_readout"] = ("condition", MECHANISM_METRICS)
    return figures


def draw_factor_figures(sweep: Sweep, out_dir: Path | str, n_boot: int = 10_000,
                        seed: int = 0, ci: str = DEFAULT_CI) -> list[Path]:
    """Draw every figure of applicable_figures into `out_dir` (PNG and PDF); [] when none apply."""
    runs = derive_metrics(sweep.runs) if len(sweep.runs) else sweep.runs
    figures = applicable_figures(runs)
    if not figures:
        return []
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics = sorted({m for _, ms in figures.values() for m in ms if m in runs})
    stats = robustness(runs, metrics=metrics, n_boot=n_boot, seed=seed, ci=ci)
    paths = []
    for name, (factor, figure_metrics) in figures.items():
        title = ("Which readout is shared across modes" if factor == "condition"
                 else f"Metrics against {FACTOR_LABELS.get(factor, factor)}")
        fig = factor_figure(runs, stats, factor, figure_metrics, title)
        for fmt in FORMATS:
            path = out / f"{name}.{fmt}"
            fig.savefig(path, dpi=DPI, metadata={"CreationDate": None} if fmt == "pdf" else None)
            paths.append(path)
    return paths


def swept_factors(runs: pd.DataFrame) -> list[str]:
    """What a metric can be plotted against: every varying factor, then 'condition' when the
    sweep holds several conditions."""
    several = "condition" in runs and runs["condition"].nunique() > 1
    return varying_factors(runs) + (["condition"] if several else [])


def metric_against_factor(runs: pd.DataFrame, metric: str, factor: str, n_boot: int = 10_000,
                          seed: int = 0, ci: str = DEFAULT_CI) -> Figure:
    """One panel: any per-run metric (or a claims.derive_metrics one) against any column of the
    per-run table, one series per value of the other grouping keys, with per-seed points, mean
    and CI (method `ci`, summaries.CI_METHODS). Raises ValueError naming the metric or factor when it is not in `runs`."""
    derived = derive_metrics(runs)
    for name, what in [(metric, "metric"), (factor, "factor")]:
        if name not in derived:
            raise ValueError(f"{what} {name!r} is not a column of the per-run table")
    keys = list(dict.fromkeys(["condition", *varying_factors(derived), factor]))
    stats = summarise_by(derived, keys, metric, n_boot, seed, ci)
    chance = metric.replace("_accuracy", "_chance") if metric.endswith("_accuracy") else None
    fig = Figure(figsize=(6, 4.4), layout="constrained")
    ax = fig.subplots()
    plot_metric_vs_factor(ax, derived, stats, factor, metric, metric, chance)
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncol=2, frameon=False, fontsize=8)
    return fig


def summarise_by(runs: pd.DataFrame, keys: list[str], metric: str, n_boot: int,
                 seed: int, ci: str = DEFAULT_CI) -> pd.DataFrame:
    """robustness of one metric per group of `keys` (any columns), in its table format."""
    parts = []
    for key, group in runs.groupby(keys, sort=True, dropna=False):
        table = robustness(group.assign(condition="_"), metrics=[metric], n_boot=n_boot,
                           seed=seed, ci=ci).drop(columns=["condition", GROUPED_BY])
        for column, value in zip(keys, key if isinstance(key, tuple) else (key,)):
            table[column] = value
        parts.append(table)
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    table[GROUPED_BY] = ",".join(keys)
    return table
