"""The MLflow model registry: adapters that passed the gate, with aliases that mean something.

A SHIP run becomes a new version of the registered model the recipe names
(`register.name`, default the recipe id). The version is a pyfunc logged "from
code" (pipelines/worker/chat_model.py) holding the adapter (safetensors only), a
pointer to the base model (path + weights sha256), the data card and the
evaluation report, tagged with the lineage of the run. Registration is idempotent:
one version per MLflow run.

Then the version gets the `challenger` alias, and `champion` when it beat the
current champion on the same held-out rows (see pipelines/lib/aliases.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines import paths
from pipelines.lib import tracking
from pipelines.lib.aliases import (
    CHALLENGER,
    CHAMPION,
    AliasMove,
    decide_promotion,
    move_alias,
    now_utc,
    registered_model_exists,
    version_with_alias,
)
from pipelines.lib.evaluation import MACHINE_METRICS
from pipelines.lib.registry_lock import registry_lock

LOGGED_MODEL_NAME = "chat_model"
ADAPTER_FILES = ("adapter_model.safetensors", "adapter_config.json")
# Run tags copied onto a version (lineage); long or run-specific ones are left out.
SKIPPED_RUN_TAGS = ("rung.verdict_reasons",)


class RegistryError(RuntimeError):
    pass


@dataclass(frozen=True)
class Registration:
    name: str
    version: str
    created: bool  # False: this run was registered before (idempotent re-run)
    model_uri: str  # models:/name/version
    aliases: list[str]
    decision: str  # why the version is (or is not) the champion
    moves: list[AliasMove] = field(default_factory=list)


def chat_signature() -> Any:
    """Input: a `messages` column of [{role, content}]; output: the reply; param max_new_tokens."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import (
        Array,
        ColSpec,
        Object,
        ParamSchema,
        ParamSpec,
        Property,
        Schema,
    )

    message = Object([Property("role", "string"), Property("content", "string")])
    return ModelSignature(
        inputs=Schema([ColSpec(Array(message), "messages")]),
        outputs=Schema([ColSpec("string")]),
        params=ParamSchema([ParamSpec("max_new_tokens", "long", 128)]),
    )


def find_version(client: Any, name: str, run_id: str) -> Any | None:
    """The version registered from MLflow run `run_id`, if any."""
    if not registered_model_exists(client, name):
        return None
    found = client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    return min(found, key=lambda v: int(v.version)) if found else None


def evaluation_sha256(report: dict[str, Any]) -> str:
    """Content hash of what an evaluation measured about the models (timings and
    throughput left out: they change with the machine's load, not with the model)."""
    measured = {k: v for k, v in report.items() if k != "timings"}
    measured["candidates"] = {
        name: {m: v for m, v in scores.items() if m not in MACHINE_METRICS}
        for name, scores in report.get("candidates", {}).items()
    }
    return hashlib.sha256(json.dumps(measured, sort_keys=True, default=str).encode()).hexdigest()


def version_tags(
    run_tags: dict[str, str],
    report: dict[str, Any],
    dagster_run_id: str,
    evaluated_champion: dict[str, Any] | None,
) -> dict[str, str]:
    """Lineage and evaluation tags of a new version."""
    import importlib.metadata as metadata

    metric, interval = report["primary_metric"], report["interval"]
    tags = {
        k: v
        for k, v in run_tags.items()
        if k.startswith(tracking.TAG) and k not in SKIPPED_RUN_TAGS
    }
    scores = report["candidates"]
    tags.update(
        {
            "rung.verdict": report["verdict"]["label"],
            "rung.primary_metric": metric,
            f"rung.metric.{metric}": f"{scores['tuned'][metric]:.6f}",
            "rung.interval": (
                f"tuned - {interval['versus']} = {interval['mean']:+.4f} "
                f"[{interval['low']:+.4f}, {interval['high']:+.4f}] "
                f"({interval['confidence']:.0%} paired bootstrap)"
            ),
            "rung.interval_low": f"{interval['low']:.6f}",
            "rung.interval_high": f"{interval['high']:.6f}",
            "rung.interval_versus": interval["versus"],
            "rung.evaluation_sha256": evaluation_sha256(report),
            "rung.registered_by_dagster_run": dagster_run_id,
        }
    )
    if evaluated_champion and "score" in evaluated_champion:
        tags["rung.compared_with_champion"] = (
            f"v{evaluated_champion['version']}: {metric} {evaluated_champion['score']:.4f}"
        )
    for package in ("mlflow", "dagster", "dvc", "pandas"):
        try:
            tags[f"rung.version.orchestrator.{package}"] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return {k: str(v)[:5000] for k, v in tags.items()}


def _stage(
    folder: Path, adapter_dir: Path, base_model: dict[str, str], attachments: dict[str, list[Path]]
) -> dict[str, str]:
    """Copy what the model holds into `folder`; returns MLflow's artifacts mapping."""
    adapter = folder / "adapter"
    adapter.mkdir(parents=True)
    for name in ADAPTER_FILES:
        if not (adapter_dir / name).is_file():
            raise RegistryError(f"{adapter_dir}: no {name}; nothing to register")
        shutil.copy2(adapter_dir / name, adapter / name)
    pointer = folder / "base_model.json"
    pointer.write_text(
        json.dumps(
            {k: base_model[k] for k in ("id", "path", "sha256", "weights")},
            indent=1,
        )
    )
    artifacts = {"adapter": str(adapter), "base_model": str(pointer)}
    for name, sources in attachments.items():  # files, or folders whose files are copied
        target = folder / name
        target.mkdir()
        for source in sources:
            for file in sorted(source.iterdir()) if source.is_dir() else [source]:
                if file.is_file():
                    shutil.copy2(file, target / file.name)
        artifacts[name] = str(target)
    return artifacts


def _requirements(run_tags: dict[str, str]) -> list[str]:
    import mlflow

    pins = [f"mlflow=={mlflow.__version__}"]
    for package in ("torch", "transformers", "peft"):
        version = run_tags.get(f"rung.version.{package}")
        pins.append(f"{package}=={version}" if version else package)
    return pins


def register_adapter(
    *,
    name: str,
    run_id: str,
    adapter_dir: Path,
    base_model: dict[str, str],
    report: dict[str, Any],
    evaluated_champion: dict[str, Any] | None,
    attachments: dict[str, list[Path]],
    dagster_run_id: str,
) -> Registration:
    """Register the run's adapter as a new version (once per run) and move the aliases.

    A run registered before gets no second version; if it was evaluated again since (an
    eval-only recipe change reuses the training), the version's evaluation tags are updated,
    and aliases do not move (promotion is decided when a version is created)."""
    import mlflow

    if not report["verdict"]["ship"]:
        raise RegistryError(
            f"MLflow run {run_id}: verdict {report['verdict']['label']}; "
            "only a SHIP verdict is registered"
        )
    client = tracking.configure_mlflow()
    existing = find_version(client, name, run_id)
    if existing is not None:
        return _registered_before(client, existing, report, dagster_run_id, evaluated_champion)
    run_tags = client.get_run(run_id).data.tags
    # The orchestrator has no torch: MLflow's requirement check would warn about it.
    logging.getLogger("mlflow.utils.requirements_utils").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLflow's nudges about type hints and input examples
        artifacts = _stage(Path(tmp), adapter_dir, base_model, attachments)
        with mlflow.start_run(run_id=run_id):
            info = mlflow.pyfunc.log_model(
                name=LOGGED_MODEL_NAME,
                python_model=str(paths.CHAT_MODEL_FILE),
                artifacts=artifacts,
                signature=chat_signature(),
                pip_requirements=_requirements(run_tags),
                metadata={
                    "rung_recipe_id": run_tags.get("rung.recipe_id", ""),
                    "rung_base_model": base_model["id"],
                },
            )
    # create, decide and move under the model's lock: a registration interleaving here
    # would promote against a champion that is no longer the champion (lib/registry_lock.py)
    with registry_lock(name):
        existing = find_version(client, name, run_id)
        if existing is not None:  # registered by another process meanwhile: one version per run
            return _registered_before(client, existing, report, dagster_run_id, evaluated_champion)
        if not registered_model_exists(client, name):
            client.create_registered_model(
                name,
                description="LoRA adapters registered by rung after a SHIP verdict; "
                "aliases: champion (best so far), challenger (newest).",
            )
        version = client.create_model_version(
            name,
            source=info.model_uri,
            run_id=run_id,
            model_id=info.model_id,
            tags=version_tags(run_tags, report, dagster_run_id, evaluated_champion),
            description=_description(report),
        ).version
        version = str(version)
        champion = version_with_alias(client, name, CHAMPION)
        metric = report["primary_metric"]
        promote, reason = decide_promotion(
            metric,
            report["candidates"]["tuned"][metric],
            str(champion.version) if champion else None,
            evaluated_champion,
        )
        client.set_model_version_tag(name, version, "rung.promotion", reason)
        moves = [
            move_alias(
                client, name, CHALLENGER, version, "newest registered version", dagster_run_id
            )
        ]
        if promote:
            moves.append(move_alias(client, name, CHAMPION, version, reason, dagster_run_id))
        aliases = sorted(client.get_model_version(name, version).aliases)
    return Registration(
        name,
        version,
        True,
        f"models:/{name}/{version}",
        aliases,
        reason,
        [m for m in moves if m is not None],
    )


EVALUATION_TAGS = (
    "rung.verdict",
    "rung.primary_metric",
    "rung.interval",
    "rung.interval_low",
    "rung.interval_high",
    "rung.interval_versus",
    "rung.evaluation_sha256",
    "rung.compared_with_champion",
    "rung.recipe_sha256",
)


def _registered_before(
    client: Any,
    existing: Any,
    report: dict[str, Any],
    dagster_run_id: str,
    evaluated_champion: dict[str, Any] | None,
) -> Registration:
    """The run's version, no second one and no alias moved; its evaluation tags and
    description refreshed when this evaluation differs from the one it records."""
    version = client.get_model_version(existing.name, existing.version)  # with its aliases
    run_tags = client.get_run(version.run_id).data.tags
    fresh = version_tags(run_tags, report, dagster_run_id, evaluated_champion)
    if fresh["rung.evaluation_sha256"] != version.tags.get("rung.evaluation_sha256"):
        metric = report["primary_metric"]
        for key in (*EVALUATION_TAGS, f"rung.metric.{metric}"):
            if key in fresh:
                client.set_model_version_tag(version.name, version.version, key, fresh[key])
        client.set_model_version_tag(
            version.name,
            version.version,
            "rung.re_evaluated",
            f"{now_utc()} by Dagster run {dagster_run_id}",
        )
        client.update_model_version(version.name, version.version, description=_description(report))
    return Registration(
        version.name,
        str(version.version),
        False,
        f"models:/{version.name}/{version.version}",
        sorted(version.aliases),
        version.tags.get("rung.promotion", ""),
    )


def _description(report: dict[str, Any]) -> str:
    metric, interval = report["primary_metric"], report["interval"]
    tuned = report["candidates"]["tuned"][metric]
    return (
        f"{report['verdict']['label']}: tuned {metric} {tuned:.4f}; tuned - "
        f"{interval['versus']} {interval['mean']:+.4f} [{interval['low']:+.4f}, "
        f"{interval['high']:+.4f}] on {report.get('heldout_rows', '?')} held-out rows."
    )
