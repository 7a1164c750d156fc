"""The plot panels on constructed tables: what each panel shows (labels, seed counts, bands,
thresholds), read back from the matplotlib objects."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from mirror_sweep.report import panels
from mirror_sweep.report.paper import ABS_THRESHOLD, POS_THRESHOLD

matplotlib.use("Agg")
MAIN = "shared_bidirectional"


def axes(n=1):
    fig = Figure()
    return fig.subplots(1, n) if n > 1 else fig.subplots()


def texts(ax) -> list[str]:
    legend = ax.get_legend()
    return ([t.get_text() for t in ax.texts] + [t.get_text() for t in ax.get_yticklabels()]
            + [t.get_text() for t in ax.get_xticklabels()]
            + ([t.get_text() for t in legend.texts] if legend else []))


def units_table(seeds_per_condition: dict[str, int]) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = [{"run_id": f"{c}{s}", "condition": c, "seed": s, "unit": u, "r": rng.uniform(-1, 1),
             "r_untrained": rng.uniform(-0.3, 0.3)}
            for c, n in seeds_per_condition.items() for s in range(n) for u in range(8)]
    return pd.DataFrame(rows)


def test_condition_measures_print_seed_counts_means_and_the_band_on_the_main_row_only():
    values = pd.DataFrame({"condition": [MAIN] * 3 + ["forward_only"] * 2, "seed": [0, 1, 2, 0, 1],
                           "measure": "trained", "value": [0.3, 0.4, 0.35, 0.1, 0.12]})
    stats = pd.DataFrame({"condition": [MAIN, "forward_only"], "measure": "trained",
                          "mean": [0.35, 0.11], "ci_low": [0.3, 0.1], "ci_high": [0.4, 0.12]})
    ax = axes()
    panels.plot_condition_measures(ax, values, stats, [MAIN, "forward_only"], ["trained"],
                                   "fraction", band=(0.35, 0.40), band_condition=MAIN)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["shared core (main)\n(n = 3 seeds)", "forward only\n(n = 2 seeds)"]
    assert ax.get_xlabel() == "fraction"
    band = [p for p in ax.collections if p.get_label() == "paper's claim"]
    assert len(band) == 1
    ys = band[0].get_paths()[0].vertices[:, 1]
    assert (ys.min(), ys.max()) == (-0.5, 0.5)  # the main condition's row only
    means = sorted(line.get_xdata()[0] for line in ax.lines if line.get_marker() == "D")
    assert means == [0.11, 0.35]


def test_no_band_when_its_condition_is_absent():
    values = pd.DataFrame({"condition": ["forward_only"], "seed": [0], "measure": "trained",
                           "value": [0.1]})
    ax = axes()
    panels.plot_condition_measures(ax, values, values.iloc[0:0].assign(mean=[], ci_low=[],
                                                                       ci_high=[]),
                                   ["forward_only"], ["trained"], "x", band=(0.3, 0.4),
                                   band_condition=MAIN)
    assert not [p for p in ax.collections if p.get_label() == "paper's claim"]
    assert ax.get_yticklabels()[0].get_text() == "forward only\n(n = 1 seed)"


def test_r_histograms_mark_the_papers_thresholds_and_name_missing_conditions():
    ax = axes()
    panels.plot_r_histograms(ax, units_table({MAIN: 2}), [MAIN, "separate_cores"])
    shown = texts(ax)
    assert "shared core (main) (n = 2 seeds)" in shown
    assert f"|r| = {ABS_THRESHOLD:g}" in shown and f"r = {POS_THRESHOLD:g}" in shown
    assert any("not in this sweep" in t and "separate cores" in t for t in shown)
    vertical = sorted({line.get_xdata()[0] for line in ax.lines if len(set(line.get_xdata())) == 1})
    assert vertical == [-ABS_THRESHOLD, ABS_THRESHOLD, POS_THRESHOLD]
    assert ax.get_xlabel() == "per-unit Pearson r (perform vs observe)"


def test_r_by_condition_ticks_carry_seed_counts():
    ax = axes()
    units = units_table({MAIN: 3, "untrained": 1})
    quantiles = units.groupby(["condition", "seed"])["r"].median().reset_index().assign(
        quantile="median")
    panels.plot_r_by_condition(ax, quantiles, [MAIN, "untrained"])
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        "shared core (main)\nn = 3 seeds", "untrained\nn = 1 seed"]


def test_condition_bars_draw_ci_whiskers_at_the_dodged_positions():
    stats = pd.DataFrame({"condition": [MAIN, MAIN], "measure": ["a", "b"], "n": [4, 4],
                          "mean": [0.3, 0.2], "ci_low": [0.25, np.nan],
                          "ci_high": [0.35, np.nan]})
    ax = axes()
    panels.plot_condition_bars(ax, stats, [MAIN], ["a", "b"])
    assert ax.get_xticklabels()[0].get_text() == "shared core (main)\nn = 4 seeds"
    whiskers = [c for c in ax.collections if type(c).__name__ == "LineCollection"]
    assert len(whiskers) == 1  # measure b has no finite CI: no whisker
    (x0, y0), (x1, y1) = whiskers[0].get_segments()[0]
    assert x0 == x1 == -0.2 and (y0, y1) == (0.25, 0.35)


def test_permutation_null_and_time_courses_label_what_they_show():
    ax1, ax2 = axes(2)
    panels.plot_permutation_null(ax1, np.linspace(-0.3, 0.3, 99), 0.8, 0.01, unit=5)
    assert ax1.get_xlabel() == "Pearson r of unit 5 (perform vs observe)"
    assert "null: re-paired sequences (B = 99)" in texts(ax1)
    assert "observed r = 0.800 (p ≤ 0.01)" in texts(ax1)  # p at the floor 1/(B+1): a bound
    trace = np.zeros((24, 2))
    panels.plot_time_courses(ax2, trace, trace, ["unit 3 (r = 0.90)", "unit 7 (r = 0.80)"])
    panels.plot_sequence_bounds(ax2, 2, 12)
    assert ax2.get_xlabel() == "timestep (2 test sequences of 12 steps, concatenated)"
    assert [t.get_text() for t in ax2.get_yticklabels()] == ["3", "7"]


def test_xcorr_curves_read_the_lag_columns_of_the_units_table():
    top = pd.DataFrame({"xcorr_lag_neg1": [0.1, 0.2], "xcorr_lag_0": [0.9, 0.8],
                        "xcorr_lag_pos1": [0.2, 0.1]})
    ax = axes()
    panels.plot_xcorr_curves(ax, top, max_lag=1)
    assert len(ax.lines) == 4  # two units + their mean |xcorr| + the zero-lag mark
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), [0.1, 0.9, 0.2])
    ax = axes()
    panels.plot_xcorr_curves(ax, top, max_lag=2)  # a mismatch is a note, not a wrong plot
    assert any("no cross-correlation" in t.get_text() for t in ax.texts)


def test_a_p_value_at_the_permutation_floor_is_written_as_a_bound():
    assert panels.format_p(1 / 10_001, 10_000) == "p ≤ 0.0001"
    assert panels.format_p(0.0123, 10_000) == "p = 0.012"


def test_per_seed_points_are_thinned_at_cluster_scale_and_untouched_below():
    from mirror_sweep.report.panels import MAX_SEED_POINTS, points_note, shown_seeds

    n = MAX_SEED_POINTS + 20
    data = pd.DataFrame({"condition": ["a"] * 2 * n + ["b"] * 5,
                         "seed": [*range(n), *range(n), *range(5)],
                         "measure": ["x"] * n + ["y"] * n + ["x"] * 5, "value": 0.5})
    shown = shown_seeds(data)
    seeds = shown.groupby("condition")["seed"].agg(["nunique", "max"])
    assert seeds.loc["a", "nunique"] == MAX_SEED_POINTS and seeds.loc["a", "max"] < MAX_SEED_POINTS
    assert len(shown) == 2 * MAX_SEED_POINTS + 5  # both measures of a kept seed, all of b
    assert "first" in points_note(data, shown)
    small = data[data["condition"] == "b"]
    assert shown_seeds(small) is small and points_note(small, small) == "seeds"
