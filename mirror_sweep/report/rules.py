"""The claims' decision rules as predicate objects: each evaluates and prints itself.

A rule is built from comparisons of terms (a statistic of the claim's condition, of its
reference condition, of a companion metric, or a constant). `Rule.holds` evaluates those
comparisons and `Rule.text` prints the very same ones, so a rule's wording cannot drift from its
logic. The constructors below (`overlaps`, `reduces`, ...) are the rules the claims use.

A rule sees `rows`: {source: stats row} where a stats row is a dict with mean, ci_low, ci_high
(one row of summaries.robustness) and the sources are THIS (the claim's condition and metric),
REFERENCE (the reference condition, same metric), SIGNIFICANT (the claim's condition, the
share of seeds whose decoding permutation p < ALPHA) and PAIRED (the seed-paired contrast of
THIS minus REFERENCE from sweep.contrasts: mean = the mean per-seed difference, ci_low, ci_high
its CI, p its exact sign-flip p). Every comparison between conditions (reduces, removes,
exceeds) reads PAIRED: conditions share the data and the test set of a seed, so unpaired CIs
waste the pairing.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

ALPHA = 0.05  # per-run decoding p-value level
MIN_SIGNIFICANT_SHARE = 0.8  # share of seeds whose decoding p < ALPHA, for "above chance"
THIS, REFERENCE, SIGNIFICANT, PAIRED = "this", "reference", "significant", "paired"
_FIELDS = {"mean": "mean", "ci_low": "95% CI lower bound", "ci_high": "95% CI upper bound",
           "p": "sign-flip p"}
_SOURCES = {THIS: "this condition's", REFERENCE: "the reference's",
            PAIRED: "the seed-paired difference's (this - reference)"}
_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


@dataclass(frozen=True)
class Stat:
    """One statistic (mean, ci_low or ci_high) of one source row."""

    source: str
    field: str

    def value(self, rows: dict[str, dict]) -> float:
        return rows[self.source][self.field]

    def text(self) -> str:
        if self.source == SIGNIFICANT:
            return f"the share of seeds with per-run permutation p < {ALPHA:g}"
        return f"{_SOURCES[self.source]} {_FIELDS[self.field]}"


@dataclass(frozen=True)
class Const:
    """A number, or a number times a statistic (`of`)."""

    number: float
    of: Stat | None = None

    def value(self, rows: dict[str, dict]) -> float:
        return self.number if self.of is None else self.number * self.of.value(rows)

    def text(self) -> str:
        return f"{self.number:g}" + (f" x {self.of.text()}" if self.of is not None else "")


@dataclass(frozen=True)
class Compare:
    """left OP right, for OP in <, <=, >, >=."""

    left: Stat
    op: str
    right: Stat | Const

    def holds(self, rows: dict[str, dict]) -> bool:
        return bool(_OPS[self.op](self.left.value(rows), self.right.value(rows)))

    def text(self) -> str:
        return f"{self.left.text()} {self.op} {self.right.text()}"


@dataclass(frozen=True)
class Rule:
    """A named conjunction of comparisons; it holds when every comparison holds."""

    name: str
    parts: tuple[Compare, ...]

    def holds(self, rows: dict[str, dict]) -> bool:
        return all(part.holds(rows) for part in self.parts)

    def text(self) -> str:
        return f"holds if {' and '.join(part.text() for part in self.parts)} ({self.name})"

    def sources(self) -> set[str]:
        """The rows the rule reads (THIS always)."""
        terms = [t for p in self.parts for t in (p.left, p.right)]
        terms += [t.of for t in terms if isinstance(t, Const)]
        return {THIS} | {t.source for t in terms if isinstance(t, Stat)}


LOW, HIGH, MEAN = Stat(THIS, "ci_low"), Stat(THIS, "ci_high"), Stat(THIS, "mean")
REF_LOW, REF_HIGH, REF_MEAN = (Stat(REFERENCE, "ci_low"), Stat(REFERENCE, "ci_high"),
                               Stat(REFERENCE, "mean"))


def overlaps(low: float, high: float) -> Rule:
    """The CI overlaps the paper's range [low, high] (the paper's number is consistent)."""
    return Rule(f"overlaps [{low:g}, {high:g}]",
                (Compare(LOW, "<=", Const(high)), Compare(HIGH, ">=", Const(low))))


def above_zero() -> Rule:
    return Rule("above zero", (Compare(LOW, ">", Const(0)),))


def at_most(high: float) -> Rule:
    return Rule(f"at most {high:g}", (Compare(HIGH, "<=", Const(high)),))


def decodes() -> Rule:
    """mean(accuracy - chance) above zero and most seeds' decoding significant."""
    return Rule("decodes", (Compare(LOW, ">", Const(0)),
                            Compare(Stat(SIGNIFICANT, "mean"), ">=",
                                    Const(MIN_SIGNIFICANT_SHARE))))


def fails_to_decode() -> Rule:
    """mean(accuracy - chance) reaches zero: the decoding fails."""
    return Rule("decoding fails", (Compare(LOW, "<=", Const(0)),))


PAIRED_LOW, PAIRED_HIGH, PAIRED_P = (Stat(PAIRED, "ci_low"), Stat(PAIRED, "ci_high"),
                                     Stat(PAIRED, "p"))


def reduces() -> Rule:
    """The seed-paired difference (this - reference) is below 0: CI and sign-flip p."""
    return Rule("reduces", (Compare(PAIRED_HIGH, "<", Const(0)),
                            Compare(PAIRED_P, "<", Const(ALPHA))))


def removes() -> Rule:
    """Reduces (paired), and to at most half the reference's mean."""
    return Rule("removes", (Compare(PAIRED_HIGH, "<", Const(0)),
                            Compare(PAIRED_P, "<", Const(ALPHA)),
                            Compare(MEAN, "<=", Const(0.5, REF_MEAN))))


def exceeds() -> Rule:
    """The seed-paired difference (this - reference) is above 0: CI and sign-flip p."""
    return Rule("exceeds", (Compare(PAIRED_LOW, ">", Const(0)),
                            Compare(PAIRED_P, "<", Const(ALPHA))))


def at_least_share(share: float) -> Rule:
    """The across-seed mean of a per-run 0/1 flag (a share of seeds) is at least `share`."""
    return Rule(f"in at least {share:.0%} of seeds", (Compare(MEAN, ">=", Const(share)),))


def some_seed() -> Rule:
    """At least one seed has the per-run 0/1 flag (the share of seeds is above 0)."""
    return Rule("in at least one seed", (Compare(MEAN, ">", Const(0)),))


def above(value: float) -> Rule:
    """The CI lower bound is above `value`."""
    return Rule(f"above {value:g}", (Compare(LOW, ">", Const(value)),))
