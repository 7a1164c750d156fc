"""The catalog of the paper's quantitative claims, as data, and the per-run metrics they need.

Each `Claim` names its condition, its per-run metric and its rule (a `rules.Rule`, which both
decides and prints itself). `report.verdicts` turns across-seed statistics into verdicts and
`report.claims_report` writes claims.csv and claims.md.

The rules (see docs/figures_and_claims.md) were fixed before any sweep was looked at and are
never adjusted to match the paper. The paper's numbers are claims under test.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mirror_sweep.report import rules
from mirror_sweep.report.paper import (
    ABS_THRESHOLD,
    CLAIM_RANGES,
    CONTROLS,
    HIDDEN_SIZE,
    MAX_R,
    MIN_R,
    NEAR_MAX_R,
    POS_THRESHOLD,
    REAPPEARS_ABS_R,
    RELIABLE_SHARE,
    SEPARATE_CORES,
    SEVERAL,
    STRONG_ABS_R,
    UNTRAINED,
    WEAK_R,
)
from mirror_sweep.report.rules import ALPHA, SIGNIFICANT, Rule

# Per-run metrics computed with the paper's |r| / r thresholds: their claims are not measured
# when a sweep's thresholds differ.
THRESHOLD_METRICS = {"frac_abs_r_gt", "frac_r_gt", "excess_frac_abs_r_gt",
                     "time_centred_frac_abs_r_gt", "frac_abs_r_gt_over_untrained",
                     "median_abs_peak_lag_mirror"}
MIN_P_METRIC = "decode_min_p"  # 1 / (B + 1) of a run's decoding null


@dataclass(frozen=True)
class Claim:
    """One claim: `condition` "main" is the paper's condition, `reference` a comparison one.

    controls: conditions ("main" allowed) on which the same rule is also evaluated; a claim that
    holds as well for a control is "trivial: also holds for <control>", not "holds", and the
    report shows the seed-paired effect of the condition against each control.
    trivial: why the claim is true by construction (its verdict is then "trivial: <why>" when
    the rule holds). needs: what must land before the claim can be measured (its metric is
    absent until then).
    """

    claim_id: str
    claim: str
    paper_value: str
    condition: str
    metric: str
    rule: Rule
    reference: str | None = None
    controls: tuple[str, ...] = ()
    trivial: str | None = None
    needs: str | None = None

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


def _versus_main(cid, condition, what, paper, metric="frac_abs_r_gt", rule=rules.removes,
                 trivial=None):
    return Claim(cid, f"{what} the effect ({METRIC_WORDS[metric]}) vs main", paper,
                 condition, metric, rule(), reference="main", trivial=trivial)


def _range(metric: str) -> Rule:
    return rules.overlaps(*CLAIM_RANGES[metric])



CLAIMS = [
    Claim("C1", f"~35-40% of units have |r| > {ABS_THRESHOLD:g} (main run)", "0.35-0.40",
          "main", "frac_abs_r_gt", _range("frac_abs_r_gt"), controls=CONTROLS),
    Claim("C2", f"~25-30% of units have r > {POS_THRESHOLD:g} (main run)", "0.25-0.30",
          "main", "frac_r_gt", _range("frac_r_gt"), controls=CONTROLS),
    Claim("C3a", f"a single run reaches r ≈ 0.9 (share of seeds with max r >= {NEAR_MAX_R:g})",
          f"max r = {MAX_R:g}", "main", "reaches_max_r", rules.some_seed(), controls=CONTROLS),
    Claim("C3b", f"several units reach r ≈ 0.9 (units per run with r >= {NEAR_MAX_R:g})",
          "several", "main", "n_units_near_max_r", rules.overlaps(SEVERAL, HIDDEN_SIZE),
          controls=CONTROLS),
    Claim("C4", "an anti-mirror unit with r ≈ -0.79 exists (min r)", f"{MIN_R:g}", "main",
          "min_r", _range("min_r"), controls=CONTROLS),
    Claim("C5a", "cross-decoding perform -> observe above chance", "above chance", "main",
          "decode_perform_to_observe_above_chance", rules.decodes(), controls=CONTROLS),
    Claim("C5b", "cross-decoding observe -> perform above chance", "above chance", "main",
          "decode_observe_to_perform_above_chance", rules.decodes(), controls=CONTROLS),
    _versus_main("C6a", "separate_cores", "separate cores remove", "near zero"),
    _versus_main("C6b", "separate_cores", "separate cores remove", "near zero", "frac_r_gt"),
    Claim("C6c", "separate cores: cross-decoding perform -> observe fails", "failed",
          "separate_cores", "decode_perform_to_observe_above_chance", rules.fails_to_decode(),
          controls=("main",)),
    _versus_main("C6d", "forward_only", "forward-only reduces", "significantly reduced",
                 rule=rules.reduces),
    _versus_main("C6e", "forward_only", "forward-only reduces", "significantly reduced",
                 "frac_r_gt", rules.reduces),
    _versus_main("C6f", "shuffled_observe", "shuffled observe removes", "eliminated"),
    _versus_main("C6g", "shuffled_observe", "shuffled observe removes", "eliminated",
                 "frac_r_gt"),
    _versus_main("C7a", "independent_pairing", "pairing error destroys", "destroyed",
                 trivial="the test set pairs each perform sequence with an observe sequence of "
                         "other actions, so no unit can follow the same action in both modes"),
    _versus_main("C7b", "independent_train_pairing", "pairing error (train only) destroys",
                 "destroyed"),
    _versus_main("C8", "randomized_dynamics", "random dynamics weaken", "weaker",
                 rule=rules.reduces,
                 trivial="randomized dynamics make the sensory input uninformative about the "
                         "action, so observe mode cannot recover it"),
    Claim("C9", f"|r| > {ABS_THRESHOLD:g} fraction exceeds the same run at initial weights",
          "implicit", "main", "frac_abs_r_gt_over_untrained", rules.above_zero(),
          controls=(SEPARATE_CORES,)),
    Claim("C10", f"time-centred |r| > {ABS_THRESHOLD:g} fraction exceeds the untrained "
          "condition's", "implicit", "main", "time_centred_frac_abs_r_gt", rules.exceeds(),
          reference=UNTRAINED, controls=(SEPARATE_CORES,)),
    Claim("C11", f"|r| > {ABS_THRESHOLD:g} fraction exceeds its permutation-null mean",
          "implicit", "main", "excess_frac_abs_r_gt", rules.above_zero(), controls=CONTROLS),
    Claim("C12", "congruent action tuning above chance (fraction minus chance)", "implicit",
          "main", "frac_congruent_over_chance", rules.above_zero(), controls=CONTROLS),
    Claim("C13", f"mirror units (|r| > {ABS_THRESHOLD:g}) aligned at zero or small lag "
          "(median |peak lag|)", "zero or small lag", "main", "median_abs_peak_lag_mirror",
          rules.at_most(1.0), controls=CONTROLS),
    # The causal claims ("causally necessary", "help decode action in either mode") are N1-N2
    # and D1-D2 below, measured by the per-run causal ablation and unit-subset decoders.
    Claim("C16a", f"weak/moderate mirror candidates (r > {WEAK_R:g}) exist (fraction)",
          "r > 0.2-0.3", "main", "frac_r_gt_weak",
          rules.above_zero(), controls=CONTROLS),
    Claim("C16b", f"strong mirror candidates (|r| > {STRONG_ABS_R:g}) exist (fraction)",
          "|r| > 0.4-0.5", "main", "frac_abs_r_gt_strong", rules.above_zero(),
          controls=CONTROLS),
    Claim("C17", "mirror units survive FDR correction (BH-significant mirror units per run)",
          "FDR counts", "main", "n_sig_mirror_bh", rules.above_zero(), controls=CONTROLS),
    Claim("C18", f"|r| ≈ 0.75-0.92 reliably reappears (share of seeds with max |r| >= "
          f"{REAPPEARS_ABS_R:g})", "reliably", "main", "reaches_abs_r", rules.at_least_share(
              RELIABLE_SHARE), controls=CONTROLS),
    Claim("C19", "anti-mirror units activate for self-execution but are suppressed for "
          "observation, or vice versa (share of anti-mirror units with |mode index| >= 0.5)",
          "functional complements", "main", "frac_anti_mode_selective", rules.above(0.5),
          controls=CONTROLS),
]

# Population and causal claims: each is judged on its own (against its within-run null) and
# against the two controls with the seed-paired contrasts of sweep.contrasts (rules.exceeds: the
# paired CI above 0 and the sign-flip p < ALPHA), as the C-claims that compare conditions are.
# The control's run of the same seed shares the data and, for the untrained network, the very
# initial weights; without an `untrained` condition the runs' own initial-weight twin stands in
# (report.verdicts).
_LATENT, _NECESSARY, _DECODE = ("action-centric latent", "causally necessary",
                                "help decode action in either mode")
_MIRROR_Z = "ablation_mirror_mean_forward_loss_z"
_MIRROR_HARM_Z = "ablation_mirror_mean_observe_accuracy_harm_z"
POPULATION_CLAIMS = [
    # (id, claim, paper's words, per-run metric judged on its own, metric compared with controls)
    ("P1", ("the latent is shared across modes: linear CKA of perform vs observe states above "
            "its re-paired null"), _LATENT, "cka_over_null", "cka"),
    ("P2", ("the action geometry is shared: RSA of the action centroids above its "
            "label-permutation null"), _LATENT, "rsa_actions_over_null", "rsa_actions"),
    ("P3", (f"units match one-to-one across modes: best-matched |r| > {ABS_THRESHOLD:g} "
            "fraction above its re-paired null"), _LATENT,
     "best_match_frac_abs_r_gt_over_null", "best_match_frac_abs_r_gt"),
    ("N1", ("silencing the top-k mirror units (mean clamp) raises the forward loss more than k "
            "random units (z vs random draws)"), _NECESSARY, _MIRROR_Z, _MIRROR_Z),
    ("N2", ("silencing the top-k mirror units (mean clamp) lowers observe accuracy more than k "
            "random units (-z vs random draws)"), _NECESSARY, _MIRROR_HARM_Z, _MIRROR_HARM_Z),
    *((f"D{i}", f"k mirror units decode action {a} -> {b} better than k random units (z)",
       _DECODE, f"subset_decode_{a}_to_{b}_mirror_z", f"subset_decode_{a}_to_{b}_mirror_z")
      for i, (a, b) in enumerate([("perform", "observe"), ("observe", "perform")], start=1)),
]
CONTROL_WORDS = {UNTRAINED: "the untrained network", SEPARATE_CORES: "separate cores"}


def population_claims() -> list[Claim]:
    """Each population / causal claim on its own, then against each control (seed-paired)."""
    out = []
    for cid, text, paper, own, compared in POPULATION_CLAIMS:
        out.append(Claim(cid, text, paper, "main", own, rules.above_zero()))
        for suffix, control in zip("us", CONTROLS):
            out.append(Claim(f"{cid}{suffix}", f"{cid} against {CONTROL_WORDS[control]}: "
                             f"{compared} exceeds the same seed's", paper, "main", compared,
                             rules.exceeds(), reference=control))
    return out


CLAIMS += population_claims()
THRESHOLD_METRICS |= {"best_match_frac_abs_r_gt", "best_match_frac_abs_r_gt_over_null"}
# Differences with the null means the population claims read: {derived: (value, null mean)}.
OVER_NULL = {"cka_over_null": ("cka", "cka_null_mean"),
             "rsa_actions_over_null": ("rsa_actions", "rsa_actions_null_mean"),
             "best_match_frac_abs_r_gt_over_null": ("best_match_frac_abs_r_gt",
                                                    "best_match_frac_abs_r_gt_null_mean")}


def derive_metrics(runs: pd.DataFrame, alpha: float = ALPHA,
                   units: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per-run metrics the claims need beyond summary.json (differences, significance flags).

    Returns a copy of `runs` with, where the inputs exist: decode_{a}_to_{b}_above_chance
    (accuracy - chance), decode_{a}_to_{b}_significant (1.0 if p < alpha), decode_min_p
    (1 / (B + 1) of the decoding null), frac_abs_r_gt_over_untrained,
    frac_congruent_over_chance, reaches_max_r (1.0 if max r >= NEAR_MAX_R), reaches_abs_r
    (1.0 if max |r| >= REAPPEARS_ABS_R); the population metrics over their null means
    (OVER_NULL), ablation_mirror_mean_observe_accuracy_harm_z; and from
    `units` (the aggregated units table, with run_id and r): n_units_near_max_r (units with
    r >= NEAR_MAX_R), frac_abs_r_gt_strong (|r| > STRONG_ABS_R) and frac_r_gt_weak
    (r > WEAK_R).
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
             "frac_congruent_over_chance": ("frac_congruent", "frac_congruent_chance"),
             **OVER_NULL}
    for name, (a, b) in pairs.items():
        if {a, b} <= set(out):
            out[name] = out[a] - out[b]
    accuracy_z = "ablation_mirror_mean_observe_accuracy_z"
    if accuracy_z in out:  # a harmful ablation lowers the accuracy: harm is -z
        out[_MIRROR_HARM_Z] = -out[accuracy_z]
    if "max_r" in out:
        out["reaches_max_r"] = (out["max_r"] >= NEAR_MAX_R).astype(float).where(
            out["max_r"].notna())
    if {"max_r", "min_r"} <= set(out):
        max_abs = np.fmax(out["max_r"].astype(float), -out["min_r"].astype(float))
        out["reaches_abs_r"] = (max_abs >= REAPPEARS_ABS_R).astype(float).where(
            max_abs.notna())
    if units is not None and {"run_id", "r"} <= set(units) and "run_id" in out and len(units):
        out = out.merge(unit_metrics(units), on="run_id", how="left")
    return out


def unit_metrics(units: pd.DataFrame) -> pd.DataFrame:
    """Per-run counts from the units table: run_id, n_units_near_max_r, frac_abs_r_gt_strong,
    frac_r_gt_weak (see ``derive_metrics``)."""
    r = units["r"].astype(float)
    frame = pd.DataFrame({"run_id": units["run_id"],
                          "n_units_near_max_r": (r >= NEAR_MAX_R).astype(float),
                          "frac_abs_r_gt_strong": (r.abs() > STRONG_ABS_R).astype(float),
                          "frac_r_gt_weak": (r > WEAK_R).astype(float)})
    agg = {c: "mean" for c in frame.columns if c != "run_id"}
    agg["n_units_near_max_r"] = "sum"
    return frame.groupby("run_id", sort=False).agg(agg).reset_index()


def needed_metrics(claims: list[Claim]) -> list[str]:
    """Every per-run metric the claims read, sorted."""
    extra = {c.significance_metric for c in claims} - {None}
    return sorted({c.metric for c in claims} | extra | {MIN_P_METRIC})
