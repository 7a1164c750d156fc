"""Plot panels for the paper's figures: each takes DataFrames/arrays and a matplotlib `ax`.

They read no files and compute no statistics (across-seed means and CIs come from
`summaries.robustness`, per-unit statistics from the runs' analyses); each degrades to a note in
the panel when its data is missing.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import seaborn as sns

from mirror_sweep.report.paper import ABS_THRESHOLD, POS_THRESHOLD

# Display order and short labels of the conditions in conf/condition/ (others follow, sorted).
CONDITION_LABELS = {
    "shared_bidirectional": "shared core (main)", "default": "default config",
    "separate_cores": "separate cores", "forward_only": "forward only",
    "shuffled_observe": "shuffled observe", "independent_pairing": "pairing error",
    "independent_train_pairing": "pairing error (train)",
    "randomized_dynamics": "random dynamics", "shared_readout": "shared readout",
    "action_head_both": "action head both modes", "sensory_head_both": "sensory head both modes",
    "untrained": "untrained",
}
PERFORM_COLOR, OBSERVE_COLOR = "#1b6ca8", "#d1495b"
# Distinct colours for a measure and its controls (no two near-identical hues).
MEASURE_COLORS = ["#1b6ca8", "#e07b00", "#7f7f7f", "#6a3d9a", "#2ca02c", "#d1495b"]


def format_p(p: float, n_permutations: int | None = None) -> str:
    """'p = 0.012', or 'p ≤ 0.0001' at the permutation floor 1/(B+1) (never a false 'p = floor')."""
    if n_permutations is not None and p <= 1.0 / (n_permutations + 1) * (1 + 1e-9):
        return f"p ≤ {1.0 / (n_permutations + 1):.1g}"
    return f"p = {p:.2g}"
XCORR_PREFIX = "xcorr_lag_"  # the units table's cross-correlation columns, one per lag


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


# Faint per-unit curves drawn at most (the first units; the mean curve uses every unit).
MAX_UNIT_CURVES = 1_000
# Per-seed points drawn per condition at most (the lowest seeds); means and CIs use every seed.
# At cluster scale (10^3-10^4 seeds per condition) drawing every point costs most of the figures'
# time (PDF) and shows nothing a sample does not.
MAX_SEED_POINTS = 100


def shown_seeds(data: pd.DataFrame, keys: tuple[str, ...] = ("condition",)) -> pd.DataFrame:
    """The rows of `data` (columns seed and `keys`) drawn as points: those of the
    MAX_SEED_POINTS lowest seeds of each `keys` group (all rows when no group has more)."""
    if "seed" not in data or data.empty:
        return data
    columns = [*keys, "seed"]
    seeds = data[columns].drop_duplicates().sort_values("seed", kind="stable")
    rank = seeds.groupby(list(keys), dropna=False).cumcount()
    if rank.max() < MAX_SEED_POINTS:
        return data
    kept = pd.MultiIndex.from_frame(seeds[rank < MAX_SEED_POINTS])
    return data[pd.MultiIndex.from_frame(data[columns]).isin(kept)]


def points_note(data: pd.DataFrame, shown: pd.DataFrame, what: str = "seeds") -> str:
    """`what`, or that only the first MAX_SEED_POINTS seeds per condition are drawn."""
    return what if len(shown) == len(data) else \
        f"{what} (the first {MAX_SEED_POINTS} per condition drawn)"


def seeds_note(n: int) -> str:
    return f"n = {n} seed{'s' if n != 1 else ''}"


def seed_tick_labels(data: pd.DataFrame, conditions: list[str], brackets: bool = True
                     ) -> list[str]:
    """Per condition its label and, below it, its number of seeds in `data` (condition, seed)."""
    counts = data.groupby("condition")["seed"].nunique()
    notes = [seeds_note(int(counts.get(c, 0))) for c in conditions]
    return [f"{label(c)}\n({n})" if brackets else f"{label(c)}\n{n}"
            for c, n in zip(conditions, notes)]


def dodged_rows(stats: pd.DataFrame, conditions: list[str], measures: list[str],
                finite: str):
    """(position, measure, row) of each stats row whose `finite` column is finite, at seaborn's
    dodged position: condition i, measure j of len(measures) -> i - 0.4 + width * (j + 0.5)."""
    width = 0.8 / len(measures)
    for i, condition in enumerate(conditions):
        for j, measure in enumerate(measures):
            row = stats[(stats["condition"] == condition) & (stats["measure"] == measure)]
            if len(row) and np.isfinite(row[finite].iloc[0]):
                yield i - 0.4 + width * (j + 0.5), measure, row.iloc[0]


def ci_error(row: pd.Series) -> np.ndarray:
    """(2, 1) distances from the mean to the CI bounds, as errorbar's xerr / yerr."""
    return np.array([[row["mean"] - row["ci_low"]], [row["ci_high"] - row["mean"]]])


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
                      thresholds: tuple[float, float] = (ABS_THRESHOLD, POS_THRESHOLD)) -> None:
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
               label=f"observed r = {r_obs:.3f}" + (f" ({format_p(p_value, null.size)})"
                                                    if p_value is not None else ""))
    ax.set_xlabel(f"Pearson r of unit {unit} (perform vs observe)")
    ax.set_ylabel("permutations")
    ax.legend(loc="upper left", frameon=False)


def plot_maxstat_null(ax, max_abs_z: np.ndarray, z_obs: float, threshold: float,
                      p_value: float | None, unit: int) -> None:
    """The family-wise null: max over units of |z| per permutation, against the best unit's z.

    The best unit is the max of H units, so its own null is the wrong comparison (selection
    bias); the max-statistic null is the distribution of that max under re-pairing.
    """
    max_abs_z = max_abs_z[np.isfinite(max_abs_z)]
    if max_abs_z.size == 0 or not np.isfinite(z_obs):
        return note(ax, "no max-statistic null for this run")
    b = max_abs_z.size
    sns.histplot(max_abs_z, bins=40, ax=ax, color="0.6", stat="count",
                 label=f"null: max over units of |z| (B = {b})")
    if np.isfinite(threshold):
        ax.axvline(threshold, color="0.2", lw=1, ls="--",
                   label=f"FWER 5% threshold = {threshold:.2f}")
    ax.axvline(abs(z_obs), color=PERFORM_COLOR, lw=2,
               label=f"unit {unit}: |z| = {abs(z_obs):.1f}" + (
                   f" ({format_p(p_value, b)}, max-stat)" if p_value is not None else ""))
    ax.set_xlabel("|z| = |r - null mean| / null SD (studentised, per unit)")
    ax.set_ylabel("permutations")
    ax.legend(loc="upper right", frameon=False)


def plot_condition_measures(ax, values: pd.DataFrame, stats: pd.DataFrame,
                            conditions: list[str], measures: list[str], xlabel: str,
                            band: tuple[float, float] | None = None,
                            band_condition: str | None = None,
                            band_label: str = "paper's claim") -> None:
    """Per-seed values (points) with the across-seed mean and 95% CI (bars) per condition.

    values: long table condition, measure, value (one row per run and measure).
    stats: long table condition, measure, mean, ci_low, ci_high (from summaries.robustness).
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
    palette = dict(zip(measures, MEASURE_COLORS))
    shown = shown_seeds(data)
    sns.stripplot(data=shown, y="condition", x="value", hue="measure", order=conditions,
                  hue_order=measures, dodge=True, jitter=0.12, size=3.5, alpha=0.6, ax=ax,
                  palette=palette, orient="h")
    for y, measure, r in dodged_rows(stats, conditions, measures, "mean"):
        ax.errorbar(r["mean"], y, xerr=np.nan_to_num(ci_error(r)), fmt="D",
                    color=palette[measure], mec="black", mew=0.6, ms=5, capsize=2.5, lw=1.2)
    ax.set_yticks(range(len(conditions)), seed_tick_labels(data, conditions))
    ax.set_ylabel("")
    ax.set_xlabel(xlabel)
    ax.set_ylim(len(conditions) - 0.5, -0.5)
    legend_below(ax, f"points: {points_note(data, shown)}; ◆: mean over seeds, 95% CI")


def plot_decoding(ax, decoding: pd.DataFrame, conditions: list[str],
                  stats: pd.DataFrame | None = None) -> None:
    """Decoding accuracy per seed for all four train/test combinations, with each condition's
    mean and 95% CI over seeds, and the chance level with the null's width.

    decoding: columns condition, seed, train_mode, test_mode, accuracy, chance, null_sd (per
    run). stats: long table condition, measure ("train a → test b"), mean, ci_low, ci_high.
    """
    data = decoding[decoding["condition"].isin(conditions)].copy()
    if data.empty:
        return note(ax, "no decoding results in this sweep")
    data["combo"] = "train " + data["train_mode"] + " → test " + data["test_mode"]
    combos = [f"train {a} → test {b}" for a, b in [("perform", "observe"), ("observe", "perform"),
                                                   ("perform", "perform"), ("observe", "observe")]]
    palette = dict(zip(combos, MEASURE_COLORS))
    width = 0.8 / len(combos)
    if "null_sd" in data:  # chance ± 2 null SDs (mean over seeds): the null's width
        band = data.groupby(["condition", "combo"])[["chance", "null_sd"]].mean()
        for (condition, combo), row in band.iterrows():
            y = conditions.index(condition) - 0.4 + width * (combos.index(combo) + 0.5)
            ax.plot([row["chance"] - 2 * row["null_sd"], row["chance"] + 2 * row["null_sd"]],
                    [y, y], color="0.75", lw=4, solid_capstyle="butt", zorder=0)
    shown = shown_seeds(data)
    sns.stripplot(data=shown, y="condition", x="accuracy", hue="combo", order=conditions,
                  hue_order=combos, dodge=True, jitter=0.1, size=3.5, alpha=0.6, ax=ax,
                  palette=palette, orient="h")
    sns.stripplot(data=shown, y="condition", x="chance", hue="combo", order=conditions,
                  hue_order=combos, dodge=True, jitter=0, size=7, marker="|", ax=ax,
                  palette={c: "black" for c in combos}, orient="h", legend=False, linewidth=1)
    if stats is not None and len(stats):
        for y, combo, r in dodged_rows(stats, conditions, combos, "mean"):
            ax.errorbar(r["mean"], y, xerr=np.nan_to_num(ci_error(r)), fmt="D",
                        color=palette[combo], mec="black", mew=0.6, ms=5, capsize=2.5, lw=1.2)
    ax.plot([], [], "|", color="black", ms=8, label="chance (label-permutation null mean)")
    ax.plot([], [], color="0.75", lw=4, label="chance ± 2 null SD")
    ax.set_yticks(range(len(conditions)), seed_tick_labels(data, conditions))
    ax.set_ylabel("")
    ax.set_xlabel("action decoding accuracy (held-out sequences; fraction correct)")
    ax.set_xlim(0, 1.02)
    legend_below(ax, f"points: {points_note(data, shown)}; ◆: mean over seeds, 95% CI", ncol=3)


def plot_r_by_condition(ax, quantiles: pd.DataFrame, conditions: list[str],
                        thresholds: tuple[float, float] = (ABS_THRESHOLD, POS_THRESHOLD)) -> None:
    """Per-seed quantiles of per-unit r per condition: one point per seed and quantile.

    Units of a run are not independent replicates, so the seed, not the unit, is the point:
    quantiles has columns condition, seed, quantile (a label, e.g. "90th percentile"), r.
    """
    data = quantiles[quantiles["condition"].isin(conditions)].dropna(subset=["r"]) \
        if "quantile" in quantiles else quantiles.iloc[0:0]
    if data.empty:
        return note(ax, "no per-unit r in this sweep")
    order = list(dict.fromkeys(data["quantile"]))
    shown = shown_seeds(data)
    sns.stripplot(data=shown, x="condition", y="r", hue="quantile", order=conditions,
                  hue_order=order, dodge=True, jitter=0.15, size=4, alpha=0.8, ax=ax,
                  palette=dict(zip(order, MEASURE_COLORS)))
    for t in (-thresholds[0], thresholds[0]):
        ax.axhline(t, color="0.5", lw=0.8, ls="--")
    ax.axhline(thresholds[1], color="0.2", lw=0.8, ls="-.")
    ax.set_xticks(range(len(conditions)), seed_tick_labels(data, conditions, brackets=False),
                  rotation=30, ha="right")
    ax.set_xlabel("")
    ax.set_ylabel("per-unit Pearson r (quantiles within a run)")
    ax.set_ylim(-1.05, 1.05)
    legend_below(ax, f"points: {points_note(data, shown)} (each run's quantile of its units' r)",
                 ncol=len(order))


def plot_condition_bars(ax, stats: pd.DataFrame, conditions: list[str],
                        measures: list[str]) -> None:
    """Bars of the across-seed mean per condition and measure with 95% CI error bars.

    stats: long table condition, measure, n, mean, ci_low, ci_high (summaries.robustness).
    """
    data = stats[stats["condition"].isin(conditions) & stats["measure"].isin(measures)]
    if data.dropna(subset=["mean"]).empty:
        return note(ax, "not measured in this sweep")
    sns.barplot(data=data, x="condition", y="mean", hue="measure", order=conditions,
                hue_order=measures, ax=ax, palette=dict(zip(measures, MEASURE_COLORS)),
                errorbar=None)
    for x, _, r in dodged_rows(data, conditions, measures, "ci_low"):
        ax.errorbar(x, r["mean"], yerr=ci_error(r), color="black", capsize=2.5, lw=1)
    n = data.groupby("condition")["n"].max()
    ax.set_xticks(range(len(conditions)),
                  [f"{label(c)}\n{seeds_note(int(n.get(c, 0)))}" for c in conditions],
                  rotation=30, ha="right")
    ax.set_xlabel("")
    ax.set_ylabel("fraction of units (mean over seeds, 95% CI)")
    ax.axhline(0, color="0.3", lw=0.6)
    ax.legend(loc="upper right", frameon=False)


def plot_lag_counts(ax, units: pd.DataFrame, max_lag: int) -> None:
    """Share of mirror units per peak cross-correlation lag, one bar per group (e.g. trained vs
    its control). units: columns group, peak_lag."""
    data = units.dropna(subset=["peak_lag"]) if "peak_lag" in units else units.iloc[0:0]
    if data.empty:
        return note(ax, "no mirror units (|r| above the threshold) with a lag")
    order = list(range(-max_lag, max_lag + 1))
    data = data.assign(peak_lag=data["peak_lag"].astype(int))
    shares = (data.groupby("group")["peak_lag"].value_counts(normalize=True)
              .rename("share").reset_index())
    groups = list(dict.fromkeys(data["group"]))
    sns.barplot(data=shares, x="peak_lag", y="share", hue="group", order=order,
                hue_order=groups, ax=ax, palette=dict(zip(groups, MEASURE_COLORS)))
    ax.set_xlabel("peak lag (timesteps; > 0: observe lags perform)")
    ax.set_ylabel("share of mirror units")
    ax.legend(loc="upper left", frameon=False, fontsize=7.5)


def plot_xcorr_curves(ax, top: pd.DataFrame, max_lag: int,
                      control: pd.DataFrame | None = None, control_label: str = "") -> None:
    """Each mirror unit's mean cross-correlation by lag (one faint line per unit, for the first
    MAX_UNIT_CURVES units), the mean |xcorr| of all those units, and the mean |xcorr| of the control's mirror units (dashed).

    top, control: units rows with the runs' xcorr_lag_* columns (lags -max_lag..max_lag, in
    that order).
    """
    columns = [c for c in top if str(c).startswith(XCORR_PREFIX)]
    if top.empty or len(columns) != 2 * max_lag + 1:
        return note(ax, "no cross-correlation curves for these units")
    lags = np.arange(-max_lag, max_lag + 1)
    ax.plot(lags, top[columns].iloc[:MAX_UNIT_CURVES].to_numpy().T, color=PERFORM_COLOR,
            alpha=0.25, lw=0.8)
    ax.plot(lags, np.nanmean(np.abs(top[columns].to_numpy()), axis=0), color=PERFORM_COLOR,
            lw=2.2, label="mean |xcorr|, trained")
    if control is not None and len(control) and set(columns) <= set(control):
        ax.plot(lags, np.nanmean(np.abs(control[columns].to_numpy()), axis=0), color="0.35",
                lw=2.2, ls="--", label=f"mean |xcorr|, {control_label}")
    ax.axvline(0, color="0.5", lw=0.8, ls="--")
    ax.set_xticks(lags)
    ax.set_xlabel("lag (timesteps; > 0: observe lags perform)")
    ax.set_ylabel("cross-correlation (mean over sequences)")
    ax.legend(loc="lower center", frameon=False, fontsize=7.5)


def plot_action_trace(ax, perform: np.ndarray, observe: np.ndarray,
                      perform_actions: np.ndarray, observe_actions: np.ndarray,
                      unit_label: str) -> None:
    """One unit's perform (solid) and observe (dashed) trace with each step's marker coloured by
    the action of that step, so action tuning and a mode offset can be told apart.

    perform, observe: (S*T,) activations; *_actions: (S*T,) int actions."""
    steps = np.arange(perform.shape[0])
    n_actions = int(max(perform_actions.max(), observe_actions.max())) + 1
    colors = np.array(sns.color_palette("colorblind", n_actions))
    ax.plot(steps, perform, color="0.3", lw=1.2, label=f"{unit_label}: perform (solid)")
    ax.plot(steps, observe, color="0.3", lw=1.2, ls="--", label="observe (dashed)")
    ax.scatter(steps, perform, c=colors[perform_actions], s=22, zorder=3, edgecolors="none")
    ax.scatter(steps, observe, c=colors[observe_actions], s=22, zorder=3, marker="s",
               edgecolors="none")
    for k in range(n_actions):
        ax.scatter([], [], color=colors[k], s=22, label=f"action {k}")
    ax.set_ylabel("activation (GRU hidden state, in [-1, 1])")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
