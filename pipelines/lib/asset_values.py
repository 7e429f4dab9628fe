"""What each asset hands downstream: typed, frozen values that carry their own data
version, the files a cached copy needs, and the metadata shown in the Dagster UI.

Values are pydantic models so the asset cache can store them as JSON and read them back
unchanged; metadata is plain data (the `Markdown`, `Table`, `FilePath`, `Json` wrappers
say how to show it) so this module stays free of Dagster. A value computed now and the
same value reused from the cache show the same metadata.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict


@dataclass(frozen=True)
class Markdown:
    text: str


@dataclass(frozen=True)
class Table:
    columns: list[str]
    rows: list[list[Any]]


@dataclass(frozen=True)
class FilePath:
    path: str


@dataclass(frozen=True)
class Json:
    value: Any


class StageError(RuntimeError):
    """A stage could not produce its value; the message says why and where to look."""


class AssetValue(BaseModel):
    """Base of every asset value: immutable, no unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @property
    def data_version(self) -> str:
        raise NotImplementedError

    def files(self) -> list[str]:
        """Files that must still exist for a stored copy of this value to be reused."""
        return []

    def metadata(self) -> dict[str, Any]:
        return {}


class BaseModelValue(AssetValue):
    id: str  # what the recipe named
    path: str  # local folder with config, tokenizer and weights
    sha256: str  # over the weight files
    weights: dict[str, str]  # each weight file's sha256

    @property
    def data_version(self) -> str:
        return self.sha256

    def metadata(self) -> dict[str, Any]:
        return {"model_id": self.id, "path": self.path, "weights_sha256": self.sha256}


class RawData(AssetValue):
    sources: list[str]  # absolute paths of the recipe's source files
    data_md5: str  # data.dvc's directory md5: the data version
    source_sha256: dict[str, str]  # source as the recipe names it -> sha256
    rows: int

    @property
    def data_version(self) -> str:
        return self.data_md5

    def metadata(self) -> dict[str, Any]:
        return {"data_dvc_md5": self.data_md5, "rows": self.rows, "files": Json(self.source_sha256)}


class CleanedData(AssetValue):
    recipe_id: str
    file: str
    sha256: str
    quarantine_file: str
    dropped_file: str
    counts: dict[str, int]
    drop_reasons: dict[str, int]
    timings_s: dict[str, float]
    counts_reconcile: bool

    @property
    def data_version(self) -> str:
        return self.sha256

    def files(self) -> list[str]:
        return [self.file, self.quarantine_file, self.dropped_file]

    def metadata(self) -> dict[str, Any]:
        return {
            **self.counts,
            "sha256": self.sha256,
            "counts_reconcile": self.counts_reconcile,
            "drop_reasons": Json(self.drop_reasons),
            "quarantine_file": FilePath(self.quarantine_file),
            "dropped_file": FilePath(self.dropped_file),
        }


class Split(AssetValue):
    recipe_id: str
    train_file: str
    heldout_file: str
    train_rows: int
    heldout_rows: int
    train_sha256: str
    heldout_sha256: str
    cleaned_sha256: str
    label_field: str | None = None
    rebalanced: dict[str, int] | None = None
    data_card: str  # data_card.md, plots linked as files beside it
    data_card_embedded: str  # the same card with its plots inlined (for Dagster)

    @property
    def data_version(self) -> str:
        return self.train_sha256[:32] + self.heldout_sha256[:32]

    def files(self) -> list[str]:
        return [self.train_file, self.heldout_file, self.data_card, self.data_card_embedded]

    def metadata(self) -> dict[str, Any]:
        return {
            "train_rows": self.train_rows,
            "heldout_rows": self.heldout_rows,
            "train_sha256": self.train_sha256,
            "heldout_sha256": self.heldout_sha256,
            "cleaned_sha256": self.cleaned_sha256,
            **({"label_field": self.label_field} if self.label_field else {}),
            **({"rebalanced": Json(self.rebalanced)} if self.rebalanced else {}),
            "data_card": Markdown(Path(self.data_card_embedded).read_text(encoding="utf-8")),
        }


class CheapRungs(AssetValue):
    """The rungs below fine-tuning, answered and scored before anything is trained."""

    mlflow_run_id: str
    primary_metric: str
    candidates: dict[str, dict[str, float]]  # candidate -> metric -> value (held-out)
    answers_file: str  # every answer: {key, output, tokens, prompt_tokens, seconds}
    contexts_file: str | None = None  # row id -> retrieved passage ids and prompt
    timings: dict[str, dict[str, Any]] = {}
    target: float | None = None
    winner: str | None = None  # the cheapest rung that reached eval.target: nothing trains
    decision: str  # e.g. "USE few_shot: field_f1 0.9300 >= target 0.90"
    retrieval: dict[str, Any] = {}  # method, k, corpus sha256, recall_at_k
    sha256: str  # of the answers and the decision

    @property
    def data_version(self) -> str:
        return self.sha256

    @property
    def label(self) -> str:
        return f"USE {self.winner}" if self.winner else "TRAIN"

    def files(self) -> list[str]:
        return [self.answers_file, *([self.contexts_file] if self.contexts_file else [])]

    def metadata(self) -> dict[str, Any]:
        from pipelines.lib.report import ladder_rows

        report = {"primary_metric": self.primary_metric, "candidates": self.candidates}
        header, *rows = ladder_rows(report)
        return {
            "decision": self.decision,
            "ladder": Table(header, rows),
            "primary_metric": self.primary_metric,
            **({"target": self.target} if self.target is not None else {}),
            **{
                f"{name}_{self.primary_metric}": scores[self.primary_metric]
                for name, scores in self.candidates.items()
            },
            **({"retrieval": Json(self.retrieval)} if self.retrieval else {}),
            "mlflow_run_id": self.mlflow_run_id,
            "answers": FilePath(self.answers_file),
        }


class TrainingSet(AssetValue):
    method: str
    file: str
    sha256: str
    rows: int
    rehearsal_rows: int = 0
    teacher: dict[str, Any] | None = None  # distillation: where the labels came from
    length_bias: dict[str, float] | None = None  # DPO: does "chosen" just mean "longer"?
    notes: dict[str, Any] = {}  # e.g. base_already_right for on-policy DPO pairs

    @property
    def data_version(self) -> str:
        return self.sha256

    def files(self) -> list[str]:
        return [self.file]

    def metadata(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "rows": self.rows,
            "sha256": self.sha256,
            **({"rehearsal_rows": self.rehearsal_rows} if self.rehearsal_rows else {}),
            **({"teacher": self.teacher["id"]} if self.teacher else {}),
            **({"length_bias": Json(self.length_bias)} if self.length_bias else {}),
            **self.notes,
        }


class TrainingRun(AssetValue):
    mlflow_run_id: str
    adapter_dir: str
    adapter_sha256: str
    axolotl_config: str
    log_file: str
    steps: int
    final_train_loss: float | None = None
    mean_train_loss: float | None = None

    @property
    def data_version(self) -> str:
        return self.adapter_sha256

    def files(self) -> list[str]:
        adapter = str(Path(self.adapter_dir) / "adapter_model.safetensors")
        return [adapter, self.axolotl_config, self.log_file]

    def metadata(self) -> dict[str, Any]:
        config = Path(self.axolotl_config).read_text(encoding="utf-8")
        return {
            "mlflow_run_id": self.mlflow_run_id,
            "steps": self.steps,
            **({"final_train_loss": self.final_train_loss} if self.final_train_loss else {}),
            **({"mean_train_loss": self.mean_train_loss} if self.mean_train_loss else {}),
            "adapter_sha256": self.adapter_sha256,
            "adapter_dir": FilePath(self.adapter_dir),
            "log_file": FilePath(self.log_file),
            "axolotl_yaml": Markdown(f"```yaml\n{config}\n```"),
        }


class Evaluation(AssetValue):
    report: dict[str, Any]  # JSON-ready: candidates, interval, probes, verdict
    report_file: str
    markdown_file: str  # the report with its charts inlined (for Dagster)
    report_sha256: str
    predictions_file: str
    champion: dict[str, Any] = {}

    @property
    def data_version(self) -> str:
        return self.report_sha256

    @property
    def verdict(self) -> dict[str, Any]:
        return self.report["verdict"]

    @property
    def ships(self) -> bool:
        return bool(self.verdict["ship"])

    def files(self) -> list[str]:
        return [self.report_file, self.markdown_file, self.predictions_file]

    def metadata(self) -> dict[str, Any]:
        from pipelines.lib.report import ladder_rows

        metric = self.report["primary_metric"]
        header, *rows = ladder_rows(self.report)
        # The verdict first: it is the answer the run exists to give.
        return {
            "verdict": self.verdict["label"],
            "verdict_reasons": Markdown("\n".join(f"- {r}" for r in self.verdict["reasons"])),
            "ladder": Table(header, rows),
            "primary_metric": metric,
            f"tuned_{metric}": self.report["candidates"]["tuned"][metric],
            "interval_low": self.report["interval"]["low"],
            "regressions": len(self.report["regressions"]),
            "champion": Json(self.champion),
            "report": Markdown(Path(self.markdown_file).read_text(encoding="utf-8")),
            "predictions": FilePath(self.predictions_file),
        }


class RegisteredAdapter(AssetValue):
    mlflow_run_id: str
    adapter_uri: str
    adapter_dir: str
    registered_model: str
    version: str
    model_uri: str
    aliases: list[str]
    created: bool
    promotion: str
    alias_moves: list[dict[str, Any]]

    @property
    def data_version(self) -> str:
        return f"{self.registered_model}/{self.version}"

    def metadata(self) -> dict[str, Any]:
        return {
            "model_uri": self.model_uri,
            "aliases": ", ".join(self.aliases) or "-",
            "new_version": self.created,
            "promotion": self.promotion,
            "alias_moves": Json(self.alias_moves),
            "adapter_uri": self.adapter_uri,
            "mlflow_run_id": self.mlflow_run_id,
        }


class RegisteredPrompt(AssetValue):
    """A cheaper rung's prompt that reached the target, in MLflow's prompt registry."""

    name: str
    version: str
    uri: str  # prompts:/<name>/<version>; @champion points at the newest winner
    rung: str
    created: bool
    decision: str

    @property
    def data_version(self) -> str:
        return f"{self.name}/{self.version}"

    def metadata(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "prompt_uri": self.uri,
            "champion_uri": f"prompts:/{self.name}@champion",
            "rung": self.rung,
            "new_version": self.created,
        }
