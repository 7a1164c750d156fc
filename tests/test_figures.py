"""Figures 1-4 from the tiny real sweep (conftest), and how they degrade when data is missing."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from mirror_sweep.report import figures
from mirror_sweep.report.stats import report_stats
from mirror_sweep.sweep import results
from mirror_sweep.sweep.aggregate import Sweep, load_sweep
from tests.conftest import TINY, TINY_SWEEP_CONDITIONS, run_cli

matplotlib.use("Agg")
FIGURE_NAMES = ["figure1_emergence", "figure2_robustness", "figure3_ablations",
                "figure4_temporal", "figure5_population", "figure6_causal"]


def assert_figure_files(paths: list[Path], out: Path) -> None:
    expected = {out / f"{name}.{fmt}" for name in FIGURE_NAMES for fmt in ("png", "pdf")}
    assert set(paths) == expected
    for path in paths:
        head = path.read_bytes()[:8]
        assert path.stat().st_size > 5_000, path
        assert head.startswith(b"\x89PNG" if path.suffix == ".png" else b"%PDF"), path


def test_draw_figures_writes_every_figure_as_png_and_pdf(tiny_sweep, tmp_path):
    sweep = load_sweep(tiny_sweep)
    out = tmp_path / "figures"
    assert_figure_files(figures.draw_figures(sweep, out, n_boot=200), out)


@pytest.mark.slow
def test_single_run_without_activations_degrades_to_notes(tmp_path):
    run = tmp_path / "one_run"
    proc = run_cli([*TINY, "output.save_activations=false", f"hydra.run.dir={run}"],
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not (run / results.ACTIVATIONS_FILE).exists()
    sweep = load_sweep(run)
    assert len(sweep.runs) == 1
    example = figures.load_example(sweep)
    assert example.perform is None and "activations" in example.missing
    out = tmp_path / "figures"
    assert_figure_files(figures.draw_figures(sweep, out, n_boot=200), out)


def test_example_is_the_main_conditions_first_seed_and_its_null_is_the_runs(tiny_sweep):
    sweep = load_sweep(tiny_sweep)
    example = figures.load_example(sweep)
    assert (example.condition, example.seed) == ("shared_bidirectional", 0)
    units = example.units.set_index("unit")
    assert example.null_unit == units["r"].idxmax() and example.anti == units["r"].idxmin()
    # Figure 1C's "mirror units" are above the |r| threshold only (none may be in a tiny run).
    mirror = units[units["r"] > 0.6].sort_values("r", ascending=False).index[:3].tolist()
    assert example.top == mirror
    assert example.perform.shape == (figures.N_TRACE_SEQUENCES * 12, len(mirror) + 1)
    assert example.perform_actions.shape == (figures.N_TRACE_SEQUENCES * 12,)
    # The nulls the run wrote reproduce its own p-values for that unit: the two-sided
    # 2 min(one-sided) of its own null and the max-statistic p of its studentised z.
    r = units.loc[example.null_unit, "r"]
    null = example.null
    above = (1 + np.sum(null >= r - 1e-10)) / (len(null) + 1)
    below = (1 + np.sum(null <= r + 1e-10)) / (len(null) + 1)
    assert min(1, 2 * min(above, below)) == pytest.approx(units.loc[example.null_unit, "p_value"])
    z = units.loc[example.null_unit, "z_r"]
    p_max = (1 + np.sum(example.max_abs_z >= abs(z) - 1e-10)) / (len(null) + 1)
    assert p_max == pytest.approx(units.loc[example.null_unit, "p_maxstat"])
    with pytest.raises(ValueError, match="not a complete run"):
        figures.load_example(sweep, run_id="nope")


def test_panels_with_no_data_show_a_note_instead_of_failing():
    fig = Figure()
    axes = fig.subplots(1, 4)
    empty_units = pd.DataFrame(columns=["run_id", "condition", "seed", "unit", "r"])
    figures.plot_r_histograms(axes[0], empty_units, ["shared_bidirectional", "separate_cores"])
    figures.plot_r_by_condition(axes[1], empty_units, ["forward_only"])
    figures.plot_condition_measures(
        axes[2], pd.DataFrame(columns=["condition", "seed", "measure", "value"]),
        pd.DataFrame(columns=["condition", "measure", "mean", "ci_low", "ci_high"]),
        ["forward_only"], ["trained"], "fraction")
    figures.plot_decoding(axes[3], pd.DataFrame(columns=["condition", "seed", "train_mode",
                                                         "test_mode", "accuracy", "chance"]),
                          ["forward_only"])
    for ax in axes:
        assert any("no " in t.get_text() or "not measured" in t.get_text() for t in ax.texts)


def test_condition_order_follows_the_paper_then_the_rest():
    got = figures.ordered_conditions(["zeta", "untrained", "separate_cores",
                                      "shared_bidirectional", np.nan])
    assert got == ["shared_bidirectional", "separate_cores", "untrained", "zeta"]


def test_varying_hidden_size_keeps_the_papers_96():
    runs = pd.DataFrame({"run_id": ["a", "b", "c"], "condition": "x", "seed": [0, 0, 1],
                         "hidden_size": [32, 96, 96]})
    units = pd.DataFrame({"run_id": ["a", "b", "c"], "unit": 0, "r": 0.5})
    sweep = Sweep(Path("."), runs, units, units.iloc[0:0], units.iloc[0:0], units.iloc[0:0])
    kept, note = figures.one_hidden_size(sweep)
    assert list(kept.runs["run_id"]) == ["b", "c"] and list(kept.units["run_id"]) == ["b", "c"]
    assert "96" in note


def test_the_example_run_is_at_the_papers_size_when_a_sweep_varies_factors():
    # run ids sort "H=128" before "H=16" before "H=96": the example must still be H = 96, GRU
    runs = pd.DataFrame({
        "run_id": ["hidden_size=128,seed=0", "hidden_size=16,seed=0", "hidden_size=96,seed=0",
                   "hidden_size=96,seed=1"],
        "condition": "shared_bidirectional", "seed": [0, 0, 0, 1],
        "hidden_size": [128, 16, 96, 96]})
    empty = pd.DataFrame(columns=["run_id"])
    sweep = Sweep(Path("."), runs, empty, empty, empty, empty)
    assert figures.choose_example(sweep)["run_id"] == "hidden_size=96,seed=0"
    # without a run at H = 96, the first of all runs
    sweep = Sweep(Path("."), runs[runs["hidden_size"] != 96], empty, empty, empty, empty)
    assert figures.choose_example(sweep)["run_id"] == "hidden_size=128,seed=0"


def panel_titles(fig) -> list[str]:
    return [ax.get_title(loc="left") for ax in fig.axes if ax.get_title(loc="left")]


def test_figures_show_the_panels_their_labels_and_the_seed_counts(tiny_sweep):
    sweep = load_sweep(tiny_sweep)
    stats = report_stats(sweep.runs, n_boot=100)
    conditions = figures.ordered_conditions(sweep.runs["condition"])
    example = figures.load_example(sweep)
    fig1 = figures.figure1(sweep, example, conditions)
    fig2 = figures.figure2(sweep, example, conditions, stats)
    fig3 = figures.figure3(sweep, conditions, stats)
    fig4 = figures.figure4(sweep, example, conditions)
    assert [t[:2] for t in panel_titles(fig1)] == ["A ", "B ", "C "]
    assert "shared core (main), seed 0" in panel_titles(fig1)[0]
    assert [t.split()[0] for t in panel_titles(fig2)] == ["A", "B1", "B2", "C", "D"]
    assert [t[:2] for t in panel_titles(fig3)] == ["A ", "B "]
    assert "n = 2 seeds" in panel_titles(fig4)[0]  # 10% top units of the main condition's runs
    assert fig1.get_suptitle().startswith("Figure 1") and "sweep: sweep" in fig1.get_suptitle()
    ax_b1 = fig2.axes[1]
    assert ax_b1.get_xlabel() == "fraction of units with |r| > 0.6"
    assert [t.get_text() for t in ax_b1.get_yticklabels()] == [
        "shared core (main)\n(n = 2 seeds)", "separate cores\n(n = 2 seeds)"]
    # The paper's claimed band is on the main condition's row, at its thresholds.
    band = [p for p in ax_b1.collections if p.get_label() == "paper's claim (main run)"]
    assert len(band) == 1 and band[0].get_paths()[0].vertices[:, 0].min() == 0.35
    ax_a = fig2.axes[0]
    # The best unit against the max-statistic null the run wrote (not its own null).
    assert ax_a.get_xlabel() == "|z| = |r - null mean| / null SD (studentised, per unit)"
    assert "null: max over units of |z| (B = 100)" in [t.get_text()
                                                        for t in ax_a.get_legend().texts]
    bars = fig3.axes[1]
    assert bars.get_ylabel() == "fraction of units (mean over seeds, 95% CI)"
    assert [t.get_text() for t in bars.get_xticklabels()] == [
        "shared core (main)\nn = 2 seeds", "separate cores\nn = 2 seeds"]


def test_r_quantiles_are_per_seed_not_pooled():
    units = pd.DataFrame({"run_id": ["a"] * 3 + ["b"] * 3, "condition": "x",
                          "seed": [0] * 3 + [1] * 3, "r": [0.1, 0.2, 0.9, -0.5, 0.0, 0.5]})
    q = figures.r_quantiles(units).set_index(["seed", "quantile"])["r"]
    assert q[(0, "median")] == 0.2 and q[(1, "max")] == 0.5 and len(q) == 2 * 4


def test_population_and_causal_figures_read_the_aggregated_tables(tiny_sweep):
    from mirror_sweep.report import population_figures as pf
    from mirror_sweep.report.stats import REPORT_METRICS, report_stats

    sweep = load_sweep(tiny_sweep)
    assert {c for *_, cols in pf.GEOMETRY_PANELS for c in cols.values()} <= set(REPORT_METRICS)
    stats = pf.ablation_stats(sweep.ablation, n_boot=200)
    assert set(stats["condition"]) == set(TINY_SWEEP_CONDITIONS)
    one = stats[(stats["condition"] == TINY_SWEEP_CONDITIONS[0]) & (stats["metric"] == "forward_loss")
                & (stats["clamp"] == "mean") & (stats["selection"] == "mirror")].iloc[0]
    deltas = sweep.ablation[(sweep.ablation["condition"] == TINY_SWEEP_CONDITIONS[0])
                            & (sweep.ablation["metric"] == "forward_loss")
                            & (sweep.ablation["clamp"] == "mean")
                            & (sweep.ablation["selection"] == "mirror")
                            & (sweep.ablation["frac_units"] == one["frac_units"])]["delta"]
    assert one["n"] == 2 and one["mean"] == pytest.approx(deltas.mean())
    conditions = list(TINY_SWEEP_CONDITIONS)
    fig = pf.figure6(sweep.ablation, conditions, stats)
    assert len(fig.axes) == len(pf.ABLATION_ROWS) * len(conditions)
    fig5 = pf.figure5(sweep.runs, conditions, report_stats(sweep.runs, n_boot=200))
    assert len(fig5.axes) == len(pf.GEOMETRY_PANELS)
    assert all(ax.collections for ax in fig5.axes)  # points drawn in every panel


def test_causal_figure_without_ablation_results_shows_a_note():
    from mirror_sweep.report import population_figures as pf

    fig = pf.figure6(pd.DataFrame(), ["shared_bidirectional"], pf.ablation_stats(pd.DataFrame()))
    assert "no ablation results" in fig.axes[0].texts[0].get_text()
