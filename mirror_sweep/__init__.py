"""mirror-sweep: test whether mirror-like units emerge in a GRU trained on forward and inverse
objectives, with Hydra sweeps, reviewer-grade statistics and cross-seed aggregation."""

__version__ = "0.1.0"
