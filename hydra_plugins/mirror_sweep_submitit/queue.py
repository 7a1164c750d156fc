"""What SLURM says about a sweep's jobs, with or without job accounting.

squeue shows live jobs and, for MinJobAge seconds after they end (300 by default), their final
state (FAILED, TIMEOUT, CANCELLED, OUT_OF_MEMORY, ...) and reason. sacct, when the cluster keeps
accounting, knows the final state of every job for good; without accounting it exits non-zero
("accounting storage is disabled") and is not asked again. A job neither knows is "gone".
"""


import getpass
import re
import subprocess
from dataclasses import dataclass

# states in which a job may still write its result (submitit's "incomplete" states and kin)
ACTIVE = frozenset({"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "REQUEUE_FED",
                    "REQUEUE_HOLD", "RESIZING", "SUSPENDED", "STAGE_OUT", "SIGNALING",
                    "PREEMPTED", "UNKNOWN"})
_TIMEOUT_S = 30  # one squeue/sacct call


@dataclass(frozen=True)
class JobState:
    state: str  # SLURM's state name, e.g. RUNNING, TIMEOUT, CANCELLED
    reason: str = ""  # squeue's reason (e.g. NonZeroExitCode), or sacct's exit code

    @property
    def active(self) -> bool:
        return self.state in ACTIVE


def expand(job_id: str) -> list[str]:
    """'12_[0-2,5%1]' -> ['12_0', '12_1', '12_2', '12_5']; '12_3' and '12' stay as they are."""
    match = re.fullmatch(r"(\d+)_\[([\d,\-]+)(?:%\d+)?\]", job_id)
    if match is None:
        return [job_id]
    main, ranges = match.groups()
    ids = []
    for part in ranges.split(","):
        low, _, high = part.partition("-")
        ids.extend(f"{main}_{i}" for i in range(int(low), int(high or low) + 1))
    return ids


def parse(text: str) -> dict[str, JobState]:
    """Lines 'JOBID|STATE|REASON' (squeue --format=%i|%T|%r or sacct -P) -> {job id: state}."""
    states = {}
    for line in text.splitlines():
        fields = line.strip().split("|")
        if len(fields) < 2 or not fields[0] or "." in fields[0]:  # sacct's steps: 12.batch
            continue
        state = fields[1].split()[0] if fields[1].split() else "UNKNOWN"  # "CANCELLED by 0"
        for job_id in expand(fields[0]):
            states[job_id] = JobState(state, fields[2] if len(fields) > 2 else "")
    return states


class Queue:
    """Ask SLURM for the states of a set of job ids (array tasks as 'ARRAYID_INDEX')."""

    def __init__(self) -> None:
        self.accounting: bool | None = None  # unknown until sacct was tried once

    def _run(self, command: list[str]) -> str | None:
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=_TIMEOUT_S,
                                  check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout if done.returncode == 0 else None

    def states(self, job_ids: list[str]) -> dict[str, JobState] | None:
        """The states SLURM knows for these ids (absent: gone); None when the controller does not
        answer (nothing can be concluded from that)."""
        wanted = set(job_ids)
        if not wanted:
            return {}
        out = self._run(["squeue", "--noheader", "--array", "--states=all",
                         "--format=%i|%T|%r", f"--user={getpass.getuser()}"])
        if out is None:
            return None
        states = {k: v for k, v in parse(out).items() if k in wanted}
        missing = wanted - set(states)
        if missing and self.accounting is not False:
            mains = sorted({job_id.split("_")[0] for job_id in missing})
            out = self._run(["sacct", "--noheader", "--parsable2", "--allocations",
                             "--format=JobID,State,ExitCode", f"--jobs={','.join(mains)}"])
            self.accounting = out is not None
            if out is not None:
                states.update({k: v for k, v in parse(out).items() if k in missing})
        return states
