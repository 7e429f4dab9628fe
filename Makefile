# rung: `make demo` and `make test` build whatever is missing first.
# Two environments from committed locks: .venv (orchestrator) and .venv-train (Axolotl).
PYTHON ?= python3.11
VENV := .venv
TRAIN_VENV := .venv-train
RUNG := $(VENV)/bin/rung
DEMO_RECIPE ?= recipes/address-extraction-lora.yaml
export AXOLOTL_DO_NOT_TRACK=1
export DO_NOT_TRACK=1
export MLFLOW_DISABLE_TELEMETRY=true
export DVC_NO_ANALYTICS=1
export PIP_DISABLE_PIP_VERSION_CHECK=1

.PHONY: demo test setup envs model data ui mlflow lint lock clean-state bench-data bench-generation serve bench-cache bench-qlora

demo: setup
	$(RUNG) run $(DEMO_RECIPE)

test: setup
	$(VENV)/bin/pytest $(PYTEST_ARGS)

setup: envs model data

envs: $(VENV)/.built $(TRAIN_VENV)/.built

# Rebuilt only when its lock (or the project metadata) changes.
$(VENV)/.built: requirements/orchestrator.lock pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -r requirements/orchestrator.lock
	$(VENV)/bin/pip install --quiet --no-deps -e .
	touch $@

# torch first, on its own: plain `pip install torch==2.13.0` takes the local CPU
# wheel on a CPU machine and the CUDA build elsewhere; the lock then finds it satisfied.
$(TRAIN_VENV)/.built: requirements/trainer.lock
	test -d $(TRAIN_VENV) || $(PYTHON) -m venv $(TRAIN_VENV)
	$(TRAIN_VENV)/bin/pip install --quiet torch==2.13.0
	$(TRAIN_VENV)/bin/pip install --quiet -r requirements/trainer.lock
	touch $@

model: envs
	$(RUNG) prepare-model

data: envs
	$(RUNG) data

ui: setup
	$(RUNG) ui

mlflow: envs
	$(RUNG) mlflow

# Serve a registered model on 127.0.0.1 (the trainer env loads base model + adapter), e.g.
#   make serve MODEL=models:/address-extraction-teacher@champion [PORT=5001]
PORT ?= 5001
serve: setup
	@test -n "$(MODEL)" || { echo "usage: make serve MODEL=models:/<name>@champion [PORT=5001]"; exit 2; }
	$(RUNG) serve "$(MODEL)" --port $(PORT)

lint: envs
	$(VENV)/bin/ruff check pipelines tests benchmarks
	$(VENV)/bin/ruff format --check pipelines tests benchmarks

# Regenerate both locks from requirements/*.in in throw-away environments.
lock:
	bash requirements/lock.sh orchestrator
	bash requirements/lock.sh trainer

# Forget experiments (MLflow store, Dagster runs, run outputs); keeps data and models.
clean-state:
	rm -rf mlruns/mlflow.db mlruns/artifacts .dagster runs reproductions

# The data-stage benchmark: 1M synthetic chat rows, rung vs the naive baseline (~5 min).
bench-data: envs
	$(VENV)/bin/python benchmarks/data_stage.py

# Held-out generation throughput: batched vs one row at a time (~2 min).
bench-generation: setup
	$(TRAIN_VENV)/bin/python benchmarks/generation.py

# Re-runs of the default recipe (no-op, eval-only change) against its first run, in a
# fresh state dir (~10 min on 2 cores).
bench-cache: setup
	$(VENV)/bin/python benchmarks/noop_rerun.py

# QLoRA vs LoRA training throughput and GPU memory; needs a CUDA GPU.
bench-qlora: setup
	$(VENV)/bin/python benchmarks/qlora_gpu.py
