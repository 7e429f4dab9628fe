"""Answer the evaluation's generation requests and measure held-out loss (trainer env, Pipes).

The orchestrator decides *what* to ask (candidates, few-shot prompts, probes,
training-row sample) and scores the answers; this worker only runs the models.
Input: a JSONL of requests {key, model, messages, max_new_tokens}. Output: a JSONL
of answers {key, output, tokens} and a JSON of losses and timings.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from dagster_pipes import open_dagster_pipes


def _read_jsonl(path: str) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def main() -> None:
    from pipelines.worker.generation import Models, timed
    from pipelines.worker.progress import ProgressTicker

    with open_dagster_pipes() as context:
        extras = context.extras
        models = Models(extras["base_model_dir"], extras["adapters"])
        batch_size = extras["batch_size"]

        groups: dict[tuple[str, int], list[dict]] = defaultdict(list)
        for request in _read_jsonl(extras["requests_file"]):
            groups[(request["model"], request["max_new_tokens"])].append(request)

        per_model: dict[str, int] = defaultdict(int)
        for (model, _), requests in groups.items():
            per_model[model] += len(requests)
        tickers: dict[str, ProgressTicker] = {}  # one progress line per model, every ~10%
        answers, timings = [], {}
        for (model, max_new_tokens), requests in sorted(groups.items()):
            context.log.info(f"generating {len(requests)} answers with {model}")
            ticker = tickers.get(model)
            if ticker is None:
                what = f"answering with {model}" if len(per_model) > 1 else "answering"
                ticker = ProgressTicker(per_model[model], context.log.info, what=what)
                tickers[model] = ticker
            costs: list[dict] = []
            with models.using(model):
                (outputs, tokens), seconds = timed(
                    models.generate,
                    [r["messages"] for r in requests],
                    max_new_tokens,
                    batch_size,
                    progress=ticker.advance,
                    costs=costs,
                )
            answers += [
                {"key": r["key"], "output": o, "tokens": t, **cost}
                for r, o, t, cost in zip(requests, outputs, tokens, costs)
            ]
            timing = timings.setdefault(model, {"seconds": 0.0, "rows": 0, "new_tokens": 0})
            timing["seconds"] += seconds
            timing["rows"] += len(requests)
            timing["new_tokens"] += sum(tokens)

        losses = {}
        loss_models = extras.get("loss_models", [])
        heldout = (
            [row["messages"] for row in _read_jsonl(extras["heldout_file"])] if loss_models else []
        )
        for model in loss_models:
            context.log.info(f"held-out loss of {model} on {len(heldout)} rows")
            with models.using(model):
                losses[model] = models.heldout_loss(heldout, extras["sequence_len"], batch_size)

        with Path(extras["answers_file"]).open("w", encoding="utf-8") as out:
            for answer in answers:
                out.write(json.dumps(answer, ensure_ascii=False) + "\n")
        result = {"losses": losses, "timings": timings, "parameters": models.parameter_counts()}
        Path(extras["result_file"]).write_text(json.dumps(result))
        context.report_asset_materialization(metadata={"answers": len(answers)})


if __name__ == "__main__":
    main()
