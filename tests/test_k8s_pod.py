"""The training step in a Kubernetes pod: the pod body rung hands to dagster-k8s'
PipesK8sClient, built by dagster-k8s' own `build_pod_body` into a kubernetes V1Pod and
checked against the Kubernetes API schema, all offline (no cluster here)."""

import json
from pathlib import Path

import kubernetes
import kubernetes_validate
import pytest
from dagster_k8s.pipes import build_pod_body

from pipelines.lib import k8s_pod, trainer_env
from pipelines.lib.asset_values import StageError
from pipelines.lib.launchers import axolotl_command
from pipelines.lib.offline import OFFLINE_ENV
from pipelines.recipe import load_recipe

FIXTURES = Path(__file__).parent / "fixtures" / "recipes"
SETTINGS = {
    "image": "registry.example.com/rung-trainer:0.1",
    "mlflow_tracking_uri": "http://mlflow.rung.svc:5000",
    "pvc": "rung-state",
    "mount_path": "/rung",
    "secret": "rung-secrets",
    "cpu": "8",
    "memory": "32Gi",
    "node_selector": "nvidia.com/gpu.product=NVIDIA-A100-SXM4-80GB",
}
SECRETS = {  # planted in this process's environment: none may reach the pod body
    "HF_TOKEN": "hf_planted_token_value",
    "MLFLOW_TRACKING_PASSWORD": "planted-mlflow-password",
    "AWS_SECRET_ACCESS_KEY": "planted-aws-secret",
    "OPENAI_API_KEY": "sk-planted",
}
KUBERNETES_VERSION = "1.33"  # checked against this API version's schema


def settings(**changes):
    return k8s_pod.k8s_settings({**SETTINGS, **changes})


def train(name: str):
    return load_recipe(FIXTURES / name).spec.train


def v1_pod(meta: dict, spec: dict, bootstrap: dict | None = None) -> kubernetes.client.V1Pod:
    """What PipesK8sClient.run creates from rung's base_pod_meta/base_pod_spec."""
    bootstrap = bootstrap or {"DAGSTER_PIPES_CONTEXT": "e30=", "DAGSTER_PIPES_MESSAGES": "e30="}
    return build_pod_body("dagster-run-1", None, None, bootstrap, meta, spec)


def as_json(pod: kubernetes.client.V1Pod) -> dict:
    return kubernetes.client.ApiClient().sanitize_for_serialization(pod)


def rendered(name="address-ddp-tiny.yaml", **changes) -> tuple[dict, dict]:
    return k8s_pod.pod_body(
        settings(**changes),
        train(name),
        recipe_id=Path(name).stem,
        command=k8s_pod.worker_command("pipelines.worker.train"),
        mlflow_run_id="0123abcd",
        mlflow_experiment="rung",
    )


def test_the_pod_runs_the_pipes_worker_in_the_trainer_image_with_a_gpu_per_process():
    pod = v1_pod(*rendered("address-ddp-tiny.yaml"))  # distributed: accelerate, 2 processes
    (container,) = pod.spec.containers
    assert container.image == "registry.example.com/rung-trainer:0.1"
    assert container.command == ["/opt/rung/.venv-train/bin/python", "-m", "pipelines.worker.train"]
    assert container.resources.limits["nvidia.com/gpu"] == "2"
    assert container.resources.requests == {"cpu": "8", "memory": "32Gi"}
    assert container.resources.limits["memory"] == "32Gi"
    assert pod.spec.node_selector == {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
    assert pod.spec.restart_policy == "Never"
    assert pod.metadata.labels["rung/recipe"] == "address-ddp-tiny"
    assert pod.metadata.annotations["rung/mlflow-run-id"] == "0123abcd"


def test_the_pod_body_is_a_valid_kubernetes_pod():
    body = as_json(v1_pod(*rendered()))
    body.update(apiVersion="v1", kind="Pod")
    kubernetes_validate.validate(body, KUBERNETES_VERSION, strict=True)  # raises if not
    assert body["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "2"


def test_one_plain_process_gets_no_gpu_unless_asked():
    meta, spec = rendered("address-tiny.yaml")
    assert "nvidia.com/gpu" not in spec["containers"][0]["resources"]["limits"]
    _, spec = rendered("address-tiny.yaml", gpus="1")  # a single-GPU LoRA
    assert spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    _, spec = rendered("address-qlora.yaml")  # QLoRA needs CUDA: one GPU by default
    assert spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_fewer_gpus_than_processes_are_refused_and_zero_means_cpu_processes():
    with pytest.raises(StageError, match=r"processes: 2 needs 2 GPUs .*RUNG_K8S_GPUS"):
        rendered("address-ddp-tiny.yaml", gpus="1")
    cpu_settings = settings(gpus="0")
    host = k8s_pod.trainer_host(cpu_settings, train("address-ddp-tiny.yaml"))
    assert host.cuda is False and host.cpu_threads == 8
    _, spec = rendered("address-ddp-tiny.yaml", gpus="0")
    assert "nvidia.com/gpu" not in spec["containers"][0]["resources"]["limits"]


def test_the_pod_environment_turns_telemetry_off_and_carries_no_secret(monkeypatch):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    body = as_json(v1_pod(*rendered()))
    env = {item["name"]: item.get("value") for item in body["spec"]["containers"][0]["env"]}
    for name, value in OFFLINE_ENV.items():  # AXOLOTL_DO_NOT_TRACK, DO_NOT_TRACK, ...
        assert env[name] == value
    assert env["MLFLOW_DISABLE_TELEMETRY"] == "true" and env["AXOLOTL_DO_NOT_TRACK"] == "1"
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow.rung.svc:5000"
    assert env["MLFLOW_RUN_ID"] == "0123abcd"
    text = json.dumps(body)
    for name, value in SECRETS.items():
        assert value not in text and name not in env
    # The Secret is referenced by name; Kubernetes fills its keys in inside the pod.
    assert body["spec"]["containers"][0]["envFrom"] == [{"secretRef": {"name": "rung-secrets"}}]


def test_the_state_volume_is_the_named_claim_at_the_mount_path():
    body = as_json(v1_pod(*rendered()))
    volumes = {v["name"]: v for v in body["spec"]["volumes"]}
    assert volumes["rung-state"]["persistentVolumeClaim"] == {"claimName": "rung-state"}
    mounts = {m["name"]: m["mountPath"] for m in body["spec"]["containers"][0]["volumeMounts"]}
    assert mounts["rung-state"] == "/rung"


@pytest.mark.parametrize(
    "uri, says",
    [
        (None, "RUNG_K8S_MLFLOW_TRACKING_URI is not set"),
        ("sqlite:////rung/mlruns/mlflow.db", "RUNG_K8S_MLFLOW_TRACKING_URI=.*sqlite"),
        ("/rung/mlruns", "RUNG_K8S_MLFLOW_TRACKING_URI=.*local store"),
        ("http://127.0.0.1:5000", "RUNG_K8S_MLFLOW_TRACKING_URI=.*127.0.0.1 inside a pod"),
        ("http://localhost:5000", "RUNG_K8S_MLFLOW_TRACKING_URI=.*localhost inside a pod"),
    ],
)
def test_a_pod_needs_an_mlflow_server_it_can_reach(uri, says):
    with pytest.raises(ValueError, match=says):
        settings(mlflow_tracking_uri=uri)


def test_the_k8s_backend_is_opt_in_and_names_missing_settings():
    assert k8s_pod.k8s_settings_from_env({}) is None  # default: the local subprocess
    environ = {"RUNG_TRAINER": "k8s", "RUNG_K8S_IMAGE": "img:1"}
    with pytest.raises(ValueError, match="needs RUNG_K8S_PVC, RUNG_K8S_MOUNT_PATH"):
        k8s_pod.k8s_settings_from_env(environ)
    with pytest.raises(ValueError, match="RUNG_TRAINER='kubernetes': use one of subprocess, k8s"):
        k8s_pod.k8s_settings_from_env({"RUNG_TRAINER": "kubernetes"})
    with pytest.raises(ValueError, match="RUNG_K8S_MEMORY='32 GB': give a Kubernetes quantity"):
        settings(memory="32 GB")
    environ = {f"RUNG_K8S_{k.upper()}": str(v) for k, v in SETTINGS.items()}
    loaded = k8s_pod.k8s_settings_from_env({"RUNG_TRAINER": "k8s", **environ})
    assert loaded == settings()


def test_files_off_the_volume_are_refused_before_the_pod_starts():
    k8s_pod.require_on_volume(settings(), {"run folder": Path("/rung/runs/r/1/training_run")})
    with pytest.raises(StageError, match=r"base model /home/u/.cache/rung/.*RUNG_CACHE_DIR"):
        k8s_pod.require_on_volume(settings(), {"base model": Path("/home/u/.cache/rung/m")})


def test_the_pod_launch_command_is_the_local_one_with_the_images_trainer_env():
    distributed = train("address-ddp-tiny.yaml").distributed
    host = k8s_pod.trainer_host(settings(), train("address-ddp-tiny.yaml"))
    config = Path("/rung/runs/r/1/training_run/axolotl.yml")
    in_pod = axolotl_command(
        host.trainer_bin, config, distributed, host.cuda, path=host.path, cpu_threads=8
    )
    local = axolotl_command(Path("/repo/.venv-train/bin"), config, distributed, True, path="/bin")
    assert in_pod.argv[0] == "/opt/rung/.venv-train/bin/axolotl"
    assert in_pod.argv[1:] == local.argv[1:]  # GPUs in the pod: the GPU launch
    assert in_pod.env["PATH"].startswith("/opt/rung/.venv-train/bin:")


def test_the_training_stage_asks_the_pod_not_this_machine_about_cuda(tmp_path, monkeypatch):
    from pipelines.lib.training_stage import train_adapter

    def no_local_question():
        raise AssertionError("a pod's CUDA comes from its GPUs, not from this machine")

    monkeypatch.setattr(trainer_env, "cuda_available", no_local_question)
    recipe = load_recipe(FIXTURES / "address-qlora.yaml")
    cpu_pod = k8s_pod.trainer_host(settings(gpus="0"), recipe.spec.train)

    def launch(*args):
        raise AssertionError("a refused recipe must not reach the trainer")

    with pytest.raises(StageError, match="QLoRA"):
        train_adapter(
            recipe, None, None, None, None, tmp_path, launch, dagster_run_id="x", host=cpu_pod
        )


def test_the_k8s_launch_hands_pipes_k8s_client_the_pod_and_the_launch_command(tmp_path):
    import dagster as dg

    from pipelines.defs.inference import pipes_k8s_launch
    from pipelines.lib import launchers

    calls = []

    class RecordingClient:  # PipesK8sClient's run() signature; no cluster here
        def run(self, **kwargs):
            calls.append(kwargs)

    config = tmp_path / "axolotl.yml"
    config.write_text("base_model: /rung/models/m\n")
    command = launchers.AxolotlCommand(["/opt/rung/.venv-train/bin/axolotl", "train"], {"A": "1"})
    launchers.write_launch_file(command, config)
    context = dg.build_asset_context()
    launch = pipes_k8s_launch(
        context,
        RecordingClient(),
        settings(namespace="ml"),
        "address-ddp-tiny",
        train("address-ddp-tiny.yaml"),
    )
    launch(config, tmp_path / "train.log", tmp_path / "adapter", "run-9")
    (call,) = calls
    assert call["namespace"] == "ml"
    assert call["extras"]["command"] == command.argv and call["extras"]["command_env"] == {"A": "1"}
    assert "image" not in call and "env" not in call  # all in the pod body
    pod = v1_pod(call["base_pod_meta"], call["base_pod_spec"])
    assert pod.spec.containers[0].image == SETTINGS["image"]
    assert pod.metadata.annotations["rung/mlflow-run-id"] == "run-9"


def test_the_dagster_resource_is_the_local_subprocess_unless_opted_in():
    from pipelines.defs.resources import TrainerBackend

    assert TrainerBackend.from_env({}).k8s_settings() is None
    environ = {f"RUNG_K8S_{k.upper()}": str(v) for k, v in SETTINGS.items()}
    resource = TrainerBackend.from_env({"RUNG_TRAINER": "k8s", **environ})
    assert resource.backend == "k8s" and resource.k8s_settings() == settings()
