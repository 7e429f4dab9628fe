"""One partition per recipe file (its stem), and the recipe a step works for."""

import dagster as dg

from pipelines.recipe import LoadedRecipe, list_recipe_ids, load_recipe, recipe_path

# Read when the code location loads: a new recipe file appears after "Reload definitions".
recipe_partitions = dg.StaticPartitionsDefinition(list_recipe_ids())


def recipe_for(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> LoadedRecipe:
    return load_recipe(recipe_path(context.partition_key))
