# anil: `make demo` and `make test` are all a fresh clone needs (Python 3.10+ and make).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0
STAMP := $(shell date +%Y-%m-%d_%H-%M-%S)
DEMO_DIR := outputs/sweeps/demo_$(STAMP)

.PHONY: help install demo reproduce theory theory-testbed complexity bench gpu-wheels gpu-dry-run docs lint test test-slow clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-15s %s\n", $$1, $$2}'

install: $(VENV)/.installed ## create .venv and install anil (a CPU torch first, if none is there)

# Install a known torch first where none is installed: the project's own range would pull a
# multi-GB CUDA build. Users with a CUDA torch already in the venv keep theirs.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c 'import torch' 2>/dev/null || $(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e '.[test,lint]'
	touch $@

demo: install ## sweep N for both geometries on the embedded dataset, then draw the figures
	$(BIN)/anil train -m experiment=demo hydra.sweep.dir=$(DEMO_DIR)
	$(BIN)/anil plot $(DEMO_DIR)
	@echo "figures and curves.csv are in $(DEMO_DIR)"

REPRODUCE := outputs/sweeps/reproduce_$(STAMP)
reproduce: install ## Figures 1-2 on the hard embedded dataset, test accuracy, the N = 30 search, the theorems' regime, tuned ANIL against MAML, long runs (two streams, one per core; docs/reproduction.md states the job time), then docs/reproduction.md
	bash scripts/reproduce.sh $(BIN) $(REPRODUCE)

# The probe resumes: run `make theory` again after a stop and it measures only what
# outputs/smoothness/embedded_hard lacks (remove the folder to measure afresh).
theory: install ## smoothness vs N on the hard embedded data (3 meta-batches, 2 Lanczos starts, float32; resumes: docs/theory.md states its run time), the Proposition 1 checks, then docs/theory.md
	$(BIN)/anil smoothness --dataset embedded_hard --init authors --N 1 5 20 --batches 3 --starts 2 --dtype float32 \
	    --out outputs/smoothness/embedded_hard
	for init in pytorch authors; do \
	    $(BIN)/anil smoothness --dataset embedded_hard --curvature-only --init $${init} --points 1 \
	        --train-iterations 0 --B 16 --N 1 --out outputs/smoothness/embedded_hard_init_$${init}_$(STAMP) || exit 1; \
	done
	$(BIN)/anil report theory --smoothness outputs/smoothness/embedded_hard \
	    --init-curvature outputs/smoothness/embedded_hard_init_pytorch_$(STAMP) \
	    outputs/smoothness/embedded_hard_init_authors_$(STAMP)

# One thread: the testbed's tensors are small, and its stated run time was measured so.
theory-testbed: install ## the theory testbed (about 45 min; resumes, and skips what docs/data/testbed.json holds: remove it to rerun), then docs/theory.md
	OMP_NUM_THREADS=1 $(BIN)/anil testbed --out docs/data/testbed.json
	$(BIN)/anil report theory

complexity: install ## ANIL vs MAML per meta-iteration (about 3 min), then docs/complexity.md
	$(BIN)/python scripts/complexity.py

bench: install ## the CPU benchmark (about 10 min on 2 cores), then docs/performance.md
	$(BIN)/python scripts/bench.py --out docs/data/performance-cpu.json
	$(BIN)/anil report performance

# A bare CUDA machine (Python 3.12, torch present, no network) lacks these; they travel in .whl/.
GPU_WHEELS := hydra-core==1.3.8 omegaconf==2.3.1 kanjivg==20260714
gpu-wheels: install ## the wheels scripts/gpu_check.sh needs on a machine without network, into .whl/
	mkdir -p .whl
	$(BIN)/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl $(GPU_WHEELS)
	$(BIN)/python -m pip wheel -q --no-deps -w .whl antlr4-python3-runtime==4.9.3  # published as a source archive only

gpu-dry-run: install ## rehearse scripts/gpu_check.sh on the CPU, every size shrunk (about 2 min)
	bash scripts/gpu_check.sh --dry-run outputs/gpu_check_dry

docs: install ## regenerate every document of docs/ from the measured data in docs/data/ (seconds)
	$(BIN)/anil report all

lint: install ## ruff (lint and format check) and mypy on anil/
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: install ## the default test tier: in-process, a few minutes on 2 cores
	$(BIN)/python -m pytest

test-slow: install ## the slow tier: processes, signals, torchrun, launchers, the wheel, trackers
	$(BIN)/python -m pytest -m 'slow and not gpu'

clean: ## remove the virtual environment (outputs/ is kept)
	rm -rf $(VENV)
