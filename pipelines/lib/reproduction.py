"""Reproduce a finished run: its exact recipe and raw data version, in a workspace of its own.

A target names the run: an MLflow run id, a registered model (`models:/name@alias`
or `models:/name/3`), or a recipe file (its latest run, preferring one with the
file's current sha256). The recipe comes from the run's artifacts (its sha256 must
match the tag); the raw data comes from the DVC cache or remote by the md5 the run
recorded, restored under reproductions/ (data/, recipes/ and data.dvc are never
touched). The metrics of the new run are compared with the original's.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines import paths
from pipelines.lib import tracking
from pipelines.lib.base_model import resolve_base_model
from pipelines.lib.data_version import restore_data_version
from pipelines.recipe import parse_recipe

# Lineage tags that must be equal for a faithful reproduction.
HASH_TAGS = (
    "rung.data_dvc_md5",
    "rung.recipe_sha256",
    "rung.base_model_sha256",
    "rung.cleaned_sha256",
    "rung.train_sha256",
    "rung.heldout_sha256",
)
# Metrics that measure the machine, not the model: shown, never compared.
TIMING_WORDS = ("time", "seconds", "per_s", "flos", "memory", "mem_")
# |reproduced - original| <= ABS_TOLERANCE + REL_TOLERANCE * |original|
ABS_TOLERANCE = 1e-3
REL_TOLERANCE = 1e-3


class ReproduceError(RuntimeError):
    """The run cannot be reproduced; the message says why and what to do."""


@dataclass(frozen=True)
class OriginalRun:
    run_id: str
    recipe_id: str
    recipe_sha256: str
    data_md5: str
    base_model_sha256: str | None


def _client() -> Any:
    return tracking.configure_mlflow()


def _runs_of_recipe(recipe_id: str) -> list[Any]:
    client = _client()
    experiment = client.get_experiment_by_name(tracking.EXPERIMENT)
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`rung.recipe_id` = '{recipe_id}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
    )
    return [run for run in runs if "rung.reproduces" not in run.data.tags]


def resolve_run(target: str) -> str:
    """The MLflow run id a reproduce target names."""
    from mlflow.exceptions import MlflowException

    client = _client()
    if target.startswith("models:/"):
        name, _, rest = target.removeprefix("models:/").partition("@")
        try:
            if rest:
                version = client.get_model_version_by_alias(name, rest)
            else:
                name, _, number = name.partition("/")
                version = client.get_model_version(name, number)
        except MlflowException as exc:
            raise ReproduceError(f"{target}: not in the MLflow registry ({exc.message})") from None
        return version.run_id
    if target.endswith((".yaml", ".yml")):
        file = Path(target)
        runs = _runs_of_recipe(file.stem)
        if not runs:
            raise ReproduceError(
                f"{target}: no finished MLflow run of recipe '{file.stem}' to "
                f"reproduce (launch it first: rung run {target})"
            )
        sha = hashlib.sha256(file.read_bytes()).hexdigest() if file.is_file() else None
        same = [run for run in runs if run.data.tags.get("rung.recipe_sha256") == sha]
        return (same or runs)[0].info.run_id
    try:
        return client.get_run(target).info.run_id
    except MlflowException:
        raise ReproduceError(
            f"{target!r} is not an MLflow run id, a models:/name@alias or a recipe .yaml file"
        ) from None


def load_original(run_id: str) -> OriginalRun:
    tags = _client().get_run(run_id).data.tags
    missing = [
        t for t in ("rung.recipe_id", "rung.recipe_sha256", "rung.data_dvc_md5") if t not in tags
    ]
    if missing:
        raise ReproduceError(f"MLflow run {run_id} was not made by rung (no {', '.join(missing)})")
    return OriginalRun(
        run_id,
        tags["rung.recipe_id"],
        tags["rung.recipe_sha256"],
        tags["rung.data_dvc_md5"],
        tags.get("rung.base_model_sha256"),
    )


def prepare_workspace(original: OriginalRun, root: Path | None = None) -> Path:
    """Restore the run's recipe and raw data version into a fresh workspace; returns the
    recipe file (workspace/recipes/<id>.yaml; the data is under workspace/data/)."""
    root = root or paths.reproductions_dir() / f"{original.recipe_id}-{original.run_id[:12]}"
    shutil.rmtree(root, ignore_errors=True)
    (root / "recipes").mkdir(parents=True)
    restore_data_version(original.data_md5, root / "data")  # refuses clearly when it is gone
    import mlflow

    local = Path(
        mlflow.artifacts.download_artifacts(
            run_id=original.run_id,
            artifact_path=f"recipe/{original.recipe_id}.yaml",
            dst_path=str(root / "downloaded"),
        )
    )
    content = local.read_bytes()
    if hashlib.sha256(content).hexdigest() != original.recipe_sha256:
        raise ReproduceError(
            f"MLflow run {original.run_id}: the logged recipe does not hash to "
            f"its tag rung.recipe_sha256 {original.recipe_sha256[:12]}…"
        )
    recipe_file = root / "recipes" / f"{original.recipe_id}.yaml"
    recipe_file.write_bytes(content)
    shutil.rmtree(root / "downloaded")
    spec = parse_recipe(content.decode("utf-8"), source=str(recipe_file))
    base = resolve_base_model(spec.model.base_model)
    if original.base_model_sha256 and base.sha256 != original.base_model_sha256:
        raise ReproduceError(
            f"MLflow run {original.run_id} used base model {spec.model.base_model!r} with weights "
            f"sha256 {original.base_model_sha256[:12]}…, but here it resolves to "
            f"{base.sha256[:12]}… ({base.path}); restore those weights to reproduce"
        )
    return recipe_file


@dataclass(frozen=True)
class Comparison:
    hashes: list[tuple[str, str | None, str | None]]  # tag, original, reproduced
    metrics: list[tuple[str, float, float | None, bool | None]]  # name, orig, new, within

    @property
    def hashes_equal(self) -> bool:
        return all(a == b for _, a, b in self.hashes)

    @property
    def metrics_within_tolerance(self) -> bool:
        return all(ok is not False for *_, ok in self.metrics)

    @property
    def reproduced(self) -> bool:
        return self.hashes_equal and self.metrics_within_tolerance


def within_tolerance(original: float, reproduced: float) -> bool:
    return abs(reproduced - original) <= ABS_TOLERANCE + REL_TOLERANCE * abs(original)


def compare_runs(original_id: str, reproduced_id: str) -> Comparison:
    """Lineage hashes and every metric of the original run against the reproduction's."""
    client = _client()
    first, second = client.get_run(original_id).data, client.get_run(reproduced_id).data
    hashes = [(tag, first.tags.get(tag), second.tags.get(tag)) for tag in HASH_TAGS]
    metrics = []
    for name in sorted(first.metrics):
        new = second.metrics.get(name)
        timing = any(word in name for word in TIMING_WORDS)
        ok = None if timing or new is None else within_tolerance(first.metrics[name], new)
        metrics.append((name, first.metrics[name], new, ok))
    return Comparison(hashes, metrics)


def format_comparison(comparison: Comparison) -> str:
    lines = [f"  {'lineage':<22} {'original':<15} {'reproduced':<15}"]
    for tag, a, b in comparison.hashes:
        mark = "=" if a == b else "DIFFERENT"
        lines.append(
            f"  {tag.removeprefix('rung.'):<22} {str(a)[:14]:<15} {str(b)[:14]:<15} {mark}"
        )
    lines += [
        "",
        f"  {'metric':<40} {'original':>10} {'reproduced':>12} {'diff':>10}  "
        f"(ok when |diff| <= {ABS_TOLERANCE:g} + {REL_TOLERANCE:g} x |original|)",
    ]
    for name, a, b, ok in comparison.metrics:
        if b is None:
            lines.append(f"  {name:<40} {a:>10.4f}   (not in the reproduction)")
            continue
        mark = {None: "(timing, not compared)", True: "ok", False: "OUT OF TOLERANCE"}[ok]
        lines.append(f"  {name:<40} {a:>10.4f} {b:>12.4f} {b - a:>+10.4f}  {mark}")
    verdict = "REPRODUCED" if comparison.reproduced else "NOT REPRODUCED"
    lines += [
        "",
        f"{verdict}: lineage hashes {'equal' if comparison.hashes_equal else 'differ'}, "
        f"metrics {'within' if comparison.metrics_within_tolerance else 'outside'} tolerance",
    ]
    return "\n".join(lines)
