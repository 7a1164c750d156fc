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
    plot_condition_bars,
    plot_condition_measures,
    plot_decoding,
    plot_lag_counts,
    plot_permutation_null,
    plot_r_by_condition,
    plot_r_heatmap,
    plot_r_histograms,
    plot_sequence_bounds,
    plot_time_courses,
    plot_xcorr_curves,
    seeds_note,
    top_units,
)
from mirror_sweep.report.paper import (
    ABS_THRESHOLD,
    ANTI_THRESHOLD,
    CLAIM_RANGES,
    MAIN,
    POS_THRESHOLD,
    main_condition,
    paper_size_runs,
    paper_thresholds_used,
)
from mirror_sweep.report.stats import empty_stats, report_stats, stats_of
from mirror_sweep.sweep import results
from mirror_sweep.sweep.aggregate import Sweep

DPI = 200
FORMATS = ("png", "pdf")
N_TRACE_SEQUENCES = 3  # test sequences concatenated in the time-course panels
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
    top: list[int] = field(default_factory=list)  # top 3 mirror units (largest r)
    anti: int | None = None  # the most negative unit
    perform: np.ndarray | None = None  # (S*T, k) traces of top + [anti]
    observe: np.ndarray | None = None
    null: np.ndarray | None = None  # (B,) the run's permutation null of null_unit
    null_unit: int | None = None  # the unit with the largest r, as the run recorded it
    missing: str = ""  # why traces are absent
    missing_null: str = ""  # why the null is absent


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
    units = sweep.units[sweep.units["run_id"] == row["run_id"]]
    ranked = units.dropna(subset=["r"]).sort_values("r")
    example = Example(str(row["run_id"]), str(row["condition"]), int(row["seed"]), units,
                      top=ranked["unit"].iloc[::-1][:3].astype(int).tolist(),
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
        note(ax_a, example.missing_null if example else "no complete run")
    else:
        unit = example.null_unit
        row = example.units.set_index("unit").loc[unit]
        plot_permutation_null(ax_a, example.null, float(row["r"]),
                              float(row["p_value"]) if "p_value" in row else None, unit)
    ax_a.set_title(f"A  Permutation null, top unit\n({label(example.condition)}, seed "
                   f"{example.seed})" if example else "A  Permutation null", loc="left")
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
    main = main_condition(sweep.runs) or (conditions[0] if conditions else None)
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
        if "analysis.anti_threshold" in sweep.runs and len(sweep.runs) else ANTI_THRESHOLD
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
            fig = make()
            if restriction:
                fig.suptitle(f"{fig.get_suptitle()} ({restriction})", fontsize=12,
                             fontweight="bold")
            for fmt in FORMATS:
                path = out / f"{name}.{fmt}"
                fig.savefig(path, dpi=DPI)
                paths.append(path)
    return paths
