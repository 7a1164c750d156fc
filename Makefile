# Set-up and the project's main commands. TORCH pins the CPU wheel used here and in CI;
# elsewhere override it, e.g. `make setup TORCH="torch==2.13.0 --index-url ..."`.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
SWEEP ?= multirun/paper-ablations
BIN = $(VENV)/bin

.PHONY: setup main paper sweep report test bench bench-quick bench-aggregate

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[test]"
	$(BIN)/python -m compileall -q mirror_sweep hydra_plugins  # bytecode, even where PYTHONDONTWRITEBYTECODE is set
	touch $@

# The main job: the paper's experiment, then its ablation sweep (resumable), then the report.
main: paper sweep report

paper: setup
	$(BIN)/mirror-sweep

sweep: setup
	$(BIN)/mirror-sweep -m +experiment=ablations hydra/launcher=joblib_local hydra.sweep.dir=$(SWEEP)

report: setup
	$(BIN)/mirror-aggregate $(SWEEP)

test: setup
	$(BIN)/python -m pytest -q

# Issue 15's targets with PASS/MISS beside each ratio; writes benchmarks/RESULTS.md. Options via
# BENCH_ARGS, e.g. `make bench BENCH_ARGS=--full-sweep` (adds the 90-job ablation sweep).
bench: setup
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

bench-quick: setup
	$(BIN)/python -m benchmarks.run --quick $(BENCH_ARGS)

# Aggregation at scale: 10^4 synthetic runs (~1.5 min on a quiet 2-core machine, a third of it writing the runs).
bench-aggregate: setup
	$(BIN)/python -m benchmarks.bench_aggregate
