"""Input checks shared by the analysis stages: shapes, dtypes, finiteness, parameter ranges.

Every check raises ``ValueError`` whose message starts with the offending argument's name, so the
pipeline can report which array or setting was bad.
"""

from __future__ import annotations

import numpy as np

from mirror_sweep.validation import RULES_BY_KEY, SettingError, check


def check_activations(perform, observe) -> tuple[np.ndarray, np.ndarray]:
    """Validate the two activation arrays and return them as float64.

    Args:
        perform: (N, T, H) real array, hidden activations in perform mode.
        observe: (N, T, H) real array, hidden activations in observe mode, same shape.

    Returns:
        (perform, observe), each (N, T, H) float64.
    """
    arrays = []
    for name, x in (("perform", perform), ("observe", observe)):
        x = np.asarray(x)
        if x.ndim != 3:
            raise ValueError(f"{name} must be (N, T, H); got shape {x.shape}")
        if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
            raise ValueError(f"{name} must be a real numeric array; got dtype {x.dtype}")
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{name} contains non-finite values (nan or inf)")
        arrays.append(x.astype(np.float64, copy=False))
    if arrays[0].shape != arrays[1].shape:
        raise ValueError(
            f"observe must have the same shape as perform; got {arrays[1].shape} vs "
            f"{arrays[0].shape}"
        )
    if arrays[0].shape[0] < 2:
        raise ValueError(f"perform needs at least 2 sequences; got shape {arrays[0].shape}")
    return arrays[0], arrays[1]


def check_actions(actions, name: str, shape: tuple[int, int]) -> np.ndarray:
    """Validate an action array and return it as int64.

    Args:
        actions: (N, T) array of non-negative integer action indices (an integral float array is
            accepted and converted).
        name: the argument's name, used in error messages.
        shape: the expected (N, T).

    Returns:
        (N, T) int64.
    """
    a = np.asarray(actions)
    if a.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}; got {a.shape}")
    if np.issubdtype(a.dtype, np.floating):
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name} contains non-finite values (nan or inf)")
        if not np.all(a == np.round(a)):
            raise ValueError(f"{name} must hold integer action indices")
    elif not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{name} must be an integer array; got dtype {a.dtype}")
    if a.size and a.min() < 0:
        raise ValueError(f"{name} must hold non-negative action indices; got min {a.min()}")
    return a.astype(np.int64)


def check_parameters(*, n_timesteps: int, **params) -> None:
    """Check the scalar settings of ``analyze_activations`` (names as in its signature) with the
    rules of ``mirror_sweep.validation`` (the table the app validates configs with).

    Args:
        n_timesteps: T of the activations, bounding ``max_lag``.
        **params: any of seed, n_permutations, alpha, max_lag, decoding_test_fraction,
            decoding_null_permutations, tuning_null_permutations, ridge_alpha, abs_threshold, pos_threshold,
            anti_threshold, geometry_components, geometry_null_permutations,
            subset_decoding_random_draws, unit_fractions, unit_fraction_summary.

    Raises:
        ValueError: starting with the argument's name, then its config key and the rule.
    """
    keys = {"seed": "seed", **{key.rsplit(".", 1)[1]: key for key in RULES_BY_KEY
                               if key.startswith("analysis.")}}
    for name in params:
        if name not in keys:
            raise TypeError(f"check_parameters: unknown setting {name!r}")
    for name, value in params.items():
        values = {keys[name]: value}
        if name == "max_lag":
            values["env.seq_len"] = n_timesteps
        if name == "n_permutations" and "alpha" in params:
            values["analysis.alpha"] = params["alpha"]
        try:
            check(values)
        except SettingError as error:
            raise ValueError(f"{name} has an invalid value: {error}") from None
