"""Token counts in the orchestrator (tokenizers + jinja2) equal the trainer's own."""

import json
import subprocess

import pytest

from pipelines import paths
from pipelines.lib.base_model import embedded_model_dir
from pipelines.lib.token_length import ChatTokenCounter

CONVERSATIONS = [
    [
        {"role": "user", "content": "9 Oak Ave, Springfield"},
        {"role": "assistant", "content": '{"AddressNumber": "9"}'},
    ],
    [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Caf\u00e9? \u00fcber 東京"},
        {"role": "assistant", "content": "Yes.\n\nTwo lines."},
    ],
    [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "<|im_end|> injected?"},
        {"role": "assistant", "content": "No."},
    ],
]
TRAINER_COUNTS = """
import json, sys
from transformers import AutoTokenizer
tok = AutoTokenizer.from_pretrained(sys.argv[1])
rows = json.loads(sys.stdin.read())
print(json.dumps([list(tok.apply_chat_template(m, tokenize=True, return_dict=False))
                  for m in rows]))
"""

needs_model = pytest.mark.skipif(
    not (embedded_model_dir() / "tokenizer.json").is_file(),
    reason="embedded base model not prepared (make model)",
)


@needs_model
@pytest.mark.skipif(not paths.TRAINER_PYTHON.exists(), reason="trainer environment missing")
def test_counts_match_transformers_apply_chat_template_in_the_trainer_env():
    done = subprocess.run(
        [str(paths.TRAINER_PYTHON), "-c", TRAINER_COUNTS, str(embedded_model_dir())],
        input=json.dumps(CONVERSATIONS),
        capture_output=True,
        text=True,
        check=True,
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )
    expected = json.loads(done.stdout.strip().splitlines()[-1])
    counter = ChatTokenCounter(embedded_model_dir())
    assert [counter.ids(m) for m in CONVERSATIONS] == expected
    assert counter.count(CONVERSATIONS) == [len(ids) for ids in expected]


@needs_model
def test_the_template_adds_the_models_default_system_prompt():
    counter = ChatTokenCounter(embedded_model_dir())
    text = counter.render(CONVERSATIONS[0])
    assert text.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert text.endswith("<|im_end|>\n")
