"""Raw rows of every supported format -> one normalized conversation schema.

After cleaning every row is a `Conversation`: an optional system turn, then user
and assistant turns alternating, ending with the assistant; for preference pairs
the last user turn is followed by two answers, chosen and rejected. A row that
cannot become one raises `RowRejected` with the reason the quarantine records.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from pipelines.recipe import DataSection

ROLES = ("system", "user", "assistant")
SHAREGPT_ROLES = {
    "system": "system",
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
}
# C0/C1 controls except tab and newlines, plus invisible marks that only hide differences.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b\u2060\ufeff]")
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200a\u202f\u205f\u3000]+")
_BLANK_LINES = re.compile(r"\n{3,}")


class RowRejected(ValueError):
    """A raw row that cannot be used; the message is the quarantine reason."""


@dataclass(frozen=True, slots=True)
class Conversation:
    messages: tuple[tuple[str, str], ...]  # (role, content), normalized
    chosen: str | None = None  # preference pairs only
    rejected: str | None = None

    @property
    def content_id(self) -> str:
        """Hash of the normalized content: equal content, equal id (exact duplicates)."""
        parts = [f"{role}\x1f{content}" for role, content in self.messages]
        if self.chosen is not None:
            parts += [f"chosen\x1f{self.chosen}", f"rejected\x1f{self.rejected}"]
        return hashlib.blake2b("\x1e".join(parts).encode(), digest_size=8).hexdigest()

    def messages_json(self) -> list[dict[str, str]]:
        return [{"role": role, "content": content} for role, content in self.messages]

    def training_messages(self) -> list[dict[str, str]]:
        """What the trainer sees (the chosen answer for a preference pair)."""
        if self.chosen is None:
            return self.messages_json()
        return [*self.messages_json(), {"role": "assistant", "content": self.chosen}]

    def dedupe_text(self) -> str:
        """User and assistant text (the shared system prompt would make every row alike)."""
        texts = [content for role, content in self.messages if role != "system"]
        if self.chosen is not None:
            texts.append(self.chosen)
        return "\n".join(texts)


def normalize_text(text: str) -> str:
    """NFC, no control or invisible characters, single spaces, trimmed lines, at most
    one blank line in a row."""
    if not text.isascii():
        text = unicodedata.normalize("NFC", text)
    text = _CONTROL.sub("", text)
    lines = [_SPACES.sub(" ", line).strip() for line in text.strip().splitlines()]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines))


def _check_encoding(text: str, where: str) -> None:
    # JSON escapes can smuggle in lone surrogates, which no UTF-8 file can hold.
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise RowRejected(f"invalid encoding: {where} holds a lone surrogate") from None


def _text(record: dict[str, Any], field: str, *, optional: bool = False) -> str:
    """A field's value as normalized text; objects become JSON, other types are refused."""
    if field not in record or record[field] is None:
        if optional:
            return ""
        raise RowRejected(f"missing field: '{field}'")
    value = record[field]
    if isinstance(value, dict):
        cleaned = {k: normalize_text(v) if isinstance(v, str) else v for k, v in value.items()}
        return json.dumps(cleaned, ensure_ascii=False, separators=(", ", ": "))
    if not isinstance(value, str):
        raise RowRejected(f"wrong type: '{field}' is {type(value).__name__}, expected text")
    _check_encoding(value, f"'{field}'")
    return normalize_text(value)


def _turns(record: dict[str, Any], field: str, role_key: str, text_key: str) -> list[Any]:
    if field not in record or record[field] is None:
        raise RowRejected(f"missing field: '{field}'")
    turns = record[field]
    if isinstance(turns, str):  # a CSV cell holds the list as JSON text
        try:
            turns = json.loads(turns)
        except json.JSONDecodeError:
            raise RowRejected(f"wrong type: '{field}' is text that is not a JSON list") from None
    if hasattr(turns, "tolist"):  # Parquet lists arrive as arrays
        turns = turns.tolist()
    if not isinstance(turns, list):
        raise RowRejected(f"wrong type: '{field}' is {type(turns).__name__}, expected a list")
    for index, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise RowRejected(
                f"wrong type: {field}[{index}] is {type(turn).__name__}, expected an object"
            )
        for key in (role_key, text_key):
            if key not in turn or turn[key] is None:
                raise RowRejected(f"missing field: {field}[{index}].{key}")
            if not isinstance(turn[key], str):
                raise RowRejected(
                    f"wrong type: {field}[{index}].{key} is "
                    f"{type(turn[key]).__name__}, expected text"
                )
        _check_encoding(turn[text_key], f"{field}[{index}].{text_key}")
    return turns


def _chat(turns: list[Any], role_key: str, text_key: str, roles: dict[str, str], field: str):
    out = []
    for index, turn in enumerate(turns):
        role = roles.get(turn[role_key])
        if role is None:
            raise RowRejected(
                f"unknown role: {field}[{index}].{role_key} is {turn[role_key]!r} "
                f"(expected one of {', '.join(sorted(roles))})"
            )
        out.append((role, normalize_text(turn[text_key])))
    return out


def _user(prompt: str, data: DataSection) -> str:
    return data.prompt_template.replace("{prompt}", prompt)


def _with_system(messages: list[tuple[str, str]], data: DataSection) -> list[tuple[str, str]]:
    if data.system_prompt and (not messages or messages[0][0] != "system"):
        return [("system", normalize_text(data.system_prompt)), *messages]
    return messages


def check_turns(messages: list[tuple[str, str]], *, needs_answer: bool = True) -> None:
    """System first (optional), then user/assistant alternating from the user; content
    never empty; an assistant turn last unless the answer comes separately."""
    for index, (role, content) in enumerate(messages):
        if not content:
            raise RowRejected(f"empty or whitespace-only content: turn {index} ({role})")
    dialogue = messages[1:] if messages and messages[0][0] == "system" else messages
    if not any(role == "assistant" for role, _ in dialogue) and needs_answer:
        raise RowRejected("no assistant turn")
    for index, (role, _) in enumerate(dialogue):
        expected = "user" if index % 2 == 0 else "assistant"
        if role != expected:
            offset = len(messages) - len(dialogue)
            raise RowRejected(
                f"bad turn order: turn {index + offset} is '{role}', expected '{expected}'"
            )
    last = dialogue[-1][0] if dialogue else None
    if needs_answer and last != "assistant":
        raise RowRejected("bad turn order: the conversation ends with a user turn")
    if not needs_answer and last != "user":
        raise RowRejected("bad turn order: the prompt must end with a user turn")


def to_conversation(record: dict[str, Any], data: DataSection) -> Conversation:
    """One raw record -> a normalized, valid conversation (or RowRejected)."""
    fields = data.raw_fields
    fmt = data.format
    chosen = rejected = None
    if fmt == "messages":
        turns = _turns(record, fields["messages"], "role", "content")
        messages = _chat(turns, "role", "content", {r: r for r in ROLES}, fields["messages"])
    elif fmt == "sharegpt":
        turns = _turns(record, fields["conversations"], "from", "value")
        messages = _chat(turns, "from", "value", SHAREGPT_ROLES, fields["conversations"])
    elif fmt == "prompt_completion":
        prompt, answer = _text(record, fields["prompt"]), _text(record, fields["completion"])
        if prompt and answer == "{}":
            answer = ""  # an empty object is no answer
        messages = [("user", _user(prompt, data) if prompt else ""), ("assistant", answer)]
    elif fmt == "alpaca":
        instruction = _text(record, fields["instruction"])
        context = _text(record, fields["input"], optional=True)
        prompt = f"{instruction}\n\n{context}" if instruction and context else instruction
        messages = [
            ("user", _user(prompt, data) if prompt else ""),
            ("assistant", _text(record, fields["output"])),
        ]
    else:  # preference
        prompt = _text(record, fields["prompt"])
        chosen, rejected = _text(record, fields["chosen"]), _text(record, fields["rejected"])
        messages = [("user", _user(prompt, data) if prompt else "")]
        if not chosen or not rejected:
            raise RowRejected("empty or whitespace-only content: chosen or rejected answer")
        if chosen == rejected:
            raise RowRejected("chosen equals rejected: the pair teaches no preference")
    messages = _with_system(messages, data)
    check_turns(messages, needs_answer=chosen is None)
    return Conversation(tuple(messages), chosen, rejected)


def raw_label(record: dict[str, Any], field: str, key: str = "data.label_field") -> str:
    """A class label (or another short value, named by recipe `key`) as text; numbers and
    booleans are accepted and written as text."""
    if field not in record or record[field] is None or record[field] == "":
        raise RowRejected(f"missing field: '{field}' ({key})")
    value = record[field]
    if isinstance(value, bool | int | float | str):
        return normalize_text(str(value))
    raise RowRejected(f"wrong type: '{field}' is {type(value).__name__}, expected a label")


def group_keys(record: dict[str, Any], fields: list[str]) -> tuple[str, ...]:
    """'field=value' for each group-by field; a row without one cannot be kept with its
    group, so it is refused rather than risk a leak."""
    keys = []
    for field in fields:
        value = record.get(field)
        if value is None or value == "":
            raise RowRejected(f"missing field: '{field}' (data.group_by)")
        keys.append(f"{field}={value}")
    return tuple(keys)
