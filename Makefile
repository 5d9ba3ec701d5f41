# pcsweep: one entry point. `make` lists the recipes.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
GRID   ?= grids/demo.yaml
ROOT   ?= runs

.PHONY: help install install-test demo test test-fast golden lint bench slurm-up slurm-down gpu-check clean mutation

help:  ## list the recipes
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 16

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed  ## create .venv and install pcsweep with its pinned dependencies

install-test: $(VENV)/.installed-test  ## install pcsweep with the test extras

demo: install  ## run the demo grid end to end on this machine: launch (local), collect, plots
	$(BIN)/python -m launch $(GRID) --executor local --root $(ROOT)
	$(BIN)/python -m collect $(GRID) --root $(ROOT)
	$(BIN)/python -m plots $(GRID) --root $(ROOT)
	@echo "Figures: $$(cd $(ROOT)/demo/figures && pwd)"

test: install-test  ## run the whole test suite (SLURM tests skip without a cluster, fail in CI)
	$(BIN)/python -m pytest

test-fast: install-test  ## the tests that need neither SLURM nor slow trainings
	$(BIN)/python -m pytest -m 'not slurm and not slow and not device'

bench: install  ## run the benchmarks (prints ratios against baselines measured in the same run)
	$(BIN)/python bench/train_throughput.py --quick
	$(BIN)/python bench/launch_scale.py
	$(BIN)/python bench/collect_scale.py --trials 5000
	$(BIN)/python bench/plan_accuracy.py  # predicted vs measured task seconds on the local SLURM (7-10 min)
	$(BIN)/python bench/state_init_slice.py  # the state-init replay at T 3 and 20, 8 epochs, on the local SLURM (~1.5 min)
	$(BIN)/python bench/search.py --quick  # batched TPE (run_worker) vs Optuna's one-trial loop, random, grid (~1.7 min)

slurm-up:  ## start the local single-node SLURM cluster (root, Debian/Ubuntu)
	scripts/slurm-dev-cluster up

slurm-down:  ## stop it
	scripts/slurm-dev-cluster down

gpu-check: | $(BIN)/python  ## on a GPU node, < 8 min: the 7 sections of docs/gpu-check.md (GPU_CHECK_ARGS=--quick ...)
	$(BIN)/python -c 'import jax_cuda12_plugin' 2>/dev/null || $(BIN)/python -m pip install --quiet -e '.[cuda]' -c constraints-cuda.txt
	scripts/gpu-check $(GPU_CHECK_ARGS)

clean:  ## remove the demo run folder
	rm -rf $(ROOT)/demo

mutation: install-test  ## mutmut on the bookkeeping modules, a score per module (MODULES=launch.status,... or TARGET=grids)
	$(BIN)/python tests/mutation/run.py --max-children $(or $(MUTATION_CHILDREN),1) $(if $(MODULES),--modules $(MODULES)) $(if $(TARGET),--target $(TARGET))

golden: install  ## re-record the golden dry-run and sbatch texts after an intended change (review the diff)
	$(BIN)/python tests/launch/golden_cases.py

lint: install-test  ## ruff (rules in pyproject.toml [tool.ruff]); CI runs it before the tests
	$(BIN)/ruff check .
