"""`rung serve`: one base model, many LoRA adapters, mixed batches, the traffic log.

The adapters are tiny random LoRA adapters made with peft in the trainer env (no
training): enough to show that each request is answered by its own adapter. The
model tests run the real embedded base model with few new tokens.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from http_client import free_port, get_json, post_json

from pipelines import cli, paths
from pipelines.lib import serving, tracking
from pipelines.lib.base_model import embedded_model_dir, resolve_base_model
from pipelines.lib.shadow import shadow_pairs
from pipelines.lib.traffic import TrafficLog, read_traffic, shadow_copies, traffic_record
from pipelines.worker import serve

TRAINER_ENV = {
    "PYTHONPATH": str(paths.REPO_ROOT),
    "HF_HUB_OFFLINE": "1",
    "PATH": "/usr/bin:/bin",
    "RUNG_CACHE_DIR": str(paths.cache_dir()),
}
MAKE_ADAPTERS = """
import sys, torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM
base, out = sys.argv[1], sys.argv[2]
for seed, name in enumerate(["alpha", "beta"], start=1):
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                        init_lora_weights=False)
    tuned = get_peft_model(model, config)
    with torch.no_grad():  # big enough to change what the model says
        for key, weight in tuned.named_parameters():
            if "lora_B" in key:
                weight.mul_(40.0)
    tuned.save_pretrained(f"{out}/{name}")
"""
ANSWER = """
import json, sys
from pipelines.worker.serve import ChatJob, Engine, ServedAdapter
folder = sys.argv[1]
engine = Engine(sys.argv[2], [ServedAdapter("alpha", f"{folder}/alpha"),
                              ServedAdapter("beta", f"{folder}/beta")])
jobs = [ChatJob(model, [{"role": "user", "content": question}], tokens)
        for model, question, tokens in json.loads(sys.argv[3])]
batched = [a.__dict__ for a in engine.answer(jobs)]
single = [engine.answer([job])[0].__dict__ for job in jobs]
print(json.dumps({"batched": batched, "single": single}))
"""
QUESTION = "What is the capital of France?"
# one batch: three adapters (base included) on the same question, another question, two
# budgets of new tokens
JOBS = [
    ("alpha", QUESTION, 6),
    ("base", QUESTION, 6),
    ("beta", QUESTION, 6),
    ("alpha", "Name a colour.", 4),
]


def _trainer(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(paths.TRAINER_PYTHON), *args],
        capture_output=True,
        text=True,
        cwd=paths.REPO_ROOT,
        env=TRAINER_ENV,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def adapters(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("adapters")
    done = _trainer("-c", MAKE_ADAPTERS, str(embedded_model_dir()), str(folder))
    assert done.returncode == 0, done.stderr[-3000:]
    return folder


@pytest.fixture(scope="module")
def engine_answers(adapters) -> dict:
    done = _trainer("-c", ANSWER, str(adapters), str(embedded_model_dir()), json.dumps(JOBS))
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_mixed_adapter_batch_answers_as_one_at_a_time(engine_answers):
    batched, single = engine_answers["batched"], engine_answers["single"]
    assert batched == single  # greedy: the same text, token counts and finish reasons
    texts = [answer["text"] for answer in batched]
    # each row was answered by its own adapter: the same question, three different answers
    assert len({texts[0], texts[1], texts[2]}) == 3, texts
    assert batched[3]["new_tokens"] <= 4 and batched[0]["new_tokens"] <= 6


@pytest.fixture(scope="module")
def server(adapters, tmp_path_factory):
    """The server on a free port: base + alpha (a "registered" version) + beta."""
    base = resolve_base_model("smollm2-135m-instruct")
    traffic = tmp_path_factory.mktemp("traffic")
    port = free_port()
    spec = {
        "base": {
            "id": "smollm2-135m-instruct",
            "path": str(base.path),
            "sha256": base.sha256,
            "weights": base.weights,
        },
        "adapters": [
            {
                "name": "alpha",
                "path": str(adapters / "alpha"),
                "version": "3",
                "model_uri": "models:/alpha/3",
                "base_model": {"sha256": base.sha256},
            },
            {"name": "beta", "path": str(adapters / "beta")},
        ],
        "host": "127.0.0.1",
        "port": port,
        "max_batch": 8,
        "batch_wait_ms": 1500,  # the concurrent requests below share one batch
        "traffic": {"dir": str(traffic), "max_mb": 1, "keep": 1},
        "shadows": {"alpha": "beta"},  # beta answers a copy of each request to alpha
    }
    spec_file = traffic.parent / f"spec-{port}.json"
    spec_file.write_text(json.dumps(spec))
    process = subprocess.Popen(
        [str(paths.TRAINER_PYTHON), "-m", "pipelines.worker.serve", "--spec", str(spec_file)],
        cwd=paths.REPO_ROOT,
        env=TRAINER_ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        assert process.poll() is None, process.stdout.read()[-3000:]
        try:
            get_json(url + "/health")
            break
        except OSError:
            assert time.monotonic() < deadline, "the server did not start in 5 min"
            time.sleep(1)
    yield url, traffic
    process.terminate()
    process.wait(timeout=60)


def test_the_server_answers_concurrent_requests_for_different_adapters_in_one_batch(
    server, engine_answers
):
    url, traffic = server
    replies: list = [None] * len(JOBS)

    def ask(i: int) -> None:
        model, question, tokens = JOBS[i]
        body = {
            "model": model,
            "messages": [{"role": "user", "content": question}],
            "max_tokens": tokens,
        }
        replies[i] = post_json(
            url + "/v1/chat/completions", body, {"Authorization": "Bearer sk-s3cr3t"}
        )

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(JOBS))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [status for status, _ in replies] == [200] * len(JOBS)
    texts = [reply["choices"][0]["message"]["content"] for _, reply in replies]
    assert texts == [answer["text"] for answer in engine_answers["single"]]
    first = replies[0][1]
    assert first["model"] == "alpha" and first["model_version"] == "3"
    assert first["usage"]["completion_tokens"] == engine_answers["single"][0]["new_tokens"]
    health = get_json(url + "/health")
    assert health["largest_batch"] >= 2 and health["errors"] == 0

    # the traffic log: one record per answered request, what was asked and answered, no headers
    logged = read_traffic(traffic, "alpha")
    assert len(logged) == 2 and all(r["version"] == "3" for r in logged)
    assert {r["output"] for r in logged} == {texts[0], texts[3]}
    record = logged[0]
    assert set(record) == {
        "time",
        "model",
        "version",
        "request_id",
        "messages",
        "output",
        "latency_s",
        "prompt_tokens",
        "new_tokens",
        "finish_reason",
    }
    assert record["latency_s"] > 0 and record["prompt_tokens"] > 0
    everything = "".join(p.read_text() for p in traffic.rglob("*.jsonl*"))
    assert "s3cr3t" not in everything and "Bearer" not in everything
    beta_live = [r for r in read_traffic(traffic, "beta") if "shadow_of" not in r]
    assert len(read_traffic(traffic, "base")) == 1 and len(beta_live) == 1


def test_a_shadow_copy_is_answered_by_the_challenger_and_logged_beside_the_live_answer(
    server, engine_answers
):
    url, traffic = server
    body = {"model": "alpha", "messages": [{"role": "user", "content": QUESTION}], "max_tokens": 6}
    status, reply = post_json(url + "/v1/chat/completions", body)
    assert status == 200  # the client gets alpha's own answer, not the shadow's
    assert reply["choices"][0]["message"]["content"] == engine_answers["single"][0]["text"]
    deadline = time.monotonic() + 120
    while not (
        copies := [r for r in shadow_copies(traffic, "alpha") if r["request_id"] == reply["id"]]
    ):
        assert time.monotonic() < deadline, "no shadow copy logged in 2 min"
        time.sleep(0.5)
    (copy,) = copies
    # beta answered the same request as it answers it directly (JOBS[2])
    assert copy["model"] == "beta" and copy["shadow_of"] == "alpha"
    assert (
        copy["output"]
        == engine_answers["single"][2]["text"]
        != reply["choices"][0]["message"]["content"]
    )
    assert copy["messages"] == body["messages"] and copy["latency_s"] > 0
    shadow, pairs = shadow_pairs(traffic, "alpha", read_traffic(traffic, "alpha"))
    assert shadow == "beta" and reply["id"] in {live["request_id"] for live, _ in pairs}
    health = get_json(url + "/health")
    assert health["shadows"] == {"alpha": "beta"} and health["shadow_dropped"] == 0
    assert health["shadowed"] == len(read_traffic(traffic, "alpha"))  # every live alpha request


def test_a_monitor_asks_the_probes_live_and_a_changed_answer_alerts(server):
    from pipelines.lib import drift

    url, traffic = server
    logged = len(read_traffic(traffic, "alpha"))
    questions = {"p1": QUESTION, "p2": "Name a colour."}
    asked = drift.ask_probes(
        {"probes": {k: {"question": q} for k, q in questions.items()}}, url, "alpha"
    )
    answers = [record["output"] for record in asked]
    # what the version answered at "evaluation": the same answers, then one of them changed
    same = {
        "probes": {k: {"question": q, "answer": a} for (k, q), a in zip(questions.items(), answers)}
    }
    again = drift.ask_probes(same, url, "alpha")
    test = drift.probe_changes(same, again, drift.Thresholds(), "probe_answers_live")
    assert test.name == "probe_answers_live" and not test.alert  # greedy: the same answers
    changed = {"probes": {**same["probes"], "p2": {"question": questions["p2"], "answer": "mauve"}}}
    test = drift.probe_changes(changed, again, drift.Thresholds(), "probe_answers_live")
    assert test.alert and "1 of 2 asked probes answered differently" in test.detail
    # a monitor's probes are not user traffic: not logged, not shadowed
    assert len(read_traffic(traffic, "alpha")) == logged
    assert get_json(url + "/health")["shadowed"] == logged
    with pytest.raises(drift.MonitorError, match="asking the probes at"):
        drift.ask_probes(same, f"http://127.0.0.1:{free_port()}", "alpha")


BAD_REQUESTS = [
    (b"{not json", 400, "malformed JSON"),
    (b"[1, 2]", 400, "JSON object"),
    ({"model": "alpha"}, 400, "messages must be a non-empty list"),
    ({"model": "alpha", "messages": []}, 400, "messages must be a non-empty list"),
    ({"model": "alpha", "messages": [{"role": "robot", "content": "hi"}]}, 400, "role"),
    ({"model": "alpha", "messages": [{"role": "user", "content": 7}]}, 400, "string"),
    ({"model": "alpha", "messages": [{"role": "user"}]}, 400, "content"),
    ({"model": "alpha", "messages": ["hi"]}, 400, "object"),
    (
        {
            "model": "alpha",
            "messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}],
        },
        400,
        "last message",
    ),
    (
        {
            "model": "alpha",
            "messages": [
                {"role": "user", "content": "a"},
                {"role": "system", "content": "b"},
                {"role": "user", "content": "c"},
            ],
        },
        400,
        "system message may only come first",
    ),
    (
        {"model": "alpha", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 0},
        400,
        "1..512",
    ),
    (
        {"model": "alpha", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 513},
        400,
        "1..512",
    ),
    (
        {"model": "alpha", "messages": [{"role": "user", "content": "hi"}], "max_tokens": "8"},
        400,
        "1..512",
    ),
    (
        {"model": "alpha", "messages": [{"role": "user", "content": "hi"}], "max_tokens": True},
        400,
        "1..512",
    ),
    (
        {"model": "alpha", "messages": [{"role": "user", "content": "hi"}], "stream": True},
        400,
        "streaming",
    ),
    ({"messages": [{"role": "user", "content": "hi"}]}, 400, "model is required"),
    ({"model": "gamma", "messages": [{"role": "user", "content": "hi"}]}, 404, "unknown model"),
]


@pytest.mark.parametrize(("body", "status", "reason"), BAD_REQUESTS)
def test_a_bad_request_is_refused_with_a_reason(body, status, reason):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    with pytest.raises(serve.BadRequest) as refused:
        serve.parse_chat_request(data, ["base", "alpha", "beta"])
    assert refused.value.status == status and reason in refused.value.reason


def test_a_good_request_is_parsed_with_its_defaults():
    body = {
        "model": "base",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        ],
    }
    job = serve.parse_chat_request(json.dumps(body).encode(), ["base"])
    assert job.model == "base" and job.max_tokens == serve.DEFAULT_MAX_TOKENS
    assert job.messages[1] == {"role": "user", "content": "hi"}


def test_the_server_answers_bad_requests_with_4xx_and_keeps_serving(server):
    url, _ = server
    for body, status, reason in [
        BAD_REQUESTS[0],
        BAD_REQUESTS[4],
        BAD_REQUESTS[11],
        BAD_REQUESTS[-1],
    ]:
        code, reply = post_json(url + "/v1/chat/completions", body)
        assert code == status and reason in reply["error"]["message"]
    models = get_json(url + "/v1/models")
    assert [m["id"] for m in models["data"]] == ["base", "alpha", "beta"]
    assert models["data"][1]["version"] == "3"
    code, reply = post_json(url + "/invocations", {"messages": [{"role": "user", "content": "x"}]})
    assert code == 400 and "2 adapters are served" in reply["error"]["message"]
    assert get_json(url + "/health")["status"] == "ok"


def test_an_adapter_of_another_base_model_is_refused_at_start(adapters, tmp_path):
    base = resolve_base_model("smollm2-135m-instruct")
    other = "0" * 64
    spec = {
        "base": {"id": "smollm2-135m-instruct", "path": str(base.path)},
        "adapters": [
            {
                "name": "alpha",
                "path": str(adapters / "alpha"),
                "model_uri": "models:/alpha/1",
                "base_model": {"sha256": other},
            }
        ],
        "traffic": None,
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.worker.serve", "--spec", str(tmp_path / "spec.json")],
        capture_output=True,
        text=True,
        cwd=paths.REPO_ROOT,
        timeout=120,
    )  # refused before torch is imported: the orchestrator's Python is enough here
    assert done.returncode == 2
    assert "adapter 'alpha' (models:/alpha/1)" in done.stderr
    assert other in done.stderr and base.sha256 in done.stderr


# --- the orchestrator side: resolving models, the spec, the vLLM command ----------------


def _register_stand_in(tmp_path: Path, name: str, base_sha256: str) -> None:
    """A registered version whose adapter is a stand-in (resolving never loads it)."""
    from pipelines.lib import registry

    base = tmp_path / "stand-in-base"
    base.mkdir(exist_ok=True)
    (base / "model.safetensors").write_bytes(b"weights")
    (base / "config.json").write_text("{}")
    adapter = tmp_path / f"adapter-{name}"
    adapter.mkdir()
    (adapter / "adapter_model.safetensors").write_bytes(b"lora")
    (adapter / "adapter_config.json").write_text('{"r": 24}')
    run_id = tracking.start_run(name, f"dagster-{name}", {"rung.base_model": "stand-in"})
    registry.register_adapter(
        name=name,
        run_id=run_id,
        adapter_dir=adapter,
        base_model={
            "id": "stand-in",
            "path": str(base),
            "sha256": base_sha256,
            "weights": {"model.safetensors": base_sha256},
        },
        report={
            "primary_metric": "field_f1",
            "candidates": {"tuned": {"field_f1": 0.5}},
            "verdict": {"ship": True, "label": "SHIP", "reasons": []},
            "interval": {
                "versus": "few_shot",
                "mean": 0.1,
                "low": 0.05,
                "high": 0.2,
                "confidence": 0.95,
            },
        },
        evaluated_champion=None,
        attachments={},
        dagster_run_id=f"dagster-{name}",
    )


def test_registered_versions_resolve_by_alias_or_number_with_their_base_pointer(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("RUNG_CACHE_DIR", str(tmp_path / "cache"))  # downloads go there
    _register_stand_in(tmp_path, "serve-resolve", "c" * 64)
    by_alias = serving.resolve_served_model("models:/serve-resolve@champion")
    by_number = serving.resolve_served_model("v1=models:/serve-resolve/1")
    assert (by_alias.name, by_alias.version, by_alias.model_uri) == (
        "serve-resolve",
        "1",
        "models:/serve-resolve/1",
    )
    assert by_number.name == "v1" and by_number.path == by_alias.path
    assert (Path(by_alias.path) / "adapter_model.safetensors").read_bytes() == b"lora"
    assert by_alias.base_model["sha256"] == "c" * 64
    base = serving.choose_base([by_alias], None)
    assert base["id"] == "stand-in" and base["sha256"] == "c" * 64
    spec = serving.serve_spec([by_alias, by_number], base, port=5009, traffic_max_mb=None)
    assert [a["name"] for a in spec["adapters"]] == ["serve-resolve", "v1"]
    assert spec["host"] == "127.0.0.1" and spec["traffic"] is None
    with pytest.raises(serving.ServingError, match="name them"):
        serving.serve_spec([by_alias, by_alias], base)
    with pytest.raises(serving.ServingError, match="not in the MLflow registry"):
        serving.resolve_served_model("models:/serve-resolve@nobody")
    with pytest.raises(serving.ServingError, match="neither"):
        serving.resolve_served_model("no/such/folder")
    command = serving.vllm_command(spec)
    assert command.startswith(f"vllm serve {base['path']} --host 127.0.0.1 --port 5009")
    assert "--enable-lora --max-loras 2 --max-lora-rank 32 --lora-modules" in command
    assert f"serve-resolve={by_alias.path}" in command and f"v1={by_alias.path}" in command


def test_rung_serve_prints_the_vllm_command_and_refuses_mlflow_for_two_models(adapters, capsys):
    argv = [
        "serve",
        "--model",
        f"a={adapters / 'alpha'}",
        "--model",
        str(adapters / "beta"),
        "--base",
        "smollm2-135m-instruct",
        "--port",
        "6001",
    ]
    assert cli.main([*argv, "--print-vllm"]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed == (
        f"vllm serve {embedded_model_dir()} --host 127.0.0.1 --port 6001 --enable-lora "
        f"--max-loras 2 --max-lora-rank 8 --lora-modules a={adapters / 'alpha'} "
        f"beta={adapters / 'beta'}"
    )
    assert cli.main([*argv, "--engine", "mlflow"]) == 2
    assert "exactly one model" in capsys.readouterr().err
    for shadow, refusal in [
        (["--shadow", "a=gamma"], "two different served names"),
        (["--shadow", "a=a"], "two different served names"),
        (["--shadow", "a=beta", "--shadow", "a=base"], "one shadow per live model"),
        (["--shadow", "a=beta", "--no-traffic-log"], "drop --no-traffic-log"),
        (["--shadow", "a=beta", "--print-vllm"], "vLLM has no shadow copies"),
    ]:
        assert cli.main([*argv, *shadow]) == 2
        assert refusal in capsys.readouterr().err
    assert cli.main(["serve", "--model", str(adapters / "alpha"), "--print-vllm"]) == 2
    assert "--base" in capsys.readouterr().err


@pytest.fixture
def own_state(tmp_path, monkeypatch):
    """A state dir (MLflow store, traffic log) of the test's own."""
    monkeypatch.setenv("RUNG_STATE_DIR", str(tmp_path / "state"))
    yield tmp_path / "state"
    monkeypatch.undo()
    tracking.configure_mlflow()  # back to the session's store


def test_rung_serve_serves_a_registered_version_by_alias_in_mlflows_protocol_too(
    adapters, own_state, tmp_path, monkeypatch
):
    """The whole path: the registry, the download, `rung serve` handing over to the trainer
    env, and a one-model server answering the `mlflow models serve` protocol."""
    from pipelines.lib import registry

    base = resolve_base_model("smollm2-135m-instruct")
    monkeypatch.setenv("RUNG_CACHE_DIR", str(tmp_path / "cache"))  # the download goes there
    run_id = tracking.start_run("serve-e2e", "dagster-e2e", {"rung.base_model": "embedded"})
    registry.register_adapter(
        name="serve-e2e",
        run_id=run_id,
        adapter_dir=adapters / "alpha",
        base_model={
            "id": "smollm2-135m-instruct",
            "path": str(base.path),
            "sha256": base.sha256,
            "weights": base.weights,
        },
        report={
            "primary_metric": "field_f1",
            "candidates": {"tuned": {"field_f1": 0.5}},
            "verdict": {"ship": True, "label": "SHIP", "reasons": []},
            "interval": {
                "versus": "few_shot",
                "mean": 0.1,
                "low": 0.05,
                "high": 0.2,
                "confidence": 0.95,
            },
        },
        evaluated_champion=None,
        attachments={},
        dagster_run_id="dagster-e2e",
    )
    port = free_port()
    process = subprocess.Popen(
        [
            str(paths.REPO_ROOT / ".venv" / "bin" / "rung"),
            "serve",
            "models:/serve-e2e@champion",
            "--port",
            str(port),
        ],
        env={**os.environ, "PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            assert process.poll() is None, process.stdout.read()[-3000:]
            try:
                urllib.request.urlopen(url + "/ping", timeout=5)
                break
            except OSError:
                assert time.monotonic() < deadline, "the server did not start in 5 min"
                time.sleep(1)
        message = [{"role": "user", "content": QUESTION}]
        code, answers = post_json(url + "/invocations", {"messages": message, "max_new_tokens": 6})
        assert code == 200 and isinstance(answers, list) and answers[0].strip()
        code, reply = post_json(
            url + "/v1/chat/completions",
            {"model": "serve-e2e", "messages": message, "max_tokens": 6},
        )
        assert code == 200 and reply["choices"][0]["message"]["content"] == answers[0]
        assert reply["model_version"] == "1"
    finally:
        process.terminate()
        process.wait(timeout=60)
    logged = read_traffic(own_state / "traffic", "serve-e2e", version="1")
    assert [r["output"] for r in logged] == [answers[0]] * 2


# --- the traffic log ---------------------------------------------------------------------


def _record(i: int, version: str = "1", when: datetime | None = None) -> dict:
    return traffic_record(
        model="m",
        version=version,
        messages=[{"role": "user", "content": f"question {i}"}],
        output="x" * 100,
        latency_s=0.5,
        prompt_tokens=10,
        new_tokens=3,
        finish_reason="stop",
        request_id=f"r{i}",
        time=when,
    )


def test_the_traffic_log_rotates_and_stays_under_its_bound(tmp_path):
    log = TrafficLog(tmp_path, max_bytes=2000, keep=2)
    for i in range(200):
        log.append(_record(i))
    files = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert files == ["traffic.jsonl", "traffic.jsonl.1", "traffic.jsonl.2"]
    assert all(p.stat().st_size <= 2000 for p in (tmp_path / "m").iterdir())
    rows = read_traffic(tmp_path, "m")
    ids = [int(r["request_id"][1:]) for r in rows]
    assert ids == sorted(ids) and ids[-1] == 199  # oldest first, the newest kept
    assert len(rows) < 200  # the oldest were dropped


def test_reading_traffic_filters_by_version_and_time_and_skips_a_torn_line(tmp_path):
    log = TrafficLog(tmp_path, max_bytes=0)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(6):
        log.append(_record(i, version="1" if i < 3 else "2", when=start + timedelta(hours=i)))
    with (tmp_path / "m" / "traffic.jsonl").open("a") as handle:
        handle.write('{"time": "2026-01-0')  # the server stopped mid-write
    assert len(read_traffic(tmp_path, "m")) == 6
    assert [r["request_id"] for r in read_traffic(tmp_path, "m", version="2")] == ["r3", "r4", "r5"]
    assert len(read_traffic(tmp_path, "m", since=start + timedelta(hours=4))) == 2
    assert [r["request_id"] for r in read_traffic(tmp_path, "m", last=2)] == ["r4", "r5"]


def test_the_traffic_dir_is_under_the_state_dir():
    assert paths.traffic_dir() == paths.state_dir() / "traffic"
    assert os.environ["RUNG_STATE_DIR"] in str(paths.traffic_dir())
