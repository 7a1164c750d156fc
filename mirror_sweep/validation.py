"""THE table of value rules for a run's settings, used by the app (config.validate, before any
work) and by the analysis functions (analysis.validation.check_parameters), so both accept and
refuse exactly the same values with the same message, naming the full config key.

Also: unknown keys (with the nearest valid key), a memory estimate that refuses configs that
cannot fit, and the launcher settings checked when a sweep starts. No torch, no Hydra.
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any


class SettingError(ValueError):
    """A setting breaks a rule; the message starts with the full key."""


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) or type(v).__name__.startswith("int")


def _is_number(v: Any) -> bool:
    try:
        return not isinstance(v, bool) and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def _int_at_least(low: int) -> Callable[[Any], bool]:
    return lambda v: _is_int(v) and v >= low


def _between(low: float, high: float, low_open: bool = False, high_open: bool = False
             ) -> Callable[[Any], bool]:
    def check(v: Any) -> bool:
        if not _is_number(v):
            return False
        above = v > low if low_open else v >= low
        below = v < high if high_open else v <= high
        return above and below
    return check


def _positive(v: Any) -> bool:
    return _is_number(v) and v > 0


def _non_negative(v: Any) -> bool:
    return _is_number(v) and v >= 0


@dataclass(frozen=True)
class Rule:
    key: str  # the full config key; the analysis functions use its last part as argument name
    check: Callable[[Any], bool]
    text: str


RULES: tuple[Rule, ...] = (
    Rule("seed", _int_at_least(0), "must be an integer >= 0"),
    Rule("env.n_actions", _int_at_least(2), "must be an integer >= 2 (distinguishable actions)"),
    Rule("env.sensory_dim", _int_at_least(1), "must be a positive integer"),
    Rule("env.seq_len", _int_at_least(2), "must be an integer >= 2 (lags need two steps)"),
    Rule("env.decay", _between(0, 1, high_open=True), "must lie in [0, 1) (stable dynamics)"),
    Rule("env.effect_scale", _non_negative, "must be a finite number >= 0"),
    Rule("env.noise_std", _non_negative, "must be a finite number >= 0"),
    Rule("env.stay_prob", _between(0, 1), "must lie in [0, 1]"),
    Rule("model.hidden_size", _int_at_least(1), "must be a positive integer"),
    Rule("objective.forward_weight", _non_negative, "must be a finite number >= 0"),
    Rule("objective.inverse_weight", _non_negative, "must be a finite number >= 0"),
    Rule("data.n_train", _int_at_least(1), "must be a positive integer"),
    Rule("data.n_test", _int_at_least(4), "must be an integer >= 4 (decoding splits it)"),
    Rule("train.epochs", _int_at_least(0), "must be an integer >= 0"),
    Rule("train.batch_size", _int_at_least(1), "must be a positive integer"),
    Rule("train.lr", _positive, "must be a positive finite number"),
    Rule("train.torch_threads", lambda v: v is None or _int_at_least(1)(v),
         "must be a positive integer or null (auto)"),
    Rule("analysis.abs_threshold", _between(0, 1), "must lie in [0, 1]"),
    Rule("analysis.pos_threshold", _between(0, 1), "must lie in [0, 1]"),
    Rule("analysis.anti_threshold", _between(-1, 0), "must lie in [-1, 0]"),
    Rule("analysis.n_permutations", _int_at_least(1), "must be a positive integer"),
    Rule("analysis.alpha", _between(0, 1, True, True), "must lie strictly between 0 and 1"),
    Rule("analysis.max_lag", _int_at_least(0), "must be an integer >= 0"),
    Rule("analysis.decoding_test_fraction", _between(0, 1, True, True),
         "must lie strictly between 0 and 1"),
    Rule("analysis.decoding_null_permutations", _int_at_least(1), "must be a positive integer"),
    Rule("analysis.tuning_null_permutations", _int_at_least(1), "must be a positive integer"),
    Rule("analysis.ridge_alpha", _positive, "must be a positive finite number"),
    Rule("analysis.geometry_components", _int_at_least(1), "must be a positive integer"),
    Rule("analysis.geometry_null_permutations", _int_at_least(0), "must be an integer >= 0"),
    Rule("analysis.unit_fractions",
         lambda v: len(v) >= 1 and all(_between(0, 1, low_open=True)(f) for f in v),
         "must be a non-empty list of fractions in (0, 1]"),
    Rule("analysis.unit_fraction_summary", _between(0, 1, low_open=True), "must lie in (0, 1]"),
    # the random-units null needs a spread
    Rule("analysis.subset_decoding_random_draws", _int_at_least(2), "must be an integer >= 2"),
    Rule("ablation.sequences", _int_at_least(1), "must be a positive integer"),
    Rule("ablation.random_draws", _int_at_least(2), "must be an integer >= 2"),
)
RULES_BY_KEY = {rule.key: rule for rule in RULES}


@dataclass(frozen=True)
class CrossRule:
    key: str  # the key named in the message
    needs: tuple[str, ...]  # every key the rule reads
    check: Callable[..., bool]  # called with the values of `needs`, in order
    text: Callable[..., str]


CROSS_RULES: tuple[CrossRule, ...] = (
    CrossRule("analysis.max_lag", ("analysis.max_lag", "env.seq_len"),
              lambda lag, t: lag < t, lambda lag, t: f"must be below env.seq_len = {t}"),
    # With B permutations the smallest max-stat p-value is 1/(B+1): below B = 1/alpha no unit
    # can be family-wise significant, and a threshold from so few draws is not a test.
    CrossRule("analysis.n_permutations", ("analysis.n_permutations", "analysis.alpha"),
              lambda b, alpha: b * alpha >= 1,
              lambda b, alpha: f"must be >= 1/analysis.alpha = {math.ceil(1 / alpha)} for a "
                               "max-stat p-value to reach alpha"),
    CrossRule("analysis.unit_fraction_summary",
              ("analysis.unit_fraction_summary", "analysis.unit_fractions"),
              lambda k, ks: k in list(ks),
              lambda k, ks: f"must be one of analysis.unit_fractions = {list(ks)}"),
    CrossRule("analysis.decoding_test_fraction",
              ("analysis.decoding_test_fraction", "data.n_test"),
              lambda f, n: 1 <= round(n * f) < n,
              lambda f, n: f"must hold out between 1 and {n - 1} of data.n_test sequences"),
)


def check(values: Mapping[str, Any]) -> None:
    """Apply every rule whose keys are all in `values` ({full key: value}); raise SettingError
    naming the first key that breaks one."""
    for rule in RULES:
        if rule.key in values and not _safe(rule.check, values[rule.key]):
            raise SettingError(f"{rule.key} = {values[rule.key]!r}: {rule.text}")
    for rule in CROSS_RULES:
        if all(key in values for key in rule.needs):
            args = [values[key] for key in rule.needs]
            if not _safe(rule.check, *args):
                raise SettingError(f"{rule.key} = {values[rule.key]!r}: {rule.text(*args)}")


def _safe(function: Callable[..., bool], *args: Any) -> bool:
    try:
        return bool(function(*args))
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return False


def unknown_keys(given: Iterable[str], valid: Iterable[str]) -> None:
    """Raise SettingError naming the first key of `given` not in `valid`, and the nearest valid."""
    valid = list(valid)
    for key in given:
        if key not in valid:
            near = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
            hint = f" (did you mean '{near[0]}'?)" if near else ""
            raise SettingError(f"{key}: unknown config key{hint}")


# ---- memory: a rough upper bound of a run's peak, so that impossible sizes fail at once ----

def memory_estimate(v: Mapping[str, Any]) -> dict[str, float]:
    """Bytes that each large allocation of a run needs, by the key that drives it."""
    h, t = float(v["model.hidden_size"]), float(v["env.seq_len"])
    n_train, n_test = float(v["data.n_train"]), float(v["data.n_test"])
    io = float(v["env.sensory_dim"]) + float(v["env.n_actions"])
    return {
        # GRU weights, gradients and Adam moments (two cores at most), float32
        "model.hidden_size": 2 * 4 * 4 * 3 * h * (h + io + h) + 8 * 12 * n_test * t * h,
        "data.n_train": 4 * 4 * n_train * t * io,
        "data.n_test": 4 * 4 * n_test * t * io,
        # the permutation null: B x H float64 and the B x N permutation indices
        "analysis.n_permutations": 8 * float(v["analysis.n_permutations"]) * (h + n_test),
        "analysis.decoding_null_permutations":
            8 * float(v["analysis.decoding_null_permutations"]) * n_test * t,
    }


def available_memory() -> float:
    """Bytes this machine could give a run (MemAvailable, else physical memory)."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError):
        return math.inf


def check_memory(values: Mapping[str, Any], available: float | None = None) -> None:
    """Refuse a config whose estimated memory exceeds what is available, naming the key that
    needs the most and the estimate."""
    parts = memory_estimate(values)
    total = sum(parts.values())
    available = available_memory() if available is None else available
    if total > available:
        key = max(parts, key=parts.get)
        raise SettingError(f"{key} = {values[key]!r}: the run would need about "
                           f"{_size(total)} of memory ({_size(parts[key])} for this key alone); "
                           f"{_size(available)} is available")


def _size(n: float) -> str:
    for unit in ["B", "KB", "MB", "GB", "TB", "PB"]:
        if n < 1024 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PB"


def check_launcher(launcher: Mapping[str, Any]) -> None:
    """The launcher settings a sweep needs (joblib's n_jobs, submitit's cpus_per_task)."""
    n_jobs = launcher.get("n_jobs")
    if n_jobs is not None and not (_is_int(n_jobs) and n_jobs != 0):
        raise SettingError(f"hydra.launcher.n_jobs = {n_jobs!r}: must be a positive number of "
                           "parallel jobs, or -1 for one per core")
    cpus = launcher.get("cpus_per_task")
    if cpus is not None and not _int_at_least(1)(cpus):
        raise SettingError(f"hydra.launcher.cpus_per_task = {cpus!r}: must be a positive integer")
