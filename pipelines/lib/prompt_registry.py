"""What ships when a prompt wins: the cheapest sufficient rung's prompt in MLflow's prompt
registry (`prompts:/<recipe>-prompt@champion`), tagged with the same lineage as an
adapter, so "use few-shot, don't fine-tune" is as concrete as shipping an adapter.

The template is MLflow's chat form with `{{question}}` (and `{{context}}` for retrieval):
the recipe's system prompt and user template, the fixed few-shot examples, or the
retrieval template with the corpus version in the tags.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines.lib import evaluation as ladder
from pipelines.lib import tracking
from pipelines.lib.asset_values import CheapRungs, RegisteredPrompt, Split
from pipelines.lib.dataset import read_conversations
from pipelines.lib.retrieval import TEMPLATE
from pipelines.lib.training_set import as_sft
from pipelines.recipe import LoadedRecipe

QUESTION = "{{question}}"
CHAMPION = "champion"


def prompt_name(recipe: LoadedRecipe) -> str:
    return f"{recipe.registered_name}-prompt"


def _turns(messages: list[dict]) -> list[dict]:
    return [{"role": m["role"], "content": m["content"]} for m in messages if m["role"] != "system"]


def prompt_template(recipe: LoadedRecipe, rung: str, split: Split) -> list[dict[str, str]]:
    """The winning rung's prompt as a chat template with {{question}} ({{context}})."""
    data, cfg = recipe.spec.data, recipe.spec.eval
    user = data.prompt_template.replace("{prompt}", QUESTION)
    system = [{"role": "system", "content": data.system_prompt}] if data.system_prompt else []
    if rung == "retrieval":
        user = TEMPLATE.format(context="{{context}}", question=user)
    examples: list[dict] = []
    if rung == "few_shot" and cfg.few_shot_selection == "fixed":
        train = as_sft(read_conversations(Path(split.train_file)))
        heldout = as_sft(read_conversations(Path(split.heldout_file))).head(1)
        (shots,) = ladder.select_shots(train, heldout, cfg, recipe.spec.data.seed)
        examples = [turn for shot in shots for turn in _turns(shot)]
    return [*system, *examples, {"role": "user", "content": user}]


def _tags(recipe: LoadedRecipe, cheap: CheapRungs, lineage: dict[str, str]) -> dict[str, str]:
    rung, metric = cheap.winner, cheap.primary_metric
    tags = {
        **lineage,
        "rung.recipe_id": recipe.id,
        "rung.rung": rung,
        "rung.verdict": cheap.label,
        "rung.decision": cheap.decision,
        "rung.primary_metric": metric,
        f"rung.{metric}": f"{cheap.candidates[rung][metric]:.4f}",
        "rung.mlflow_run_id": cheap.mlflow_run_id,
    }
    if rung == "few_shot":
        tags["rung.few_shot"] = (
            f"{recipe.spec.eval.few_shot_selection}, k={recipe.spec.eval.few_shot_k}"
        )
    if rung == "retrieval":
        info = cheap.retrieval
        tags["rung.retrieval"] = f"{info['method']}, k={info['k']}"
        tags.update({f"rung.corpus.{name}": sha for name, sha in info["corpus"].items()})
    return {key: str(value)[:5000] for key, value in tags.items() if value is not None}


def register_winning_prompt(
    recipe: LoadedRecipe, cheap: CheapRungs, split: Split, lineage: dict[str, str]
) -> RegisteredPrompt:
    """Register the winning rung's prompt (once per MLflow run) and point @champion at it."""
    client = tracking.configure_mlflow()
    name = prompt_name(recipe)
    existing = _version_of_run(client, name, cheap.mlflow_run_id)
    created = existing is None
    if created:
        version = client.register_prompt(
            name,
            prompt_template(recipe, cheap.winner, split),
            commit_message=cheap.decision,
            tags=_tags(recipe, cheap, lineage),
        ).version
        client.set_prompt_alias(name, CHAMPION, int(version))
    else:
        version = existing
    return RegisteredPrompt(
        name=name,
        version=str(version),
        uri=f"prompts:/{name}/{version}",
        rung=cheap.winner,
        created=created,
        decision=cheap.decision,
    )


def _version_of_run(client: Any, name: str, run_id: str) -> str | None:
    """The version already registered from this MLflow run (a re-run registers nothing new)."""
    if client.get_prompt(name) is None:
        return None
    for version in client.search_prompt_versions(name):
        if version.tags.get("rung.mlflow_run_id") == run_id:
            return str(version.version)
    return None
