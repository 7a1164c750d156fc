"""Cost of the population and causal analyses beside the default run's training.

Trains the default model once (timed), then times, on its held-out states, each stage that the
population/causal issue added: geometry with its nulls, the untrained network's geometry, the
unit-subset decoders, decoding up to relabelling (inside decoding_table, timed as the whole
table against the plain one), and the causal ablation; each is printed as seconds and as a share
of the training time. Ratios are what to compare on a shared machine.

Usage (from the repository root): python -m benchmarks.bench_population [--threads 1]
    [--epochs 20] [overrides ...]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from benchmarks.run import compose_run_config
from mirror_sweep.analysis import headline_metrics, population_geometry
from mirror_sweep.analysis.decoding import decoding_table, split_sequences
from mirror_sweep.analysis.unit_subsets import subset_decoding_table
from mirror_sweep.config import register_configs
from mirror_sweep.run.ablation import ablation_table, first_sequences
from mirror_sweep.run.env import make_effects, make_sequences
from mirror_sweep.run.experiment import RunSeeds, build_model
from mirror_sweep.run.train import collect_hidden, train


def timed(function, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    out = function(*args, **kwargs)
    return time.perf_counter() - start, out


def measure(overrides: list[str]) -> dict[str, float]:
    """Seconds of training and of each added stage on the config with these overrides."""
    cfg = compose_run_config(overrides)
    a = cfg.analysis
    seeds = RunSeeds.from_seed(cfg.seed)
    effects = make_effects(cfg.env, np.random.default_rng(seeds.env))
    rng = np.random.default_rng(seeds.data)
    train_set = make_sequences(cfg.data.n_train, cfg.data_pairing.train, effects, cfg.env, rng)
    test_set = make_sequences(cfg.data.n_test, cfg.data_pairing.test, effects, cfg.env, rng)
    model = build_model(cfg, seeds.init)
    untrained = collect_hidden(model, test_set)
    generator = torch.Generator().manual_seed(seeds.batches)
    times = {"training": timed(train, model, train_set, test_set, cfg.train, cfg.objective,
                               generator)[0]}
    perform, observe = (x.astype(np.float64) for x in collect_hidden(model, test_set))
    actions = {"perform": test_set.perform_actions, "observe": test_set.observe_actions}
    hidden = {"perform": perform, "observe": observe}
    geometry_args = {"n_actions": cfg.env.n_actions, "abs_threshold": a.abs_threshold,
                     "pos_threshold": a.pos_threshold, "n_components": a.geometry_components}
    times["geometry (with nulls)"] = timed(
        population_geometry, perform, observe, actions["perform"], actions["observe"],
        n_null=a.geometry_null_permutations, rng=np.random.default_rng(0), **geometry_args)[0]
    times["untrained geometry (no nulls)"] = timed(
        population_geometry, *(x.astype(np.float64) for x in untrained), actions["perform"],
        actions["observe"], n_null=0, rng=np.random.default_rng(0), **geometry_args)[0]
    split = split_sequences(len(test_set), a.decoding_test_fraction, np.random.default_rng(0))
    times["subset decoding"] = timed(
        subset_decoding_table, hidden, actions, split, fractions=a.unit_fractions,
        n_random=a.subset_decoding_random_draws, ridge_alpha=a.ridge_alpha,
        rng=np.random.default_rng(0))[0]
    times["decoding table (incl. relabelling)"] = timed(
        decoding_table, hidden, actions, seed=0, test_fraction=a.decoding_test_fraction,
        n_null=a.decoding_null_permutations, ridge_alpha=a.ridge_alpha)[0]
    r, _ = headline_metrics(perform, observe)
    means = {"perform": perform.mean(axis=(0, 1)), "observe": observe.mean(axis=(0, 1))}
    times["ablation"] = timed(
        ablation_table, model, first_sequences(test_set, cfg.ablation.sequences), r, means,
        fractions=a.unit_fractions, n_random=cfg.ablation.random_draws,
        rng=np.random.default_rng(0))[0]
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. train.epochs=5")
    args = parser.parse_args()
    register_configs()
    torch.set_num_threads(args.threads)
    with threadpool_limits(limits=args.threads):
        times = measure(args.overrides)
    training = times["training"]
    not_added = ("training", "decoding table (incl. relabelling)")
    added = sum(v for k, v in times.items() if k not in not_added)
    print(f"{'stage':<40}{'seconds':>10}{'/ training':>12}")
    for name, seconds in times.items():
        print(f"{name:<40}{seconds:>10.3f}{seconds / training:>12.1%}")
    print(f"{'added (geometry, subsets, ablation)':<40}{added:>10.3f}{added / training:>12.1%}")


if __name__ == "__main__":
    main()
