"""The Hydra entry point: the only module that knows HydraConfig and output folders."""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from mirror_sweep.config import (
    CONFIG_DIR,
    ConfigError,
    RunConfig,
    config_hash,
    register_configs,
    to_run_config,
)
from mirror_sweep.run.threads import torch_threads
from mirror_sweep.sweep import results

log = logging.getLogger("mirror_sweep")
register_configs()
def execute(cfg: RunConfig, folder: Path, digest: str, threads: int) -> dict:
    """Run the experiment with `threads` threads and write its folder; returns the summary."""
    from mirror_sweep.run.experiment import run_experiment  # imports torch etc. stage by stage

    results.write_status(folder, "running", pid=os.getpid(), config_hash=digest)
    epochs = cfg.train.epochs

    def log_epoch(row: dict) -> None:
        if cfg.train.progress:
            log.info("epoch %d/%d  forward loss %.4f  inverse loss %.4f  test observe acc %.3f",
                     row["epoch"], epochs, row["train_forward_loss"], row["train_inverse_loss"],
                     row["test_observe_accuracy"])

    result = run_experiment(cfg, on_epoch=log_epoch, on_stage=lambda s: log.info("%s ...", s),
                            threads=threads)
    start = time.perf_counter()
    summary = {"seed": cfg.seed, **result.summary, "torch_threads": threads}
    tables = {results.UNITS_FILE: result.units, results.DECODING_FILE: result.decoding,
              results.HISTORY_FILE: result.history}
    activations = result.activations if cfg.output.save_activations else None
    results.write_run(folder, summary, tables, activations, digest)
    log.info("wrote the run in %.2f s", time.perf_counter() - start)
    return summary


def report(summary: dict, cfg: RunConfig, folder: Path) -> None:
    """Print the headline metrics beside the untrained network's, and where the files are."""
    a = cfg.analysis
    cores = "shared core" if cfg.model.shared_core else "separate cores"
    epochs = cfg.train.epochs if cfg.train.enabled else "no (untrained)"
    rows = [
        ("held-out observe accuracy", f"{summary['final_test_observe_accuracy']:.3f}"),
        (f"units with |r| > {a.abs_threshold}", (f"{summary['frac_abs_r_gt']:.1%}   (untrained "
                                                  f"net: {summary['untrained_frac_abs_r_gt']:.1%})")),
        (f"units with r > {a.pos_threshold}", (f"{summary['frac_r_gt']:.1%}   (untrained net: "
                                                f"{summary['untrained_frac_r_gt']:.1%})")),
        ("max r / min r", f"{summary['max_r']:.3f} / {summary['min_r']:.3f}"),
        (f"time-centred |r| > {a.abs_threshold}", f"{summary['time_centred_frac_abs_r_gt']:.1%}"),
        ("significant mirror units (BH)", f"{summary['n_sig_mirror_bh']}"),
        ("time", (f"train {summary['time_train_s']:.1f} s, "
                  f"analysis {summary['time_analysis_s']:.1f} s")),
        ("files", f"{folder}/(summary.json, units.csv, decoding.csv, history.csv)"),
    ]
    header = f"mirror-sweep run: seed={cfg.seed} H={cfg.model.hidden_size} {cores}, {epochs} epochs"
    print("\n".join([header, *(f"  {label:<31}{value}" for label, value in rows)]), flush=True)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def main(cfg: DictConfig) -> dict | None:
    """Run one job. In a sweep a failing job is recorded as failed and the sweep goes on."""
    hydra_cfg = HydraConfig.get()
    folder = Path(hydra_cfg.runtime.output_dir)
    in_sweep = hydra_cfg.mode == RunMode.MULTIRUN
    try:
        run_cfg = to_run_config(cfg)
    except ConfigError as error:
        log.error("invalid config: %s", error)
        results.mark_failed(folder, error)
        if in_sweep:
            return None
        sys.exit(2)
    digest = config_hash(cfg)
    if in_sweep and run_cfg.output.resume and results.is_complete(folder, digest):
        log.info("job %s already complete with this config: skipped", hydra_cfg.job.num)
        return results.read_summary(folder / results.SUMMARY_FILE)
    try:
        summary = execute(run_cfg, folder, digest, torch_threads(run_cfg.train.torch_threads,
                                                                 hydra_cfg.launcher))
    except Exception as error:
        results.mark_failed(folder, error)
        if in_sweep:
            log.error("job %s failed (recorded in %s): %s", hydra_cfg.job.num, folder, error)
            return None
        from mirror_sweep.run.train import NonFiniteLossError

        # expected failure modes (non-finite training, invalid data): a message, not a traceback
        if isinstance(error, (NonFiniteLossError, ValueError)):
            log.error("run failed, nothing but status.json written in %s: %s", folder, error)
            sys.exit(1)
        raise
    report(summary, run_cfg, folder)
    return summary
