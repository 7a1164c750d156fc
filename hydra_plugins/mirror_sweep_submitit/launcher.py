"""hydra-submitit-launcher's launchers, made to end whatever happens to their jobs.

The plugin's own `launch` waits on `job.results()` for every job in turn: a job that dies without
a result (SIGKILL, out of memory, a time limit, scancel) either raises in the driver, which then
abandons the other jobs with a traceback, or, on a cluster without job accounting, is never known
to have ended, and the sweep hangs. These subclasses submit through the same submitit executors
and run each job with the same `__call__`, then watch all jobs together:

- a job whose result file appears is collected as before;
- a job that ended (SLURM state from squeue, or sacct where the cluster keeps accounting; the
  local job's process) or left the queue without a result is recorded failed in its folder's
  status.json, with the state as the reason (TIMEOUT, CANCELLED, OUT_OF_MEMORY, FAILED, LOST),
  after `lost_after_s` seconds (at most RESULT_GRACE_S for a job SLURM says has ended);
- every job folder gets a `pending` status.json (and its .hydra record) at submission, so
  aggregation lists queued jobs;
- SLURM: the job ids are kept in SWEEP_DIR/.submitit/mirror_sweep_jobs.json; a rerun of the same
  sweep waits for the jobs of an earlier driver that are still queued or running instead of
  submitting them again;
- local: at most `array_parallelism` jobs run at once (default: cores // cpus_per_task).

The driver returns once every job is complete or recorded failed; the sweep summary follows.
"""


import copy
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher import submitit_launcher as base
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from hydra_plugins.mirror_sweep_submitit.config import OWN_KEYS

log = logging.getLogger(__name__)

LEDGER = "mirror_sweep_jobs.json"  # in the sweep's .submitit folder: job folder -> SLURM job id
RESULT_GRACE_S = 15.0  # a job SLURM says has ended may still be writing its result file


@dataclass(eq=False)
class Tracked:
    """One job of the sweep, as the driver follows it."""

    num: int
    overrides: list[str]
    folder: Path
    sweep_config: DictConfig
    job_id: str | None = None  # SLURM job id (ARRAY_INDEX) or the local controller's pid
    paths: Any = None  # submitit JobPaths: where the result and logs go
    job: Any = None  # the submitit Job (local: to poll its process)
    since: float | None = None  # when it was first seen ended or gone without a result
    outcome: JobReturn | None = None
    params: tuple = field(default=())


def read_status(folder: Path) -> dict:
    """The job folder's status.json; {} when missing or unreadable."""
    from mirror_sweep.sweep import results

    try:
        status = results.read_status(folder)
    except (results.RunFileError, OSError):
        return {}
    return status if isinstance(status, dict) else {}


class WatchedLauncher(base.BaseSubmititLauncher):
    """Shared by the SLURM and local launchers: submit, then watch every job until it ends."""

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.poll_s = float(self.params.pop("poll_s", 5.0))
        self.lost_after_s = float(self.params.pop("lost_after_s", 60.0))
        for key in OWN_KEYS:
            self.params.pop(key, None)

    # -- building the executor exactly as hydra-submitit-launcher does ------------------------
    def make_executor(self) -> Any:
        import submitit

        params = dict(self.params)
        init = {"folder": params.pop("submitit_folder")}
        if "max_num_timeout" in params:
            init[f"{self._EXECUTOR}_max_num_timeout"] = params.pop("max_num_timeout")
        executor = submitit.AutoExecutor(cluster=self._EXECUTOR, **init)
        common = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{k if k in common else f"{self._EXECUTOR}_{k}": v
                                      for k, v in params.items()})
        return executor

    # -- job folders --------------------------------------------------------------------------
    def prepare(self, overrides: Sequence[str], num: int) -> Tracked:
        """The job's config as its process will see it, and the folder Hydra will give it."""
        assert self.hydra_context is not None and self.config is not None
        sweep_config = self.hydra_context.config_loader.load_sweep_config(self.config,
                                                                          list(overrides))
        with open_dict(sweep_config.hydra.job) as job:
            job.id = f"job_id_for_{num}"
            job.num = num
        saved = HydraConfig.instance().cfg
        HydraConfig.instance().set_config(sweep_config)  # as run_job does, for ${hydra:...}
        try:
            folder = Path(str(OmegaConf.select(sweep_config, "hydra.sweep.dir")),
                          str(OmegaConf.select(sweep_config, "hydra.sweep.subdir"))).absolute()
            with read_write(sweep_config.hydra.runtime), open_dict(sweep_config.hydra.runtime):
                sweep_config.hydra.runtime.output_dir = str(folder)
        finally:
            HydraConfig.instance().cfg = saved
        params = (list(overrides), "hydra.sweep.dir", num, f"job_id_for_{num}",
                  Singleton.get_state())
        return Tracked(num, list(overrides), folder, sweep_config, params=params)

    def record_pending(self, job: Tracked) -> None:
        """A queued job's folder: Hydra's .hydra record and status `pending` (for aggregation).

        A folder that already holds a job record is left to the job itself.
        """
        from hydra.core.utils import _save_config

        from mirror_sweep.sweep import results

        subdir = job.sweep_config.hydra.output_subdir
        if subdir is None or (job.folder / str(subdir) / "config.yaml").exists():
            return
        task_cfg = copy.deepcopy(job.sweep_config)  # as hydra.core.utils.run_job writes them
        with read_write(task_cfg), open_dict(task_cfg):
            del task_cfg["hydra"]
        hydra_cfg = OmegaConf.masked_copy(job.sweep_config, ["hydra"])
        out = job.folder / str(subdir)
        try:
            _save_config(task_cfg, "config.yaml", out)
            _save_config(hydra_cfg, "hydra.yaml", out)
            _save_config(job.sweep_config.hydra.overrides.task, "overrides.yaml", out)
            results.write_status(job.folder, "pending", launcher=self._EXECUTOR,
                                 job_id=job.job_id)
        except OSError as error:
            log.warning("job %d: could not record it as pending in %s: %s", job.num, job.folder,
                        error)

    # -- outcomes -----------------------------------------------------------------------------
    def done_return(self, job: Tracked, value: Any = None) -> JobReturn:
        ret = JobReturn(overrides=job.overrides, working_dir=os.getcwd(),
                        task_name=str(job.sweep_config.hydra.job.name),
                        status=JobStatus.COMPLETED)
        ret.return_value = value
        return ret

    def fail(self, job: Tracked, state: str, message: str) -> None:
        """Record a job that ended without a result as failed (unless its folder says complete)."""
        from mirror_sweep.sweep import results
        from mirror_sweep.sweep.lock import JobLock, LockHeld

        job.outcome = self.done_return(job)
        if read_status(job.folder).get("status") == "complete":
            log.warning("job %d: %s; its folder holds a complete run: kept", job.num, message)
            return
        self.record_pending(job)  # a job that never started has no folder yet
        try:
            with JobLock(job.folder):  # never over a live process's job (sweep/lock.py)
                results.write_status(job.folder, "failed", error=f"{state}: {message}",
                                     launcher_state=state, job_id=job.job_id)
        except LockHeld as error:
            log.warning("job %d: %s; but %s: left alone", job.num, message, error)
            return
        except OSError as error:
            log.error("job %d: could not record its failure in %s: %s", job.num, job.folder,
                      error)
        log.error("job %d failed (%s): %s", job.num, state, message)

    def collect(self, job: Tracked) -> None:
        """Read a job's result file (written by submitit when the job's function returned)."""
        from submitit.core.utils import pickle_load

        try:
            outcome, value = pickle_load(job.paths.result_pickle)
        except Exception as error:  # noqa: BLE001 (a torn or unreadable pickle: no result)
            self.fail(job, "FAILED", f"unreadable result file {job.paths.result_pickle} ({error})")
            return
        if outcome == "success" and isinstance(value, JobReturn):
            if value.status == JobStatus.COMPLETED:
                job.outcome = value
                return
            error = value._return_value
            self.fail(job, "FAILED", f"{type(error).__name__}: {error}")
            return
        if outcome == "success":
            job.outcome = self.done_return(job, value)
            return
        trace = str(value).strip().splitlines()
        last = trace[-1] if trace else "no trace"
        self.fail(job, "TIMEOUT" if "timed-out" in last else "FAILED",
                  f"{last} (log: {job.paths.stderr})")

    # -- the watch ----------------------------------------------------------------------------
    def launch(self, job_overrides: Sequence[Sequence[str]],
               initial_job_idx: int) -> Sequence[JobReturn]:
        assert self.config is not None
        assert len(job_overrides) > 0
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))
        log.info(f"Submitit '{self._EXECUTOR}' sweep output dir : {sweep_dir}")
        jobs = []
        for i, overrides in enumerate(job_overrides):
            jobs.append(self.prepare(overrides, initial_job_idx + i))
            log.info("\t#%d : %s", initial_job_idx + i, " ".join(filter_overrides(overrides)))
        executor = self.make_executor()
        try:
            self.start(jobs, executor, sweep_dir)
            self.watch(jobs, executor)
        except KeyboardInterrupt:
            self.interrupted(jobs)
        return [job.outcome for job in jobs]

    def watch(self, jobs: list[Tracked], executor: Any) -> None:
        while True:
            self.top_up(jobs, executor)
            running = [job for job in jobs if job.outcome is None and job.paths is not None]
            if not running and all(job.outcome is not None for job in jobs):
                return
            states = self.states(running)
            now = time.time()
            for job in running:
                if job.paths.result_pickle.exists():
                    self.collect(job)
                    continue
                state = states.get(job.num) if states is not None else None
                if states is None or (state is not None and state[0]):
                    job.since = None  # still active, or the scheduler does not answer
                    continue
                ended = state is not None  # an end state is known (else: gone from the queue)
                job.since = job.since or now
                grace = min(self.lost_after_s, RESULT_GRACE_S) if ended else self.lost_after_s
                if now - job.since >= grace:
                    label, message = state[1:] if ended else self.lost(job)
                    self.fail(job, label, message)
            if any(job.outcome is None for job in jobs):
                time.sleep(self.poll_s)

    # -- executor-specific parts --------------------------------------------------------------
    def start(self, jobs: list[Tracked], executor: Any, sweep_dir: Path) -> None:
        raise NotImplementedError

    def top_up(self, jobs: list[Tracked], executor: Any) -> None:
        """Submit more jobs if the launcher holds some back (local); nothing by default."""

    def states(self, jobs: list[Tracked]) -> dict[int, tuple[bool, str, str]] | None:
        """{job num: (active, state label, reason text)} for the jobs the scheduler still knows;
        None when it does not answer."""
        raise NotImplementedError

    def lost(self, job: Tracked) -> tuple[str, str]:
        return "LOST", (f"job {job.job_id} is gone without a result after "
                        f"{self.lost_after_s:g} s (log: {job.paths.stderr})")

    def interrupted(self, jobs: list[Tracked]) -> None:
        left = [job for job in jobs if job.outcome is None]
        print(f"mirror-sweep: interrupted with {len(left)} of {len(jobs)} jobs unfinished",
              file=sys.stderr, flush=True)
        raise SystemExit(130)


class SlurmLauncher(WatchedLauncher, base.SlurmLauncher):
    """hydra-submitit-launcher's SLURM launcher with the watch above."""

    _EXECUTOR = "slurm"

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        from hydra_plugins.mirror_sweep_submitit.queue import Queue

        self.queue = Queue()

    def start(self, jobs: list[Tracked], executor: Any, sweep_dir: Path) -> None:
        from submitit.core.utils import JobPaths

        ledger_path = sweep_dir / ".submitit" / LEDGER
        try:
            ledger = json.loads(ledger_path.read_text())
        except (OSError, ValueError):
            ledger = {}
        known = {job.num: ledger.get(str(job.folder)) for job in jobs}
        ids = [entry["job_id"] for entry in known.values() if isinstance(entry, dict)]
        live = self.queue.states(ids) or {}
        fresh = []
        for job in jobs:
            entry = known[job.num]
            state = live.get(entry["job_id"]) if isinstance(entry, dict) else None
            if state is not None and state.active and read_status(job.folder).get(
                    "status") != "complete":
                job.job_id = entry["job_id"]
                job.paths = JobPaths(entry["submitit_folder"], job_id=job.job_id, task_id=0)
                log.info("job %d is still %s as SLURM job %s (an earlier run of this sweep): "
                         "waiting for it instead of submitting it again", job.num,
                         state.state.lower(), job.job_id)
            else:
                fresh.append(job)
        if fresh:
            try:
                submitted = executor.map_array(self, *zip(*(job.params for job in fresh)))
            except Exception as error:  # noqa: BLE001 (sbatch refused: partition, qos, ...)
                message = str(error).strip().splitlines()
                print(f"mirror-sweep: SLURM refused the jobs: {message[-1] if message else error}",
                      file=sys.stderr, flush=True)
                raise SystemExit(1) from None
            for job, submitted_job in zip(fresh, submitted):
                job.job_id, job.paths = submitted_job.job_id, submitted_job.paths
                job.job = submitted_job
        for job in jobs:
            ledger[str(job.folder)] = {"job_id": job.job_id,
                                       "submitit_folder": self.params["submitit_folder"]}
            if job in fresh:
                self.record_pending(job)
        ledger_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = ledger_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(ledger, indent=1))
        tmp.replace(ledger_path)

    def states(self, jobs: list[Tracked]) -> dict[int, tuple[bool, str, str]] | None:
        found = self.queue.states([job.job_id for job in jobs])
        if found is None:
            return None
        out = {}
        for job in jobs:
            state = found.get(job.job_id)
            if state is not None:
                out[job.num] = (state.active, *self.explain(job, state.state, state.reason))
        return out

    def explain(self, job: Tracked, state: str, reason: str) -> tuple[str, str]:
        """A failure's label and sentence, from SLURM's state and the job's log."""
        log_text = ""
        for path in (job.paths.stderr, job.paths.stdout):
            try:
                log_text += path.read_text(errors="replace")[-20_000:]
            except OSError:
                pass
        if "memory limit" in log_text or "oom-kill" in log_text.lower():
            state = "OUT_OF_MEMORY"  # SLURM's jobacct_gather kill ends as FAILED
        where = f"SLURM job {job.job_id}"
        text = {
            "TIMEOUT": f"{where} ran past its time limit (timeout_min="
                       f"{self.params.get('timeout_min')}) and was killed without a result",
            "CANCELLED": f"{where} was cancelled (scancel) without a result",
            "OUT_OF_MEMORY": f"{where} exceeded its memory limit (mem_gb="
                             f"{self.params.get('mem_gb')}) and was killed",
            "NODE_FAIL": f"{where}: its node failed",
            "PREEMPTED": f"{where} was preempted",
        }.get(state, f"{where} ended {state}" + (f" ({reason})" if reason else "")
              + " without a result")
        return state, f"{text} (log: {job.paths.stderr})"

    def interrupted(self, jobs: list[Tracked]) -> None:
        left = [job.job_id for job in jobs if job.outcome is None and job.job_id]
        print(f"mirror-sweep: interrupted; {len(left)} jobs stay queued or running on the cluster"
              f" ({', '.join(left[:5])}{', ...' if len(left) > 5 else ''}). Rerun the same "
              "command to wait for them (they are not submitted again), or scancel them.",
              file=sys.stderr, flush=True)
        raise SystemExit(130)


class LocalLauncher(WatchedLauncher, base.LocalLauncher):
    """hydra-submitit-launcher's local launcher with the watch above and a bound on parallel jobs."""

    _EXECUTOR = "local"

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        from mirror_sweep.run.threads import available_cores

        parallel = self.params.pop("array_parallelism", None)
        cpus = self.params.get("cpus_per_task") or 1
        self.parallel = int(parallel) if parallel else max(1, available_cores() // cpus)

    def start(self, jobs: list[Tracked], executor: Any, sweep_dir: Path) -> None:
        for job in jobs:
            self.record_pending(job)

    def top_up(self, jobs: list[Tracked], executor: Any) -> None:
        running = sum(1 for job in jobs if job.job is not None and job.outcome is None)
        for job in jobs:
            if running >= self.parallel:
                return
            if job.job is None and job.outcome is None:
                job.job = executor.submit(self, *job.params)
                job.job_id, job.paths = job.job.job_id, job.job.paths
                running += 1

    def states(self, jobs: list[Tracked]) -> dict[int, tuple[bool, str, str]] | None:
        out = {}
        for job in jobs:
            state = job.job.state
            if state == "RUNNING":
                out[job.num] = (True, "RUNNING", "")
            else:
                reason = (f"the job's process (controller pid {job.job_id}) ended without a "
                          f"result: killed (SIGKILL, out of memory) or crashed ({state.lower()}; "
                          f"log: {job.paths.stderr})")
                out[job.num] = (False, "KILLED", reason)
        return out
