"""Time analyze_activations at the paper's sizes against a naive per-unit scipy permutation test.

The naive reference runs ``scipy.stats.permutation_test`` once per unit with the same null
(re-pairing whole sequences): the single "sample" is the vector of sequence indices, which
``permutation_type="pairings"`` permutes, and the statistic is the pooled Pearson r of perform
against the re-paired observe activations (vectorized over resamples, as scipy allows). It runs on
``naive_units`` units and is extrapolated linearly to all H units.

Usage: python benchmarks/bench_analysis.py [--naive-units 8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import scipy.stats

from mirror_sweep.analysis import analyze_activations


def synthetic_run(n_sequences, n_timesteps, n_units, n_actions, seed):
    """Activations with a partly shared, action-coded latent; (N, T, H) float32 x2, (N, T) x2."""
    rng = np.random.default_rng(seed)
    actions = rng.integers(0, n_actions, (n_sequences, n_timesteps))
    shared = rng.standard_normal((n_sequences, n_timesteps, n_units))
    shared += rng.standard_normal((n_actions, n_units))[actions]
    weights = rng.uniform(0, 2, n_units)
    shape = (n_sequences, n_timesteps, n_units)
    perform = (weights * shared + rng.standard_normal(shape)).astype(np.float32)
    observe = (weights * shared + rng.standard_normal(shape)).astype(np.float32)
    return perform, observe, actions, actions.copy()


def naive_unit_pvalue(perform_unit, observe_unit, n_permutations, seed) -> float:
    """One unit's re-pairing permutation p-value with scipy.stats.permutation_test.

    Args:
        perform_unit, observe_unit: (N, T) activations of one unit.
    """
    p_flat = perform_unit.ravel() - perform_unit.mean()
    p_norm = np.sqrt(p_flat @ p_flat)

    def pooled_r(order, axis=-1):
        o = observe_unit[order.astype(np.int64)]                      # (..., N, T)
        o = o.reshape(*o.shape[:-2], -1)
        o = o - o.mean(axis=-1, keepdims=True)
        return (o @ p_flat) / (np.sqrt((o * o).sum(axis=-1)) * p_norm)

    res = scipy.stats.permutation_test(
        (np.arange(perform_unit.shape[0]),), pooled_r, permutation_type="pairings",
        vectorized=True, n_resamples=n_permutations, alternative="two-sided",
        random_state=np.random.default_rng(seed))
    return float(res.pvalue)


def time_analysis(n_sequences=300, n_timesteps=12, n_units=96, n_actions=4,
                  n_permutations=10_000, naive_units=8, repeats=3, seed=0) -> dict:
    """Wall-clock seconds of analyze_activations (best of ``repeats``) and of the naive loop.

    Returns:
        dict with the sizes, analysis_s (wall), analysis_cpu_s (process CPU time, all threads;
        less sensitive to a busy machine), naive_measured_s (on naive_units units),
        naive_extrapolated_s (times n_units / naive_units) and speedup
        (naive_extrapolated_s / analysis_s).
    """
    perform, observe, a_perform, a_observe = synthetic_run(
        n_sequences, n_timesteps, n_units, n_actions, seed)
    times, cpu_times = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        analyze_activations(perform, observe, a_perform, a_observe, seed=seed,
                            n_permutations=n_permutations)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - start_cpu)
    start = time.perf_counter()
    for unit in range(naive_units):
        naive_unit_pvalue(perform[..., unit].astype(np.float64),
                          observe[..., unit].astype(np.float64), n_permutations, seed + unit)
    naive = time.perf_counter() - start
    extrapolated = naive * n_units / naive_units
    return {"n_sequences": n_sequences, "n_timesteps": n_timesteps, "n_units": n_units,
            "n_actions": n_actions, "n_permutations": n_permutations,
            "analysis_s": min(times), "analysis_cpu_s": min(cpu_times),
            "naive_units": naive_units, "naive_measured_s": naive,
            "naive_extrapolated_s": extrapolated, "speedup": extrapolated / min(times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--naive-units", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--permutations", type=int, default=10_000)
    args = parser.parse_args()
    result = time_analysis(naive_units=args.naive_units, repeats=args.repeats,
                           n_permutations=args.permutations)
    print(f"analyze_activations (N={result['n_sequences']}, T={result['n_timesteps']}, "
          f"H={result['n_units']}, K={result['n_actions']}, B={result['n_permutations']}): "
          f"{result['analysis_s']:.2f} s wall, {result['analysis_cpu_s']:.2f} s CPU (all stages)")
    print(f"naive scipy.stats.permutation_test: {result['naive_measured_s']:.2f} s on "
          f"{result['naive_units']} units -> {result['naive_extrapolated_s']:.1f} s for "
          f"{result['n_units']} units (permutation test only)")
    print(f"speedup: {result['speedup']:.0f}x")


if __name__ == "__main__":
    main()
