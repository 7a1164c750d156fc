"""The claims report as files: claims.csv (report.verdicts) and claims.md, and a terminal table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mirror_sweep.report.paper import ABS_THRESHOLD, PAPER_CONFIG, PAPER_THRESHOLDS, POS_THRESHOLD
from mirror_sweep.report.rules import ALPHA
from mirror_sweep.report.verdicts import TRIVIAL, evaluate_claims, fmt_effect, measure
from mirror_sweep.sweep import results
from mirror_sweep.sweep.aggregate import Sweep

GENERAL_RULES = [
    ("Every statistic is over seeds: the mean of a per-run metric across the complete runs of a "
     "condition, with a 95% CI of that mean (summaries.robustness; mirror-aggregate --ci, "
     "default Student t)."),
    ("Conditions are compared paired by seed (a seed fixes the environment, the data and the "
     "test set of every condition): the mean per-seed difference with its 95% CI and an exact "
     "sign-flip p (sweep/contrasts.py, contrasts.csv). reduces / removes / exceeds read it."),
    (f"{TRIVIAL}: the claim's rule holds, but it is true by construction, or it holds as well "
     "for one of the claim's controls (the untrained network, the separate cores): the claim "
     "is not specific to the trained shared core. The paired effect against each control "
     "stands beside the raw value."),
    ("not measured: the condition is absent from the sweep, fewer than 2 seeds have a finite "
     "value, the metric is missing, the run's thresholds differ from the paper's "
     f"({ABS_THRESHOLD:g}, {POS_THRESHOLD:g}), or the decoding null is too small for "
     f"p < {ALPHA:g} (1/(B+1) >= {ALPHA:g})."),
    "Otherwise the claim's rule decides between holds and does not hold.",
    ("The rules were fixed before looking at any sweep's results and are never adjusted to match "
     "the paper."),
]


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
        lines += [("With fewer than 5 seeds every CI is wide or unreliable: treat the "
                   "verdicts of such conditions as provisional."), ""]
    lines += [("| id | claim | paper | condition | measured mean [95% CI] | n | verdict | "
               "reference mean [95% CI]; paired difference | paired effect vs controls | "
               "note |"), "|" + "---|" * 10]
    for r in table.itertuples():
        ref = ""
        if r.reference_condition:
            pair = {"mean": r.paired_difference, "ci_low": r.paired_ci_low,
                    "ci_high": r.paired_ci_high, "p": r.paired_p, "n": r.paired_n}
            ref = (f"{r.reference_condition}: "
                   f"{fmt_ci(r.reference_mean, r.reference_ci_low, r.reference_ci_high)}; "
                   f"paired {fmt_effect(pair if r.paired_n else None)}")
        lines.append(f"| {r.claim_id} | {md(r.claim)} | {md(r.paper_value)} | {r.condition} | "
                     f"{fmt_ci(r.measured_mean, r.ci_low, r.ci_high)} | {r.n_seeds} | "
                     f"**{r.verdict}** | {ref} | {r.control_effects} | {r.note} |")
    lines += ["", "## Rules", ""] + [f"- {rule}" for rule in GENERAL_RULES] + [""]
    lines += [f"- **{r.claim_id}** {r.claim} (`{r.metric}`): {r.rule}."
              for r in table.itertuples()]
    return "\n".join(lines) + "\n"


def compact_table(table: pd.DataFrame) -> str:
    """claim id, claim, measured mean [CI], n, verdict: one line each, for the terminal."""
    lines = []
    for r in table.itertuples():
        claim = r.claim if len(r.claim) <= 58 else r.claim[:57] + "…"
        lines.append(f"  {r.claim_id:<4} {claim:<58} "
                     f"{fmt_ci(r.measured_mean, r.ci_low, r.ci_high):>27}"
                     f"  n={r.n_seeds:<3} {r.verdict}")
    return "\n".join(lines)


def write_claims(sweep: Sweep, out_dir: Path | str, stats: pd.DataFrame | None = None,
                 n_boot: int = 10_000, seed: int = 0, paired: pd.DataFrame | None = None
                 ) -> pd.DataFrame:
    """Write claims.csv and claims.md into `out_dir` (SWEEP_DIR/aggregate); returns the table.

    stats, paired: report.stats.report_stats / report_contrasts of the sweep (computed here
    with n_boot, seed when None).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    claim_stats, context = measure(sweep, stats, n_boot=n_boot, seed=seed, paired=paired)
    table = evaluate_claims(claim_stats, context)
    results.write_table(out / "claims.csv", table)
    text = claims_markdown(table, sweep.path, context["runs"], context)
    results.write_atomic(out / "claims.md", lambda f: f.write(text))
    return table
