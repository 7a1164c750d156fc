"""The catalog of the paper's quantitative claims, as data, and the per-run metrics they need.

Each `Claim` names its condition, its per-run metric and its rule (a `rules.Rule`, which both
decides and prints itself). `report.verdicts` turns across-seed statistics into verdicts and
`report.claims_report` writes claims.csv and claims.md.

The rules (see docs/figures_and_claims.md) were fixed before any sweep was looked at and are
never adjusted to match the paper. The paper's numbers are claims under test.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from mirror_sweep.report import rules
from mirror_sweep.report.paper import ABS_THRESHOLD, CLAIM_RANGES, MAX_R, MIN_R, POS_THRESHOLD
from mirror_sweep.report.rules import ALPHA, SIGNIFICANT, Rule

# Per-run metrics computed with the paper's |r| / r thresholds: their claims are not measured
# when a sweep's thresholds differ.
THRESHOLD_METRICS = {"frac_abs_r_gt", "frac_r_gt", "excess_frac_abs_r_gt",
                     "time_centred_frac_abs_r_gt", "frac_abs_r_gt_over_untrained"}
MIN_P_METRIC = "decode_min_p"  # 1 / (B + 1) of a run's decoding null


@dataclass(frozen=True)
class Claim:
    """One claim: `condition` "main" is the paper's condition, `reference` a comparison one."""

    claim_id: str
    claim: str
    paper_value: str
    condition: str
    metric: str
    rule: Rule
    reference: str | None = None

    @property
    def significance_metric(self) -> str | None:
        """The per-run significance flag the rule reads (decoding claims), else None."""
        if SIGNIFICANT not in self.rule.sources():
            return None
        return self.metric.replace("_above_chance", "_significant")

    def rule_text(self) -> str:
        """The rule in words (with its reference condition), printed from the rule itself."""
        return self.rule.text() + (f" ({self.reference} condition)" if self.reference else "")


METRIC_WORDS = {"frac_abs_r_gt": f"|r| > {ABS_THRESHOLD:g} fraction",
                "frac_r_gt": f"r > {POS_THRESHOLD:g} fraction"}


def _versus_main(cid, condition, what, paper, metric="frac_abs_r_gt", rule=rules.removes):
    return Claim(cid, f"{what} the effect ({METRIC_WORDS[metric]}) vs main", paper,
                 condition, metric, rule(), reference="main")


def _range(metric: str) -> Rule:
    return rules.overlaps(*CLAIM_RANGES[metric])


CLAIMS = [
    Claim("C1", f"~35-40% of units have |r| > {ABS_THRESHOLD:g} (main run)", "0.35-0.40",
          "main", "frac_abs_r_gt", _range("frac_abs_r_gt")),
    Claim("C2", f"~25-30% of units have r > {POS_THRESHOLD:g} (main run)", "0.25-0.30",
          "main", "frac_r_gt", _range("frac_r_gt")),
    Claim("C3", f"units reach r ≈ 0.9 (max r = {MAX_R:g})", f"{MAX_R:g}", "main", "max_r",
          _range("max_r")),
    Claim("C4", "an anti-mirror unit with r ≈ -0.79 exists (min r)", f"{MIN_R:g}", "main",
          "min_r", _range("min_r")),
    Claim("C5a", "cross-decoding perform -> observe above chance", "above chance", "main",
          "decode_perform_to_observe_above_chance", rules.decodes()),
    Claim("C5b", "cross-decoding observe -> perform above chance", "above chance", "main",
          "decode_observe_to_perform_above_chance", rules.decodes()),
    _versus_main("C6a", "separate_cores", "separate cores remove", "near zero"),
    _versus_main("C6b", "separate_cores", "separate cores remove", "near zero", "frac_r_gt"),
    Claim("C6c", "separate cores: cross-decoding perform -> observe fails", "failed",
          "separate_cores", "decode_perform_to_observe_above_chance", rules.fails_to_decode()),
    _versus_main("C6d", "forward_only", "forward-only reduces", "significantly reduced",
                 rule=rules.reduces),
    _versus_main("C6e", "forward_only", "forward-only reduces", "significantly reduced",
                 "frac_r_gt", rules.reduces),
    _versus_main("C6f", "shuffled_observe", "shuffled observe removes", "eliminated"),
    _versus_main("C6g", "shuffled_observe", "shuffled observe removes", "eliminated",
                 "frac_r_gt"),
    _versus_main("C7a", "independent_pairing", "pairing error destroys", "destroyed"),
    _versus_main("C7b", "independent_train_pairing", "pairing error (train only) destroys",
                 "destroyed"),
    _versus_main("C8", "randomized_dynamics", "random dynamics weaken", "weaker",
                 rule=rules.reduces),
    Claim("C9", f"|r| > {ABS_THRESHOLD:g} fraction exceeds the same run at initial weights",
          "implicit", "main", "frac_abs_r_gt_over_untrained", rules.above_zero()),
    Claim("C10", f"time-centred |r| > {ABS_THRESHOLD:g} fraction exceeds the untrained "
          "condition's", "implicit", "main", "time_centred_frac_abs_r_gt", rules.exceeds(),
          reference="untrained"),
    Claim("C11", f"|r| > {ABS_THRESHOLD:g} fraction exceeds its permutation-null mean",
          "implicit", "main", "excess_frac_abs_r_gt", rules.above_zero()),
    Claim("C12", "congruent action tuning above chance (fraction minus chance)", "implicit",
          "main", "frac_congruent_over_chance", rules.above_zero()),
    Claim("C13", "time courses aligned at zero or small lag (median |peak lag|)",
          "zero or small lag", "main", "median_abs_peak_lag", rules.at_most(1.0)),
]


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
        out[MIN_P_METRIC] = 1.0 / (
            out["analysis.decoding_null_permutations"].astype(float) + 1)
    pairs = {"frac_abs_r_gt_over_untrained": ("frac_abs_r_gt", "untrained_frac_abs_r_gt"),
             "frac_congruent_over_chance": ("frac_congruent", "frac_congruent_chance")}
    for name, (a, b) in pairs.items():
        if {a, b} <= set(out):
            out[name] = out[a] - out[b]
    return out


def needed_metrics(claims: list[Claim]) -> list[str]:
    """Every per-run metric the claims read, sorted."""
    extra = {c.significance_metric for c in claims} - {None}
    return sorted({c.metric for c in claims} | extra | {MIN_P_METRIC})
