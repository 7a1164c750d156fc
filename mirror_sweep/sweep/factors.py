"""The factors a sweep varies besides the condition: their run-table columns and reference values.

A factor is a config key that a sweep varies *across* conditions (hidden size, K, the action
process, the cell type): its value gets a column of its own in every aggregated table and is left
out of the condition label, so `condition` stays the design (e.g. shared_bidirectional) and
summaries, contrasts and figures can group or plot by the factor. Every other override that varies
across a sweep stays part of the condition label (aggregate.condition_labels).
The reference value of a factor is the schema default (config.py, the one owner of defaults),
which is the paper's value where the paper gives one (H = 96, a GRU) and our choice where it
is silent (K = 4, i.i.d. actions).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mirror_sweep.config import RunConfig

if TYPE_CHECKING:  # pandas where a table is read: examining job folders (sweep/jobs.py) needs none
    import pandas as pd

# run-table column -> config key. Order is the order of the columns and of the grouping keys.
FACTORS: dict[str, str] = {
    "hidden_size": "model.hidden_size",
    "cell": "model.cell",
    "n_actions": "env.n_actions",
    "action_process": "env.action_process",
    "stay_prob": "env.stay_prob",
}

_FACTOR_PARTS = [(column, key.split(".")) for column, key in FACTORS.items()]  # (run by run)


def reference_values() -> dict[str, object]:
    """Each factor's reference value: the schema default, enums as their string value."""
    defaults = RunConfig()
    values = {}
    for column, key in FACTORS.items():
        value = defaults
        for part in key.split("."):
            value = getattr(value, part)
        values[column] = getattr(value, "value", value)
    return values


def factor_values(config: dict) -> dict[str, object]:
    """The factor columns of one job from its (nested, plain) config; None where absent."""
    values = {}
    for column, parts in _FACTOR_PARTS:
        value = config
        for part in parts:
            value = value.get(part) if isinstance(value, dict) else None
        values[column] = value
    return values


def varying_factors(runs: pd.DataFrame) -> list[str]:
    """The factor columns of `runs` that take more than one value (missing counts as a value)."""
    return [column for column in FACTORS
            if column in runs and runs[column].nunique(dropna=False) > 1]


def at_reference(runs: pd.DataFrame, keep: dict[str, object] | None = None
                 ) -> tuple[pd.DataFrame, str | None]:
    """The runs at one value of every varying factor, and a note saying which (None if all kept).

    keep: a value per factor (default: the reference value); a varying factor whose value is
    not in `keep` and has no run at its reference value is held at its most frequent value.
    """
    keep = {**reference_values(), **(keep or {})}
    chosen = {}
    for column in varying_factors(runs):
        values = runs[column]
        target = keep.get(column)
        if not (values == target).any():
            target = values.mode(dropna=True).iloc[0] if values.notna().any() else None
        chosen[column] = target
    if not chosen:
        return runs, None
    import pandas as pd

    mask = pd.Series(True, index=runs.index)
    for column, value in chosen.items():
        mask &= runs[column] == value
    note = "factors vary: only runs with " + ", ".join(f"{c} = {v}" for c, v in chosen.items())
    return runs[mask], note
