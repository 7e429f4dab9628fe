"""What every recipe asset shares: partitions, group, a computed code version, and the
reuse -> compute -> remember -> Output sequence around a call into lib/.

`@recipe_asset` sets the settings; `materialize` runs a stage through the asset cache
(pipelines/lib/asset_cache.py) and `output` turns a typed value (lib/asset_values.py)
into a Dagster Output with its data version and metadata. A reused value shows the
same metadata as the run that computed it.
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import dagster as dg

from pipelines import paths
from pipelines.defs.partitions import recipe_for, recipe_partitions
from pipelines.lib import asset_cache
from pipelines.lib.asset_values import AssetValue, FilePath, Json, Markdown, StageError, Table
from pipelines.run_tags import CACHE_TAG, REPRODUCES_TAG

GROUP = "rung"
V = TypeVar("V", bound=AssetValue)


def recipe_asset(**asset_kwargs: Any) -> Callable:
    """`@dg.asset` partitioned by recipe, in rung's group, whose code version is the hash of
    every pipelines module its own module imports (directly or not)."""

    def decorate(fn: Callable) -> dg.AssetsDefinition:
        return dg.asset(
            partitions_def=recipe_partitions,
            group_name=GROUP,
            code_version=asset_cache.code_version(fn.__module__),
            **asset_kwargs,
        )(fn)

    return decorate


def workdir(context: dg.AssetExecutionContext) -> Path:
    """runs/<recipe>/<dagster run id>/<asset>/ — every file an asset writes goes here."""
    folder = paths.runs_dir() / context.partition_key / context.run_id / context.asset_key.path[-1]
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def reproduced_run(context: dg.AssetExecutionContext) -> str | None:
    """The MLflow run this Dagster run reproduces, if it is a reproduction."""
    return context.run.tags.get(REPRODUCES_TAG)


def cache_mode(context: dg.AssetExecutionContext) -> str:
    """'use' (default), 'refresh' (`rung run --force`) or 'off' (a reproduction)."""
    return context.run.tags.get(CACHE_TAG, "use")


def _table(table: Table) -> dg.MetadataValue:
    schema = dg.TableSchema(columns=[dg.TableColumn(name, "string") for name in table.columns])
    records = [dg.TableRecord(dict(zip(table.columns, map(str, row)))) for row in table.rows]
    return dg.MetadataValue.table(records=records, schema=schema)


def dagster_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """lib's plain metadata as Dagster metadata values (None values left out)."""
    converters = {
        Markdown: lambda v: dg.MetadataValue.md(v.text),
        Table: _table,
        FilePath: lambda v: dg.MetadataValue.path(v.path),
        Json: lambda v: dg.MetadataValue.json(v.value),
    }
    return {
        name: converters.get(type(value), lambda v: v)(value)
        for name, value in metadata.items()
        if value is not None
    }


def output(value: AssetValue, **extra: Any) -> dg.Output:
    return dg.Output(
        value,
        data_version=dg.DataVersion(value.data_version),
        metadata=dagster_metadata({**value.metadata(), **extra}),
    )


def run_stage(compute: Callable[[], V]) -> V:
    """A lib stage's own error becomes a Dagster failure that says only why."""
    try:
        return compute()
    except StageError as exc:
        raise dg.Failure(str(exc)) from None


def materialize(
    context: dg.AssetExecutionContext,
    value_type: type[V],
    *,
    inputs: dict[str, Any],
    compute: Callable[[str], V],
    reusable: Callable[[V, str], bool] | None = None,
) -> dg.Output:
    """The stored value when this asset's code, recipe parts and `inputs` are unchanged
    (and `reusable` agrees); otherwise `compute(cache_key)`, stored for next time."""
    recipe, asset = recipe_for(context), context.asset_key.path[-1]
    code = context.assets_def.code_versions_by_key[context.asset_key]
    key = asset_cache.cache_key(asset, code, recipe.spec, inputs)
    mode = cache_mode(context)
    hit = asset_cache.lookup(recipe.id, asset, key) if mode == "use" else None
    if hit is not None:
        value = value_type.model_validate(hit["value"])
        if reusable is None or reusable(value, key):
            context.log.info(
                f"{asset}: code, recipe parts and inputs unchanged since Dagster run "
                f"{hit['dagster_run_id']}; reusing its outputs (cache key {key})"
            )
            return output(
                value, cache="reused", cache_key=key, reused_from_dagster_run=hit["dagster_run_id"]
            )
    value = run_stage(lambda: compute(key))
    if mode != "off":
        stored = value.model_dump(mode="json")
        asset_cache.store(recipe.id, asset, key, stored, value.files(), context.run_id)
    return output(value, cache="computed", cache_key=key)
