"""Generation in the trainer environment, on the real embedded base model."""

import json
import subprocess

from pipelines import paths
from pipelines.lib.base_model import embedded_model_dir

SCRIPT = """
import json, sys
from pipelines.worker.generation import Models
models = Models(sys.argv[1])
questions = ["What is the capital of France?", "Name a colour.",
             "Write one short sentence about the sea.", "What is 2 + 3?"]
conversations = [[{"role": "user", "content": q}] for q in questions]
batched, counts = models.generate(conversations, max_new_tokens=24, batch_size=4)
single = [models.generate([c], max_new_tokens=24, batch_size=1)[0][0] for c in conversations]
print(json.dumps({"batched": batched, "single": single, "counts": counts}))
"""


def test_batched_greedy_answers_equal_one_at_a_time():
    done = subprocess.run(
        [str(paths.TRAINER_PYTHON), "-c", SCRIPT, str(embedded_model_dir())],
        capture_output=True,
        text=True,
        check=True,
        cwd=paths.REPO_ROOT,
        env={"PYTHONPATH": str(paths.REPO_ROOT), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["batched"] == result["single"]
    assert "Paris" in result["batched"][0]
    # Generation stops at end-of-turn: a short answer uses fewer tokens than the budget.
    assert min(result["counts"]) < 24
