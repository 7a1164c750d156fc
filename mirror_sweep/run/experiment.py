"""One run of the experiment: data, model, training, hidden states, analyses (no files/Hydra)."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from mirror_sweep.config import RunConfig
from mirror_sweep.run.env import SequenceSet, make_effects, make_sequences
from mirror_sweep.run.threads import JobThreads, ThreadPolicy

# Each stage imports what it needs when it runs (torch ~1.2 s, scipy/pandas ~0.5 s), so a
# job's start-up before data generation is the interpreter, Hydra and numpy only.
if TYPE_CHECKING:
    import pandas as pd

    from mirror_sweep.run.model import MirrorGRU
    from mirror_sweep.run.train import EpochCallback


def import_stages() -> None:
    """Import every stage's modules now (torch, then scipy and pandas through the analyses).

    A sweep worker calls this once before it forks a child per job (app.execute_isolated), so
    every job starts with them loaded instead of importing the analysis stack (~0.5 s on a quiet
    machine) itself. No threads are started by these imports, so forking afterwards is safe.
    """
    import torch  # noqa: F401

    import mirror_sweep.analysis
    import mirror_sweep.run.ablation
    import mirror_sweep.run.train  # noqa: F401


@dataclass
class RunResult:
    """Everything a run produces, as tables and arrays ready to be written."""

    summary: dict[str, float | int]
    units: pd.DataFrame  # one row per hidden unit
    decoding: pd.DataFrame  # one row per (train mode, test mode)
    history: pd.DataFrame  # one row per epoch
    activations: dict[str, np.ndarray]  # test-set hidden states (N, T, H) and actions (N, T)
    top_null: pd.DataFrame  # unit, null_r: the permutation null (B rows) of the largest-r unit
    subset_decoding: pd.DataFrame  # one row per (train mode, test mode, unit selection, k)
    ablation: pd.DataFrame  # one row per (mode, metric, clamp, unit selection, k); empty if off


@dataclass(frozen=True)
class RunSeeds:
    """Independent streams derived from the run seed, so one stage never shifts another's draws."""

    env: int
    data: int
    init: int
    batches: int
    analysis: int
    ablation: int

    @classmethod
    def from_seed(cls, seed: int) -> RunSeeds:
        # spawn(6) keeps the first five children of spawn(5): adding a stream shifts no draw
        children = np.random.SeedSequence(seed).spawn(6)
        return cls(*(int(child.generate_state(1)[0]) for child in children))


def make_data(cfg: RunConfig, seeds: RunSeeds) -> tuple[SequenceSet, SequenceSet]:
    """The run's training and test sets (its effect vectors from seeds.env, sequences from
    seeds.data: the test set is drawn after the training set from the same stream)."""
    effects = make_effects(cfg.env, np.random.default_rng(seeds.env))
    data_rng = np.random.default_rng(seeds.data)
    train_set = make_sequences(cfg.data.n_train, cfg.data_pairing.train, effects, cfg.env, data_rng)
    test_set = make_sequences(cfg.data.n_test, cfg.data_pairing.test, effects, cfg.env, data_rng)
    return train_set, test_set


def build_model(cfg: RunConfig, init_seed: int) -> MirrorGRU:
    """A freshly initialised model whose weights depend only on init_seed."""
    import torch

    from mirror_sweep.run.model import MirrorGRU

    torch.manual_seed(init_seed)
    return MirrorGRU(cfg.env.n_actions, cfg.env.sensory_dim, cfg.model.hidden_size,
                     cfg.model.shared_core, cfg.model.cell.value)


def run_experiment(cfg: RunConfig, on_epoch: EpochCallback | None = None,
                   on_stage: Callable[[str], None] | None = None,
                   threads: ThreadPolicy | None = None) -> RunResult:
    """Train the model of `cfg` and analyse its held-out hidden states against the untrained net.

    threads: the job's thread policy (run/threads.py), applied once each stage has imported its
    libraries; None leaves the process's settings alone. The summary records what training used.
    """
    stage = on_stage or (lambda name: None)
    job_threads = JobThreads(threads)  # an adaptive policy starts reading the load here
    seeds = RunSeeds.from_seed(cfg.seed)
    seconds = {}  # per phase: its own compute; the lazy imports between phases are start-up

    stage("data")
    start = time.perf_counter()
    train_set, test_set = make_data(cfg, seeds)
    seconds["data"] = time.perf_counter() - start
    import torch  # after the data, which needs numpy only

    from mirror_sweep.run.objectives import loss_names
    from mirror_sweep.run.train import (
        collect_hidden,
        evaluate,
        history_columns,
        to_tensors,
        train,
    )

    start = time.perf_counter()
    job_threads.settle()
    model = build_model(cfg, seeds.init)
    seconds["data"] += time.perf_counter() - start

    stage("training")
    start = time.perf_counter()
    untrained_perform, untrained_observe = collect_hidden(model, test_set)
    generator = torch.Generator().manual_seed(seeds.batches)
    history = (train(model, train_set, test_set, cfg.train, cfg.objective, generator, on_epoch,
                     job_threads) if cfg.train.enabled else [])
    perform, observe = collect_hidden(model, test_set)
    final_test = evaluate(model, to_tensors(test_set), cfg.objective)
    seconds["train"] = time.perf_counter() - start

    stage("analysis")
    import pandas as pd

    from mirror_sweep.analysis import analyze_activations, control_metrics, headline_metrics

    job_threads.settle()  # again: scipy brings its own BLAS pool
    spare = job_threads.free_threads()
    with ThreadPoolExecutor(1) as background:
        # With a core to spare, the causal ablation (torch, which releases the GIL) runs beside
        # the analyses: it needs only the per-unit r of units.csv, computed for it alone here.
        beside = None
        if spare > 1 and cfg.ablation.enabled:
            stage("ablation (beside the analysis)")
            beside = background.submit(timed, run_ablation, cfg, model, test_set,
                                       headline_metrics(perform, observe)[0], perform, observe,
                                       seeds.ablation)
        start = time.perf_counter()
        result = analyze_activations(perform, observe, test_set.perform_actions,
                                     test_set.observe_actions, seed=seeds.analysis,
                                     n_threads=spare, **asdict(cfg.analysis))
        untrained_r, untrained_summary = control_metrics(
            untrained_perform, untrained_observe, abs_threshold=cfg.analysis.abs_threshold,
            pos_threshold=cfg.analysis.pos_threshold, anti_threshold=cfg.analysis.anti_threshold,
            max_lag=cfg.analysis.max_lag)
        untrained_summary.update(untrained_geometry(cfg, untrained_perform, untrained_observe,
                                                    test_set))
        seconds["analysis"] = time.perf_counter() - start
        if beside is None:
            stage("ablation")
            (ablation, ablation_scalars), seconds["ablation"] = timed(
                run_ablation, cfg, model, test_set, result.units["r"].to_numpy(), perform,
                observe, seeds.ablation, job_threads.free_threads())
        else:
            (ablation, ablation_scalars), seconds["ablation"] = beside.result()

    units = result.units.copy()
    units.insert(units.columns.get_loc("r") + 1, "r_untrained", untrained_r)
    summary = {
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "n_core_parameters": sum(p.numel() for core in model.cores() for p in core.parameters()),
        "analysis_seed": seeds.analysis,  # the seed of the analyses' random streams
        **training_scalars(history, final_test, loss_names(cfg.objective)),
        **result.summary,
        **{f"untrained_{key}": value for key, value in untrained_summary.items()},
        "time_data_s": seconds["data"],
        "time_train_s": seconds["train"],
        "time_analysis_s": seconds["analysis"],
        "time_ablation_s": seconds["ablation"],
        **ablation_scalars,
        **job_threads.summary(),
    }
    activations = {"perform_hidden": perform, "observe_hidden": observe,
                   "perform_actions": test_set.perform_actions,
                   "observe_actions": test_set.observe_actions}
    history_table = pd.DataFrame(history, columns=history_columns(cfg.objective))
    return RunResult(summary, units, result.decoding, history_table, activations,
                     top_unit_null(result.units["r"].to_numpy(), result.null),
                     result.subset_decoding, ablation)


def timed(function, *args):
    """function(*args) and its wall seconds."""
    start = time.perf_counter()
    return function(*args), time.perf_counter() - start


def top_unit_null(r: np.ndarray, null: np.ndarray) -> pd.DataFrame:
    """The permutation null of the unit with the largest r and the max-statistic null (per
    permutation, the max over units of the studentised |z|), for the figures (which never
    recompute an analysis). r: (H,); null: (B, H). Empty when every unit is constant."""
    import pandas as pd  # loaded by the analysis stage already

    from mirror_sweep.analysis.permutation import maxstat_threshold

    if np.isnan(r).all():
        return pd.DataFrame({"unit": pd.Series(dtype=int), "null_r": pd.Series(dtype=float),
                             "max_abs_z": pd.Series(dtype=float)})
    unit = int(np.nanargmax(r))
    _, max_abs_z = maxstat_threshold(null, 0.05)  # the max itself does not depend on alpha
    return pd.DataFrame({"unit": unit, "null_r": null[:, unit], "max_abs_z": max_abs_z})


def untrained_geometry(cfg: RunConfig, perform: np.ndarray, observe: np.ndarray, test_set
                       ) -> dict[str, float]:
    """The population measures of the untrained network (no nulls): the baseline of each."""
    from mirror_sweep.analysis import population_geometry

    a = cfg.analysis
    n_actions = int(max(test_set.perform_actions.max(), test_set.observe_actions.max())) + 1
    geometry, _ = population_geometry(
        perform.astype(np.float64), observe.astype(np.float64), test_set.perform_actions,
        test_set.observe_actions, n_actions=n_actions, abs_threshold=a.abs_threshold,
        pos_threshold=a.pos_threshold, n_components=a.geometry_components, n_null=0,
        rng=np.random.default_rng(0))
    return geometry


def run_ablation(cfg: RunConfig, model, test_set, r: np.ndarray, perform: np.ndarray,
                 observe: np.ndarray, seed: int, n_threads: int = 1
                 ) -> tuple[pd.DataFrame, dict[str, float]]:
    """The causal ablation table and its summary scalars (empty when ablation.enabled is off);
    its passes run in n_threads threads (the table does not depend on it)."""
    import pandas as pd

    from mirror_sweep.analysis.unit_subsets import subset_sizes
    from mirror_sweep.run.ablation import (
        ABLATION_COLUMNS,
        ablation_summary,
        ablation_table,
        first_sequences,
    )

    a, ablation = cfg.analysis, cfg.ablation
    if not ablation.enabled:
        return pd.DataFrame(columns=ABLATION_COLUMNS), {}
    means = {"perform": perform.mean(axis=(0, 1)), "observe": observe.mean(axis=(0, 1))}
    table = ablation_table(model, first_sequences(test_set, ablation.sequences), r, means,
                           fractions=a.unit_fractions, n_random=ablation.random_draws,
                           rng=np.random.default_rng(seed), n_threads=n_threads)
    k = subset_sizes([a.unit_fraction_summary], len(r))[0]
    return table, ablation_summary(table, k)


def training_scalars(history: list[dict[str, float]], final_test: dict[str, float],
                     losses: list[str]) -> dict[str, float]:
    """Last epoch's training losses (NaN when untrained) and the final held-out metrics."""
    last = history[-1] if history else {}
    scalars = {f"final_train_{name}_loss": float(last.get(f"train_{name}_loss", float("nan")))
               for name in losses}
    scalars.update({f"final_test_{key}": value for key, value in final_test.items()})
    return scalars
