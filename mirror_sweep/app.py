"""The Hydra entry point: the only module that knows HydraConfig and output folders.

One job, in order: take the job folder's lock (another live process holding it: leave the
folder alone); decide with `results.run_state` whether the folder already holds this job's
result (resume) or a result of another config or code (moved aside, never overwritten); validate;
record `running` with provenance; run; write the files and `complete` last. Under the joblib
launcher the run itself happens in a forked child, so a job killed by the OS (SIGKILL, OOM,
segfault) is recorded as failed and the worker goes on with the other jobs.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
import time
from pathlib import Path

import hydra
import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from mirror_sweep import errors
from mirror_sweep.config import (
    CONFIG_DIR,
    ConfigError,
    Resume,
    RunConfig,
    keeps_activations,
    register_configs,
    to_run_config,
)
from mirror_sweep.run.threads import ThreadPolicy, thread_policy
from mirror_sweep.sweep import provenance, results
from mirror_sweep.sweep.lock import JobLock, LockHeld

log = logging.getLogger("mirror_sweep")
errors.guard_stdout()  # `mirror-sweep ... | head` never stops a run (nor its log handlers)
register_configs()
# Sweep job folders are named by results.job_dirname (conf/config.yaml: hydra.sweep.subdir).
OmegaConf.register_new_resolver(
    "job_dirname", lambda overrides, num, sweep_dir: results.job_dirname(overrides, num, sweep_dir),
    replace=True)


class JobKilled(RuntimeError):
    """The process running the job died from a signal (SIGKILL, the OOM killer, a segfault)."""


def execute(cfg: RunConfig, folder: Path, digest: str, threads: ThreadPolicy,
            record: dict | None = None) -> dict:
    """Run the experiment under a thread policy and write its folder; returns the summary."""
    from mirror_sweep.run.experiment import run_experiment  # imports torch etc. stage by stage

    record = {**(record or {}), "started": time.time()}
    results.write_status(folder, "running", pid=os.getpid(), config_hash=digest, **record)
    epochs = cfg.train.epochs

    def log_epoch(row: dict) -> None:
        if cfg.train.progress:
            log.info("epoch %d/%d  forward loss %.4f  inverse loss %.4f  test observe acc %.3f",
                     row["epoch"], epochs, row["train_forward_loss"], row["train_inverse_loss"],
                     row["test_observe_accuracy"])

    def on_stage(name: str) -> None:
        freeze_imported_modules()  # each stage starts after the previous one's imports
        log.info("%s ...", name)

    result = run_experiment(cfg, on_epoch=log_epoch, on_stage=on_stage, threads=threads)
    start = time.perf_counter()
    summary = {"seed": cfg.seed, **result.summary,
               "provenance": {**provenance.environment(), "started": record["started"],
                              "ended": time.time()}}
    tables = {results.UNITS_FILE: result.units, results.DECODING_FILE: result.decoding,
              results.HISTORY_FILE: result.history, results.NULL_FILE: result.top_null,
              results.SUBSET_DECODING_FILE: result.subset_decoding,
              results.ABLATION_FILE: result.ablation}
    activations = result.activations if keeps_activations(cfg.output.save_activations,
                                                          cfg.seed) else None
    write_hydra_record(folder)  # this job's config, even if another process rewrote .hydra/
    results.write_run(folder, summary, tables, activations, digest, **record,
                      ended=summary["provenance"]["ended"])
    log.info("wrote the run in %.2f s", time.perf_counter() - start)
    return summary


_frozen_modules = 0  # len(sys.modules) at the last gc.freeze


def freeze_imported_modules() -> None:
    """gc.freeze() when modules were imported since the last call: torch, scipy and pandas
    leave ~10^6 objects that every full collection during a run, and the collections at exit,
    would walk again (~0.3 s + ~0.5 s per run). Frozen objects are still freed by reference
    counting; once per new set of modules, so a process running many jobs freezes no job's data.
    """
    global _frozen_modules
    if len(sys.modules) > _frozen_modules:
        gc.freeze()
        _frozen_modules = len(sys.modules)


def execute_isolated(cfg: RunConfig, folder: Path, digest: str, threads: ThreadPolicy,
                     record: dict) -> dict:
    """`execute` in a forked child: if the child dies from a signal, raise JobKilled here."""
    import multiprocessing

    from mirror_sweep.run.experiment import import_stages

    import_stages()  # once per worker, before forking: each job starts with its imports done

    child = multiprocessing.get_context("fork").Process(
        target=_child_main, args=(cfg, folder, digest, threads, record))
    child.start()
    child.join()
    if child.exitcode == 0:
        return results.read_summary(folder / results.SUMMARY_FILE)
    if child.exitcode is not None and child.exitcode < 0:
        name = signal.Signals(-child.exitcode).name
        raise JobKilled(f"the job's process (pid {child.pid}) was killed by {name}"
                        + (" (out of memory?)" if name == "SIGKILL" else ""))
    status = results.read_status(folder)
    raise RuntimeError(status.get("error", f"the job's process exited with {child.exitcode}"))


def _child_main(cfg: RunConfig, folder: Path, digest: str, threads: ThreadPolicy,
                record: dict) -> None:
    try:
        execute(cfg, folder, digest, threads, record)
    except BaseException as error:  # noqa: BLE001  recorded, then reported by the parent
        results.mark_failed(folder, error)
        sys.exit(1)


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
    errors.say("\n".join([header, *(f"  {label:<31}{value}" for label, value in rows)]))


def task_config(cfg: DictConfig) -> DictConfig:
    return OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])


def job_digest(cfg: DictConfig) -> str:
    """The config hash of this job, computed from the YAML text Hydra writes to .hydra/."""
    return results.task_hash(yaml.safe_load(OmegaConf.to_yaml(task_config(cfg))))


def write_hydra_record(folder: Path) -> None:
    """(Re)write .hydra/{config,overrides}.yaml from this process's config, as Hydra does, so the
    folder describes the job that holds its lock even if another process rewrote them."""
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.output_subdir is None:
        return
    out = folder / hydra_cfg.output_subdir
    out.mkdir(parents=True, exist_ok=True)
    text = OmegaConf.to_yaml(_JOB["task"])
    results.write_atomic(out / "config.yaml", lambda f: f.write(text))
    overrides = OmegaConf.to_yaml(hydra_cfg.overrides.task)
    results.write_atomic(out / "overrides.yaml", lambda f: f.write(overrides))


_JOB: dict = {}  # the running job's task config (for write_hydra_record)


def _not_for_console(record: logging.LogRecord) -> bool:
    return not (record.name.startswith("mirror_sweep") and record.levelno < logging.WARNING)


def quiet_console() -> None:
    """In a sweep, this package's INFO lines (stages, epochs) go to the job's log file only; the
    console gets the sweep-summary callback's one line per finished job."""
    for handler in logging.getLogger().handlers:
        if type(handler) is logging.StreamHandler:
            handler.addFilter(_not_for_console)


def job_name(folder: Path, in_sweep: bool) -> str:
    return f"job {folder.name}" if in_sweep else f"run {folder}"


def run_job(cfg: DictConfig, folder: Path, in_sweep: bool) -> dict | None:
    """One job in its locked folder: resume, move aside, validate, run. Returns the summary."""
    hydra_cfg = HydraConfig.get()
    name = job_name(folder, in_sweep)
    _JOB["task"] = task_config(cfg)
    write_hydra_record(folder)
    digest = job_digest(cfg)
    policy = OmegaConf.select(cfg, "output.resume", default=Resume.code)
    policy = policy.value if isinstance(policy, Resume) else str(policy)
    code = provenance.code_version()
    state = results.run_state(folder, digest, code if policy == Resume.code.value else None)
    if in_sweep and state.complete and policy != Resume.never.value:
        log.info("%s already complete with this config: skipped", name)
        return results.read_summary(folder / results.SUMMARY_FILE)
    if state.finished_result:
        moved = results.move_aside(folder, f"{state.state}: {state.reason}")
        log.warning("%s: moved the complete run it held aside to %s (%s)", name, moved,
                    "same config, rerun" if state.complete else state.reason)
    try:
        run_cfg = to_run_config(cfg)
    except ConfigError as error:
        log.error("invalid config: %s", error)
        results.mark_failed(folder, error)
        if in_sweep:
            return None
        sys.exit(errors.EXIT_BAD_INPUT)
    record = {"config": OmegaConf.to_container(_JOB["task"], resolve=True, enum_to_str=True),
              **provenance.environment()}
    threads = thread_policy(run_cfg.train.torch_threads, hydra_cfg.launcher)
    isolate = in_sweep and "joblib" in str(hydra_cfg.launcher.get("_target_", "")).lower()
    try:
        summary = (execute_isolated if isolate else execute)(run_cfg, folder, digest, threads,
                                                             record)
    except Exception as error:
        if isinstance(error, JobKilled) or not isolate:  # else the child recorded it already
            results.mark_failed(folder, error)
        if in_sweep:
            log.error("%s failed (recorded in %s): %s", name, folder, error)
            return None
        from mirror_sweep.run.train import NonFiniteLossError

        message = errors.filesystem_message(error)
        if message:
            log.error("run failed: %s", message)
            sys.exit(errors.EXIT_FILESYSTEM)
        # expected failure modes (non-finite training, invalid data): a message, not a traceback
        if isinstance(error, (NonFiniteLossError, ValueError)):
            log.error("run failed, nothing but status.json written in %s: %s", folder, error)
            sys.exit(errors.EXIT_RUN_FAILED)
        raise
    if not in_sweep:
        report(summary, run_cfg, folder)
    return summary


def cli() -> None:
    """The `mirror-sweep` command: the Hydra app, and at its end everything it made is frozen
    out of the interpreter's final garbage collections (about 0.5 s of every run's exit)."""
    try:
        main()
    finally:
        gc.freeze()


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def main(cfg: DictConfig) -> dict | None:
    """Run one job. In a sweep a failing job is recorded as failed and the sweep goes on."""
    hydra_cfg = HydraConfig.get()
    folder = Path(hydra_cfg.runtime.output_dir)
    in_sweep = hydra_cfg.mode == RunMode.MULTIRUN
    if in_sweep:
        quiet_console()
    try:
        lock = JobLock(folder).acquire()
    except LockHeld as error:
        log.warning("%s: %s: left alone", job_name(folder, in_sweep), error)
        if in_sweep:
            return None
        sys.exit(errors.EXIT_BUSY)
    except OSError as error:
        message = errors.filesystem_message(error) or f"{type(error).__name__}: {error}"
        log.error("%s: %s", job_name(folder, in_sweep), message)
        if in_sweep:
            return None
        sys.exit(errors.EXIT_FILESYSTEM)
    try:
        return run_job(cfg, folder, in_sweep)
    except OSError as error:
        message = errors.filesystem_message(error)
        if message is None:
            raise
        log.error("%s: %s", job_name(folder, in_sweep), message)
        if in_sweep:
            return None
        sys.exit(errors.EXIT_FILESYSTEM)
    finally:
        lock.release()
