"""The HTTP teacher against a real OpenAI-style server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest

from pipelines.lib import teacher
from pipelines.lib.teacher import TeacherError, ask_http_teacher, ask_http_teacher_rows
from pipelines.recipe import DistillSection

KEY_ENV = "RUNG_TEST_TEACHER_KEY"
KEY = "sk-planted-secret-0123456789"

# (request body, how many times this conversation was asked, request headers)
#   -> (status, extra response headers, JSON payload)
Respond = Callable[[dict, int, dict], tuple[int, dict, object]]


class Endpoint:
    def __init__(self, respond: Respond):
        self.requests: list[tuple[str, dict, dict]] = []
        lock = threading.Lock()
        seen: Counter[str] = Counter()
        log = self.requests

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with lock:
                    log.append((self.path, dict(self.headers), body))
                    seen[json.dumps(body["messages"])] += 1
                    count = seen[json.dumps(body["messages"])]
                status, headers, payload = respond(body, count, dict(self.headers))
                data = json.dumps(payload).encode()
                self.send_response(status)
                for name, value in {**headers, "Content-Type": "application/json"}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def serve(monkeypatch) -> Iterator[Callable[[Respond], Endpoint]]:
    monkeypatch.setenv(KEY_ENV, KEY)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    started: list[Endpoint] = []

    def start(respond: Respond) -> Endpoint:
        started.append(Endpoint(respond))
        return started[-1]

    yield start
    for endpoint in started:
        endpoint.close()


def completion(text: str) -> dict:
    return {"choices": [{"message": {"role": "assistant", "content": f" {text} "}}]}


def question(i: int) -> list[dict]:
    return [{"role": "user", "content": f"question {i}"}]


def distill(url: str) -> DistillSection:
    return DistillSection(teacher=url, teacher_model="big", api_key_env=KEY_ENV)


def test_transient_503_is_retried_after_retry_after_and_answers_keep_their_order(serve):
    def respond(body, count, headers):
        if count == 1:
            return 503, {"Retry-After": "1"}, {"error": "warming up"}
        text = body["messages"][0]["content"]
        time.sleep(0.05 * (10 - int(text.split()[-1])))  # later questions finish first
        return 200, {}, completion(text.replace("question", "answer"))

    endpoint = serve(respond)
    start = time.monotonic()
    answers = ask_http_teacher(distill(endpoint.url), [question(i) for i in range(8)])
    assert answers == [f"answer {i}" for i in range(8)]
    assert time.monotonic() - start >= 1.0  # the server's Retry-After was honoured
    assert len(endpoint.requests) == 16  # one 503 and one success per question
    path, headers, body = endpoint.requests[0]
    assert path == "/v1/chat/completions"
    assert headers["Authorization"] == f"Bearer {KEY}"
    assert body["model"] == "big" and body["max_tokens"] == 128


def test_a_permanent_400_fails_at_once_naming_url_and_row_never_the_key(serve):
    def respond(body, count, headers):
        if body["messages"][0]["content"] == "question 2":  # a server that echoes the key
            return 400, {}, {"error": f"bad request from {headers['Authorization']}"}
        return 200, {}, completion("fine")

    endpoint = serve(respond)
    frame = pd.DataFrame(
        {
            "id": ["r0", "r1", "r2"],
            "messages": [
                [*question(i), {"role": "assistant", "content": "gold"}] for i in range(3)
            ],
        }
    )
    with pytest.raises(TeacherError) as failed:
        ask_http_teacher_rows(distill(endpoint.url), frame, "teacher")
    message = str(failed.value)
    assert f"teacher endpoint {endpoint.url} failed on row r2" in message
    assert "HTTP 400" in message and "bad request from Bearer ***" in message
    assert KEY not in message and KEY not in repr(failed.value)
    asked = [b["messages"][0]["content"] for _, _, b in endpoint.requests]
    assert asked.count("question 2") == 1  # a client error is not retried


def test_a_server_that_stays_down_is_given_up_on_after_bounded_attempts(serve):
    endpoint = serve(lambda body, count, headers: (429, {"Retry-After": "0"}, {}))
    with pytest.raises(TeacherError, match=r"conversation 1 of 1: gave up after 5 attempts.*429"):
        ask_http_teacher(distill(endpoint.url), [question(0)])
    assert len(endpoint.requests) == teacher.MAX_ATTEMPTS


def test_connection_errors_are_retried_then_reported(serve, monkeypatch):
    endpoint = serve(lambda body, count, headers: (200, {}, completion("never")))
    url = endpoint.url
    endpoint.close()  # nothing listens there any more
    monkeypatch.setattr(teacher, "BACKOFF_S", 0.01)
    with pytest.raises(
        TeacherError, match="gave up after 5 attempts; last: ConnectError"
    ) as failed:
        ask_http_teacher(distill(url), [question(0)])
    assert url in str(failed.value) and KEY not in str(failed.value)


def test_a_missing_api_key_is_named_not_guessed(monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(TeacherError, match=f"\\${KEY_ENV} is not set"):
        ask_http_teacher(distill("http://127.0.0.1:9/v1"), [question(0)])
