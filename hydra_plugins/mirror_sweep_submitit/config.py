"""Launcher configs: hydra-submitit-launcher's, plus the keys of the job watch (registered on import).

`hydra/launcher=mirror_sweep_slurm` and `mirror_sweep_local` extend the plugin's `submitit_slurm`
and `submitit_local` configs with how often the driver polls its jobs and how long a job may be
gone (ended, or out of the queue) without a result before it is recorded failed.
mirror_sweep/conf/hydra/launcher/slurm.yaml and submitit_local_cpu.yaml build on these.
"""


from dataclasses import dataclass
from typing import Optional

from hydra.core.config_store import ConfigStore
from hydra_plugins.hydra_submitit_launcher.config import LocalQueueConf, SlurmQueueConf

# The keys this plugin adds to the submitit configs (never passed on to submitit's executor).
OWN_KEYS = ("poll_s", "lost_after_s")


@dataclass
class WatchedSlurmConf(SlurmQueueConf):
    _target_: str = "hydra_plugins.mirror_sweep_submitit.launcher.SlurmLauncher"
    # seconds between two looks at the queue (one squeue or sacct call for all jobs)
    poll_s: float = 10.0
    # a job that ended, or left the queue, without a result is recorded failed after this long
    lost_after_s: float = 120.0


@dataclass
class WatchedLocalConf(LocalQueueConf):
    _target_: str = "hydra_plugins.mirror_sweep_submitit.launcher.LocalLauncher"
    # at most this many jobs at once; null: this machine's cores // cpus_per_task
    array_parallelism: Optional[int] = None  # noqa: UP045 (OmegaConf 2.3 reads Optional)
    poll_s: float = 1.0
    lost_after_s: float = 10.0


ConfigStore.instance().store(group="hydra/launcher", name="mirror_sweep_slurm",
                             node=WatchedSlurmConf(), provider="mirror_sweep")
ConfigStore.instance().store(group="hydra/launcher", name="mirror_sweep_local",
                             node=WatchedLocalConf(), provider="mirror_sweep")
