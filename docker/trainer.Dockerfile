# The rung trainer image: the trainer environment (.venv-train) built from the committed
# lock, plus the repository's worker code, for the training step in a Kubernetes pod
# (RUNG_TRAINER=k8s; pipelines/lib/k8s_pod.py). Build from the repository root:
#
#   docker build -f docker/trainer.Dockerfile -t REGISTRY/rung-trainer:TAG .
#
# Layout the pod body relies on: the repository at /opt/rung, the trainer env at
# /opt/rung/.venv-train (its bin/ first on PATH: Axolotl starts accelerate/torchrun by
# name). Data, the base model and run outputs are NOT in the image: they come from the
# state volume mounted by the pod. No secrets are baked in.
FROM python:3.11-slim-bookworm

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    AXOLOTL_DO_NOT_TRACK=1 \
    DO_NOT_TRACK=1 \
    MLFLOW_DISABLE_TELEMETRY=true \
    HF_HUB_DISABLE_TELEMETRY=1 \
    HF_HUB_OFFLINE=1 \
    HF_DATASETS_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1

# git: some trainer packages read versions from it; build tools for the odd sdist.
RUN apt-get update \
    && apt-get install -y --no-install-recommends git build-essential \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/rung

# The environment first (its own layer, rebuilt only when the lock changes). As in the
# Makefile: torch on its own first — on Linux x86_64, PyPI's torch==2.13.0 is the CUDA
# build with its nvidia-* runtime wheels — then the lock finds torch satisfied.
COPY requirements/trainer.lock requirements/trainer.lock
RUN python -m venv .venv-train \
    && .venv-train/bin/pip install torch==2.13.0 \
    && .venv-train/bin/pip install -r requirements/trainer.lock

# The code the worker runs (pipelines/worker/*, imported as pipelines.worker.*).
COPY pyproject.toml ./
COPY pipelines/ pipelines/

ENV PATH=/opt/rung/.venv-train/bin:$PATH \
    PYTHONPATH=/opt/rung

# A quick self-check at build time: the worker's imports resolve in this environment.
RUN python -c "import dagster_pipes, axolotl, pipelines.worker.train"

# The pod body sets the command (the Dagster Pipes worker); this default only shows
# that the image works: `docker run --rm IMAGE`.
CMD ["python", "-c", "import axolotl, torch; print('axolotl', axolotl.__version__, 'torch', torch.__version__, 'cuda', torch.cuda.is_available())"]
