"""Factor and mechanism figures from planted per-run tables (no training)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from mirror_sweep.report import factor_figures
from mirror_sweep.sweep.aggregate import Sweep
from mirror_sweep.sweep.summaries import robustness


def planted(conditions, factor: str | None = None, values=(None,), n_seeds: int = 4):
    rng = np.random.default_rng(1)
    rows = []
    for c_index, condition in enumerate(conditions):
        for v_index, value in enumerate(values):
            for seed in range(n_seeds):
                row = {"run_id": f"{condition}-{value}-{seed}", "condition": condition,
                       "seed": seed, "hidden_size": 96, "n_actions": 4,
                       "frac_abs_r_gt": 0.1 * c_index + 0.05 * v_index + rng.normal(0, 0.01),
                       "frac_r_gt": 0.05 * c_index, "untrained_frac_abs_r_gt": 0.02,
                       "min_r": -0.2 * c_index, "decode_perform_to_observe_accuracy": 0.5,
                       "decode_perform_to_observe_chance": 0.25}
                if factor is not None:
                    row[factor] = value
                rows.append(row)
    return pd.DataFrame(rows)


def sweep_of(runs: pd.DataFrame, path: Path) -> Sweep:
    empty = pd.DataFrame()
    return Sweep(path, runs, empty, empty, empty, empty)


def test_one_figure_per_varying_factor_and_none_without(tmp_path):
    runs = planted(["shared_bidirectional", "untrained"], "hidden_size", (16, 64, 256))
    paths = factor_figures.draw_factor_figures(sweep_of(runs, tmp_path), tmp_path, n_boot=200)
    assert sorted(p.name for p in paths) == ["factor_hidden_size.pdf", "factor_hidden_size.png"]
    assert all(p.stat().st_size > 0 for p in paths)
    flat = planted(["shared_bidirectional", "untrained"])
    assert factor_figures.draw_factor_figures(sweep_of(flat, tmp_path / "x"), tmp_path / "x") == []


def test_mechanism_figure_when_two_readout_variants_are_present(tmp_path):
    runs = planted(["shared_bidirectional", "action_head_both", "untrained"])
    assert set(factor_figures.applicable_figures(runs)) == {"mechanism_readout"}
    paths = factor_figures.draw_factor_figures(sweep_of(runs, tmp_path), tmp_path, n_boot=100)
    assert {p.name for p in paths} == {"mechanism_readout.png", "mechanism_readout.pdf"}
    assert factor_figures.applicable_figures(planted(["shared_readout", "untrained"])) == {}


def test_panel_draws_the_robustness_means_and_every_seed(tmp_path):
    runs = planted(["shared_bidirectional", "untrained"], "n_actions", (2, 4, 8))
    stats = robustness(runs, ["frac_abs_r_gt"], n_boot=200)
    ax = Figure().subplots()
    factor_figures.plot_metric_vs_factor(ax, runs, stats, "n_actions", "frac_abs_r_gt", "y")
    lines = [container.lines[0] for container in ax.containers]
    assert len(lines) == 2 and all(len(line.get_xdata()) == 3 for line in lines)  # per condition
    expected = stats.sort_values(["condition", "n_actions"])["mean"].to_numpy()
    drawn = np.concatenate([np.asarray(line.get_ydata(), dtype=float) for line in lines])
    np.testing.assert_allclose(np.sort(drawn), np.sort(expected))
    n_points = sum(len(c.get_offsets()) for c in ax.collections if hasattr(c, "get_offsets")
                   and len(c.get_offsets()) and c.get_offsets().shape[1] == 2
                   and type(c).__name__ == "PathCollection")
    assert n_points == len(runs)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["2", "4", "8"]


def test_any_metric_against_any_column_of_the_runs_table():
    runs = planted(["shared_bidirectional", "untrained"], "n_actions", (2, 4, 8))
    assert factor_figures.swept_factors(runs) == ["n_actions", "condition"]
    fig = factor_figures.metric_against_factor(runs, "frac_abs_r_gt_over_untrained", "n_actions",
                                               n_boot=100)
    ax = fig.axes[0]
    assert len(ax.containers) == 2 and ax.get_xlabel() == "K (actions)"
    stats = robustness(runs.assign(x=runs.frac_abs_r_gt - runs.untrained_frac_abs_r_gt),
                       ["x"], n_boot=100)
    drawn = np.concatenate([np.asarray(c.lines[0].get_ydata(), float) for c in ax.containers])
    np.testing.assert_allclose(np.sort(drawn), np.sort(stats["mean"].to_numpy()))
    by_condition = factor_figures.metric_against_factor(runs, "min_r", "condition", n_boot=50)
    assert len(by_condition.axes[0].containers) == 3  # one series per K
    with pytest.raises(ValueError, match="nonexistent"):
        factor_figures.metric_against_factor(runs, "nonexistent", "n_actions")


def test_chance_is_drawn_at_each_factor_value():
    runs = planted(["shared_bidirectional"], "n_actions", (2, 4))
    runs["decode_perform_to_observe_chance"] = 1 / runs["n_actions"]
    stats = robustness(runs, ["decode_perform_to_observe_accuracy"], n_boot=50)
    ax = Figure().subplots()
    factor_figures.plot_metric_vs_factor(ax, runs, stats, "n_actions",
                                         "decode_perform_to_observe_accuracy", "y",
                                         "decode_perform_to_observe_chance")
    segments = [seg for c in ax.collections if type(c).__name__ == "LineCollection"
                for seg in c.get_segments() if len(seg) == 2 and seg[0][1] == seg[1][1]
                and seg[1][0] - seg[0][0] == pytest.approx(0.8)]
    assert sorted(seg[0][1] for seg in segments) == [0.25, 0.5]


def test_the_title_does_not_name_a_ci_method_the_figure_may_not_use():
    runs = planted(["shared_bidirectional", "untrained"], "n_actions", (2, 4))
    stats = robustness(runs, ["frac_abs_r_gt"], n_boot=100)  # t intervals by default
    fig = factor_figures.factor_figure(runs, stats, "n_actions",
                                       {"frac_abs_r_gt": ("y", None)}, "Metrics against K")
    title = fig.get_suptitle()
    assert "95% CI" in title and "bootstrap" not in title
