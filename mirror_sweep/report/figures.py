"""The paper's Figures 1-4 from an aggregated sweep (matplotlib Agg, seaborn).

The panels (`mirror_sweep.report.panels`, `plot_*`) take DataFrames/arrays and a matplotlib `ax`; they
read no files and compute no statistics (across-seed means and CIs come from `report.stats`, per-unit
statistics and the top unit's permutation null from what the runs wrote). Figures never import
the analysis. `load_example` is the one loader of per-run files (activations, the top unit's
null) for the per-run panels, and `draw_figures` assembles the figures into PNG and PDF files.

Every panel degrades to a note inside the panel when its data is missing (a condition absent from
the sweep, activations not saved, a single run), so a figure is always written.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from mirror_sweep.report.panels import (
    label,
    note,
    ordered_conditions,
    plot_action_trace,
    plot_condition_bars,
    plot_condition_measures,
    plot_decoding,
    plot_lag_counts,
    plot_maxstat_null,
    plot_permutation_null,
    plot_r_by_condition,
    plot_r_heatmap,
    plot_r_histograms,
    plot_sequence_bounds,
    plot_time_courses,
    plot_xcorr_curves,
    seeds_note,
)
from mirror_sweep.report.paper import (
    ABS_THRESHOLD,
    ANTI_THRESHOLD,
    CLAIM_RANGES,
    MAIN,
    POS_THRESHOLD,
    UNTRAINED,
    main_condition,
    paper_size_runs,
    paper_thresholds_used,
)
from mirror_sweep.report.stats import empty_stats, report_stats, stats_of
from mirror_sweep.sweep import results
from mirror_sweep.sweep.aggregate import Sweep
from mirror_sweep.sweep.summaries import robustness

DPI = 200
FORMATS = ("png", "pdf")
N_TRACE_SEQUENCES = 3  # test sequences concatenated in the time-course panels
N_TOP_UNITS = 3  # mirror units (r above the |r| threshold) whose traces Figure 1C shows
R_QUANTILES = {"10th percentile": 0.1, "median": 0.5, "90th percentile": 0.9, "max": 1.0}
RC = {"font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 8.5,
      "xtick.labelsize": 9, "ytick.labelsize": 9, "axes.titleweight": "bold"}

# ---------------------------------------------------------------------------- per-run example
@dataclass
class Example:
    """The per-run material of the example run: its units table and, if saved, traces/null."""

    run_id: str
    condition: str
    seed: int
    units: pd.DataFrame
    n_timesteps: int = 0
    top: list[int] = field(default_factory=list)  # up to 3 mirror units (r > |r| threshold)
    anti: int | None = None  # the most negative unit
    perform: np.ndarray | None = None  # (S*T, k) traces of top + [anti]
    observe: np.ndarray | None = None
    perform_actions: np.ndarray | None = None  # (S*T,) actions of the traced steps
    observe_actions: np.ndarray | None = None
    null: np.ndarray | None = None  # (B,) the run's permutation null of null_unit
    null_unit: int | None = None  # the unit with the largest r, as the run recorded it
    max_abs_z: np.ndarray | None = None  # (B,) the run's max over units of |z| per permutation
    missing: str = ""  # why traces are absent
    missing_null: str = ""  # why the null is absent


# Byte-identical figures across reruns: seaborn's strip-plot jitter draws from numpy's global
# generator (seeded here, then restored), and the PDF gets no creation date.
JITTER_SEED = 0
FIXED_METADATA = {"pdf": {"CreationDate": None}}


def seeded(make):
    """make() with numpy's global generator seeded by JITTER_SEED, and restored afterwards."""
    state = np.random.get_state()
    np.random.seed(JITTER_SEED)
    try:
        return make()
    finally:
        np.random.set_state(state)


def run_folder(sweep: Sweep, run_id: str) -> Path:
    """The folder of a run: SWEEP_DIR/run_id, or the sweep folder itself for a single run."""
    folder = Path(sweep.path) / run_id
    return folder if folder.is_dir() else Path(sweep.path)


def choose_example(sweep: Sweep, run_id: str | None = None) -> pd.Series | None:
    """The example run: `run_id`, else the main condition's lowest seed among the runs that stand
    for the paper (its H and the reference value of any other swept factor:
    paper.paper_size_runs), else the first run."""
    runs = sweep.runs
    if runs.empty:
        return None
    if run_id is not None:
        match = runs[runs["run_id"].astype(str) == str(run_id)]
        if match.empty:
            raise ValueError(f"example run {run_id!r} is not a complete run of {sweep.path}")
        return match.iloc[0]
    paper_runs, _ = paper_size_runs(runs)
    runs = paper_runs if len(paper_runs) else runs
    main = main_condition(runs)
    pool = runs[runs["condition"] == main] if main else runs
    return pool.sort_values(["seed", "run_id"]).iloc[0]


def load_example(sweep: Sweep, run_id: str | None = None,
                 n_sequences: int = N_TRACE_SEQUENCES) -> Example | None:
    """Load the example run's traces (activations.npz) and its top unit's null (written by the
    run).

    Returns None when the sweep has no complete run; an Example without traces or null (and
    `missing` / `missing_null` saying why) when the run did not save them or they are unreadable.
    """
    row = choose_example(sweep, run_id)
    if row is None:
        return None
    abs_t, _ = thresholds_of(sweep.runs)
    units = sweep.units[sweep.units["run_id"] == row["run_id"]]
    ranked = units.dropna(subset=["r"]).sort_values("r")
    mirror = ranked[ranked["r"] > abs_t]["unit"].iloc[::-1]
    example = Example(str(row["run_id"]), str(row["condition"]), int(row["seed"]), units,
                      top=mirror[:N_TOP_UNITS].astype(int).tolist(),
                      anti=int(ranked["unit"].iloc[0]) if len(ranked) else None)
    folder = run_folder(sweep, example.run_id)
    load_null(example, folder)
    try:
        acts = results.load_activations(folder)
    except results.RunFileError as error:
        reason = str(error).replace(f"{folder}/", "")
        example.missing = f"activations not available for run {example.run_id}:\n{reason}"
        return example
    perform, observe = acts["perform_hidden"], acts["observe_hidden"]
    keep = example.top + ([example.anti] if example.anti is not None else [])
    s = min(n_sequences, perform.shape[0])
    example.n_timesteps = perform.shape[1]
    example.perform = perform[:s, :, keep].reshape(-1, len(keep))
    example.observe = observe[:s, :, keep].reshape(-1, len(keep))
    example.perform_actions = np.asarray(acts["perform_actions"])[:s].reshape(-1).astype(int)
    example.observe_actions = np.asarray(acts["observe_actions"])[:s].reshape(-1).astype(int)
    return example


def load_null(example: Example, folder: Path) -> None:
    """Set example.null / null_unit from the run's top_unit_null.csv, or missing_null."""
    path = folder / results.NULL_FILE
    if not path.exists():
        example.missing_null = (f"run {example.run_id} wrote no permutation null\n"
                                "(runs write it since the figures stopped recomputing it)")
        return
    try:
        table = results.read_table(path, ("unit", "null_r"))
    except results.RunFileError as error:
        example.missing_null = str(error).replace(f"{folder}/", "")
        return
    if table.empty:
        example.missing_null = f"run {example.run_id}: every unit is constant, no null"
        return
    example.null_unit = int(table["unit"].iloc[0])
    example.null = table["null_r"].to_numpy(dtype=float)
    if "max_abs_z" in table:  # runs written before the studentised max-statistic have none
        example.max_abs_z = table["max_abs_z"].to_numpy(dtype=float)


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


def r_quantiles(units: pd.DataFrame) -> pd.DataFrame:
    """Per run, quantiles of its units' r (R_QUANTILES): condition, seed, quantile, r."""
    if units.empty or "r" not in units:
        return pd.DataFrame(columns=["condition", "seed", "quantile", "r"])
    grouped = units.dropna(subset=["r"]).groupby(["run_id", "condition", "seed"])["r"]
    parts = [grouped.quantile(q).rename("r").reset_index().assign(quantile=name)
             for name, q in R_QUANTILES.items()]
    return pd.concat(parts, ignore_index=True)[["condition", "seed", "quantile", "r"]]


def mirror_units(units: pd.DataFrame, abs_threshold: float) -> pd.DataFrame:
    """The units with |r| above the threshold: the mirror (and anti-mirror) units."""
    return units[units["r"].abs() > abs_threshold] if "r" in units else units.iloc[0:0]


def decoding_stats(sweep: Sweep) -> pd.DataFrame:
    """Across-seed mean and 95% CI of decoding accuracy per condition and train/test combo
    (summaries.robustness): condition, measure (the combo), n, mean, ci_low, ci_high."""
    data = sweep.decoding
    if data.empty or not {"train_mode", "test_mode", "accuracy"} <= set(data):
        return pd.DataFrame(columns=["condition", "measure", "n", "mean", "ci_low", "ci_high"])
    combo = "train " + data["train_mode"] + " → test " + data["test_mode"]
    wide = data.assign(combo=combo).pivot_table(index=["condition", "seed"], columns="combo",
                                                 values="accuracy").reset_index()
    combos = [c for c in wide.columns if str(c).startswith("train ")]
    return robustness(wide, metrics=combos).rename(columns={"metric": "measure"})


def thresholds_of(runs: pd.DataFrame) -> tuple[float, float]:
    """The sweep's |r| and r thresholds (the paper's when not recorded)."""
    def value(key, default):
        return float(runs[key].iloc[0]) if key in runs and len(runs) else default
    return (value("analysis.abs_threshold", ABS_THRESHOLD),
            value("analysis.pos_threshold", POS_THRESHOLD))


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
    main = main_condition(sweep.runs)
    pair = [main or (conditions[0] if conditions else MAIN), "separate_cores"]
    plot_r_histograms(ax_b, sweep.units, pair, (abs_t, pos_t))
    ax_b.set_title("B  r distribution: shared vs separate cores", loc="left")
    if example is not None and example.perform is not None and not example.top:
        note(ax_c, f"no unit of this run has r > {abs_t:g}")
    elif example is None or example.perform is None:
        note(ax_c, example.missing if example else "no complete run")
    else:
        k = len(example.top)
        r = example.units.set_index("unit")["r"]
        plot_time_courses(ax_c, example.perform[:, :k], example.observe[:, :k],
                          [f"unit {u} (r = {r[u]:.2f})" for u in example.top])
        plot_sequence_bounds(ax_c, example.perform.shape[0] // example.n_timesteps,
                             example.n_timesteps)
    ax_c.set_title(f"C  Mirror units (r > {abs_t:g}), up to {N_TOP_UNITS} with the largest r",
                   loc="left")
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
        note(ax_a, example.missing_null if example else "no complete run")
    elif example.max_abs_z is not None and "z_r" in example.units:
        # The best unit is the max of H: compare it with the max-statistic null, not its own.
        unit = example.null_unit
        row = example.units.set_index("unit").loc[unit]
        run = sweep.runs[sweep.runs["run_id"] == example.run_id]
        threshold = float(run["maxstat_threshold_z"].iloc[0]) \
            if "maxstat_threshold_z" in run and len(run) else float("nan")
        plot_maxstat_null(ax_a, example.max_abs_z, float(row["z_r"]), threshold,
                          float(row["p_maxstat"]) if "p_maxstat" in row else None, unit)
    else:  # a run written before the max-statistic null was saved
        unit = example.null_unit
        row = example.units.set_index("unit").loc[unit]
        plot_permutation_null(ax_a, example.null, float(row["r"]),
                              float(row["p_value"]) if "p_value" in row else None, unit)
    ax_a.set_title(f"A  Best unit vs the max-statistic null\n({label(example.condition)}, "
                   f"seed {example.seed})" if example else "A  Max-statistic null", loc="left")
    main = main_condition(sweep.runs)
    paper_t = paper_thresholds_used(abs_t, pos_t)  # the paper's ranges are at its thresholds
    for ax, panel, prefix, name in [(ax_b1, "B1", "frac_abs_r_gt", f"|r| > {abs_t:g}"),
                                    (ax_b2, "B2", "frac_r_gt", f"r > {pos_t:g}")]:
        # The paper's range, on the main condition's row only (no band without one).
        band = CLAIM_RANGES[prefix] if paper_t and main is not None else None
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
    plot_decoding(ax_c, sweep.decoding, conditions, decoding_stats(sweep))
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
    plot_r_by_condition(ax_a, r_quantiles(sweep.units), conditions, (abs_t, pos_t))
    ax_a.set_title("A  Per-unit r by condition: quantiles within each run, one point per seed "
                   f"(dashed ±{abs_t:g}, dash-dot {pos_t:g})", loc="left")
    columns = {f"|r| > {abs_t:g}": "frac_abs_r_gt", f"r > {pos_t:g}": "frac_r_gt",
               f"time-centred |r| > {abs_t:g}": "time_centred_frac_abs_r_gt",
               f"|r| > {abs_t:g} minus permutation null": "excess_frac_abs_r_gt",
               f"|r| > {abs_t:g} at initial weights": "untrained_frac_abs_r_gt"}
    plot_condition_bars(ax_b, long_stats(stats, columns), conditions, list(columns))
    ax_b.set_title("B  Fraction of units over the thresholds, its excess over the permutation "
                   "null and its initial-weight control (mean over seeds, 95% CI)", loc="left")
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
    main = main_condition(sweep.runs) or (conditions[0] if conditions else None)
    abs_t, _ = thresholds_of(sweep.runs)
    units = sweep.units[sweep.units["condition"] == main] if main else sweep.units.iloc[0:0]
    mirror = mirror_units(units, abs_t)
    control = mirror_units(sweep.units[sweep.units["condition"] == UNTRAINED], abs_t) \
        if main != UNTRAINED else sweep.units.iloc[0:0]
    max_lag = int(sweep.runs["analysis.max_lag"].iloc[0]) if "analysis.max_lag" in sweep.runs \
        and len(sweep.runs) else 3
    n_seeds = units["seed"].nunique() if len(units) else 0
    groups = [mirror.assign(group=f"{label(main or '-')} ({len(mirror)} units)")]
    if len(control):
        groups.append(control.assign(group=f"{label(UNTRAINED)} ({len(control)} units)"))
    plot_lag_counts(ax_a, pd.concat(groups, ignore_index=True), max_lag)
    ax_a.set_title(f"A  Peak lag of mirror units (|r| > {abs_t:g})\n({label(main or '-')}, "
                   f"{seeds_note(n_seeds)}; control: {label(UNTRAINED)}"
                   f"{'' if len(control) else ' not in this sweep'})", loc="left")
    plot_xcorr_curves(ax_b, mirror, max_lag, control, label(UNTRAINED))
    ax_b.set_title("B  Cross-correlation by lag (same units)", loc="left")
    anti_t = float(sweep.runs["analysis.anti_threshold"].iloc[0]) \
        if "analysis.anti_threshold" in sweep.runs and len(sweep.runs) else ANTI_THRESHOLD
    if example is None or example.perform is None or example.anti is None:
        note(ax_c, example.missing if example else "no complete run")
        ax_c.set_title("C  Most negative (anti-mirror) unit", loc="left")
    else:
        r = float(example.units.set_index("unit").loc[example.anti, "r"])
        plot_action_trace(ax_c, example.perform[:, -1], example.observe[:, -1],
                          example.perform_actions, example.observe_actions,
                          f"unit {example.anti} (r = {r:.2f})")
        plot_sequence_bounds(ax_c, example.perform.shape[0] // example.n_timesteps,
                             example.n_timesteps)
        kind = "anti-mirror" if r < anti_t else f"no unit below r = {anti_t:g}; most negative"
        ax_c.set_title(f"C  {kind} unit ({label(example.condition)}, seed {example.seed})",
                       loc="left")
    figure_title(fig, "Figure 4 — Temporal alignment and anti-mirror units", sweep)
    return fig


def one_hidden_size(sweep: Sweep, example_run: str | None = None) -> tuple[Sweep, str]:
    """The sweep restricted by paper.paper_size_runs (the example run's hidden size when one is
    named), and its note ("" when nothing was dropped)."""
    runs = sweep.runs
    h = None
    if example_run is not None and "hidden_size" in runs and (
            runs["run_id"].astype(str) == str(example_run)).any():
        h = runs.loc[runs["run_id"].astype(str) == str(example_run), "hidden_size"].iloc[0]
    kept, restriction = paper_size_runs(runs, h)
    if not restriction:
        return sweep, ""
    keep = set(kept["run_id"])
    tables = {name: getattr(sweep, name) for name in ("runs", "units", "decoding", "history",
                                                      "subset_decoding", "ablation")}
    return (dataclasses.replace(sweep, **{name: t[t["run_id"].isin(keep)] if "run_id" in t else t
                                          for name, t in tables.items()}), restriction)


def draw_figures(sweep: Sweep, out_dir: Path | str, example_run: str | None = None,
                 n_boot: int = 10_000, seed: int = 0,
                 stats: pd.DataFrame | None = None) -> list[Path]:
    """Draw Figures 1-4 of the paper and Figures 5-6 (population geometry, causal ablation;
    report.population_figures) from a loaded sweep into `out_dir` as PNG and PDF.

    Args:
        sweep: from aggregate.load_sweep.
        out_dir: usually SWEEP_DIR/aggregate/figures (created).
        example_run: run_id of the run for the per-run panels; default the main condition's
            lowest seed (else the first run).
        n_boot, seed: bootstrap of the across-seed CIs, when `stats` is None.
        stats: report.stats.report_stats of the whole sweep (computed here when None).

    Returns:
        The written files, figure by figure (png, pdf).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if stats is None:
        stats = report_stats(sweep.runs, n_boot=n_boot, seed=seed)
    sweep, restriction = one_hidden_size(sweep, example_run)
    conditions = ordered_conditions(sweep.runs["condition"]) if len(sweep.runs) else []
    stats = stats_of(stats, sweep.runs) if len(sweep.runs) else empty_stats()
    example = load_example(sweep, example_run)
    paths = []
    from mirror_sweep.report.population_figures import figure_series

    with sns.axes_style("ticks"), sns.plotting_context("paper", rc=RC):
        figures = {"figure1_emergence": lambda: figure1(sweep, example, conditions),
                   "figure2_robustness": lambda: figure2(sweep, example, conditions, stats),
                   "figure3_ablations": lambda: figure3(sweep, conditions, stats),
                   "figure4_temporal": lambda: figure4(sweep, example, conditions),
                   **figure_series(sweep, conditions, stats, n_boot, seed)}
        for name, make in figures.items():
            fig = seeded(make)
            if restriction:
                fig.suptitle(f"{fig.get_suptitle()} ({restriction})", fontsize=12,
                             fontweight="bold")
            for fmt in FORMATS:
                path = out / f"{name}.{fmt}"
                fig.savefig(path, dpi=DPI, metadata=FIXED_METADATA.get(fmt))
                paths.append(path)
    return paths
