"""mirror-sweep's Hydra launcher plugin: hydra-submitit-launcher's SLURM and local launchers,
watched so that a sweep ends whatever happens to its jobs (see launcher.py, docs/cluster.md).

It lives under the `hydra_plugins` namespace because Hydra instantiates launchers only from there.
"""
