"""Which design reproduces the paper's pattern: every condition of a sweep scored on the paper's
signature, with the measured values and CIs (a finding, never a target).

The signature is the paper's main result taken as a whole: (S1) ~35-40% of units with |r| > 0.6,
(S2) ~25-30% with r > 0.75, (S3) anti-mirror units present, (S4) cross-decoding above chance in
both directions, (S5) the paper's ablations (separate cores, forward only, shuffled observe)
reducing the effect, judged like the claims' "reduces" rule: the seed-paired contrast
(sweep.contrasts) of each ablation against the paper's condition. The paper's ranges are those
of its claims (paper.CLAIM_RANGES); S5 can only be measured for the paper's own design (the
ablations are ablations of it). One row per
condition and per value of every varying factor (summaries.robustness_keys).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mirror_sweep.report.claims import derive_metrics
from mirror_sweep.report.paper import CLAIM_RANGES, MAIN
from mirror_sweep.report.rules import ALPHA
from mirror_sweep.report.stats import REPORT_METRICS
from mirror_sweep.report.verdicts import FAILS, HOLDS, NOT_MEASURED, threshold_mismatch
from mirror_sweep.sweep.contrasts import contrasts
from mirror_sweep.sweep.summaries import DEFAULT_CI, robustness, robustness_keys

ABLATIONS = ["separate_cores", "forward_only", "shuffled_observe"]
DECODING = ["decode_perform_to_observe_above_chance", "decode_observe_to_perform_above_chance"]
METRICS = ["frac_abs_r_gt", "frac_r_gt", "min_r", "n_anti_mirror", *DECODING]
# METRICS the report's robustness table does not hold (report/stats.py): per-run summary values
UNREPORTED = [metric for metric in METRICS if metric not in REPORT_METRICS]
CRITERIA = {
    "S1": "|r| > 0.6 fraction: the 95% CI of the mean over seeds overlaps the paper's range",
    "S2": "r > 0.75 fraction: the 95% CI of the mean over seeds overlaps the paper's range",
    "S3": "anti-mirror units present: the 95% CI lower bound of the mean number of units with "
          "r < anti_threshold is > 0",
    "S4": "cross-decoding above chance: the 95% CI lower bound of mean(accuracy - chance) is > 0 "
          "in both directions",
    "S5": "the paper's ablations reduce the effect: for each of separate_cores, forward_only, "
          "shuffled_observe in the sweep, the seed-paired difference of its |r| > 0.6 fraction "
          "from this condition's has a 95% CI upper bound below 0 and a sign-flip p < 0.05 "
          "(measured for the paper's condition only)",
}


def verdict(ok: bool | None) -> str:
    return NOT_MEASURED if ok is None else HOLDS if ok else FAILS


def cell(stats: pd.DataFrame, metric: str) -> pd.Series | None:
    """The robustness row of `metric` with at least 2 seeds, else None."""
    hit = np.flatnonzero(stats["metric"].to_numpy() == metric)  # (numpy: ~5x pandas' mask)
    row = stats.iloc[hit[0]] if len(hit) else None
    return row if row is not None and row["n"] >= 2 else None


def signature_table(runs: pd.DataFrame, n_boot: int = 10_000, seed: int = 0,
                    ci: str = DEFAULT_CI, stats: pd.DataFrame | None = None,
                    paired: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per condition (x varying factors): measured means, CIs and S1-S5 verdicts.

    stats, paired: the report's tables of the same runs with the same n_boot, seed and ci
    (report/stats.py's report_stats and report_contrasts; UNREPORTED computed here), whose rows
    are taken instead of computing them again: a metric's CI and a seed-paired contrast do not
    depend on what else is computed beside them, so the table is the same (tested).

    Columns: the grouping keys, n_seeds, for each metric {metric}_mean/_ci_low/_ci_high, S1..S5
    (holds / does not hold / not measured) and score ("k of m measured hold").
    """
    if not len(runs):
        return pd.DataFrame()
    if stats is None or paired is None:
        derived = derive_metrics(runs)
        keys = robustness_keys(derived)
        stats = robustness(derived, metrics=METRICS, n_boot=n_boot, seed=seed, ci=ci)
        paired = contrasts(derived, metrics=["frac_abs_r_gt"],
                           pairs=[(a, MAIN) for a in ABLATIONS], n_boot=n_boot, seed=seed, ci=ci)
    else:  # (derive_metrics adds metrics, never a factor: the keys are the runs')
        keys = robustness_keys(runs)
        stats = stats[stats["metric"].isin(METRICS)]
        if UNREPORTED:  # summary metrics the report does not summarise: computed here
            more = robustness(runs, metrics=UNREPORTED, n_boot=n_boot, seed=seed, ci=ci)
            stats = pd.concat([stats, more], ignore_index=True)
        paired = paired[(paired["metric"] == "frac_abs_r_gt") & (paired["reference"] == MAIN)
                        & paired["condition"].isin(ABLATIONS)]
    factors = keys[1:]
    mismatch = set(threshold_mismatch(runs))
    groups = stats.groupby(keys, sort=False, dropna=False)
    rows = []
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        values = dict(zip(keys, key))
        row = {**values, "n_seeds": int(group["n"].max())}
        for metric in METRICS:
            found = cell(group, metric)
            for stat in ("mean", "ci_low", "ci_high"):
                row[f"{metric}_{stat}"] = found[stat] if found is not None else float("nan")
        row.update(score(values, group, paired, factors))
        if values["condition"] in mismatch:  # not the paper's thresholds: not its fractions
            row.update({"S1": NOT_MEASURED, "S2": NOT_MEASURED})
        rows.append(row)
    table = pd.DataFrame(rows)
    checks = table[list(CRITERIA)]
    measured = (checks != NOT_MEASURED).sum(axis=1)
    table["score"] = [f"{h} of {m} measured hold" for h, m in
                      zip((checks == HOLDS).sum(axis=1), measured)]
    return table


def score(values: dict, group: pd.DataFrame, paired: pd.DataFrame, factors: list[str]) -> dict:
    """S1-S5 verdicts of one group (values: its grouping keys; paired: the ablations' seed-paired
    contrasts with the paper's condition)."""
    out = {}
    for name, metric in [("S1", "frac_abs_r_gt"), ("S2", "frac_r_gt")]:
        low, high = CLAIM_RANGES[metric]
        found = cell(group, metric)
        out[name] = verdict(None if found is None else
                            bool(found["ci_high"] >= low and found["ci_low"] <= high))
    anti = cell(group, "n_anti_mirror")
    out["S3"] = verdict(None if anti is None else bool(anti["ci_low"] > 0))
    decoding = [cell(group, metric) for metric in DECODING]
    out["S4"] = verdict(None if any(d is None for d in decoding) else
                        all(d["ci_low"] > 0 for d in decoding))
    out["S5"] = verdict(ablations_reduce(values, group, paired, factors))
    return out


def ablations_reduce(values: dict, group: pd.DataFrame, paired: pd.DataFrame,
                     factors: list[str]) -> bool | None:
    """S5 for the paper's condition at these factor values; None when not measurable (another
    condition, or no ablation sharing at least 2 seeds with it)."""
    if values["condition"] != MAIN or cell(group, "frac_abs_r_gt") is None or paired.empty:
        return None
    same = paired[paired["reference"] == MAIN]
    for factor in factors:
        same = same[same[factor] == values[factor]]
    same = same[same["n_pairs"] >= 2]
    if same.empty:
        return None
    return bool(((same["ci_high"] < 0) & (same["p"] < ALPHA)).all())


def signature_markdown(table: pd.DataFrame) -> str:
    """The table as a markdown section with its criteria, for the claims report."""
    intro = ("Every condition of the sweep scored on the paper's signature, with the measured "
             "mean [95% CI over seeds]. This is a finding about each design; the "
             "criteria were fixed in advance and are never adjusted to match the paper.")
    lines = ["", "## Which design reproduces the paper's pattern", "", intro, ""]
    lines += [f"- {name}: {text}" for name, text in CRITERIA.items()]
    if table.empty:
        return "\n".join(lines + ["", "No complete run in this sweep.", ""])
    keys = [c for c in table.columns if c != "n_seeds" and not c.endswith(
        ("_mean", "_ci_low", "_ci_high")) and c not in CRITERIA and c != "score"]
    shown = ["frac_abs_r_gt", "frac_r_gt", "min_r", "n_anti_mirror",
             "decode_perform_to_observe_above_chance"]
    header = keys + ["n"] + [SHORT[m] for m in shown] + list(CRITERIA) + ["score"]
    lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in table.iterrows():
        cells = [str(row[k]) for k in keys] + [str(row["n_seeds"])]
        cells += [interval(row, m) for m in shown]
        cells += [str(row[c]) for c in CRITERIA] + [row["score"]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines + [""])


SHORT = {"frac_abs_r_gt": "\\|r\\| > 0.6", "frac_r_gt": "r > 0.75", "min_r": "min r",
         "n_anti_mirror": "n anti", "decode_perform_to_observe_above_chance": "decode p→o − chance"}


def interval(row: pd.Series, metric: str) -> str:
    mean = row[f"{metric}_mean"]
    if pd.isna(mean):
        return "—"
    return f"{mean:.3f} [{row[f'{metric}_ci_low']:.3f}, {row[f'{metric}_ci_high']:.3f}]"
