"""The retrieval rung: find a knowledge corpus's passages for a question and paste them into
the prompt, so a base model can answer from context what a tune would have to memorise.

- `chunk_corpus` turns corpus files into passages with stable ids: a JSONL file holds one
  passage per line ({"id", "title", "text"}); a plain text file is split on blank lines,
  and a paragraph longer than `max_words` into consecutive pieces.
- `Retriever` ranks passages for a query with BM25 (bm25s, its built-in English
  stopwords, no stemmer) or TF-IDF cosine (scikit-learn); nothing is downloaded. Ties are
  broken by passage order, so the same corpus and query give the same passages.
- `retrieval_messages` puts the passages before the question with a fixed template.
- `recall_at_k` is the share of questions whose gold passage was retrieved.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

METHODS = ("bm25", "tfidf")
DEFAULT_MAX_WORDS = 200
# The user turn with context: the numbered passages, then the question as it was asked.
TEMPLATE = "Context:\n{context}\n\nQuestion: {question}"


@dataclass(frozen=True)
class Passage:
    id: str
    text: str
    title: str = ""

    def indexed_text(self) -> str:
        """What the retriever matches: the title (e.g. the country's name) and the text."""
        return f"{self.title}\n{self.text}" if self.title else self.text


def _jsonl_passages(file: Path) -> list[Passage]:
    passages = []
    for line_number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        text = row.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{file}:{line_number}: a passage needs a non-empty 'text'")
        passage_id = str(row["id"]) if row.get("id") is not None else f"{file.stem}-{line_number}"
        passages.append(Passage(passage_id, text.strip(), str(row.get("title") or "").strip()))
    return passages


def _text_passages(file: Path, max_words: int) -> list[Passage]:
    paragraphs = [" ".join(block.split()) for block in _blocks(file.read_text(encoding="utf-8"))]
    chunks = []
    for paragraph in paragraphs:
        words = paragraph.split()
        chunks += [" ".join(words[i : i + max_words]) for i in range(0, len(words), max_words)]
    return [Passage(f"{file.stem}-{index}", chunk) for index, chunk in enumerate(chunks)]


def _blocks(text: str) -> list[str]:
    """Paragraphs: runs of non-blank lines."""
    blocks, current = [], []
    for line in text.splitlines():
        if line.strip():
            current.append(line)
        elif current:
            blocks.append("\n".join(current))
            current = []
    if current:
        blocks.append("\n".join(current))
    return blocks


def chunk_corpus(files: Sequence[Path], max_words: int = DEFAULT_MAX_WORDS) -> list[Passage]:
    """The passages of the corpus files, in file order: a .jsonl file's rows as they are
    (id: the row's `id`, else `<file stem>-<line number>`), any other file split on blank
    lines into paragraphs of at most `max_words` words (id: `<file stem>-<index>`).
    Passage ids must be unique across the files."""
    if max_words < 1:
        raise ValueError("max_words must be at least 1")
    passages: list[Passage] = []
    for file in map(Path, files):
        if file.suffix == ".jsonl":
            passages += _jsonl_passages(file)
        else:
            passages += _text_passages(file, max_words)
    seen: set[str] = set()
    for passage in passages:
        if passage.id in seen:
            raise ValueError(f"passage id {passage.id!r} occurs twice in the corpus files")
        seen.add(passage.id)
    return passages


class Retriever:
    """Ranks passages for a query: `method` 'bm25' (bm25s, Lucene BM25, English stopwords,
    no stemming) or 'tfidf' (scikit-learn, cosine similarity, English stopwords)."""

    def __init__(
        self, passages: Sequence[Passage], method: Literal["bm25", "tfidf"] = "bm25"
    ) -> None:
        if method not in METHODS:
            raise ValueError(f"unknown retrieval method {method!r}; use one of {METHODS}")
        if not passages:
            raise ValueError("a retriever needs at least one passage")
        self.passages = list(passages)
        self.method = method
        texts = [p.indexed_text() for p in self.passages]
        if method == "bm25":
            import bm25s

            self._bm25 = bm25s.BM25()
            self._bm25.index(self._tokenize(texts), show_progress=False)
        else:
            from sklearn.feature_extraction.text import TfidfVectorizer

            self._tfidf = TfidfVectorizer(stop_words="english", sublinear_tf=True)
            self._matrix = self._tfidf.fit_transform(texts)

    @staticmethod
    def _tokenize(texts: list[str]) -> list[list[str]]:
        import bm25s

        return bm25s.tokenize(texts, stopwords="en", return_ids=False, show_progress=False)

    def scores(self, query: str) -> np.ndarray:
        """One relevance score per passage, in passage order (0 where nothing matches)."""
        if self.method == "bm25":
            ids = self._bm25.get_tokens_ids(self._tokenize([query])[0])
            if not ids:
                return np.zeros(len(self.passages))
            return np.asarray(self._bm25.get_scores_from_ids(ids), dtype=float)
        vector = self._tfidf.transform([query])
        return np.asarray((self._matrix @ vector.T).toarray()[:, 0], dtype=float)

    def search(self, query: str, k: int) -> list[Passage]:
        """The k best passages, best first; equal scores keep passage order. Always
        min(k, passages) passages, even when none matches the query."""
        if k < 1:
            raise ValueError("k must be at least 1")
        order = np.argsort(-self.scores(query), kind="stable")[:k]
        return [self.passages[i] for i in order]


def format_context(passages: Sequence[Passage]) -> str:
    """The passages as a numbered block: '[1] Title: text' (or '[1] text' without title)."""
    return "\n".join(
        f"[{number}] {p.title}: {p.text}" if p.title else f"[{number}] {p.text}"
        for number, p in enumerate(passages, 1)
    )


def retrieval_messages(
    messages: list[dict], passages: Sequence[Passage], template: str = TEMPLATE
) -> list[dict]:
    """The question with its context: the last (user) turn becomes `template` filled with
    the numbered passages ({context}) and the original question ({question}); every other
    message, the system prompt included, is kept. `messages` must end with the user's
    question (the reference answer removed)."""
    if not messages or messages[-1]["role"] != "user":
        raise ValueError("retrieval_messages needs the conversation up to the user's question")
    if "{context}" not in template or "{question}" not in template:
        raise ValueError("a retrieval template must contain {context} and {question}")
    content = template.format(context=format_context(passages), question=messages[-1]["content"])
    return [*messages[:-1], {**messages[-1], "content": content}]


def recall_at_k(retrieved_ids: list[list[str]], gold_ids: list[str]) -> float:
    """Share of questions whose gold passage id is among the ids retrieved for it."""
    if len(retrieved_ids) != len(gold_ids):
        raise ValueError(
            f"{len(retrieved_ids)} retrieved lists but {len(gold_ids)} gold ids: one each"
        )
    if not gold_ids:
        raise ValueError("recall@k of no questions is undefined")
    hits = sum(gold in retrieved for retrieved, gold in zip(retrieved_ids, gold_ids))
    return hits / len(gold_ids)
