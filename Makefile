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
# test processes (pytest-xdist; one test file per process, so a file's shared fixtures are built once); 0 = one process
TEST_WORKERS ?= 2

export NO_ALBUMENTATIONS_UPDATE := 1
export PYTHONUNBUFFERED := 1

# CPU build of torch where no NVIDIA GPU is present; clusters get the default CUDA build.
HAS_NVIDIA := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo 1)
ifeq ($(HAS_NVIDIA),1)
CONSTRAINTS :=
else
CONSTRAINTS := -c constraints-cpu.txt
endif

.PHONY: install test test-fast lint format demo bench-demo train-mfif transfer-ivif evaluate fuse export bench \
        reproduce dock sweep agent gpu-check help

help:
	@echo "make demo            install, then train both stages on the embedded default and fuse (timings: README)"
	@echo "make bench-demo      the demo timed alone and beside two busy processes (JSON)"
	@echo "make test            install, then run the test suite"
	@echo "make train-mfif      source stage (DATA_ROOT, GPUS, NODES, BUDGET=cpu|gpu|smoke, ARGS)"
	@echo "make transfer-ivif   target stage from the latest source checkpoint (SEED=N: the target stage's seed)"
	@echo "make evaluate        metrics table + HTML report"
	@echo "make bench           speed benchmarks (JSON)"
	@echo "make lint            ruff check + ruff format --check (part of make test)"
	@echo "make fuse IR=dir VI=dir [CKPT=path]   fuse your own pairs (packaged weights by default)"
	@echo "make dock            detection docking on MSRS: IR vs VIS vs baselines (CKPT=path adds our model)"
	@echo "make reproduce       retrain the reference model + ablations and regenerate docs/results.md"
	@echo "make gpu-check       one GPU, sized for 10 min: GPU tests, CUDA fuse benchmark, GPU recipe, validation, into"
	@echo "                     one folder (OUT/gpu_check); ARGS=--dry-run rehearses the same steps on the CPU"
	@echo "make sweep SWEEP=experiments/sweeps/x.yaml   create a W&B sweep, print the agent command"
	@echo "make agent SWEEP_ID=entity/project/id [COUNT=n]   run a W&B sweep agent (venv python on PATH)"

install: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml constraints-cpu.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]" $(CONSTRAINTS)
	touch $@

# CI runs `make test`, so lint runs there too.
test: install lint
	$(PY) -m pytest -q tests notebooks --nbmake -n $(TEST_WORKERS) --dist loadfile --durations=15 $(PYTEST_ARGS)

test-fast: install
	$(PY) -m pytest -q -m "not slow" -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

LINT_PATHS := src data_modules tests benchmarks experiments

lint: install
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)

format: install
	$(BIN)/ruff check --fix $(LINT_PATHS)
	$(BIN)/ruff format $(LINT_PATHS)

# ---- training ---------------------------------------------------------------------------------
# GPUS=0 → CPU preset; GPUS=1 → single GPU (bf16-mixed); GPUS>1 or NODES>1 → DDP.
TRAINER_PRESET := $(if $(filter 0,$(GPUS)),cpu,$(if $(and $(filter 1,$(GPUS)),$(filter 1,$(NODES))),gpu,ddp))
DEVICE_ARGS := $(if $(filter 0,$(GPUS)),,--trainer.devices $(GPUS) --trainer.num_nodes $(NODES))
# BUDGET=cpu|gpu|smoke: the step budget, crops, batch sizes and trainer of experiments/budgets/<BUDGET>/ in place
# of the trainer preset; `make train-mfif BUDGET=cpu && make transfer-ivif BUDGET=cpu SEED=1` trains the packaged
# weights' recipe and seed.
BUDGET ?=
# SEED=N: the target stage's seed (weights' noise, crop order and augmentation; the replay stream takes N + 1),
# as experiments/reproduce.py seeds its runs; the packaged weights' record names theirs. Empty: ivif.yaml's 0.
SEED ?=
IVIF_SEED_ARGS := $(if $(SEED),--seed_everything $(SEED) --data.init_args.ivif.init_args.seed $(SEED) \
	--data.init_args.replay.init_args.seed $(shell expr $(SEED) + 1 2>/dev/null),)
MFIF_SCHEDULE := $(if $(BUDGET),experiments/budgets/$(BUDGET)/mfif.yaml,experiments/trainer/$(TRAINER_PRESET).yaml)
IVIF_SCHEDULE := $(if $(BUDGET),experiments/budgets/$(BUDGET)/ivif.yaml,experiments/trainer/$(TRAINER_PRESET).yaml)
MFIF_OUT ?= $(OUT)/mfif
IVIF_OUT ?= $(OUT)/ivif
# The latest source checkpoint; override with SOURCE_CKPT=path.
SOURCE_CKPT ?= $(MFIF_OUT)/checkpoints/last.ckpt

# Real data when DATA_ROOT holds it, the embedded synthetic default otherwise. Commas inside $(if ...) must
# be $(comma), or make splits the list there.
comma := ,
# Validation pairs are held out of the training pairs (val_size, split_seed); the test sets are only tested on.
MFIF_DATA_ARGS := $(if $(wildcard $(DATA_ROOT)/train/natural),--data.init_args.roots '[$(DATA_ROOT)/train/natural]',)
IVIF_DATA_ARGS := $(if $(wildcard $(DATA_ROOT)/train/ivif),--data.init_args.ivif.init_args.train_roots '[$(DATA_ROOT)/train/ivif/roadscene$(comma)$(DATA_ROOT)/train/ivif/msrs]' --data.init_args.ivif.init_args.test_roots '[$(DATA_ROOT)/ivif/tno$(comma)$(DATA_ROOT)/ivif/roadscene$(comma)$(DATA_ROOT)/ivif/msrs]' --data.init_args.replay.init_args.roots '[$(DATA_ROOT)/train/natural]',)

train-mfif: install
	$(STFUSE) fit --config experiments/mfif.yaml --config $(MFIF_SCHEDULE) \
		--trainer.default_root_dir $(MFIF_OUT) $(DEVICE_ARGS) $(MFIF_DATA_ARGS) $(ARGS)

transfer-ivif: install
	@case "$(SEED)" in *[!0-9]*) echo "SEED must be a non-negative integer, got '$(SEED)'"; exit 2;; esac
	@test -f "$(SOURCE_CKPT)" || { echo "No source checkpoint at $(SOURCE_CKPT): run 'make train-mfif' first or pass SOURCE_CKPT=path"; exit 2; }
	$(STFUSE) fit --config experiments/ivif.yaml --config $(IVIF_SCHEDULE) \
		--trainer.default_root_dir $(IVIF_OUT) --model.init_args.source_ckpt $(SOURCE_CKPT) \
		$(IVIF_SEED_ARGS) $(DEVICE_ARGS) $(IVIF_DATA_ARGS) $(ARGS)

demo: install
	$(STFUSE) demo --out $(OUT)/demo $(ARGS)

# The demo's wall time alone and beside two busy processes (`yes`), as JSON; run it on an otherwise idle machine.
bench-demo: install
	$(PY) benchmarks/demo_load.py $(if $(ARGS),-- $(ARGS))

# ---- W&B sweeps (docs/cluster.md) -------------------------------------------------------------------
SWEEP ?=
SWEEP_ID ?=
COUNT ?=

sweep: install
	@test -n "$(SWEEP)" || { echo "usage: make sweep SWEEP=experiments/sweeps/<name>.yaml"; exit 2; }
	$(STFUSE) sweep create $(SWEEP)

# The agent starts `python` from PATH (wandb's ${interpreter}), so the venv goes first.
agent: install
	@test -n "$(SWEEP_ID)" || { echo "usage: make agent SWEEP_ID=entity/project/sweep_id [COUNT=n]"; exit 2; }
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/wandb agent $(if $(COUNT),--count $(COUNT)) $(SWEEP_ID)

# ---- evaluation, inference, benchmarks -----------------------------------------------------------
EVAL_SET ?= tno
FUSED ?=
evaluate: install
	$(STFUSE) evaluate --dataset $(EVAL_SET) --root $(DATA_ROOT) $(foreach f,$(FUSED),--fused $(f)) \
		--baseline avg,max,laplacian --out $(OUT)/evaluate/$(EVAL_SET) --report $(OUT)/evaluate/$(EVAL_SET)/report.html $(ARGS)

IR ?=
VI ?=
CKPT ?=
fuse: install
	@test -n "$(IR)" -a -n "$(VI)" || { echo "usage: make fuse IR=dir_or_file VI=dir_or_file [CKPT=path] [OUT=dir]"; exit 2; }
	$(STFUSE) fuse --ir "$(IR)" --vi "$(VI)" --out "$(OUT)/fused" $(if $(CKPT),--ckpt "$(CKPT)") $(ARGS)

bench: install
	$(PY) benchmarks/dataloader.py
	$(PY) benchmarks/train_step.py
	STFUSE_DATA=$(DATA_ROOT) $(PY) benchmarks/train_e2e.py
	$(PY) benchmarks/metrics.py
	$(PY) benchmarks/evaluate.py
	$(PY) benchmarks/inference.py --quick

reproduce: install
	$(PY) experiments/reproduce.py --budget $(or $(BUDGET),$(if $(filter 1,$(HAS_NVIDIA)),gpu,cpu)) --data-root $(DATA_ROOT) $(ARGS)

# The GPU path in one command, each step under its own time cap (experiments/gpu_check.py, docs/cluster.md).
gpu-check: install
	$(PY) experiments/gpu_check.py --data-root $(DATA_ROOT) --out $(OUT)/gpu_check $(ARGS)

DOCK_PRESET ?= $(if $(filter 1,$(HAS_NVIDIA)),full,cpu)
DOCK_BASELINES ?= avg,max,laplacian
dock: install
	$(STFUSE) dock --preset $(DOCK_PRESET) --root $(DATA_ROOT) \
		--out $(OUT)/dock_$(DOCK_PRESET) --baseline $(DOCK_BASELINES) \
		$(if $(CKPT),--ckpt stfuse=$(CKPT)) $(if $(filter 1,$(HAS_NVIDIA)),,--threads 1) $(ARGS)
