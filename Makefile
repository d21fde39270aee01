# STFuse — one Makefile for install, demo, training, evaluation and tests.
# `make demo` and `make test` each install first, so a fresh clone needs nothing else.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STFUSE := $(BIN)/stfuse

# Real data (TNO, RoadScene, MSRS, ...). Training falls back to the embedded default when absent.
DATA_ROOT ?= $(abspath ../shared/data)
GPUS ?= 0
NODES ?= 1
ARGS ?=
OUT ?= outputs
PYTEST_ARGS ?=

export NO_ALBUMENTATIONS_UPDATE := 1
export PYTHONUNBUFFERED := 1

# CPU build of torch where no NVIDIA GPU is present; clusters get the default CUDA build.
HAS_NVIDIA := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo 1)
ifeq ($(HAS_NVIDIA),1)
CONSTRAINTS :=
else
CONSTRAINTS := -c constraints-cpu.txt
endif

.PHONY: install test test-fast lint format demo train-mfif transfer-ivif evaluate fuse export bench \
        reproduce dock sweep agent clean help

help:
	@echo "make demo            install, then train both stages on the embedded default and fuse (CPU, ~10 min)"
	@echo "make test            install, then run the test suite"
	@echo "make train-mfif      source stage (DATA_ROOT, GPUS, NODES, ARGS)"
	@echo "make transfer-ivif   target stage from the latest source checkpoint"
	@echo "make evaluate        metrics table + HTML report"
	@echo "make bench           speed benchmarks (JSON)"
	@echo "make lint            ruff"

install: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml constraints-cpu.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]" $(CONSTRAINTS)
	touch $@

test: install
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-fast: install
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check src data_modules tests benchmarks

format: install
	$(BIN)/ruff format src data_modules tests benchmarks
