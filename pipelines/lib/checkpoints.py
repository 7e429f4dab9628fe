"""Resuming a killed training from its last checkpoint.

Axolotl saves a checkpoint (adapter, optimizer, scheduler, RNG and trainer state) every
`train.checkpoint_steps` optimizer steps into the run's output folder, keeping the last
two. Before it trains, the training stage records an *attempt*: the training cache key
(base model, training set, split, recipe's model and train sections, code) and the
output folder. A training that finishes deletes its checkpoints and its attempt; one
that is killed (SIGKILL, a lost machine) leaves both. The next run with the same key
resumes from the newest complete checkpoint of that folder; a run whose key differs
(the inputs changed) trains from scratch and says which unfinished attempt it is not
resuming, and why. A resumed training that fails (not killed) before saving a newer
checkpoint is not resumed again, and a finished training deletes the checkpoints and
record of its key's attempts (other keys' stay, to be resumed if their inputs
return). `rung run --force` and reproductions never resume. Sharded trainings
(deepspeed, fsdp) save no checkpoints yet.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from pipelines import paths

# what a checkpoint needs to resume (a SIGKILL during a save leaves a folder without some)
CHECKPOINT_FILES = ("trainer_state.json", "adapter_model.safetensors", "optimizer.pt")


@dataclass(frozen=True)
class Attempt:
    key: str
    output_dir: str
    mlflow_run_id: str
    dagster_run_id: str
    started: str
    resumed_from: str | None = None  # the checkpoint this attempt started from
    folders: tuple[str, ...] = ()  # output folders of the attempts it continues, and its own

    def checkpoint(self) -> Path | None:
        """Where it could resume: its own newest complete checkpoint, else the one it
        started from (killed again before its first save)."""
        own = last_checkpoint(Path(self.output_dir))
        if own is None and self.resumed_from and _complete(Path(self.resumed_from)):
            return Path(self.resumed_from)
        return own


def _attempts_dir(recipe_id: str) -> Path:
    return paths.asset_cache_dir() / recipe_id / "training_attempts"


def record_attempt(
    recipe_id: str,
    key: str,
    output_dir: Path,
    mlflow_run_id: str,
    dagster_run_id: str,
    resumed: Attempt | None = None,
    resumed_from: Path | None = None,
) -> None:
    """Before training: what the next run needs to resume this one if it is killed."""
    started = datetime.now(UTC).isoformat(timespec="seconds")
    folders = (*(resumed.folders if resumed else ()), str(output_dir))
    attempt = Attempt(
        key,
        str(output_dir),
        mlflow_run_id,
        dagster_run_id,
        started,
        str(resumed_from) if resumed_from else None,
        folders,
    )
    folder = _attempts_dir(recipe_id)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{key}.json").write_text(json.dumps(asdict(attempt)))


def unfinished(recipe_id: str) -> list[Attempt]:
    """Attempts that never finished, newest first (an unreadable record is skipped)."""
    attempts = []
    for file in _attempts_dir(recipe_id).glob("*.json"):
        try:
            record = json.loads(file.read_text())
            attempts.append(Attempt(**{**record, "folders": tuple(record.get("folders", ()))}))
        except (OSError, ValueError, TypeError):
            continue
    return sorted(attempts, key=lambda a: a.started, reverse=True)


def step_of(checkpoint: Path) -> int:
    return int(checkpoint.name.rpartition("-")[2])


def _complete(checkpoint: Path) -> bool:
    return all((checkpoint / name).is_file() for name in CHECKPOINT_FILES)


def last_checkpoint(output_dir: Path) -> Path | None:
    """The newest checkpoint-N folder that holds everything a resume needs."""
    found = [p for p in Path(output_dir).glob("checkpoint-*") if p.name[11:].isdigit()]
    return next((p for p in sorted(found, key=step_of, reverse=True) if _complete(p)), None)


def _delete_checkpoints(folders: list[str] | tuple[str, ...]) -> None:
    for folder in folders:
        for checkpoint in Path(folder).glob("checkpoint-*"):
            shutil.rmtree(checkpoint, ignore_errors=True)


def forget(recipe_id: str, key: str) -> None:
    """Never resume this key's attempt again (its checkpoint led to a failure, not a kill)."""
    for attempt in unfinished(recipe_id):
        if attempt.key == key:
            _delete_checkpoints(attempt.folders)
    (_attempts_dir(recipe_id) / f"{key}.json").unlink(missing_ok=True)


def finish(recipe_id: str, key: str, output_dir: Path) -> None:
    """A training finished: checkpoints are only ever needed to resume, so its own and
    those of the attempts it continued (the whole chain of its key) go, with the record.
    Other keys' unfinished attempts stay: reverting to their inputs resumes them."""
    for attempt in unfinished(recipe_id):
        if attempt.key == key:
            _delete_checkpoints(attempt.folders)
    (_attempts_dir(recipe_id) / f"{key}.json").unlink(missing_ok=True)
    _delete_checkpoints([str(output_dir)])


def resume_point(recipe_id: str, key: str) -> tuple[Attempt | None, Path | None, list[str]]:
    """(the killed attempt with this key, its checkpoint to resume from, notes on the
    unfinished attempts of other keys that are not resumed)."""
    same, notes = None, []
    for attempt in unfinished(recipe_id):
        checkpoint = attempt.checkpoint()
        if attempt.key == key:
            same = (attempt, checkpoint)
            if checkpoint is None:
                notes.append(
                    f"the unfinished training of Dagster run {attempt.dagster_run_id} saved no "
                    "complete checkpoint; training from scratch"
                )
        elif checkpoint is not None:
            notes.append(
                f"not resuming the unfinished training of Dagster run {attempt.dagster_run_id} "
                f"(stopped after step {step_of(checkpoint)}): its inputs differ (cache key "
                f"{attempt.key} vs {key}: the recipe's model/train sections, the training "
                "set, the split or the code changed); training from scratch"
            )
    attempt, checkpoint = same or (None, None)
    return attempt, checkpoint, notes
