"""Verdicts: each claim of the catalog against the across-seed statistics of a sweep.

`measure` picks the runs that stand for the paper (report.paper) and their rows of the report's
statistics and seed-paired contrasts; `evaluate_claims` is a pure function of those: a claim is
not measured when its inputs are missing, else its rule (report.rules) decides. A claim that
holds is "trivial: ..." when it is true by construction (Claim.trivial) or when its rule holds
as well for one of its controls (Claim.controls); each row shows the seed-paired effect of the
claim's condition against every control beside the raw value.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mirror_sweep.report.claims import CLAIMS, MIN_P_METRIC, THRESHOLD_METRICS, Claim
from mirror_sweep.report.paper import (
    ABS_THRESHOLD,
    CONTROLS,
    MAIN,
    PAPER_THRESHOLDS,
    POS_THRESHOLD,
    UNTRAINED,
    main_condition,
    paper_size_runs,
)
from mirror_sweep.report.rules import ALPHA, PAIRED, REFERENCE, SIGNIFICANT, THIS
from mirror_sweep.report.stats import contrasts_of, report_contrasts, report_stats, stats_of
from mirror_sweep.sweep.aggregate import Sweep
from mirror_sweep.sweep.contrasts import INITIAL_WEIGHTS, TWIN_PREFIX

HOLDS, FAILS, NOT_MEASURED, TRIVIAL = "holds", "does not hold", "not measured", "trivial"
# Per standard control: the claim condition's seed-paired difference from it (claim metric).
CONTROL_FIELDS = ["difference", "ci_low", "ci_high", "p", "n_pairs"]
COLUMNS = ["claim_id", "claim", "paper_value", "condition", "metric", "measured_mean", "ci_low",
           "ci_high", "n_seeds", "verdict", "rule", "reference_condition", "reference_mean",
           "reference_ci_low", "reference_ci_high", "paired_difference", "paired_ci_low",
           "paired_ci_high", "paired_p", "paired_n", "control_effects",
           *(f"vs_{c}_{f}" for c in CONTROLS for f in CONTROL_FIELDS), "note"]


def measure(sweep: Sweep, stats: pd.DataFrame | None = None, n_boot: int = 10_000,
            seed: int = 0, paired: pd.DataFrame | None = None) -> tuple[pd.DataFrame, dict]:
    """The claims' statistics and the context they need.

    Args:
        stats: report.stats.report_stats of the whole sweep (computed here when None).
        paired: report.stats.report_contrasts of the whole sweep (computed here when None).

    Returns:
        (stats, context): the stats rows of the paper's runs (condition, metric, n, mean, sd,
        ci_low, ci_high); context: main (the main condition's label or None), runs (the runs the
        claims use), threshold_mismatch (conditions whose thresholds differ from the paper's),
        notes, paired (the seed-paired contrasts of the paper's runs).
    """
    runs, note = paper_size_runs(sweep.runs)
    units = getattr(sweep, "units", None)
    if stats is None:
        stats = report_stats(sweep.runs, n_boot=n_boot, seed=seed, units=units)
    if paired is None:
        paired = report_contrasts(sweep.runs, n_boot=n_boot, seed=seed, units=units)
    context = {"main": main_condition(runs), "runs": runs, "notes": [note] if note else [],
               "threshold_mismatch": threshold_mismatch(runs),
               "paired": contrasts_of(paired, runs)}
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
    hit = np.flatnonzero((stats["condition"].to_numpy() == condition)
                         & (stats["metric"].to_numpy() == metric))  # (numpy: ~5x pandas' mask)
    return stats.iloc[hit[0]].to_dict() if len(hit) else None


def lookup_paired(paired: pd.DataFrame | None, condition: str | None, reference: str | None,
                  metric: str) -> dict | None:
    """The seed-paired contrast (condition - reference) of `metric` as a stats-like dict (mean =
    the mean difference, ci_low, ci_high, p, n = pairs), or None."""
    if paired is None or paired.empty or condition is None or reference is None:
        return None
    hit = np.flatnonzero((paired["condition"].to_numpy() == condition)
                         & (paired["reference"].to_numpy() == reference)
                         & (paired["metric"].to_numpy() == metric))
    if not len(hit):
        return None
    row = paired.iloc[hit[0]]
    return {"mean": row["mean_difference"], "ci_low": row["ci_low"], "ci_high": row["ci_high"],
            "p": row["p"], "n": row["n_pairs"]}


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
    if claim.needs and rows[THIS] is None:
        return f"needs {claim.needs}"
    reason = unmeasured_reason(rows[THIS], condition, claim.metric)
    if reason is None and claim.reference:
        reason = unmeasured_reason(rows[REFERENCE], reference, claim.metric)
    if reason is None and PAIRED in claim.rule.sources():
        pair = rows[PAIRED]
        if pair is None or pair["n"] < 2 or not np.isfinite(pair["ci_low"]):
            reason = (f"fewer than 2 seeds shared by {condition} and {reference} "
                      "(no seed-paired contrast)")
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


def initial_weights_stand_in(claim: Claim, stats: pd.DataFrame, condition: str | None,
                             reference: str | None) -> bool:
    """Whether the claim condition's own initial-weight twin (TWIN_PREFIX + metric: the same
    network at its initial weights, as the untrained condition of the same seed) stands in for
    an `untrained` reference condition that the sweep lacks."""
    return (reference == UNTRAINED and lookup(stats, UNTRAINED, claim.metric) is None
            and lookup(stats, condition, TWIN_PREFIX + claim.metric) is not None)


def claim_rows(claim: Claim, stats: pd.DataFrame, context: dict, condition: str | None,
               reference: str | None, metric: str | None = None) -> dict[str, dict | None]:
    """The rows the claim's rule reads, for the claim evaluated on `condition` (and, when
    given, on `metric` in place of the claim's for THIS)."""
    ref_condition, ref_metric, paired_reference = reference, claim.metric, reference
    if claim.reference and initial_weights_stand_in(claim, stats, condition, reference):
        ref_condition, ref_metric = condition, TWIN_PREFIX + claim.metric
        paired_reference = INITIAL_WEIGHTS
    return {THIS: lookup(stats, condition, metric or claim.metric),
            REFERENCE: lookup(stats, ref_condition, ref_metric) if claim.reference else None,
            SIGNIFICANT: lookup(stats, condition, claim.significance_metric),
            PAIRED: lookup_paired(context.get("paired"), condition, paired_reference,
                                  claim.metric)}


def decide(claim: Claim, stats: pd.DataFrame, context: dict, condition: str | None,
           reference: str | None, metric: str | None = None) -> tuple[str, str | None, dict]:
    """(holds / does not hold / not measured, the reason when not measured, rows)."""
    rows = claim_rows(claim, stats, context, condition, reference, metric)
    reason = why_not_measured(claim, stats, context, condition, reference, rows)
    return (NOT_MEASURED if reason else (HOLDS if claim.rule.holds(rows) else FAILS)), reason, rows


def holds_for_control(claim: Claim, stats: pd.DataFrame, context: dict, condition: str,
                      control: str, reference: str | None) -> bool:
    """Whether the claim's rule holds on the control. The untrained control falls back to the
    claim condition's own initial-weight twin (initial_weights_stand_in) when no `untrained`
    condition is in the sweep; a claim with a reference condition has no twin to compare."""
    if initial_weights_stand_in(claim, stats, condition, control):
        return not claim.reference and decide(
            claim, stats, context, condition, reference, TWIN_PREFIX + claim.metric)[0] == HOLDS
    return decide(claim, stats, context, control, reference)[0] == HOLDS


def control_effect(context: dict, condition: str | None, control: str | None,
                   metric: str) -> dict | None:
    """The seed-paired difference condition - control of `metric` (None when not paired); for
    the untrained control without an `untrained` condition, the difference from the runs' own
    initial weights."""
    effect = lookup_paired(context.get("paired"), condition, control, metric)
    if effect is None and control == UNTRAINED:
        effect = lookup_paired(context.get("paired"), condition, INITIAL_WEIGHTS, metric)
    return effect


def fmt_effect(effect: dict | None) -> str:
    if effect is None or not np.isfinite(effect["mean"]):
        return "not paired"
    ci = (f" [{effect['ci_low']:+.3f}, {effect['ci_high']:+.3f}]"
          if np.isfinite(effect["ci_low"]) else "")
    return f"{effect['mean']:+.3f}{ci}, p = {effect['p']:.2g} (n = {int(effect['n'])})"


def evaluate_claim(claim: Claim, stats: pd.DataFrame, context: dict) -> dict:
    """One claims.csv row: the measured statistics, the verdict, the rule, the paired effects."""
    resolve = {"main": context.get("main")}
    condition = resolve.get(claim.condition, claim.condition)
    reference = resolve.get(claim.reference, claim.reference) if claim.reference else None
    verdict, reason, rows = decide(claim, stats, context, condition, reference)
    controls = [resolve.get(c, c) for c in claim.controls]
    if verdict == HOLDS and claim.trivial:
        verdict = f"{TRIVIAL}: {claim.trivial}"
    elif verdict == HOLDS:
        also = [c for c in controls if c is not None and c != condition
                and holds_for_control(claim, stats, context, condition, c, reference)]
        if also:
            verdict = f"{TRIVIAL}: also holds for {' and '.join(also)}"
    effects = {c: control_effect(context, condition, c, claim.metric)
               for c in controls if c is not None and c != condition}
    row, ref, share, pair = rows[THIS], rows[REFERENCE], rows[SIGNIFICANT], rows[PAIRED]
    note = reason or (f"p < {ALPHA:g} in {share['mean']:.0%} of seeds" if share else "")
    out = {
        "claim_id": claim.claim_id, "claim": claim.claim, "paper_value": claim.paper_value,
        "condition": condition if condition is not None else MAIN, "metric": claim.metric,
        "measured_mean": row["mean"] if row else np.nan,
        # A CI needs two seeds: with one, robustness's [x, x] would read as certainty.
        "ci_low": row["ci_low"] if row and row["n"] >= 2 else np.nan,
        "ci_high": row["ci_high"] if row and row["n"] >= 2 else np.nan,
        "n_seeds": int(row["n"]) if row else 0, "verdict": verdict, "rule": claim.rule_text(),
        "reference_condition": (f"{reference} (the runs' initial weights)"
                                if claim.reference and initial_weights_stand_in(
                                    claim, stats, condition, reference) else reference or ""),
        "reference_mean": ref["mean"] if ref else np.nan,
        "reference_ci_low": ref["ci_low"] if ref else np.nan,
        "reference_ci_high": ref["ci_high"] if ref else np.nan,
        "paired_difference": pair["mean"] if pair else np.nan,
        "paired_ci_low": pair["ci_low"] if pair else np.nan,
        "paired_ci_high": pair["ci_high"] if pair else np.nan,
        "paired_p": pair["p"] if pair else np.nan, "paired_n": int(pair["n"]) if pair else 0,
        "control_effects": "; ".join(f"vs {c}: {fmt_effect(e)}" for c, e in effects.items()),
        "note": note,
    }
    for control in CONTROLS:
        effect = effects.get(control)
        for field, key in zip(CONTROL_FIELDS, ["mean", "ci_low", "ci_high", "p", "n"]):
            out[f"vs_{control}_{field}"] = effect[key] if effect else np.nan
    return out


def evaluate_claims(stats: pd.DataFrame, context: dict,
                    claims: list[Claim] | None = None) -> pd.DataFrame:
    """Verdicts for every claim from across-seed statistics (a pure function of its inputs).

    Args:
        stats: columns condition, metric, n, mean, ci_low, ci_high (summaries.robustness).
        context: {"main": the main condition's label or None, "threshold_mismatch": [labels],
            "paired": the seed-paired contrasts (sweep.contrasts columns; absent: the rules
            that compare conditions are not measured)}.
        claims: default CLAIMS.

    Returns:
        DataFrame with COLUMNS, one row per claim.
    """
    rows = [evaluate_claim(claim, stats, context) for claim in (claims or CLAIMS)]
    return pd.DataFrame(rows, columns=COLUMNS)
