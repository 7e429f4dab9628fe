"""The training step as a Kubernetes pod (opt-in, `RUNG_TRAINER=k8s`): the settings a
deployment gives, and the pod that dagster-k8s' `PipesK8sClient.run` creates from them
(this module builds its `base_pod_meta` and `base_pod_spec`; pure functions, no dagster).

The pod runs the same Pipes worker (`pipelines/worker/train.py`) with the same
`axolotl train ... --launcher ...` command as the local subprocess, in the trainer image
(docker/trainer.Dockerfile). What the pod needs to agree with the orchestrator on:

- Files: the orchestrator and the pod mount one volume (a PersistentVolumeClaim) at the
  same path, and rung's state and cache folders (`RUNG_STATE_DIR`, `RUNG_CACHE_DIR`) live
  on it, so the Axolotl config, the training rows, the base model and the adapter are at
  the same absolute paths on both sides.
- MLflow: the pod logs into the run the orchestrator created, through an MLflow server it
  can reach (`RUNG_K8S_MLFLOW_TRACKING_URI`); this machine's sqlite file or 127.0.0.1 mean
  nothing inside a pod and are refused.
- Secrets: never copied into the pod body. A Kubernetes Secret named in the settings is
  mounted as environment variables (`envFrom`), so the body holds its name only.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from pipelines.lib.asset_values import StageError
from pipelines.lib.launchers import TrainerHost
from pipelines.lib.offline import OFFLINE_ENV
from pipelines.recipe import TrainSection

# Opt-in: "subprocess" (default: the trainer env beside the orchestrator) or "k8s".
TRAINER_BACKEND_ENV = "RUNG_TRAINER"
BACKENDS = ("subprocess", "k8s")
# Where the trainer image (docker/trainer.Dockerfile) keeps the repository and its venv.
IMAGE_REPO_ROOT = PurePosixPath("/opt/rung")
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CONTAINER_NAME = "trainer"
STATE_VOLUME = "rung-state"
GPU_RESOURCE = "nvidia.com/gpu"
# The settings, read from the environment of the orchestrator (names in error messages).
SETTINGS_ENV = {
    "image": "RUNG_K8S_IMAGE",
    "mlflow_tracking_uri": "RUNG_K8S_MLFLOW_TRACKING_URI",
    "pvc": "RUNG_K8S_PVC",
    "mount_path": "RUNG_K8S_MOUNT_PATH",
    "namespace": "RUNG_K8S_NAMESPACE",
    "secret": "RUNG_K8S_SECRET",
    "gpus": "RUNG_K8S_GPUS",
    "cpu": "RUNG_K8S_CPU",
    "memory": "RUNG_K8S_MEMORY",
    "node_selector": "RUNG_K8S_NODE_SELECTOR",
}
_LOOPBACK = {"localhost", "127.0.0.1", "::1", "0.0.0.0", "[::1]"}
_LABEL_VALUE = re.compile(r"[^A-Za-z0-9._-]")
_CPU = re.compile(r"^\d+(\.\d+)?$|^\d+m$")  # "4", "0.5", "3500m"
_MEMORY = re.compile(r"^\d+(\.\d+)?([EPTGMk]i?|Ki)?$")  # "64Gi", "32G", "500Mi"


@dataclass(frozen=True)
class K8sSettings:
    """Where and how the trainer pod runs (see SETTINGS_ENV for the variable of each)."""

    image: str
    mlflow_tracking_uri: str
    pvc: str
    mount_path: str
    namespace: str | None = None
    secret: str | None = None
    gpus: int | None = None  # None: the recipe's processes when it needs GPUs, else 0
    cpu: str | None = None
    memory: str | None = None
    node_selector: dict[str, str] = field(default_factory=dict)


def check_pod_tracking_uri(uri: str | None) -> str:
    """The MLflow URI a pod logs to: an http(s) server it can reach, never a local store."""
    setting = SETTINGS_ENV["mlflow_tracking_uri"]
    if not uri:
        raise ValueError(
            f"{setting} is not set: a training pod logs into MLflow through a server it can "
            "reach (e.g. http://mlflow.rung.svc:5000, an `mlflow server` on the same store as "
            "the orchestrator); this machine's sqlite file is not visible from a pod."
        )
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        raise ValueError(
            f"{setting}={uri!r}: a training pod cannot use a {parts.scheme or 'local'} store "
            "(sqlite or a file path lives on the orchestrator's disk); give the http(s) URL of "
            "an MLflow server the pod can reach."
        )
    if (parts.hostname or "") in _LOOPBACK | {h.strip("[]") for h in _LOOPBACK}:
        raise ValueError(
            f"{setting}={uri!r}: {parts.hostname} inside a pod is the pod itself; give an "
            "address of the MLflow server that pods can reach (a Service name or host)."
        )
    return uri


def _node_selector(text: str) -> dict[str, str]:
    pairs = [item.strip() for item in text.split(",") if item.strip()]
    if any("=" not in item for item in pairs):
        raise ValueError(
            f"{SETTINGS_ENV['node_selector']}={text!r}: write key=value pairs separated by "
            "commas, e.g. nvidia.com/gpu.product=NVIDIA-A100-SXM4-80GB"
        )
    return dict(item.split("=", 1) for item in pairs)


def k8s_settings(values: Mapping[str, object]) -> K8sSettings:
    """Settings from `values` (keys as in SETTINGS_ENV); errors name the variable to set."""
    missing = [SETTINGS_ENV[key] for key in ("image", "pvc", "mount_path") if not values.get(key)]
    if missing:
        raise ValueError(
            f"{TRAINER_BACKEND_ENV}=k8s needs {', '.join(missing)}: the trainer image, the "
            "PersistentVolumeClaim holding rung's state and cache, and where it is mounted "
            "(the same path on the orchestrator and in the pod)."
        )
    mount_path = str(values["mount_path"])
    if not PurePosixPath(mount_path).is_absolute():
        raise ValueError(f"{SETTINGS_ENV['mount_path']}={mount_path!r}: give an absolute path")
    gpus = values.get("gpus")
    if gpus not in (None, ""):
        try:
            gpus = int(str(gpus))
        except ValueError:
            gpus = -1
        if gpus < 0:
            raise ValueError(f"{SETTINGS_ENV['gpus']}={values['gpus']!r}: give a count (0 or more)")
    else:
        gpus = None
    for key, pattern, example in (("cpu", _CPU, "8 or 3500m"), ("memory", _MEMORY, "64Gi")):
        if values.get(key) and not pattern.match(str(values[key])):
            raise ValueError(
                f"{SETTINGS_ENV[key]}={values[key]!r}: give a Kubernetes quantity, e.g. {example}"
            )
    selector = values.get("node_selector") or {}
    return K8sSettings(
        image=str(values["image"]),
        mlflow_tracking_uri=check_pod_tracking_uri(values.get("mlflow_tracking_uri")),  # type: ignore[arg-type]
        pvc=str(values["pvc"]),
        mount_path=mount_path,
        namespace=str(values["namespace"]) if values.get("namespace") else None,
        secret=str(values["secret"]) if values.get("secret") else None,
        gpus=gpus,
        cpu=str(values["cpu"]) if values.get("cpu") else None,
        memory=str(values["memory"]) if values.get("memory") else None,
        node_selector=_node_selector(selector) if isinstance(selector, str) else dict(selector),
    )


def trainer_backend(environ: Mapping[str, str] = os.environ) -> str:
    backend = environ.get(TRAINER_BACKEND_ENV) or "subprocess"
    if backend not in BACKENDS:
        raise ValueError(f"{TRAINER_BACKEND_ENV}={backend!r}: use one of {', '.join(BACKENDS)}")
    return backend


def k8s_settings_from_env(environ: Mapping[str, str] = os.environ) -> K8sSettings | None:
    """The pod settings when `RUNG_TRAINER=k8s`, else None (the local subprocess)."""
    if trainer_backend(environ) != "k8s":
        return None
    return k8s_settings({key: environ.get(name) for key, name in SETTINGS_ENV.items()})


def needs_cuda(train: TrainSection) -> bool:
    """Whether the recipe's training can only run with CUDA GPUs."""
    distributed = train.distributed
    return bool(
        train.adapter == "qlora"
        or train.deepspeed
        or train.fsdp
        or distributed.launcher == "torchrun"
        or distributed.processes > 1
    )


def gpu_count(settings: K8sSettings, train: TrainSection) -> int:
    """GPUs the pod asks for: the setting, else one per training process when the recipe
    runs several processes or needs CUDA, else none. Several processes on fewer GPUs
    than processes are refused (each process takes one GPU)."""
    processes = train.distributed.processes
    gpus = settings.gpus if settings.gpus is not None else processes if needs_cuda(train) else 0
    if 0 < gpus < processes:
        raise StageError(
            f"train.distributed.processes: {processes} needs {processes} GPUs (one per "
            f"process) and {SETTINGS_ENV['gpus']} asks for {gpus}: raise it, or set it to 0 "
            "to run the processes on the pod's CPUs."
        )
    return gpus


def _cores(cpu: str | None) -> int | None:
    """Whole cores in a Kubernetes CPU quantity ("4", "3500m"), for sharing out threads."""
    if not cpu:
        return None
    cores = int(cpu[:-1]) // 1000 if cpu.endswith("m") else int(float(cpu))  # checked format
    return max(1, cores)


def trainer_host(settings: K8sSettings, train: TrainSection) -> TrainerHost:
    """The pod as a place to run `axolotl train`: the image's trainer env, CUDA when it gets
    GPUs, its CPU request shared out between CPU processes, MLflow through the server."""
    return TrainerHost(
        trainer_bin=Path(str(IMAGE_REPO_ROOT / ".venv-train" / "bin")),
        cuda=gpu_count(settings, train) > 0,
        path=IMAGE_PATH,
        cpu_threads=_cores(settings.cpu),
        mlflow_tracking_uri=settings.mlflow_tracking_uri,
    )


def worker_command(module: str) -> list[str]:
    """The Pipes worker `module` run by the image's trainer Python."""
    return [str(IMAGE_REPO_ROOT / ".venv-train" / "bin" / "python"), "-m", module]


def pod_env(settings: K8sSettings, *, mlflow_run_id: str, mlflow_experiment: str) -> dict[str, str]:
    """The pod's variables: telemetry off, offline hub, the repo on the path, the MLflow
    run. Built from constants and the settings only: nothing of this process's
    environment (where tokens and passwords live) is copied."""
    return {
        **OFFLINE_ENV,
        "PYTHONPATH": str(IMAGE_REPO_ROOT),
        "PYTHONUNBUFFERED": "1",
        "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
        "MLFLOW_EXPERIMENT_NAME": mlflow_experiment,
        "MLFLOW_RUN_ID": mlflow_run_id,
    }


def _label(value: str) -> str:
    return _LABEL_VALUE.sub("-", value)[:63].strip("-._") or "none"


def require_on_volume(settings: K8sSettings, files: Mapping[str, str | Path]) -> None:
    """Refuse (StageError) when a file the pod reads or writes (`files`: what -> path) is
    not on the volume it mounts: the pod would not find it."""
    mount = Path(settings.mount_path)
    outside = [
        f"{what} {path}" for what, path in files.items() if not Path(path).is_relative_to(mount)
    ]
    if outside:
        raise StageError(
            f"the training pod mounts the volume {settings.pvc} at {settings.mount_path} and "
            f"these are not on it: {'; '.join(outside)}. Set RUNG_STATE_DIR and RUNG_CACHE_DIR "
            f"to folders under {settings.mount_path}, with the volume mounted at that path on "
            "this machine too."
        )


def pod_body(
    settings: K8sSettings,
    train: TrainSection,
    *,
    recipe_id: str,
    command: list[str],
    mlflow_run_id: str,
    mlflow_experiment: str,
) -> tuple[dict, dict]:
    """(base_pod_meta, base_pod_spec) for `PipesK8sClient.run`: one container running
    `command` in the trainer image with the recipe's GPUs, the state volume, the Secret
    by name and the variables of `pod_env`. Dagster Pipes adds its own variables."""
    gpus = gpu_count(settings, train)
    requests = {k: v for k, v in (("cpu", settings.cpu), ("memory", settings.memory)) if v}
    limits: dict[str, str] = {"memory": settings.memory} if settings.memory else {}
    if gpus:
        limits[GPU_RESOURCE] = str(gpus)  # extended resources go in limits (requests follow)
    container: dict = {
        "name": CONTAINER_NAME,
        "image": settings.image,
        "imagePullPolicy": "IfNotPresent",
        "command": command,
        "workingDir": str(IMAGE_REPO_ROOT),
        "env": [
            {"name": name, "value": value}
            for name, value in pod_env(
                settings, mlflow_run_id=mlflow_run_id, mlflow_experiment=mlflow_experiment
            ).items()
        ],
        "resources": {"requests": requests, "limits": limits},
        "volumeMounts": [
            {"name": STATE_VOLUME, "mountPath": settings.mount_path},
            {"name": "dshm", "mountPath": "/dev/shm"},  # torch's processes share memory
        ],
    }
    if settings.secret:  # its keys become variables in the pod; the body holds its name
        container["envFrom"] = [{"secretRef": {"name": settings.secret}}]
    spec: dict = {
        "restartPolicy": "Never",
        "containers": [container],
        "volumes": [
            {"name": STATE_VOLUME, "persistentVolumeClaim": {"claimName": settings.pvc}},
            {"name": "dshm", "emptyDir": {"medium": "Memory"}},
        ],
    }
    if settings.node_selector:
        spec["nodeSelector"] = dict(settings.node_selector)
    meta = {
        "labels": {
            "app.kubernetes.io/name": "rung-trainer",
            "app.kubernetes.io/component": "training-run",
            "rung/recipe": _label(recipe_id),
        },
        "annotations": {"rung/mlflow-run-id": mlflow_run_id, "rung/recipe": recipe_id},
    }
    return meta, spec
