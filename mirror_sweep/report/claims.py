"""The claims report: every quantitative claim of the paper beside what a sweep measured.

Each claim is a `Claim` (which condition, which per-run metric, which rule). `evaluate_claims`
turns a table of across-seed statistics into verdicts with pure functions; `measure` builds that
table from a sweep with `summaries.robustness`; `write_claims` writes claims.csv and claims.md.

The rules (see RULES and docs/figures_and_claims.md) were fixed before any sweep was looked at
and are never adjusted to match the paper. The paper's numbers are claims under test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mirror_sweep.report.paper import (
    ABS_THRESHOLD,
    CLAIM_RANGES,
    MAIN,
    MAX_R,
    MIN_R,
    PAPER_CONFIG,
    PAPER_THRESHOLDS,
    POS_THRESHOLD,
    main_condition,
    paper_size_runs,
)
from mirror_sweep.sweep import results
from mirror_sweep.sweep.aggregate import Sweep
from mirror_sweep.sweep.summaries import robustness

HOLDS, FAILS, NOT_MEASURED = "holds", "does not hold", "not measured"
ALPHA = 0.05  # per-run decoding p-value level
MIN_SIGNIFICANT_SHARE = 0.8  # share of seeds whose decoding p < ALPHA, for "above chance"
COLUMNS = ["claim_id", "claim", "paper_value", "condition", "metric", "measured_mean", "ci_low",
           "ci_high", "n_seeds", "verdict", "rule", "reference_condition", "reference_mean",
           "reference_ci_low", "reference_ci_high", "note"]
THRESHOLD_METRICS = {"frac_abs_r_gt", "frac_r_gt", "excess_frac_abs_r_gt",
                     "time_centred_frac_abs_r_gt", "frac_abs_r_gt_over_untrained"}
# Which test each rule name applies; the text is what the report prints.
RULES = {
    "overlaps": "holds if the 95% CI of the across-seed mean overlaps the paper's range "
                "[{low:g}, {high:g}]",
    "above_zero": "holds if the 95% CI lower bound of the across-seed mean is > 0",
    "at_most": "holds if the 95% CI upper bound of the across-seed mean is <= {high:g}",
    "decodes": "holds if the 95% CI lower bound of mean(accuracy - chance) is > 0 and the "
               "per-run permutation p < {alpha:g} in >= {share:.0%} of seeds",
    "not_above_zero": "holds (decoding fails) if the 95% CI of mean(accuracy - chance) reaches "
                      "0 or below (lower bound <= 0)",
    "reduces": "holds if this condition's 95% CI upper bound is below the reference's 95% CI "
               "lower bound",
    "removes": "holds if this condition's 95% CI upper bound is below the reference's 95% CI "
               "lower bound and its mean is <= half the reference's mean",
    "exceeds": "holds if this condition's 95% CI lower bound is above the reference's 95% CI "
               "upper bound",
}
GENERAL_RULES = [
    ("Every statistic is over seeds: the mean of a per-run metric across the complete runs of a "
     "condition, with a 95% bootstrap percentile CI of that mean (summaries.robustness)."),
    ("not measured: the condition is absent from the sweep, fewer than 2 seeds have a finite "
     f"value, the metric is missing, the run's thresholds differ from the paper's "
     f"({ABS_THRESHOLD:g}, {POS_THRESHOLD:g}), or "
     "the decoding null is too small for p < 0.05 (1/(B+1) >= 0.05)."),
    "Otherwise the claim's rule decides between holds and does not hold.",
    ("The rules were fixed before looking at any sweep's results and are never adjusted to match "
     "the paper."),
]


@dataclass(frozen=True)
class Claim:
    """One claim: `condition` "main" is the paper's condition, `reference` a comparison one."""

    claim_id: str
    claim: str
    paper_value: str
    condition: str
    metric: str
    rule: str
    low: float = -math.inf
    high: float = math.inf
    reference: str | None = None


METRIC_WORDS = {"frac_abs_r_gt": f"|r| > {ABS_THRESHOLD:g} fraction",
                "frac_r_gt": f"r > {POS_THRESHOLD:g} fraction"}


def _removes(cid, condition, what, paper, metric="frac_abs_r_gt", rule="removes"):
    return Claim(cid, f"{what} the effect ({METRIC_WORDS[metric]}) vs main", paper,
                 condition, metric, rule, reference="main")


CLAIMS = [
    Claim("C1", f"~35-40% of units have |r| > {ABS_THRESHOLD:g} (main run)", "0.35-0.40", "main",
          "frac_abs_r_gt", "overlaps", *CLAIM_RANGES["frac_abs_r_gt"]),
    Claim("C2", f"~25-30% of units have r > {POS_THRESHOLD:g} (main run)", "0.25-0.30", "main",
          "frac_r_gt", "overlaps", *CLAIM_RANGES["frac_r_gt"]),
    Claim("C3", f"units reach r ≈ 0.9 (max r = {MAX_R:g})", f"{MAX_R:g}", "main", "max_r",
          "overlaps", *CLAIM_RANGES["max_r"]),
    Claim("C4", "an anti-mirror unit with r ≈ -0.79 exists (min r)", f"{MIN_R:g}", "main",
          "min_r", "overlaps", *CLAIM_RANGES["min_r"]),
    Claim("C5a", "cross-decoding perform -> observe above chance", "above chance", "main",
          "decode_perform_to_observe_above_chance", "decodes"),
    Claim("C5b", "cross-decoding observe -> perform above chance", "above chance", "main",
          "decode_observe_to_perform_above_chance", "decodes"),
    _removes("C6a", "separate_cores", "separate cores remove", "near zero"),
    _removes("C6b", "separate_cores", "separate cores remove", "near zero", "frac_r_gt"),
    Claim("C6c", "separate cores: cross-decoding perform -> observe fails", "failed",
          "separate_cores", "decode_perform_to_observe_above_chance", "not_above_zero"),
    _removes("C6d", "forward_only", "forward-only reduces", "significantly reduced",
             rule="reduces"),
    _removes("C6e", "forward_only", "forward-only reduces", "significantly reduced",
             "frac_r_gt", "reduces"),
    _removes("C6f", "shuffled_observe", "shuffled observe removes", "eliminated"),
    _removes("C6g", "shuffled_observe", "shuffled observe removes", "eliminated", "frac_r_gt"),
    _removes("C7a", "independent_pairing", "pairing error destroys", "destroyed"),
    _removes("C7b", "independent_train_pairing", "pairing error (train only) destroys",
             "destroyed"),
    _removes("C8", "randomized_dynamics", "random dynamics weaken", "weaker", rule="reduces"),
    Claim("C9", f"|r| > {ABS_THRESHOLD:g} fraction exceeds the same run at initial weights", "implicit",
          "main", "frac_abs_r_gt_over_untrained", "above_zero"),
    Claim("C10", f"time-centred |r| > {ABS_THRESHOLD:g} fraction exceeds the untrained condition's",
          "implicit", "main", "time_centred_frac_abs_r_gt", "exceeds", reference="untrained"),
    Claim("C11", f"|r| > {ABS_THRESHOLD:g} fraction exceeds its permutation-null mean", "implicit", "main",
          "excess_frac_abs_r_gt", "above_zero"),
    Claim("C12", "congruent action tuning above chance (fraction minus chance)", "implicit",
          "main", "frac_congruent_over_chance", "above_zero"),
    Claim("C13", "time courses aligned at zero or small lag (median |peak lag|)",
          "zero or small lag", "main", "median_abs_peak_lag", "at_most", high=1.0),
]


def rule_text(claim: Claim) -> str:
    """The rule of a claim, in words (with its reference condition)."""
    text = RULES[claim.rule].format(low=claim.low, high=claim.high, alpha=ALPHA,
                                    share=MIN_SIGNIFICANT_SHARE)
    return text + (f" ({claim.reference} condition)" if claim.reference else "")


def derive_metrics(runs: pd.DataFrame, alpha: float = ALPHA) -> pd.DataFrame:
    """Per-run metrics the claims need beyond summary.json (differences, significance flags).

    Returns a copy of `runs` with, where the inputs exist: decode_{a}_to_{b}_above_chance
    (accuracy - chance), decode_{a}_to_{b}_significant (1.0 if p < alpha), decode_min_p
    (1 / (B + 1) of the decoding null), frac_abs_r_gt_over_untrained and
    frac_congruent_over_chance.
    """
    out = runs.copy()
    for a, b in [("perform", "observe"), ("observe", "perform")]:
        prefix = f"decode_{a}_to_{b}"
        if {f"{prefix}_accuracy", f"{prefix}_chance"} <= set(out):
            out[f"{prefix}_above_chance"] = out[f"{prefix}_accuracy"] - out[f"{prefix}_chance"]
        if f"{prefix}_p" in out:
            p = out[f"{prefix}_p"].astype(float)
            out[f"{prefix}_significant"] = (p < alpha).astype(float).where(p.notna())
    if "analysis.decoding_null_permutations" in out:
        out["decode_min_p"] = 1.0 / (out["analysis.decoding_null_permutations"].astype(float) + 1)
    pairs = {"frac_abs_r_gt_over_untrained": ("frac_abs_r_gt", "untrained_frac_abs_r_gt"),
             "frac_congruent_over_chance": ("frac_congruent", "frac_congruent_chance")}
    for name, (a, b) in pairs.items():
        if {a, b} <= set(out):
            out[name] = out[a] - out[b]
    return out


def needed_metrics(claims: list[Claim]) -> list[str]:
    extra = [m.replace("_above_chance", "_significant") for c in claims for m in [c.metric]
             if c.rule == "decodes"]
    return sorted({c.metric for c in claims} | set(extra) | {"decode_min_p"})


def measure(sweep: Sweep, n_boot: int = 10_000, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """Across-seed statistics of every metric the claims use, and the context they need.

    Returns:
        (stats, context): stats from summaries.robustness (condition, metric, n, mean, sd,
        ci_low, ci_high); context: main (the main condition's label or None),
        threshold_mismatch (conditions whose thresholds differ from the paper's), notes.
    """
    runs, note = paper_size_runs(sweep.runs)
    derived = derive_metrics(runs)
    stats = robustness(derived, metrics=needed_metrics(CLAIMS), n_boot=n_boot, seed=seed)
    stats = stats.drop(columns=[c for c in stats if c == "hidden_size"])
    context = {"main": main_condition(runs), "notes": [note] if note else [],
               "threshold_mismatch": threshold_mismatch(runs)}
    return stats, context


def threshold_mismatch(runs: pd.DataFrame) -> list[str]:
    """Conditions with a run whose analysis thresholds differ from the paper's."""
    bad = pd.Series(False, index=runs.index)
    for key, value in PAPER_THRESHOLDS.items():
        if key in runs:
            bad |= ~np.isclose(runs[key].astype(float), value)
    return sorted(runs.loc[bad, "condition"].astype(str).unique()) if len(runs) else []


def config_deviations(runs: pd.DataFrame, condition: str | None) -> list[str]:
    """'key: sweep value(s) (paper: x)' for the paper's settings the main condition changes."""
    rows = runs[runs["condition"] == condition] if condition else runs.iloc[0:0]
    out = []
    for key, paper in {**PAPER_CONFIG, **PAPER_THRESHOLDS}.items():
        if key in rows and len(rows):
            values = sorted(rows[key].dropna().unique().tolist())
            if any(not np.isclose(float(v), paper) for v in values):
                out.append(f"{key}: {', '.join(map(str, values))} (paper: {paper:g})")
    return out


def lookup(stats: pd.DataFrame, condition: str | None, metric: str) -> dict | None:
    """The stats row of (condition, metric) as a dict, or None."""
    if condition is None or stats.empty:
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


def decide(claim: Claim, row: dict, ref: dict | None, extra: dict | None) -> bool:
    """True if the claim holds on these stats (rows have mean, ci_low, ci_high)."""
    lo, hi, mean = row["ci_low"], row["ci_high"], row["mean"]
    if claim.rule == "overlaps":
        return lo <= claim.high and hi >= claim.low
    if claim.rule == "above_zero":
        return lo > 0
    if claim.rule == "at_most":
        return hi <= claim.high
    if claim.rule == "not_above_zero":
        return lo <= 0
    if claim.rule == "decodes":
        return lo > 0 and extra is not None and extra["mean"] >= MIN_SIGNIFICANT_SHARE
    if claim.rule == "reduces":
        return hi < ref["ci_low"]
    if claim.rule == "removes":
        return hi < ref["ci_low"] and mean <= 0.5 * ref["mean"]
    if claim.rule == "exceeds":
        return lo > ref["ci_high"]
    raise ValueError(f"unknown rule {claim.rule!r}")


def evaluate_claim(claim: Claim, stats: pd.DataFrame, context: dict) -> dict:
    """One claims.csv row: the measured statistics, the verdict and the rule."""
    resolve = {"main": context.get("main")}
    condition = resolve.get(claim.condition, claim.condition)
    reference = resolve.get(claim.reference, claim.reference) if claim.reference else None
    row = lookup(stats, condition, claim.metric)
    ref = lookup(stats, reference, claim.metric) if claim.reference else None
    reason = unmeasured_reason(row, condition, claim.metric)
    if reason is None and claim.reference:
        reason = unmeasured_reason(ref, reference, claim.metric)
    extra = None
    if reason is None and claim.rule == "decodes":
        extra = lookup(stats, condition, claim.metric.replace("_above_chance", "_significant"))
        min_p = lookup(stats, condition, "decode_min_p")
        if extra is None:
            reason = "per-run decoding p-values absent"
        elif min_p is not None and min_p["mean"] >= ALPHA:
            reason = f"decoding null too small: smallest possible p = {min_p['mean']:.3g}"
    if reason is None and claim.metric in THRESHOLD_METRICS and (
            {condition, reference} & set(context.get("threshold_mismatch", []))):
        reason = ("the sweep's r thresholds differ from the paper's "
                  f"({ABS_THRESHOLD:g}, {POS_THRESHOLD:g})")
    verdict = NOT_MEASURED if reason else (HOLDS if decide(claim, row, ref, extra) else FAILS)
    note = reason or ""
    if extra is not None and not reason:
        note = f"p < {ALPHA:g} in {extra['mean']:.0%} of seeds"
    return {
        "claim_id": claim.claim_id, "claim": claim.claim, "paper_value": claim.paper_value,
        "condition": condition if condition is not None else MAIN, "metric": claim.metric,
        "measured_mean": row["mean"] if row else np.nan,
        # A CI needs two seeds: with one, robustness's [x, x] would read as certainty.
        "ci_low": row["ci_low"] if row and row["n"] >= 2 else np.nan,
        "ci_high": row["ci_high"] if row and row["n"] >= 2 else np.nan,
        "n_seeds": int(row["n"]) if row else 0, "verdict": verdict, "rule": rule_text(claim),
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


def fmt_ci(mean: float, low: float, high: float) -> str:
    if not np.isfinite(mean):
        return "-"
    if not (np.isfinite(low) and np.isfinite(high)):
        return f"{mean:.3f}"
    return f"{mean:.3f} [{low:.3f}, {high:.3f}]"


def md(text: str) -> str:
    """Escape the pipes of |r| inside a Markdown table cell."""
    return str(text).replace("|", "\\|")


def claims_markdown(table: pd.DataFrame, sweep_path: Path, runs: pd.DataFrame,
                    context: dict) -> str:
    """The claims report as Markdown."""
    counts = runs.groupby("condition")["seed"].nunique() if len(runs) else pd.Series(dtype=int)
    lines = ["# Claims report", "", f"Sweep: `{sweep_path}`, {len(runs)} complete runs.", "",
             "Seeds per condition: " + (", ".join(f"{c} ({n})" for c, n in counts.items())
                                        or "none") + ".", ""]
    deviations = config_deviations(runs, context.get("main"))
    if deviations or context.get("notes"):
        lines += [("**Configuration differs from the paper's** (verdicts are about this sweep's "
                   "configuration):"), ""]
        lines += [f"- {d}" for d in deviations + list(context.get("notes", []))] + [""]
    if len(counts) and counts.min() < 5:
        lines += [("With fewer than 5 seeds a bootstrap percentile CI is too narrow: treat the "
                   "verdicts of such conditions as provisional."), ""]
    lines += [("| id | claim | paper | condition | measured mean [95% CI] | n | verdict | "
               "reference mean [95% CI] | note |"), "|" + "---|" * 9]
    for r in table.itertuples():
        ref = (f"{r.reference_condition}: "
               f"{fmt_ci(r.reference_mean, r.reference_ci_low, r.reference_ci_high)}"
               if r.reference_condition else "")
        lines.append(f"| {r.claim_id} | {md(r.claim)} | {r.paper_value} | {r.condition} | "
                     f"{fmt_ci(r.measured_mean, r.ci_low, r.ci_high)} | {r.n_seeds} | "
                     f"**{r.verdict}** | {ref} | {r.note} |")
    lines += ["", "## Rules", ""] + [f"- {rule}" for rule in GENERAL_RULES] + [""]
    lines += [f"- **{r.claim_id}** {r.claim} (`{r.metric}`): {r.rule}."
              for r in table.itertuples()]
    return "\n".join(lines) + "\n"


def compact_table(table: pd.DataFrame) -> str:
    """claim id, claim, measured mean [CI], n, verdict: one line each, for the terminal."""
    lines = []
    for r in table.itertuples():
        claim = r.claim if len(r.claim) <= 58 else r.claim[:57] + "…"
        lines.append(f"  {r.claim_id:<4} {claim:<58} {fmt_ci(r.measured_mean, r.ci_low, r.ci_high):>27}"
                     f"  n={r.n_seeds:<3} {r.verdict}")
    return "\n".join(lines)


def write_claims(sweep: Sweep, out_dir: Path | str, n_boot: int = 10_000,
                 seed: int = 0) -> pd.DataFrame:
    """Write claims.csv and claims.md into `out_dir` (SWEEP_DIR/aggregate); returns the table."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stats, context = measure(sweep, n_boot=n_boot, seed=seed)
    table = evaluate_claims(stats, context)
    results.write_table(out / "claims.csv", table)
    runs, _ = paper_size_runs(sweep.runs)
    text = claims_markdown(table, sweep.path, runs, context)
    results.write_atomic(out / "claims.md", lambda f: f.write(text))
    return table
