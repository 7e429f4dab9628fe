"""Token counts with the base model's tokenizer and the exact chat template of training.

The orchestrator never imports torch or transformers: the `tokenizers` package
reads tokenizer.json, and jinja2 renders the chat template the way transformers'
`apply_chat_template` does (sandboxed, trim_blocks, lstrip_blocks, loop controls,
special tokens as variables), then the text is tokenized without extra special
tokens. Axolotl's chat_template strategy produces the same ids (checked in
tests/test_token_length.py against the trainer environment).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

SPECIAL_TOKENS = (
    "bos_token",
    "eos_token",
    "unk_token",
    "sep_token",
    "pad_token",
    "cls_token",
    "mask_token",
)


class TokenizerError(RuntimeError):
    pass


def _raise(message: str) -> None:
    raise jinja2.exceptions.TemplateError(message)


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: Any = None,
    sort_keys: bool = False,
) -> str:
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def _load_template(model_dir: Path, config: dict[str, Any]) -> str:
    file = model_dir / "chat_template.jinja"
    if file.is_file():
        return file.read_text()
    template = config.get("chat_template")
    if isinstance(template, list):  # named templates: the default one trains
        template = next((t["template"] for t in template if t.get("name") == "default"), None)
    if not template:
        raise TokenizerError(
            f"{model_dir}: no chat template (chat_template.jinja or "
            "tokenizer_config.json 'chat_template')"
        )
    return template


class ChatTokenCounter:
    """Counts the tokens of conversations as the trainer will see them."""

    def __init__(self, model_dir: Path) -> None:
        from tokenizers import Tokenizer

        tokenizer_file = model_dir / "tokenizer.json"
        if not tokenizer_file.is_file():
            raise TokenizerError(
                f"{model_dir}: no tokenizer.json; rung counts tokens with the "
                "base model's fast tokenizer"
            )
        config_file = model_dir / "tokenizer_config.json"
        config = json.loads(config_file.read_text()) if config_file.is_file() else {}
        self.tokenizer = Tokenizer.from_file(str(tokenizer_file))
        env = ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
        )
        env.filters["tojson"] = _tojson
        env.globals["raise_exception"] = _raise
        env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
        self.template = env.from_string(_load_template(model_dir, config))
        self.special = {}
        for name in SPECIAL_TOKENS:
            value = config.get(name)
            self.special[name] = value.get("content") if isinstance(value, dict) else value

    def render(self, messages: list[dict[str, str]], add_generation_prompt: bool = False) -> str:
        return self.template.render(
            messages=messages,
            add_generation_prompt=add_generation_prompt,
            tools=None,
            documents=None,
            **self.special,
        )

    def count(self, conversations: list[list[dict[str, str]]], batch: int = 4096) -> list[int]:
        """Token count of each whole conversation (template applied, no extra specials)."""
        counts: list[int] = []
        for start in range(0, len(conversations), batch):
            texts = [self.render(m) for m in conversations[start : start + batch]]
            encoded = self.tokenizer.encode_batch(texts, add_special_tokens=False)
            counts.extend(len(e.ids) for e in encoded)
        return counts

    def ids(self, messages: list[dict[str, str]]) -> list[int]:
        return self.tokenizer.encode(self.render(messages), add_special_tokens=False).ids
