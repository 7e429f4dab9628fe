"""Resources: the trainer environment is reached through Dagster Pipes, beside the
orchestrator (a subprocess) or, for the training step when `RUNG_TRAINER=k8s`, in a
Kubernetes pod (dagster-k8s' PipesK8sClient; settings in pipelines/lib/k8s_pod.py)."""

from __future__ import annotations

import os
from typing import Literal

import dagster as dg
from dagster_k8s import PipesK8sClient

from pipelines import paths
from pipelines.lib import k8s_pod
from pipelines.lib.offline import OFFLINE_ENV


def pipes_subprocess_client() -> dg.PipesSubprocessClient:
    """Runs worker modules with the trainer venv's Python, offline, from the repo root."""
    return dg.PipesSubprocessClient(cwd=str(paths.REPO_ROOT), env=dict(OFFLINE_ENV))


class TrainerBackend(dg.ConfigurableResource):
    """Where the training step runs: `subprocess` (the trainer env beside the orchestrator,
    the default) or `k8s` (a pod in the trainer image). Set from the RUNG_TRAINER and
    RUNG_K8S_* variables when the code location loads; the Dagster UI shows the values."""

    backend: Literal["subprocess", "k8s"] = "subprocess"
    image: str | None = None
    mlflow_tracking_uri: str | None = None
    pvc: str | None = None
    mount_path: str | None = None
    namespace: str | None = None
    secret: str | None = None
    gpus: int | None = None
    cpu: str | None = None
    memory: str | None = None
    node_selector: dict[str, str] = {}

    @classmethod
    def from_env(cls, environ=os.environ) -> TrainerBackend:
        backend = k8s_pod.trainer_backend(environ)
        if backend == "subprocess":
            return cls()
        settings = k8s_pod.k8s_settings_from_env(environ)  # errors name the variable
        return cls(backend=backend, **vars(settings))

    def k8s_settings(self) -> k8s_pod.K8sSettings | None:
        """The validated pod settings, or None for the local subprocess."""
        if self.backend != "k8s":
            return None
        return k8s_pod.k8s_settings(self.model_dump(exclude={"backend"}))

    def k8s_client(self) -> PipesK8sClient:
        # In a cluster: the service account; elsewhere: the kubeconfig (KUBECONFIG).
        return PipesK8sClient()
