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

.PHONY: demo test test-browser setup envs model data ui mlflow lint lock clean-state bench-data bench-generation serve bench-cache bench-qlora bench-frontier bench-hostile bench-monitor bench-serving docs screenshots stack stack-down stack-status

demo: setup
	$(RUNG) run $(DEMO_RECIPE)

# The whole suite, browser tests included (Chromium driving the Dagster and MLflow UIs);
# `make test-browser` runs those alone.
test: setup
	$(VENV)/bin/pytest $(PYTEST_ARGS)

test-browser: setup
	$(VENV)/bin/pytest -m browser tests/test_browser.py $(PYTEST_ARGS)

setup: envs model data

envs: $(VENV)/.built $(TRAIN_VENV)/.built

# Rebuilt only when its locks (or the project metadata) change; dev.lock adds the test
# and lint tools on top of orchestrator.lock.
$(VENV)/.built: requirements/orchestrator.lock requirements/dev.lock pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -r requirements/orchestrator.lock -r requirements/dev.lock
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

# The shared profile's services on 127.0.0.1 (PostgreSQL, SeaweedFS S3, an MLflow server),
# state in .stack/ (RUNG_STACK_DIR); idempotent. Then: eval "$$(.venv/bin/rung stack env)"
stack: envs
	$(RUNG) stack up

stack-down: envs
	$(RUNG) stack down

stack-status: envs
	$(RUNG) stack status

lint: envs
	$(VENV)/bin/ruff check pipelines tests benchmarks
	$(VENV)/bin/ruff format --check pipelines tests benchmarks

# Regenerate both locks from requirements/*.in in throw-away environments.
lock:
	bash requirements/lock.sh orchestrator
	bash requirements/lock.sh trainer
	bash requirements/lock.sh dev

# Forget experiments (MLflow store, Dagster runs, run outputs); keeps data and models.
clean-state:
	rm -rf mlruns/mlflow.db mlruns/artifacts .dagster runs reproductions traffic

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

# Regenerate docs/recipes.md, the recipe reference, from the schema in pipelines/recipe/.
docs: envs
	$(RUNG) docs

# Regenerate the README's screenshots (docs/img/*.png) from the browser tests, which
# start the real Dagster and MLflow UIs and run a tiny training (~10 min on 2 cores).
screenshots: setup
	RUNG_README_SCREENSHOTS=1 $(VENV)/bin/pytest tests/test_browser.py $(PYTEST_ARGS)

# The forgetting frontier of the demo: task score vs probes lost for a few training
# settings, gate and probes untouched (~40 min on 2 cores: four trainings).
bench-frontier: setup
	$(VENV)/bin/python benchmarks/forgetting_frontier.py

# 1M chat rows, 10% malformed in every way (bad bytes, NUL, truncated, deep nesting, wrong
# types, 1 MB messages): all quarantined with reasons, counts reconcile, peak memory.
bench-hostile: setup
	$(VENV)/bin/python benchmarks/hostile_rows.py

# Drift monitor: false-alarm rate on in-distribution traffic, detection on two shifts (~1 min).
bench-monitor: setup
	$(VENV)/bin/python benchmarks/monitor.py

# Serving: 1 vs 4 adapters in one process vs one process per adapter (~5 min).
bench-serving: setup
	$(TRAIN_VENV)/bin/python benchmarks/serving.py
