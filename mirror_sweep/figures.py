"""The paper's Figures 1-4 from an aggregated sweep (matplotlib Agg, seaborn).

Plot functions (`plot_*`) take DataFrames/arrays and a matplotlib `ax`; they read no files and
compute no statistics (across-seed means and CIs come from `aggregate.robustness`, per-unit
statistics from the runs' analyses, the permutation null from `analysis.permutation_null`).
`load_example` is the one loader of per-run arrays (activations) for the per-run panels, and
`draw_figures` assembles the figures into PNG and PDF files.

Every panel degrades to a note inside the panel when its data is missing (a condition absent from
the sweep, activations not saved, a single run), so a figure is always written.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from mirror_sweep import results
from mirror_sweep.aggregate import Sweep, robustness
from mirror_sweep.analysis import permutation_null

MAIN = "shared_bidirectional"
# Display order and short labels of the conditions in conf/condition/ (others follow, sorted).
CONDITION_LABELS = {
    "shared_bidirectional": "shared core (main)", "default": "default (main config)",
    "separate_cores": "separate cores", "forward_only": "forward only",
    "shuffled_observe": "shuffled observe", "independent_pairing": "pairing error",
    "independent_train_pairing": "pairing error (train)",
    "randomized_dynamics": "random dynamics", "shared_readout": "shared readout",
    "untrained": "untrained",
}
PERFORM_COLOR, OBSERVE_COLOR = "#1b6ca8", "#d1495b"
DPI = 200
FORMATS = ("png", "pdf")
N_TRACE_SEQUENCES = 3  # test sequences concatenated in the time-course panels
MAX_NULL_PERMUTATIONS = 10_000
RC = {"font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 8.5,
      "xtick.labelsize": 9, "ytick.labelsize": 9, "axes.titleweight": "bold"}


# ----------------------------------------------------------------------------- small helpers
def note(ax, text: str) -> None:
    """Write `text` in the middle of an empty panel (a panel whose data is missing)."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=9,
            color="0.35", wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def legend_below(ax, title: str, ncol: int = 2) -> None:
    """A legend under the panel (so it never hides data)."""
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=ncol, frameon=False,
              title=title, title_fontsize=8)


def label(condition: str) -> str:
    return CONDITION_LABELS.get(condition, condition)


def ordered_conditions(conditions) -> list[str]:
    """Conditions in the paper's order (CONDITION_LABELS), then any others sorted."""
    present = {str(c) for c in conditions if pd.notna(c)}
    known = [c for c in CONDITION_LABELS if c in present]
    return known + sorted(present - set(known))


def main_condition(conditions) -> str | None:
    present = set(conditions)
    return next((c for c in (MAIN, "default") if c in present), None)


def seeds_note(n: int) -> str:
    return f"n = {n} seed{'s' if n != 1 else ''}"


def top_units(units: pd.DataFrame, fraction: float = 0.1) -> pd.DataFrame:
    """Per run, the `fraction` of units with the largest r (at least one): "top mirror units"."""
    ranked = units.dropna(subset=["r"]).sort_values(["run_id", "r"], ascending=[True, False])
    rank = ranked.groupby("run_id").cumcount()
    size = ranked.groupby("run_id")["r"].transform("size")
    return ranked[rank < np.maximum(1, np.round(fraction * size))]


# ------------------------------------------------------------------------------ plot functions
def plot_r_heatmap(ax, units_run: pd.DataFrame, title_suffix: str = "") -> None:
    """Per-unit r of one run as a heatmap: units on x (sorted by r), rows r and its controls.

    units_run: one run's units table (unit, r, optional r_time_centred, r_untrained).
    """
    rows = {"r (trained)": "r", "time-centred r": "r_time_centred",
            "r at initial weights": "r_untrained"}
    rows = {name: col for name, col in rows.items() if col in units_run}
    if units_run.empty or "r" not in units_run:
        return note(ax, "no per-unit r for this run")
    ordered = units_run.sort_values("r", ascending=False)
    matrix = pd.DataFrame({name: ordered[col].to_numpy() for name, col in rows.items()},
                          index=ordered["unit"].astype(int)).T
    n = matrix.shape[1]
    with warnings.catch_warnings():  # seaborn 0.13 calls a colormap method matplotlib retires
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        sns.heatmap(matrix, ax=ax, cmap="vlag", vmin=-1, vmax=1, center=0,
                    xticklabels=max(1, n // 24),
                    cbar_kws={"label": "Pearson r (perform vs observe)", "shrink": 0.9})
    ax.set_xlabel(f"hidden unit id (sorted by trained r; H = {n})")
    ax.set_ylabel("")
    ax.tick_params(axis="x", labelsize=7)
    ax.set_title(f"A  Per-unit r{title_suffix}", loc="left")


def plot_r_histograms(ax, units: pd.DataFrame, conditions: list[str],
                      thresholds: tuple[float, float] = (0.6, 0.75)) -> None:
    """Histograms of per-unit r pooled over seeds, one per condition (density, shared bins).

    units: columns condition, seed, r (and r_untrained: the first condition's initial weights
    drawn as a grey outline).
    """
    data = units[units["condition"].isin(conditions)].dropna(subset=["r"])
    if data.empty:
        return note(ax, "no per-unit r for these conditions")
    bins = np.linspace(-1, 1, 41)
    palette = dict(zip(conditions, sns.color_palette("colorblind", len(conditions))))
    for condition in conditions:
        part = data[data["condition"] == condition]
        if part.empty:
            continue
        sns.histplot(part["r"], bins=bins, stat="density", element="step", ax=ax,
                     color=palette[condition], alpha=0.3,
                     label=f"{label(condition)} ({seeds_note(part['seed'].nunique())})")
    first = data[data["condition"] == conditions[0]]
    if "r_untrained" in first and first["r_untrained"].notna().any():
        sns.histplot(first["r_untrained"].dropna(), bins=bins, stat="density", element="step",
                     fill=False, ax=ax, color="0.4", linestyle=":",
                     label=f"{label(conditions[0])} at initial weights")
    for i, t in enumerate((-thresholds[0], thresholds[0])):
        ax.axvline(t, color="0.5", lw=0.8, ls="--", label=f"|r| = {thresholds[0]:g}" if i else None)
    ax.axvline(thresholds[1], color="0.2", lw=0.8, ls="-.", label=f"r = {thresholds[1]:g}")
    ax.set_xlabel("per-unit Pearson r (perform vs observe)")
    ax.set_ylabel("density (units, pooled over seeds)")
    ax.set_xlim(-1, 1)
    ax.legend(loc="upper left", frameon=False)
    missing = [label(c) for c in conditions if c not in set(data["condition"])]
    if missing:
        ax.text(0.98, 0.98, "not in this sweep:\n" + "\n".join(missing), transform=ax.transAxes,
                ha="right", va="top", fontsize=8, color="0.35")


def plot_time_courses(ax, perform: np.ndarray, observe: np.ndarray, unit_labels: list[str],
                      offset: float = 2.5) -> None:
    """Activation time courses, perform solid and observe dashed, one unit per offset row.

    perform, observe: (S*T, k) activations of k units over S concatenated test sequences;
    unit_labels: k legend labels. Rows are separated by `offset` (activations of a GRU lie in
    [-1, 1]).
    """
    steps = np.arange(perform.shape[0])
    colors = sns.color_palette("dark", perform.shape[1])
    offset = offset if len(unit_labels) > 1 else 0.0
    for i, name in enumerate(unit_labels):
        shift = -offset * i
        ax.plot(steps, perform[:, i] + shift, color=colors[i], lw=1.5, label=name)
        ax.plot(steps, observe[:, i] + shift, color=colors[i], lw=1.5, ls="--")
    ax.plot([], [], color="0.2", lw=1.5, label="perform (solid)")
    ax.plot([], [], color="0.2", lw=1.5, ls="--", label="observe (dashed)")
    if len(unit_labels) > 1:
        ax.set_yticks([-offset * i for i in range(len(unit_labels))],
                      [n.split(" ")[1] for n in unit_labels])
        ax.set_ylabel(f"hidden unit (activation in [-1, 1]; rows offset by {offset:g})")
    else:
        ax.set_ylabel("activation (GRU hidden state, in [-1, 1])")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)


def plot_sequence_bounds(ax, n_sequences: int, n_timesteps: int) -> None:
    """Vertical lines between concatenated sequences and an x label in timesteps."""
    for s in range(1, n_sequences):
        ax.axvline(s * n_timesteps - 0.5, color="0.8", lw=0.8)
    ax.set_xlabel(f"timestep ({n_sequences} test sequences of {n_timesteps} steps, "
                  "concatenated)")


def plot_permutation_null(ax, null: np.ndarray, r_obs: float, p_value: float | None,
                          unit: int) -> None:
    """Histogram of a unit's null r (re-paired sequences) and its observed r."""
    null = null[np.isfinite(null)]
    if null.size == 0:
        return note(ax, f"unit {unit} is constant: no null")
    sns.histplot(null, bins=40, ax=ax, color="0.6", stat="count",
                 label=f"null: re-paired sequences (B = {null.size})")
    ax.axvline(r_obs, color=PERFORM_COLOR, lw=2,
               label=f"observed r = {r_obs:.3f}" + (f" (p = {p_value:.2g})"
                                                    if p_value is not None else ""))
    ax.set_xlabel(f"Pearson r of unit {unit} (perform vs observe)")
    ax.set_ylabel("permutations")
    ax.legend(loc="upper left", frameon=False)


def plot_condition_measures(ax, values: pd.DataFrame, stats: pd.DataFrame,
                            conditions: list[str], measures: list[str], xlabel: str,
                            band: tuple[float, float] | None = None,
                            band_condition: str | None = None,
                            band_label: str = "paper's claim") -> None:
    """Per-seed values (points) with the across-seed mean and 95% CI (bars) per condition.

    values: long table condition, measure, value (one row per run and measure).
    stats: long table condition, measure, mean, ci_low, ci_high (from aggregate.robustness).
    conditions: y order; measures: hue order. band: a shaded reference range on x, drawn on
    the row of `band_condition` (every row when None).
    """
    data = values[values["condition"].isin(conditions) & values["measure"].isin(measures)]
    if data.dropna(subset=["value"]).empty:
        return note(ax, "not measured in this sweep")
    if band is not None and (band_condition is None or band_condition in conditions):
        rows = (-0.5, len(conditions) - 0.5) if band_condition is None else (
            conditions.index(band_condition) - 0.5, conditions.index(band_condition) + 0.5)
        ax.fill_betweenx(rows, *band, color="#f2c14e", alpha=0.45, lw=0, label=band_label)
    palette = dict(zip(measures, sns.color_palette("colorblind", len(measures))))
    sns.stripplot(data=data, y="condition", x="value", hue="measure", order=conditions,
                  hue_order=measures, dodge=True, jitter=0.12, size=3.5, alpha=0.6, ax=ax,
                  palette=palette, orient="h")
    width = 0.8 / len(measures)
    for i, condition in enumerate(conditions):
        for j, measure in enumerate(measures):
            row = stats[(stats["condition"] == condition) & (stats["measure"] == measure)]
            if row.empty or not np.isfinite(row["mean"].iloc[0]):
                continue
            r = row.iloc[0]
            y = i - 0.4 + width * (j + 0.5)
            err = np.array([[r["mean"] - r["ci_low"]], [r["ci_high"] - r["mean"]]])
            ax.errorbar(r["mean"], y, xerr=np.nan_to_num(err), fmt="D", color=palette[measure],
                        mec="black", mew=0.6, ms=5, capsize=2.5, lw=1.2)
    ax.set_yticks(range(len(conditions)),
                  [f"{label(c)}\n({seeds_note(data[data['condition'] == c]['seed'].nunique())})"
                   for c in conditions])
    ax.set_ylabel("")
    ax.set_xlabel(xlabel)
    ax.set_ylim(len(conditions) - 0.5, -0.5)
    legend_below(ax, "points: seeds; ◆: mean over seeds, 95% CI")


def plot_decoding(ax, decoding: pd.DataFrame, conditions: list[str]) -> None:
    """Decoding accuracy per seed for all four train/test combinations, with chance marks.

    decoding: columns condition, seed, train_mode, test_mode, accuracy, chance (per run).
    """
    data = decoding[decoding["condition"].isin(conditions)].copy()
    if data.empty:
        return note(ax, "no decoding results in this sweep")
    data["combo"] = "train " + data["train_mode"] + " → test " + data["test_mode"]
    combos = [f"train {a} → test {b}" for a, b in [("perform", "observe"), ("observe", "perform"),
                                                   ("perform", "perform"), ("observe", "observe")]]
    palette = dict(zip(combos, sns.color_palette("colorblind", 4)))
    sns.stripplot(data=data, y="condition", x="accuracy", hue="combo", order=conditions,
                  hue_order=combos, dodge=True, jitter=0.1, size=4, ax=ax, palette=palette,
                  orient="h")
    sns.stripplot(data=data, y="condition", x="chance", hue="combo", order=conditions,
                  hue_order=combos, dodge=True, jitter=0, size=7, marker="|", ax=ax,
                  palette={c: "black" for c in combos}, orient="h", legend=False, linewidth=1)
    ax.plot([], [], "|", color="black", ms=8, label="chance (label-permutation null mean)")
    ax.set_yticks(range(len(conditions)),
                  [f"{label(c)}\n({seeds_note(data[data['condition'] == c]['seed'].nunique())})"
                   for c in conditions])
    ax.set_ylabel("")
    ax.set_xlabel("action decoding accuracy (held-out sequences; fraction correct)")
    ax.set_xlim(0, 1.02)
    legend_below(ax, "points: seeds", ncol=3)


def plot_r_by_condition(ax, units: pd.DataFrame, conditions: list[str],
                        thresholds: tuple[float, float] = (0.6, 0.75)) -> None:
    """Distributions of per-unit r (pooled over seeds) per condition, as violins."""
    data = units[units["condition"].isin(conditions)].dropna(subset=["r"])
    if data.empty:
        return note(ax, "no per-unit r in this sweep")
    sns.violinplot(data=data, x="condition", y="r", order=conditions, ax=ax, cut=0,
                   inner="quart", density_norm="width", color="#9ecae1", linewidth=0.8)
    for t in (-thresholds[0], thresholds[0]):
        ax.axhline(t, color="0.5", lw=0.8, ls="--")
    ax.axhline(thresholds[1], color="0.2", lw=0.8, ls="-.")
    ax.set_xticks(range(len(conditions)),
                  [f"{label(c)}\n{seeds_note(data[data['condition'] == c]['seed'].nunique())}"
                   for c in conditions], rotation=30, ha="right")
    ax.set_xlabel("")
    ax.set_ylabel("per-unit Pearson r (perform vs observe)")
    ax.set_ylim(-1.05, 1.05)


def plot_condition_bars(ax, stats: pd.DataFrame, conditions: list[str],
                        measures: list[str]) -> None:
    """Bars of the across-seed mean per condition and measure with 95% CI error bars.

    stats: long table condition, measure, n, mean, ci_low, ci_high (aggregate.robustness).
    """
    data = stats[stats["condition"].isin(conditions) & stats["measure"].isin(measures)]
    if data.dropna(subset=["mean"]).empty:
        return note(ax, "not measured in this sweep")
    sns.barplot(data=data, x="condition", y="mean", hue="measure", order=conditions,
                hue_order=measures, ax=ax, palette="colorblind", errorbar=None)
    width = 0.8 / len(measures)
    for i, condition in enumerate(conditions):
        for j, measure in enumerate(measures):
            row = data[(data["condition"] == condition) & (data["measure"] == measure)]
            if row.empty or not np.isfinite(row["ci_low"].iloc[0]):
                continue
            r = row.iloc[0]
            ax.errorbar(i - 0.4 + width * (j + 0.5), r["mean"],
                        yerr=[[r["mean"] - r["ci_low"]], [r["ci_high"] - r["mean"]]],
                        color="black", capsize=2.5, lw=1)
    n = data.groupby("condition")["n"].max()
    ax.set_xticks(range(len(conditions)),
                  [f"{label(c)}\n{seeds_note(int(n.get(c, 0)))}" for c in conditions],
                  rotation=30, ha="right")
    ax.set_xlabel("")
    ax.set_ylabel("fraction of units (mean over seeds, 95% CI)")
    ax.legend(loc="upper right", frameon=False)


def plot_lag_counts(ax, top: pd.DataFrame, max_lag: int) -> None:
    """Counts of the peak cross-correlation lag of the top mirror units (pooled over seeds)."""
    lags = top["peak_lag"].dropna() if "peak_lag" in top else pd.Series(dtype=float)
    if lags.empty:
        return note(ax, "no lag analysis for these units")
    order = list(range(-max_lag, max_lag + 1))
    sns.countplot(x=lags.astype(int), order=order, ax=ax, color="#6baed6")
    ax.set_xlabel("peak lag (timesteps; > 0: observe lags perform)")
    ax.set_ylabel("top mirror units")


def plot_xcorr_curves(ax, top: pd.DataFrame, max_lag: int) -> None:
    """Each top mirror unit's mean cross-correlation by lag (one faint line per unit)."""
    from mirror_sweep.analysis.lags import lag_labels

    columns = [c for c in lag_labels(max_lag) if c in top]
    if top.empty or len(columns) != 2 * max_lag + 1:
        return note(ax, "no cross-correlation curves for these units")
    lags = np.arange(-max_lag, max_lag + 1)
    ax.plot(lags, top[columns].to_numpy().T, color=PERFORM_COLOR, alpha=0.25, lw=0.8)
    ax.axvline(0, color="0.5", lw=0.8, ls="--")
    ax.set_xticks(lags)
    ax.set_xlabel("lag (timesteps; > 0: observe lags perform)")
    ax.set_ylabel("cross-correlation (mean over sequences)")


# ---------------------------------------------------------------------------- per-run example
@dataclass
class Example:
    """The per-run material of the example run: its units table and, if saved, traces/null."""

    run_id: str
    condition: str
    seed: int
    units: pd.DataFrame
    n_timesteps: int = 0
    top: list[int] = field(default_factory=list)  # top 3 mirror units (largest r)
    anti: int | None = None  # the most negative unit
    perform: np.ndarray | None = None  # (S*T, k) traces of top + [anti]
    observe: np.ndarray | None = None
    null: np.ndarray | None = None  # (B,) permutation null of top[0]
    missing: str = ""  # why traces are absent


def run_folder(sweep: Sweep, run_id: str) -> Path:
    """The folder of a run: SWEEP_DIR/run_id, or the sweep folder itself for a single run."""
    folder = Path(sweep.path) / run_id
    return folder if folder.is_dir() else Path(sweep.path)


def choose_example(sweep: Sweep, run_id: str | None = None) -> pd.Series | None:
    """The example run: `run_id`, else the main condition's lowest seed, else the first run."""
    runs = sweep.runs
    if runs.empty:
        return None
    if run_id is not None:
        match = runs[runs["run_id"].astype(str) == str(run_id)]
        if match.empty:
            raise ValueError(f"example run {run_id!r} is not a complete run of {sweep.path}")
        return match.iloc[0]
    main = main_condition(runs["condition"])
    pool = runs[runs["condition"] == main] if main else runs
    return pool.sort_values(["seed", "run_id"]).iloc[0]


def load_example(sweep: Sweep, run_id: str | None = None,
                 n_sequences: int = N_TRACE_SEQUENCES) -> Example | None:
    """Load the example run's traces (activations.npz) and redraw its top unit's null.

    Returns None when the sweep has no complete run; an Example without traces (and `missing`
    saying why) when its activations were not saved or are unreadable.
    """
    row = choose_example(sweep, run_id)
    if row is None:
        return None
    units = sweep.units[sweep.units["run_id"] == row["run_id"]]
    ranked = units.dropna(subset=["r"]).sort_values("r")
    example = Example(str(row["run_id"]), str(row["condition"]), int(row["seed"]), units,
                      top=ranked["unit"].iloc[::-1][:3].astype(int).tolist(),
                      anti=int(ranked["unit"].iloc[0]) if len(ranked) else None)
    try:
        acts = results.load_activations(run_folder(sweep, example.run_id))
    except results.RunFileError as error:
        reason = str(error).replace(f"{run_folder(sweep, example.run_id)}/", "")
        example.missing = f"activations not available for run {example.run_id}:\n{reason}"
        return example
    perform, observe = acts["perform_hidden"], acts["observe_hidden"]
    keep = example.top + ([example.anti] if example.anti is not None else [])
    s = min(n_sequences, perform.shape[0])
    example.n_timesteps = perform.shape[1]
    example.perform = perform[:s, :, keep].reshape(-1, len(keep))
    example.observe = observe[:s, :, keep].reshape(-1, len(keep))
    if example.top:
        b = int(row.get("analysis.n_permutations", 1000) or 1000)
        unit = example.top[0]
        example.null = permutation_null(perform[..., [unit]], observe[..., [unit]],
                                        min(b, MAX_NULL_PERMUTATIONS),
                                        int(row["analysis_seed"]))[:, 0]
    return example


# ------------------------------------------------------------------------------------ figures
def long_measures(runs: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    """runs -> long (condition, seed, measure, value) for the metric columns {measure: column}."""
    present = {m: c for m, c in columns.items() if c in runs}
    if not present or runs.empty:
        return pd.DataFrame(columns=["condition", "seed", "measure", "value"])
    wide = runs[["condition", "seed", *present.values()]].rename(
        columns={c: m for m, c in present.items()})
    return wide.melt(id_vars=["condition", "seed"], var_name="measure", value_name="value")


def long_stats(stats: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    """robustness rows of the metric columns, with a `measure` column named as in `columns`."""
    names = {c: m for m, c in columns.items()}
    part = stats[stats["metric"].isin(names)].copy()
    part["measure"] = part["metric"].map(names)
    return part


def thresholds_of(runs: pd.DataFrame) -> tuple[float, float]:
    """The sweep's |r| and r thresholds (the paper's 0.6 and 0.75 when not recorded)."""
    def value(key, default):
        return float(runs[key].iloc[0]) if key in runs and len(runs) else default
    return value("analysis.abs_threshold", 0.6), value("analysis.pos_threshold", 0.75)


def figure_title(fig, text: str, sweep: Sweep) -> None:
    """The figure's title, with the sweep's name."""
    fig.suptitle(f"{text}   ·   sweep: {Path(sweep.path).name}", fontsize=12, fontweight="bold")


def figure1(sweep: Sweep, example: Example | None, conditions: list[str]) -> Figure:
    """Emergence: (A) per-unit r heatmap, (B) r histograms shared vs separate, (C) traces."""
    fig = Figure(figsize=(13, 8.5), layout="constrained")
    grid = fig.add_gridspec(2, 2, height_ratios=[1, 1.6], width_ratios=[1, 1.25])
    ax_a, ax_b, ax_c = (fig.add_subplot(grid[0, :]), fig.add_subplot(grid[1, 0]),
                        fig.add_subplot(grid[1, 1]))
    abs_t, pos_t = thresholds_of(sweep.runs)
    if example is None:
        note(ax_a, "no complete run")
    else:
        plot_r_heatmap(ax_a, example.units, f": {label(example.condition)}, seed {example.seed}"
                       " (rows: trained r and its controls)")
    main = main_condition(conditions)
    pair = [main or (conditions[0] if conditions else MAIN), "separate_cores"]
    plot_r_histograms(ax_b, sweep.units, pair, (abs_t, pos_t))
    ax_b.set_title("B  r distribution: shared vs separate cores", loc="left")
    if example is None or example.perform is None or not example.top:
        note(ax_c, example.missing if example else "no complete run")
    else:
        k = len(example.top)
        r = example.units.set_index("unit")["r"]
        plot_time_courses(ax_c, example.perform[:, :k], example.observe[:, :k],
                          [f"unit {u} (r = {r[u]:.2f})" for u in example.top])
        plot_sequence_bounds(ax_c, example.perform.shape[0] // example.n_timesteps,
                             example.n_timesteps)
    ax_c.set_title("C  Top 3 mirror units (largest r)", loc="left")
    figure_title(fig, "Figure 1 — Emergence of mirror-like units", sweep)
    return fig


def figure2(sweep: Sweep, example: Example | None, conditions: list[str],
            stats: pd.DataFrame) -> Figure:
    """Robustness: (A) null vs observed, (B) fractions over thresholds with controls,
    (C) decoding vs chance, (D) tuning congruence vs chance."""
    fig = Figure(figsize=(15, 11), layout="constrained")
    grid = fig.add_gridspec(2, 3, height_ratios=[1, 1.15])
    ax_a = fig.add_subplot(grid[0, 0])
    ax_b1, ax_b2 = fig.add_subplot(grid[0, 1]), fig.add_subplot(grid[0, 2])
    ax_c, ax_d = fig.add_subplot(grid[1, :2]), fig.add_subplot(grid[1, 2])
    abs_t, pos_t = thresholds_of(sweep.runs)
    if example is None or example.null is None:
        note(ax_a, example.missing if example else "no complete run")
    else:
        unit = example.top[0]
        row = example.units.set_index("unit").loc[unit]
        plot_permutation_null(ax_a, example.null, float(row["r"]),
                              float(row["p_value"]) if "p_value" in row else None, unit)
    ax_a.set_title(f"A  Permutation null, top unit\n({label(example.condition)}, seed "
                   f"{example.seed})" if example else "A  Permutation null", loc="left")
    main = main_condition(conditions)
    paper_t = np.isclose([abs_t, pos_t], [0.6, 0.75]).all()  # the paper's range is at these
    for ax, panel, prefix, name, band in [
            (ax_b1, "B1", "frac_abs_r_gt", f"|r| > {abs_t:g}", (0.35, 0.40) if paper_t else None),
            (ax_b2, "B2", "frac_r_gt", f"r > {pos_t:g}", (0.25, 0.30) if paper_t else None)]:
        columns = {"trained": prefix, "time-centred r": f"time_centred_{prefix}",
                   "initial weights": f"untrained_{prefix}",
                   "permutation null (mean)": f"null_mean_{prefix}"}
        plot_condition_measures(ax, long_measures(sweep.runs, columns),
                                long_stats(stats, columns), conditions, list(columns),
                                f"fraction of units with {name}", band=band,
                                band_condition=main, band_label="paper's claim (main run)")
        ax.set_title(f"{panel}  Units with {name} across seeds", loc="left")
        ax.set_xlim(-0.02, None)
    ax_b2.set_yticklabels([])
    plot_decoding(ax_c, sweep.decoding, conditions)
    ax_c.set_title("C  Cross-condition decoding vs chance", loc="left")
    columns = {"congruent": "frac_congruent", "chance": "frac_congruent_chance"}
    plot_condition_measures(ax_d, long_measures(sweep.runs, columns), long_stats(stats, columns),
                            conditions, list(columns),
                            "fraction of units selective in both modes\nwith the same "
                            "preferred action")
    ax_d.set_title("D  Tuning congruence (control)", loc="left")
    if main is None:
        ax_a.text(0.02, 0.02, f"{label(MAIN)} absent", transform=ax_a.transAxes, fontsize=8)
    figure_title(fig, "Figure 2 — Statistical robustness", sweep)
    return fig


def figure3(sweep: Sweep, conditions: list[str], stats: pd.DataFrame) -> Figure:
    """Ablations: (A) r distributions per condition, (B) fractions over thresholds (mean, CI)."""
    fig = Figure(figsize=(13, 10), layout="constrained")
    ax_a, ax_b = fig.subplots(2, 1)
    abs_t, pos_t = thresholds_of(sweep.runs)
    plot_r_by_condition(ax_a, sweep.units, conditions, (abs_t, pos_t))
    ax_a.set_title("A  Per-unit r by condition (all units of all seeds; dashed ±"
                   f"{abs_t:g}, dash-dot {pos_t:g})", loc="left")
    columns = {f"|r| > {abs_t:g}": "frac_abs_r_gt", f"r > {pos_t:g}": "frac_r_gt",
               f"time-centred |r| > {abs_t:g}": "time_centred_frac_abs_r_gt"}
    plot_condition_bars(ax_b, long_stats(stats, columns), conditions, list(columns))
    ax_b.set_title("B  Fraction of units over the thresholds (mean over seeds, 95% bootstrap CI)",
                   loc="left")
    if len(conditions) < 2:
        ax_b.text(0.5, 0.9, "only one condition in this sweep: no ablation to compare",
                  transform=ax_b.transAxes, ha="center", fontsize=9, color="0.35")
    figure_title(fig, "Figure 3 — Ablations", sweep)
    return fig


def figure4(sweep: Sweep, example: Example | None, conditions: list[str]) -> Figure:
    """Temporal & anti-mirror: (A) peak lags and (B) cross-correlation of the top mirror units,
    (C) the most negative unit's trace."""
    fig = Figure(figsize=(15, 5.2), layout="constrained")
    ax_a, ax_b, ax_c = fig.subplots(1, 3, width_ratios=[1, 1, 1.5])
    main = main_condition(conditions) or (conditions[0] if conditions else None)
    units = sweep.units[sweep.units["condition"] == main] if main else sweep.units.iloc[0:0]
    top = top_units(units) if len(units) else units
    max_lag = int(sweep.runs["analysis.max_lag"].iloc[0]) if "analysis.max_lag" in sweep.runs \
        and len(sweep.runs) else 3
    n_seeds = units["seed"].nunique() if len(units) else 0
    plot_lag_counts(ax_a, top, max_lag)
    ax_a.set_title(f"A  Peak lag, top 10% units by r\n({label(main or '-')}, "
                   f"{len(top)} units, {seeds_note(n_seeds)})", loc="left")
    plot_xcorr_curves(ax_b, top, max_lag)
    ax_b.set_title("B  Cross-correlation by lag (same units)", loc="left")
    anti_t = float(sweep.runs["analysis.anti_threshold"].iloc[0]) \
        if "analysis.anti_threshold" in sweep.runs and len(sweep.runs) else -0.6
    if example is None or example.perform is None or example.anti is None:
        note(ax_c, example.missing if example else "no complete run")
        ax_c.set_title("C  Most negative (anti-mirror) unit", loc="left")
    else:
        r = float(example.units.set_index("unit").loc[example.anti, "r"])
        plot_time_courses(ax_c, example.perform[:, -1:], example.observe[:, -1:],
                          [f"unit {example.anti} (r = {r:.2f})"])
        plot_sequence_bounds(ax_c, example.perform.shape[0] // example.n_timesteps,
                             example.n_timesteps)
        kind = "anti-mirror" if r < anti_t else f"no unit below r = {anti_t:g}; most negative"
        ax_c.set_title(f"C  {kind} unit ({label(example.condition)}, seed {example.seed})",
                       loc="left")
    figure_title(fig, "Figure 4 — Temporal alignment and anti-mirror units", sweep)
    return fig


def one_hidden_size(sweep: Sweep, example_run: str | None = None) -> tuple[Sweep, str]:
    """The sweep restricted to one hidden size when it varies (the example run's, else the
    paper's 96, else the largest), and a note saying so ("" when nothing was dropped)."""
    runs = sweep.runs
    if "hidden_size" not in runs or runs["hidden_size"].nunique() <= 1:
        return sweep, ""
    sizes = runs["hidden_size"]
    if example_run is not None and (runs["run_id"].astype(str) == str(example_run)).any():
        h = sizes[runs["run_id"].astype(str) == str(example_run)].iloc[0]
    else:
        h = 96 if (sizes == 96).any() else sizes.max()
    keep = set(runs.loc[sizes == h, "run_id"])
    tables = {name: getattr(sweep, name) for name in ("runs", "units", "decoding", "history")}
    return (dataclasses.replace(sweep, **{name: t[t["run_id"].isin(keep)]
                                          for name, t in tables.items()}),
            f"H = {h} runs only")


FIGURE_METRICS = [f"{p}{m}" for m in ("frac_abs_r_gt", "frac_r_gt")
                  for p in ("", "time_centred_", "untrained_", "null_mean_")] + [
    "frac_congruent", "frac_congruent_chance"]


def draw_figures(sweep: Sweep, out_dir: Path | str, example_run: str | None = None,
                 n_boot: int = 10_000, seed: int = 0) -> list[Path]:
    """Draw Figures 1-4 of the paper from a loaded sweep into `out_dir` as PNG and PDF.

    Args:
        sweep: from aggregate.load_sweep.
        out_dir: usually SWEEP_DIR/aggregate/figures (created).
        example_run: run_id of the run for the per-run panels; default the main condition's
            lowest seed (else the first run).
        n_boot, seed: bootstrap of the across-seed CIs (aggregate.robustness).

    Returns:
        The written files, figure by figure (png, pdf).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sweep, restriction = one_hidden_size(sweep, example_run)
    conditions = ordered_conditions(sweep.runs["condition"]) if len(sweep.runs) else []
    stats = robustness(sweep.runs, metrics=FIGURE_METRICS, n_boot=n_boot, seed=seed) \
        if len(sweep.runs) else pd.DataFrame(columns=["condition", "metric", "n", "mean", "sd",
                                                       "ci_low", "ci_high"])
    example = load_example(sweep, example_run)
    paths = []
    with sns.axes_style("ticks"), sns.plotting_context("paper", rc=RC):
        figures = {"figure1_emergence": lambda: figure1(sweep, example, conditions),
                   "figure2_robustness": lambda: figure2(sweep, example, conditions, stats),
                   "figure3_ablations": lambda: figure3(sweep, conditions, stats),
                   "figure4_temporal": lambda: figure4(sweep, example, conditions)}
        for name, make in figures.items():
            fig = make()
            if restriction:
                fig.suptitle(f"{fig.get_suptitle()} ({restriction})", fontsize=12,
                             fontweight="bold")
            for fmt in FORMATS:
                path = out / f"{name}.{fmt}"
                fig.savefig(path, dpi=DPI)
                paths.append(path)
    return paths
