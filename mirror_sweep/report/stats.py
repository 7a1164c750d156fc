"""The across-seed statistics the report reads, computed once per aggregation.

`report_stats` bootstraps every metric the aggregate table, the claims and the figures use in one
`summaries.robustness` call; the claims report and the figures take rows of that one table.
A metric's CI does not depend on which other metrics are summarised beside it (its resamples
depend only on its number of finite runs and the seed), so one table gives the same numbers as
one call per reader.
"""

from __future__ import annotations

import pandas as pd

from mirror_sweep.report.claims import CLAIMS, derive_metrics, needed_metrics
from mirror_sweep.sweep.contrasts import CONTRAST_COLUMNS, contrasts
from mirror_sweep.sweep.factors import FACTORS
from mirror_sweep.sweep.summaries import DEFAULT_CI, HEADLINE_METRICS, ROBUSTNESS_STATS, robustness

# The per-run metrics Figures 2-3 summarise across seeds.
FIGURE_METRICS = [f"{p}{m}" for m in ("frac_abs_r_gt", "frac_r_gt")
                  for p in ("", "time_centred_", "untrained_", "null_mean_")] + [
    "frac_congruent", "frac_congruent_chance"]
# Figure 5's per-run metrics (report/population_figures.py), the population geometry.
FIGURE_METRICS += [
    f"{prefix}{metric}" for metric in ("cka", "rsa_actions", "rsa_action_time",
                                       "subspace_alignment_observe_in_perform",
                                       "best_match_frac_abs_r_gt")
    for prefix in ("", "untrained_")] + [
    "cka_null_mean", "rsa_actions_null_mean", "rsa_action_time_null_mean",
    "subspace_random_observe_in_perform", "best_match_frac_abs_r_gt_null_mean",
    "decode_perform_to_observe_accuracy_relabelled"]
REPORT_METRICS = list(dict.fromkeys(HEADLINE_METRICS + needed_metrics(CLAIMS) + FIGURE_METRICS))


def report_stats(runs: pd.DataFrame, n_boot: int = 10_000, seed: int = 0,
                 ci: str = DEFAULT_CI, units: pd.DataFrame | None = None) -> pd.DataFrame:
    """summaries.robustness of REPORT_METRICS over the runs with the claims' derived metrics
    (CI method `ci`, summaries.CI_METHODS; `units`: the aggregated units table, for the
    metrics counted over units).

    Columns: condition, [each swept factor that varies], metric, n, mean, sd, ci_low, ci_high,
    grouped_by.
    """
    return _stats(derive_metrics(runs, units=units), n_boot, seed, ci)


def report_contrasts(runs: pd.DataFrame, n_boot: int = 10_000, seed: int = 0,
                     ci: str = DEFAULT_CI, units: pd.DataFrame | None = None) -> pd.DataFrame:
    """sweep.contrasts of REPORT_METRICS (with the derived metrics): every ordered pair of
    conditions sharing seeds and every condition against its runs' untrained network; the
    table aggregation writes as contrasts.csv and the claims' paired rules read."""
    return _contrasts(derive_metrics(runs, units=units), n_boot, seed, ci)


def report_tables(runs: pd.DataFrame, n_boot: int = 10_000, seed: int = 0,
                  ci: str = DEFAULT_CI, units: pd.DataFrame | None = None
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(report_stats, report_contrasts) of the runs, their derived metrics computed once."""
    derived = derive_metrics(runs, units=units)
    return _stats(derived, n_boot, seed, ci), _contrasts(derived, n_boot, seed, ci)


def _stats(derived: pd.DataFrame, n_boot: int, seed: int, ci: str) -> pd.DataFrame:
    return robustness(derived, metrics=REPORT_METRICS, n_boot=n_boot, seed=seed, ci=ci)


def _contrasts(derived: pd.DataFrame, n_boot: int, seed: int, ci: str) -> pd.DataFrame:
    return contrasts(derived, metrics=REPORT_METRICS, n_boot=n_boot, seed=seed, ci=ci)


def contrasts_of(paired: pd.DataFrame | None, runs: pd.DataFrame) -> pd.DataFrame:
    """The rows of `paired` for the hidden size of `runs`, without the hidden_size column."""
    if paired is None:
        return pd.DataFrame(columns=CONTRAST_COLUMNS)
    return stats_of(paired, runs)


def headline_stats(stats: pd.DataFrame) -> pd.DataFrame:
    """The rows of HEADLINE_METRICS: the robustness table aggregation writes."""
    return stats[stats["metric"].isin(HEADLINE_METRICS)].reset_index(drop=True)


def stats_of(stats: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """The rows of `stats` for the factor values of `runs` (one hidden size, and one value of any
    other swept factor: paper.paper_size_runs), without the factor columns."""
    factors = [column for column in FACTORS if column in stats]
    for column in factors:
        stats = stats[stats[column].isin(set(runs[column]))] if column in runs \
            else stats.iloc[0:0]
    return stats.drop(columns=factors).reset_index(drop=True)


def empty_stats() -> pd.DataFrame:
    return pd.DataFrame(columns=["condition", *ROBUSTNESS_STATS])
