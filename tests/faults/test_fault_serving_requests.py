"""The model server under bad requests and a burst: 4xx with a reason, no crash, bounded
memory, and the next good request is answered as before.

The real server (pipelines/worker/serve.py in the trainer env: the embedded base model
plus one LoRA adapter, made at random with peft) on a free port on 127.0.0.1. Bad
requests of every kind (malformed or non-UTF-8 JSON, JSON nested 100,000 deep, no
messages, a huge max_tokens / max_new_tokens, an unknown adapter, a body over the 1 MB
limit, a prompt over the token limit, params that are not an object) are sent alone and
then inside a burst of 50 concurrent requests. The server's resident memory is read from
/proc before and after the burst.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from http_client import free_port, get_json, post_json

from pipelines import paths
from pipelines.lib.base_model import embedded_model_dir, resolve_base_model
from pipelines.lib.traffic import read_traffic

TRAINER_ENV = {
    "PYTHONPATH": str(paths.REPO_ROOT),
    "HF_HUB_OFFLINE": "1",
    "PATH": "/usr/bin:/bin",
    "RUNG_CACHE_DIR": str(paths.cache_dir()),
}
MAKE_ADAPTER = """
import sys, torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM
torch.manual_seed(1)
model = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float32)
config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                    init_lora_weights=False)
get_peft_model(model, config).save_pretrained(sys.argv[2])
"""
MAX_BATCH = 8
BURST = 50
# A generous bound on what a burst may add to the server's resident memory: a batch's
# activations and KV cache are a few MB here; 300 MB would mean requests are being kept.
RSS_GROWTH_BOUND_MB = 300

CHAT, INVOCATIONS = "/v1/chat/completions", "/invocations"
USER = [{"role": "user", "content": "What is the capital of France?"}]
# (path, body, status, reason): each must be refused with that status and that reason.
BAD = [
    (CHAT, b'{"model": "alpha", "messages": [', 400, "malformed JSON"),
    (CHAT, b'{"model": "\xff\xfe"}', 400, "malformed JSON"),
    (CHAT, b"[" * 100_000, 400, "nested too deeply"),
    (CHAT, {"model": "alpha"}, 400, "messages must be a non-empty list"),
    (CHAT, {"model": "alpha", "messages": USER, "max_tokens": 10**9}, 400, "max_tokens must be"),
    (INVOCATIONS, {"messages": USER, "max_new_tokens": 10**9}, 400, "max_new_tokens must be"),
    (CHAT, {"model": "no-such-adapter", "messages": USER}, 404, "unknown model 'no-such-adapter'"),
    (CHAT, {"model": "alpha", "messages": USER, "pad": "x" * (2 << 20)}, 413, "body over"),
    (
        CHAT,
        {"model": "base", "messages": [{"role": "user", "content": "word " * 6000}]},
        400,
        "tokens; at most 2048 are accepted",
    ),
    (
        INVOCATIONS,
        {"dataframe_records": [{"messages": USER}], "params": [64]},
        400,
        "params must be an object",
    ),
]


def _rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    (line,) = [x for x in status.splitlines() if x.startswith("VmRSS:")]
    return int(line.split()[1]) / 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[tuple[str, subprocess.Popen, Path]]:
    folder = tmp_path_factory.mktemp("serve-faults")
    made = subprocess.run(
        [
            str(paths.TRAINER_PYTHON),
            "-c",
            MAKE_ADAPTER,
            str(embedded_model_dir()),
            str(folder / "alpha"),
        ],
        capture_output=True,
        text=True,
        cwd=paths.REPO_ROOT,
        env=TRAINER_ENV,
        timeout=600,
    )
    assert made.returncode == 0, made.stderr[-3000:]
    base = resolve_base_model("smollm2-135m-instruct")
    port = free_port()
    spec = {
        "base": {"id": "smollm2-135m-instruct", "path": str(base.path), "weights": base.weights},
        "adapters": [{"name": "alpha", "path": str(folder / "alpha"), "version": "1"}],
        "host": "127.0.0.1",
        "port": port,
        "max_batch": MAX_BATCH,
        "batch_wait_ms": 50,
        "traffic": {"dir": str(folder / "traffic"), "max_mb": 8, "keep": 1},
    }
    (folder / "spec.json").write_text(json.dumps(spec))
    log = (folder / "server.log").open("w")
    process = subprocess.Popen(
        [
            str(paths.TRAINER_PYTHON),
            "-m",
            "pipelines.worker.serve",
            "--spec",
            str(folder / "spec.json"),
        ],
        cwd=paths.REPO_ROOT,
        env=TRAINER_ENV,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        assert process.poll() is None, (folder / "server.log").read_text()[-3000:]
        try:
            get_json(url + "/health")
            break
        except OSError:
            assert time.monotonic() < deadline, "the server did not start in 5 min"
            time.sleep(1)
    yield url, process, folder
    process.terminate()
    process.wait(timeout=60)
    log.close()


def _good(i: int) -> tuple[str, dict]:
    """A good request: the base model or the adapter, a few new tokens."""
    model = ("base", "alpha")[i % 2]
    question = [{"role": "user", "content": f"Name a colour. ({i})"}]
    return CHAT, {"model": model, "messages": question, "max_tokens": 4}


def _ask(url: str, path: str, body: object | bytes) -> tuple[int, dict | list]:
    return post_json(url + path, body)


def test_bad_requests_get_a_4xx_with_a_reason_and_never_stop_the_server(server):
    url, process, _ = server
    for path, body, status, reason in BAD:
        code, reply = _ask(url, path, body)
        assert (code, reason in reply["error"]["message"]) == (status, True), (path, reply)
        assert process.poll() is None
    health = get_json(url + "/health")
    assert health["status"] == "ok" and health["errors"] == 0
    code, reply = _ask(url, *_good(0))
    assert code == 200 and reply["choices"][0]["message"]["content"]


def test_a_burst_of_50_mixed_requests_is_answered_with_bounded_memory(server):
    url, process, folder = server
    # warm up (the first generation allocates what every later one reuses), then measure
    first = _ask(url, *_good(1))
    assert first[0] == 200
    before = _rss_mb(process.pid)
    answered_before = get_json(url + "/health")["requests"]

    # every fifth request is a bad one, of each kind in turn; all 50 in flight together
    burst = [BAD[(i // 5) % len(BAD)][:2] if i % 5 == 4 else _good(i) for i in range(BURST)]
    expected = [BAD[(i // 5) % len(BAD)][2:] if i % 5 == 4 else (200, None) for i in range(BURST)]
    replies: list = [None] * BURST
    gate = threading.Barrier(BURST)

    def send(i: int) -> None:
        gate.wait()
        replies[i] = _ask(url, *burst[i])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(BURST)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    seconds = time.monotonic() - started
    after = _rss_mb(process.pid)

    assert all(reply is not None for reply in replies), "a request got no answer"
    for i, ((code, reply), (status, reason)) in enumerate(zip(replies, expected)):
        assert code == status, (i, burst[i][1] if code != 413 else "...", reply)
        if reason:
            assert reason in reply["error"]["message"], (i, reply)
        else:
            assert reply["model"] == burst[i][1]["model"]
            assert reply["usage"]["completion_tokens"] <= 4
    good = sum(1 for status, _ in expected if status == 200)
    health = get_json(url + "/health")
    assert health["errors"] == 0 and health["queued"] == 0
    assert health["requests"] - answered_before == good  # each good one answered once
    assert 2 <= health["largest_batch"] <= MAX_BATCH  # the burst was batched
    assert process.poll() is None

    # nothing lost: the traffic log holds every answered request, no refused one
    logged = read_traffic(folder / "traffic", "base") + read_traffic(folder / "traffic", "alpha")
    assert len(logged) == health["requests"]

    # bounded memory
    grown = after - before
    print(f"burst of {BURST}: {seconds:.1f} s, server RSS {before:.0f} -> {after:.0f} MB")
    assert grown < RSS_GROWTH_BOUND_MB, f"RSS grew by {grown:.0f} MB in the burst"

    # the next good request is answered, and as before (greedy decoding)
    again = _ask(url, *_good(1))
    assert again[0] == 200
    assert again[1]["choices"][0]["message"] == first[1]["choices"][0]["message"]
    assert os.path.exists(f"/proc/{process.pid}")
