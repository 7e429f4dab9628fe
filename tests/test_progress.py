"""Progress lines with an ETA, their every-10% throttling, and the HTTP teacher's callback."""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
import types

import pytest

from pipelines.lib import teacher
from pipelines.recipe import DistillSection
from pipelines.worker.progress import ProgressTicker, format_duration, progress_line


def test_the_line_reads_done_total_percent_elapsed_and_eta():
    line = progress_line(120, 480, 34)
    assert line == "answering: 120/480 requests (25%), 34 s elapsed, ETA 1 min 42 s"


def test_nothing_done_has_no_eta_and_everything_done_says_done():
    assert progress_line(0, 480, 3) == "answering: 0/480 requests (0%), 3 s elapsed, ETA unknown"
    assert progress_line(480, 480, 136) == (
        "answering: 480/480 requests (100%), 2 min 16 s elapsed, done"
    )
    assert progress_line(0, 0, 0).endswith("(100%), 0 s elapsed, done")


def test_durations_use_the_two_largest_units():
    assert format_duration(0) == "0 s"
    assert format_duration(59.4) == "59 s"
    assert format_duration(60) == "1 min 0 s"
    assert format_duration(102) == "1 min 42 s"
    assert format_duration(3600 + 5 * 60 + 59) == "1 h 05 min"
    assert format_duration(-3) == "0 s"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_ticker_reports_about_every_tenth_once_per_step_and_at_the_end():
    clock, lines = Clock(), []
    ticker = ProgressTicker(100, lines.append, clock=clock)
    for _ in range(100):
        clock.now += 1
        ticker.advance()
    assert len(lines) == 10
    assert lines[0] == "answering: 10/100 requests (10%), 10 s elapsed, ETA 1 min 30 s"
    assert lines[-1] == "answering: 100/100 requests (100%), 1 min 40 s elapsed, done"


def test_batches_crossing_several_steps_give_one_line_and_the_end_is_always_reported():
    lines: list[str] = []
    ticker = ProgressTicker(48, lines.append, what="answering with tuned", clock=Clock())
    assert ticker.advance(16) == lines[0]  # 33%: steps 1-3 at once, one line
    assert ticker.advance(1) is None  # 35%: still step 3
    ticker.advance(16)
    ticker.advance(15)
    assert [line.split(" requests")[0] for line in lines] == [
        "answering with tuned: 16/48",
        "answering with tuned: 33/48",
        "answering with tuned: 48/48",
    ]
    assert ticker.advance(5) is None and ticker.done == 48  # nothing past the end


def test_few_items_report_each_and_none_reports_nothing():
    lines: list[str] = []
    ticker = ProgressTicker(3, lines.append, clock=Clock())
    for _ in range(3):
        ticker.advance()
    assert len(lines) == 3
    empty: list[str] = []
    assert ProgressTicker(0, empty.append).advance() is None and not empty
    with pytest.raises(ValueError):
        ProgressTicker(10, print, every=0)


def test_update_takes_an_absolute_count():
    lines: list[str] = []
    ticker = ProgressTicker(10, lines.append, clock=Clock())
    ticker.update(5)
    ticker.update(4)  # out of order: ignored
    ticker.update(10)
    assert [line.split(" requests")[0] for line in lines] == ["answering: 5/10", "answering: 10/10"]


def test_the_http_teacher_reports_each_answer_in_the_callers_thread(monkeypatch):
    def fake_ask_one(client, url, body, where, stop, secret):
        index = int(body["messages"][0]["content"])
        time.sleep(0.02 * (5 - index))  # later questions finish first
        return f"answer {index}"

    monkeypatch.setattr(teacher, "_ask_one", fake_ask_one)
    calls: list[tuple[int, int, str]] = []
    answers = teacher.ask_http_teacher(
        DistillSection(teacher="http://127.0.0.1:9/v1"),
        [[{"role": "user", "content": str(i)}] for i in range(5)],
        progress=lambda done, total: calls.append((done, total, threading.current_thread().name)),
    )
    assert answers == [f"answer {i}" for i in range(5)]  # in order, whatever finished first
    assert [(done, total) for done, total, _ in calls] == [(i, 5) for i in range(1, 6)]
    assert {name for _, _, name in calls} == {threading.current_thread().name}


class FakeModels:
    """Stands in for pipelines.worker.generation.Models: no torch, no weights."""

    def __init__(self, base_dir, adapters):
        pass

    def using(self, name):
        return contextlib.nullcontext()

    def generate(self, conversations, max_new_tokens, batch_size, progress=None, costs=None):
        for start in range(0, len(conversations), batch_size):
            if progress is not None:
                progress(len(conversations[start : start + batch_size]))
        if costs is not None:
            costs[:] = [{} for _ in conversations]
        return ["answer"] * len(conversations), [1] * len(conversations)

    def parameter_counts(self):
        return {}


def test_the_evaluation_worker_logs_progress_per_model(tmp_path, monkeypatch):
    from pipelines.worker import evaluate

    requests = [
        {"key": f"{model}|{i}", "model": model, "messages": [], "max_new_tokens": n}
        for model, n, count in [("base", 48, 20), ("base", 80, 20), ("tuned", 80, 40)]
        for i in range(count)
    ]
    (tmp_path / "requests.jsonl").write_text("".join(json.dumps(r) + "\n" for r in requests))
    logged: list[str] = []
    context = types.SimpleNamespace(
        extras={
            "base_model_dir": "unused",
            "adapters": {"tuned": "unused"},
            "batch_size": 4,
            "requests_file": str(tmp_path / "requests.jsonl"),
            "answers_file": str(tmp_path / "answers.jsonl"),
            "result_file": str(tmp_path / "result.json"),
        },
        log=types.SimpleNamespace(info=logged.append),
        report_asset_materialization=lambda metadata: None,
    )
    generation = types.ModuleType("pipelines.worker.generation")
    generation.Models = FakeModels
    generation.timed = lambda fn, *args, **kwargs: (fn(*args, **kwargs), 0.0)
    monkeypatch.setitem(sys.modules, "pipelines.worker.generation", generation)
    monkeypatch.setattr(evaluate, "open_dagster_pipes", lambda: contextlib.nullcontext(context))
    evaluate.main()

    for model in ("base", "tuned"):
        lines = [x for x in logged if x.startswith(f"answering with {model}: ")]
        assert len(lines) == 10, logged  # every 10% of its 40 requests, across its groups
        assert lines[0].startswith(f"answering with {model}: 4/40 requests (10%), ")
        assert lines[-1].startswith(f"answering with {model}: 40/40 requests (100%), ")
    assert len((tmp_path / "answers.jsonl").read_text().splitlines()) == 80
