"""Verdicts: each claim of the catalog against the across-seed statistics of a sweep.

`measure` picks the runs that stand for the paper (report.paper) and their rows of the report's
statistics; `evaluate_claims` is a pure function of those statistics: a claim is not measured
when its inputs are missing, else its rule (report.rules) decides.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mirror_sweep.report.claims import CLAIMS, MIN_P_METRIC, THRESHOLD_METRICS, Claim
from mirror_sweep.report.paper import (
    ABS_THRESHOLD,
    MAIN,
    PAPER_THRESHOLDS,
    POS_THRESHOLD,
    main_condition,
    paper_size_runs,
)
from mirror_sweep.report.rules import ALPHA, REFERENCE, SIGNIFICANT, THIS
from mirror_sweep.report.stats import report_stats, stats_of
from mirror_sweep.sweep.aggregate import Sweep

HOLDS, FAILS, NOT_MEASURED = "holds", "does not hold", "not measured"
COLUMNS = ["claim_id", "claim", "paper_value", "condition", "metric", "measured_mean", "ci_low",
           "ci_high", "n_seeds", "verdict", "rule", "reference_condition", "reference_mean",
           "reference_ci_low", "reference_ci_high", "note"]


def measure(sweep: Sweep, stats: pd.DataFrame | None = None, n_boot: int = 10_000,
            seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """The claims' statistics and the context they need.

    Args:
        stats: report.stats.report_stats of the whole sweep (computed here when None).

    Returns:
        (stats, context): the stats rows of the paper's runs (condition, metric, n, mean, sd,
        ci_low, ci_high); context: main (the main condition's label or None), runs (the runs the
        claims use), threshold_mismatch (conditions whose thresholds differ from the paper's),
        notes.
    """
    runs, note = paper_size_runs(sweep.runs)
    if stats is None:
        stats = report_stats(sweep.runs, n_boot=n_boot, seed=seed)
    context = {"main": main_condition(runs), "runs": runs, "notes": [note] if note else [],
               "threshold_mismatch": threshold_mismatch(runs)}
    return stats_of(stats, runs), context


def threshold_mismatch(runs: pd.DataFrame) -> list[str]:
    """Conditions with a run whose analysis thresholds differ from the paper's."""
    bad = pd.Series(False, index=runs.index)
    for key, value in PAPER_THRESHOLDS.items():
        if key in runs:
            bad |= ~np.isclose(runs[key].astype(float), value)
    return sorted(runs.loc[bad, "condition"].astype(str).unique()) if len(runs) else []


def lookup(stats: pd.DataFrame, condition: str | None, metric: str | None) -> dict | None:
    """The stats row of (condition, metric) as a dict, or None."""
    if condition is None or metric is None or stats.empty:
        return None
    rows = stats[(stats["condition"] == condition) & (stats["metric"] == metric)]
    return rows.iloc[0].to_dict() if len(rows) else None


def unmeasured_reason(row: dict | None, condition: str | None, metric: str) -> str | None:
    if condition is None:
        return "the main condition is absent from the sweep"
    if row is None:
        return f"{condition} / {metric} absent from the sweep"
    if row["n"] < 2 or not np.isfinite([row["mean"], row["ci_low"], row["ci_high"]]).all():
        return f"{condition}: {int(row['n'])} seed(s) with a value (need >= 2)"
    return None


def why_not_measured(claim: Claim, stats: pd.DataFrame, context: dict,
                     condition: str | None, reference: str | None,
                     rows: dict[str, dict | None]) -> str | None:
    """Why the claim cannot be decided on these stats, or None."""
    reason = unmeasured_reason(rows[THIS], condition, claim.metric)
    if reason is None and claim.reference:
        reason = unmeasured_reason(rows[REFERENCE], reference, claim.metric)
    if reason is None and claim.significance_metric:
        min_p = lookup(stats, condition, MIN_P_METRIC)
        if rows[SIGNIFICANT] is None:
            reason = "per-run decoding p-values absent"
        elif min_p is not None and min_p["mean"] >= ALPHA:
            reason = f"decoding null too small: smallest possible p = {min_p['mean']:.3g}"
    if reason is None and claim.metric in THRESHOLD_METRICS and (
            {condition, reference} & set(context.get("threshold_mismatch", []))):
        reason = ("the sweep's r thresholds differ from the paper's "
                  f"({ABS_THRESHOLD:g}, {POS_THRESHOLD:g})")
    return reason


def evaluate_claim(claim: Claim, stats: pd.DataFrame, context: dict) -> dict:
    """One claims.csv row: the measured statistics, the verdict and the rule."""
    resolve = {"main": context.get("main")}
    condition = resolve.get(claim.condition, claim.condition)
    reference = resolve.get(claim.reference, claim.reference) if claim.reference else None
    rows = {THIS: lookup(stats, condition, claim.metric),
            REFERENCE: lookup(stats, reference, claim.metric) if claim.reference else None,
            SIGNIFICANT: lookup(stats, condition, claim.significance_metric)}
    reason = why_not_measured(claim, stats, context, condition, reference, rows)
    verdict = NOT_MEASURED if reason else (HOLDS if claim.rule.holds(rows) else FAILS)
    row, ref, share = rows[THIS], rows[REFERENCE], rows[SIGNIFICANT]
    note = reason or (f"p < {ALPHA:g} in {share['mean']:.0%} of seeds" if share else "")
    return {
        "claim_id": claim.claim_id, "claim": claim.claim, "paper_value": claim.paper_value,
        "condition": condition if condition is not None else MAIN, "metric": claim.metric,
        "measured_mean": row["mean"] if row else np.nan,
        # A CI needs two seeds: with one, robustness's [x, x] would read as certainty.
        "ci_low": row["ci_low"] if row and row["n"] >= 2 else np.nan,
        "ci_high": row["ci_high"] if row and row["n"] >= 2 else np.nan,
        "n_seeds": int(row["n"]) if row else 0, "verdict": verdict, "rule": claim.rule_text(),
        "reference_condition": reference or "", "reference_mean": ref["mean"] if ref else np.nan,
        "reference_ci_low": ref["ci_low"] if ref else np.nan,
        "reference_ci_high": ref["ci_high"] if ref else np.nan, "note": note,
    }


def evaluate_claims(stats: pd.DataFrame, context: dict,
                    claims: list[Claim] | None = None) -> pd.DataFrame:
    """Verdicts for every claim from across-seed statistics (a pure function of its inputs).

    Args:
        stats: columns condition, metric, n, mean, ci_low, ci_high (summaries.robustness).
        context: {"main": the main condition's label or None, "threshold_mismatch": [labels]}.
        claims: default CLAIMS.

    Returns:
        DataFrame with COLUMNS, one row per claim.
    """
    rows = [evaluate_claim(claim, stats, context) for claim in (claims or CLAIMS)]
    return pd.DataFrame(rows, columns=COLUMNS)
