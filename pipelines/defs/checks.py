"""Asset checks on the data stages; blocking ones stop training when they fail.

cleaned_data: schema valid, no duplicates left. split: no leakage between train
and held-out, class balance (labelled tasks), held-out size. training_set: no row
gives a forgetting probe away. The logic is in
pipelines/lib/data_checks.py; these only load the files and report. The checks
are partitioned like their assets: an unpartitioned check on a partitioned asset
would load some other recipe's value.
"""

from pathlib import Path

import dagster as dg

from pipelines.defs.partitions import recipe_partitions
from pipelines.lib import data_checks
from pipelines.lib.asset_values import CleanedData, Split, TrainingSet
from pipelines.lib.dataset import read_jsonl
from pipelines.lib.probes import probes_for
from pipelines.recipe import LoadedRecipe, load_recipe, recipe_path


def _recipe(value: CleanedData | Split) -> LoadedRecipe:
    """The recipe the checked asset was built from (its value names it)."""
    return load_recipe(recipe_path(value.recipe_id))


SEVERITY = {"ERROR": dg.AssetCheckSeverity.ERROR, "WARN": dg.AssetCheckSeverity.WARN}


def _result(outcome: data_checks.CheckOutcome) -> dg.AssetCheckResult:
    metadata = {
        k: v if isinstance(v, int | float | str | bool) else dg.MetadataValue.json(v)
        for k, v in outcome.metadata.items()
    }
    return dg.AssetCheckResult(
        passed=outcome.passed,
        severity=SEVERITY[outcome.severity],
        description=outcome.description,
        metadata={"summary": outcome.description, **metadata},
    )


@dg.asset_check(
    asset="cleaned_data",
    blocking=True,
    partitions_def=recipe_partitions,
    description="Every cleaned row has the one conversation schema and fits training.",
)
def schema_valid(cleaned_data: CleanedData) -> dg.AssetCheckResult:
    recipe = _recipe(cleaned_data)
    rows = read_jsonl(Path(cleaned_data.file))
    return _result(data_checks.schema_valid(rows, recipe.spec.train.sequence_len))


@dg.asset_check(
    asset="cleaned_data",
    blocking=True,
    partitions_def=recipe_partitions,
    description="No exact or near-duplicate rows are left after dedupe.",
)
def no_duplicates(cleaned_data: CleanedData) -> dg.AssetCheckResult:
    dedupe = _recipe(cleaned_data).spec.data.dedupe
    return _result(data_checks.no_duplicates(read_jsonl(Path(cleaned_data.file)), dedupe))


@dg.asset_check(
    asset="split",
    blocking=True,
    partitions_def=recipe_partitions,
    description="No held-out row has an exact or near-duplicate, or a group key, "
    "in training (leakage = 0).",
)
def no_leakage(split: Split) -> dg.AssetCheckResult:
    dedupe = _recipe(split).spec.data.dedupe
    train, heldout = read_jsonl(Path(split.train_file)), read_jsonl(Path(split.heldout_file))
    return _result(data_checks.no_leakage(train, heldout, dedupe))


@dg.asset_check(
    asset="split",
    blocking=True,
    partitions_def=recipe_partitions,
    description="Labelled tasks: the majority class share of training rows "
    "(warns, then blocks, over the recipe's thresholds).",
)
def class_balance(split: Split) -> dg.AssetCheckResult:
    balance = _recipe(split).spec.data.balance
    labels = [
        [r["label"] for r in read_jsonl(Path(getattr(split, f"{side}_file"))) if "label" in r]
        for side in ("train", "heldout")
    ]
    return _result(data_checks.class_balance(labels[0], labels[1], balance))


@dg.asset_check(
    asset="split",
    blocking=True,
    partitions_def=recipe_partitions,
    description="The held-out side has at least data.min_heldout_rows rows.",
)
def heldout_size(split: Split) -> dg.AssetCheckResult:
    minimum = _recipe(split).spec.data.min_heldout_rows
    return _result(data_checks.heldout_size(split.heldout_rows, minimum))


@dg.asset_check(
    asset="training_set",
    blocking=True,
    partitions_def=recipe_partitions,
    description="No training or rehearsal row gives a forgetting probe away (its question, "
    "or its subject with its answer): the regressions count must measure skills kept.",
)
def probes_disjoint(
    context: dg.AssetCheckExecutionContext, training_set: TrainingSet
) -> dg.AssetCheckResult:
    recipe = load_recipe(recipe_path(context.partition_key))
    probes = probes_for(recipe.spec.eval.probes)
    rows = read_jsonl(Path(training_set.file))
    return _result(data_checks.probes_disjoint(rows, probes))
