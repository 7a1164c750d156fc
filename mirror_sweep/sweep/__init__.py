"""Stage 3, runs as files and sweeps: the run-folder contract (results), the sweep-summary
callback, and aggregation of a sweep folder into pandas tables (no torch)."""
