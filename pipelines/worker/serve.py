"""The multi-adapter model server (trainer env): one base model, many LoRA adapters.

`rung serve --model models:/a@champion --model models:/b@champion` resolves the
registered versions (orchestrator: MLflow downloads) and starts this module with a
spec (JSON, `--spec FILE` or the RUNG_SERVE_SPEC variable):

    {"base": {"id", "path", "sha256", "weights": {file: sha256}},
     "adapters": [{"name", "path", "version", "model_uri", "base_model": {...} | null}],
     "host": "127.0.0.1", "port": 5001, "max_batch": 8, "batch_wait_ms": 10,
     "max_prompt_tokens": 2048, "traffic": {"dir", "max_mb", "keep"} | null,
     "shadows": {"champion": "challenger"}}

The base model is loaded once and every adapter is attached to it unmerged
(peft), so one forward pass serves requests for different adapters together:
`generate(..., adapter_names=[...])`, a mixed-adapter batch. Generation is greedy;
a request waits at most `batch_wait_ms` for others to share its batch. An adapter
registered on another base model (the weights' sha256 differ) is refused at start.

Endpoints (127.0.0.1 unless told otherwise):
  POST /v1/chat/completions  OpenAI-style {model, messages, max_tokens}; model is an
                             adapter's name or "base"
  GET  /v1/models            what is served, with registered versions
  GET  /health               base model, adapters, queue, batches
  GET  /ping, POST /invocations   the `mlflow models serve` protocol, when exactly one
                             adapter is served (so `rung serve MODEL` clients keep working)
Bad requests get a 4xx with a reason; nothing a client sends stops the server.
Every answered request is appended to the traffic log (pipelines/lib/traffic.py)
unless the spec has no `traffic`, except a monitor's probe (`"metadata": {"rung_purpose":
"probe"}`: `rung monitor --ask-probes`), which is not user traffic.

Shadowing (`shadows`: served name -> another served name): after a request to the first
is answered, a copy goes to the second and its answer is logged under the second's name
with `shadow_of` and the same request_id, so a challenger is judged on live traffic
(`rung monitor` compares the pairs). Copies wait in their own bounded queue and are
answered one at a time, only when no client request is waiting: a client arriving
meanwhile waits for that one answer at most. When the queue is full a copy is dropped
and counted (`shadow_dropped`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import queue
import sys
import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.lib.base_model import weight_digests, weights_sha256
from pipelines.lib.traffic import TrafficLog, traffic_record

BASE = "base"  # the model name that asks for the base model without an adapter
PEFT_BASE = "__base__"  # peft's name for "no adapter" in a mixed batch
ROLES = ("system", "user", "assistant")
MAX_TOKENS_RANGE = (1, 512)
DEFAULT_MAX_TOKENS = 128
MAX_BODY_BYTES = 1 << 20
DRAIN_BYTES = 16 << 20  # an over-long body up to this size is read (not kept) before the 413
SHADOW_QUEUE = 256  # shadow copies waiting for an idle moment; more are dropped (counted)


class ServeError(RuntimeError):
    """The server refuses to start (a wrong base model, a missing adapter)."""


class BadRequest(Exception):
    def __init__(self, status: int, reason: str, code: str = "invalid_request") -> None:
        super().__init__(reason)
        self.status, self.reason, self.code = status, reason, code


@dataclass(frozen=True)
class ServedAdapter:
    name: str
    path: str
    version: str | None = None
    model_uri: str | None = None
    base_sha256: str | None = None  # the base model it was registered on (None: unchecked)


@dataclass
class ChatJob:
    model: str
    messages: list[dict[str, str]]
    max_tokens: int
    received: float = field(default_factory=time.perf_counter)
    request_id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex[:24]}")
    shadow_of: str | None = None  # a shadow copy of a request answered by this model
    logged: bool = True  # False: a monitor's probe (metadata.rung_purpose "probe"), not traffic


@dataclass(frozen=True)
class Answer:
    text: str
    prompt_tokens: int
    new_tokens: int
    finish_reason: str  # "stop" (end of turn) or "length" (max_tokens reached)


# --- start-up -------------------------------------------------------------------------


def check_base_models(adapters: list[ServedAdapter], base_id: str, loaded_sha256: str) -> None:
    """Refuse any adapter registered on a base model whose weights differ from the loaded one."""
    wrong = [a for a in adapters if a.base_sha256 and a.base_sha256 != loaded_sha256]
    if wrong:
        lines = [
            f"adapter {a.name!r} ({a.model_uri or a.path}) was registered on a base model with "
            f"weights sha256 {a.base_sha256}, but the loaded base model {base_id!r} has "
            f"weights sha256 {loaded_sha256}"
            for a in wrong
        ]
        raise ServeError(
            "; ".join(lines) + ". Serve adapters of one base model per server (one `rung serve` "
            "per base model)."
        )


def adapters_from_spec(spec: dict[str, Any]) -> list[ServedAdapter]:
    adapters = []
    for item in spec.get("adapters", []):
        pointer = item.get("base_model") or {}
        adapters.append(
            ServedAdapter(
                name=item["name"],
                path=item["path"],
                version=None if item.get("version") is None else str(item["version"]),
                model_uri=item.get("model_uri"),
                base_sha256=pointer.get("sha256"),
            )
        )
    names = [a.name for a in adapters]
    if BASE in names or len(set(names)) != len(names):
        raise ServeError(f"adapter names must be unique and not {BASE!r}: {names}")
    for adapter in adapters:
        if not (Path(adapter.path) / "adapter_config.json").is_file():
            raise ServeError(f"adapter {adapter.name!r}: no adapter_config.json in {adapter.path}")
    return adapters


def shadows_from_spec(spec: dict[str, Any], served: list[str]) -> dict[str, str]:
    """{served name: the served name that answers a copy of its requests}, checked."""
    shadows = dict(spec.get("shadows") or {})
    for live, shadow in shadows.items():
        if live not in served or shadow not in served or live == shadow:
            raise ServeError(
                f"shadow {live}={shadow}: both must be served names ({served}) and differ"
            )
    return shadows


def base_model_sha256(folder: Path) -> str:
    """The loaded base model's weights sha256, computed from its files (not trusted)."""
    return weights_sha256(weight_digests(Path(folder)))


# --- generation ----------------------------------------------------------------------


class Engine:
    """The base model plus named adapters; answers a batch of chat jobs in one generate call,
    each row with its own adapter (peft mixed-adapter batch; the base rows use none)."""

    def __init__(self, base_dir: str, adapters: list[ServedAdapter]) -> None:
        from pipelines.worker.generation import Models

        self.adapters = {a.name: a for a in adapters}
        self.models = Models(base_dir, {a.name: a.path for a in adapters})
        self.tokenizer = self.models.tokenizer
        self.eos = self.tokenizer.eos_token_id

    @property
    def names(self) -> list[str]:
        return [BASE, *self.adapters]

    def prompt_tokens(self, messages: list[dict[str, str]]) -> int:
        text = self.models.prompt_text(messages)
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def answer(self, jobs: list[ChatJob]) -> list[Answer]:
        import torch

        prompts = [self.models.prompt_text(job.messages) for job in jobs]
        batch = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        extra = {}
        if self.adapters:  # an unmerged PeftModel: each row names its adapter
            extra["adapter_names"] = [PEFT_BASE if j.model == BASE else j.model for j in jobs]
        with torch.no_grad():
            output = self.models.model.generate(
                **batch,
                max_new_tokens=max(job.max_tokens for job in jobs),
                do_sample=False,
                eos_token_id=self.eos,
                pad_token_id=self.tokenizer.pad_token_id,
                **extra,
            )
        new_tokens = output[:, batch["input_ids"].shape[1] :]
        answers = []
        for job, tokens, mask in zip(jobs, new_tokens, batch["attention_mask"]):
            # Greedy: the first max_tokens of a longer generation are this job's own answer.
            tokens = tokens[: job.max_tokens]
            ended = (tokens == self.eos).nonzero()
            kept = tokens[: int(ended[0])] if len(ended) else tokens
            answers.append(
                Answer(
                    text=self.tokenizer.decode(kept, skip_special_tokens=True).strip(),
                    prompt_tokens=int(mask.sum()),
                    new_tokens=len(kept),
                    finish_reason="stop" if len(ended) else "length",
                )
            )
        return answers


class Batcher:
    """One thread runs the model; requests queue up and are answered in mixed batches of up
    to `max_batch`, gathered for at most `wait_s` after the first one arrives."""

    def __init__(
        self,
        engine: Engine,
        max_batch: int,
        wait_s: float,
        traffic: TrafficLog | None,
        versions: dict[str, str | None],
        max_prompt_tokens: int = 2048,
        shadows: dict[str, str] | None = None,
    ) -> None:
        self.engine, self.max_batch, self.wait_s = engine, max_batch, wait_s
        self.max_prompt_tokens = max_prompt_tokens
        self.traffic, self.versions = traffic, versions
        self.shadows = shadows or {}
        self.jobs: queue.Queue[tuple[ChatJob, Future]] = queue.Queue()
        # filled only by the batcher thread itself (in _answer), so "empty" stays true
        # until that thread puts a copy there
        self.shadow_jobs: queue.Queue[tuple[ChatJob, Future]] = queue.Queue(SHADOW_QUEUE)
        self.stats = {
            "requests": 0,
            "batches": 0,
            "largest_batch": 0,
            "errors": 0,
            "shadowed": 0,
            "shadow_dropped": 0,
        }
        threading.Thread(target=self._run, name="rung-batcher", daemon=True).start()

    def submit(self, job: ChatJob) -> Future:
        future: Future = Future()
        self.jobs.put((job, future))
        return future

    def _gather(self) -> list[tuple[ChatJob, Future]]:
        """The next batch of client requests or, when none waits, one shadow copy (alone,
        so that a client arriving meanwhile waits for one answer at most)."""
        try:
            batch = [self.jobs.get(block=self.shadow_jobs.empty())]
        except queue.Empty:  # no client waits: answer a copy now
            return [self.shadow_jobs.get_nowait()]
        deadline = time.perf_counter() + self.wait_s
        while len(batch) < self.max_batch:
            remaining = deadline - time.perf_counter()
            try:
                item = self.jobs.get(timeout=remaining) if remaining > 0 else self.jobs.get_nowait()
            except queue.Empty:
                break
            batch.append(item)
        return batch

    def _admit(self, batch: list[tuple[ChatJob, Future]]) -> list[tuple[ChatJob, Future]]:
        """Refuse prompts over the limit (counted here: the tokenizer is not thread-safe)."""
        admitted = []
        for job, future in batch:
            tokens = self.engine.prompt_tokens(job.messages)
            if tokens > self.max_prompt_tokens:
                future.set_exception(
                    BadRequest(
                        400,
                        f"the prompt has {tokens} tokens; at most "
                        f"{self.max_prompt_tokens} are accepted",
                    )
                )
            else:
                admitted.append((job, future))
        return admitted

    def _run(self) -> None:
        while True:
            batch = self._gather()
            try:
                self._answer(self._admit(batch))
            except Exception as exc:  # noqa: BLE001 - fails these requests, never the server
                self.stats["errors"] += sum(not future.done() for _, future in batch)
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)

    def _answer(self, batch: list[tuple[ChatJob, Future]]) -> None:
        if not batch:
            return
        started = time.perf_counter()
        answers = self.engine.answer([job for job, _ in batch])
        self.stats["requests"] += sum(job.shadow_of is None for job, _ in batch)
        self.stats["batches"] += 1
        self.stats["largest_batch"] = max(self.stats["largest_batch"], len(batch))
        done = time.perf_counter()
        for (job, future), answer in zip(batch, answers):
            # a copy's wait for an idle moment is not its model's latency: count its batch only
            latency = done - (started if job.shadow_of else job.received)
            if self.traffic is not None and job.logged:
                self._log(job, answer, latency)
            future.set_result((answer, latency))
            if job.model in self.shadows and job.shadow_of is None and job.logged:
                self._shadow(job)

    def _shadow(self, job: ChatJob) -> None:
        """Queue a copy of an answered request for the model that shadows job.model."""
        copy = ChatJob(
            self.shadows[job.model],
            job.messages,
            job.max_tokens,
            request_id=job.request_id,
            shadow_of=job.model,
        )
        try:
            self.shadow_jobs.put_nowait((copy, Future()))
            self.stats["shadowed"] += 1
        except queue.Full:
            self.stats["shadow_dropped"] += 1

    def _log(self, job: ChatJob, answer: Answer, latency: float) -> None:
        try:
            self.traffic.append(
                traffic_record(
                    model=job.model,
                    version=self.versions.get(job.model),
                    messages=job.messages,
                    output=answer.text,
                    latency_s=latency,
                    prompt_tokens=answer.prompt_tokens,
                    new_tokens=answer.new_tokens,
                    finish_reason=answer.finish_reason,
                    request_id=job.request_id,
                    shadow_of=job.shadow_of,
                )
            )
        except OSError as exc:  # a full disk must not stop answering
            print(f"rung serve: traffic log not written: {exc}", file=sys.stderr)


# --- requests ------------------------------------------------------------------------


def parse_json(body: bytes) -> Any:
    if len(body) > MAX_BODY_BYTES:
        raise BadRequest(413, f"request body over {MAX_BODY_BYTES} bytes", "body_too_large")
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(400, f"malformed JSON: {exc}", "malformed_json") from None
    except RecursionError:  # e.g. 100,000 nested brackets: a client's error, not a 500
        raise BadRequest(400, "malformed JSON: nested too deeply", "malformed_json") from None


async def read_body(request: Any) -> bytes:
    """The request body, refused (413) past MAX_BODY_BYTES before more of it is held in
    memory: by its Content-Length when it says, else while it streams in."""
    too_large = BadRequest(413, f"request body over {MAX_BODY_BYTES} bytes", "body_too_large")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        if int(declared) <= DRAIN_BYTES:
            # Read and drop it first: answering while the client still sends resets the
            # connection, and the client sees a broken pipe instead of the 413.
            async for _ in request.stream():
                pass
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise too_large
    return bytes(body)


def _content(message: Any, index: int) -> dict[str, str]:
    if not isinstance(message, dict):
        raise BadRequest(400, f"messages[{index}] must be an object with role and content")
    role, content = message.get("role"), message.get("content")
    if role not in ROLES:
        raise BadRequest(400, f"messages[{index}].role must be one of {list(ROLES)}, got {role!r}")
    if isinstance(content, list):  # OpenAI content parts: text only
        if not all(isinstance(p, dict) and p.get("type") == "text" for p in content):
            raise BadRequest(400, f"messages[{index}].content: only text parts are supported")
        content = "".join(str(p.get("text", "")) for p in content)
    if not isinstance(content, str):
        raise BadRequest(400, f"messages[{index}].content must be a string")
    return {"role": role, "content": content}


def parse_messages(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise BadRequest(400, "messages must be a non-empty list of {role, content}")
    messages = [_content(m, i) for i, m in enumerate(value)]
    if messages[-1]["role"] != "user":
        raise BadRequest(400, "the last message must be the user's (role 'user')")
    if any(m["role"] == "system" for m in messages[1:]):
        raise BadRequest(400, "a system message may only come first")
    return messages


def parse_max_tokens(value: Any, name: str = "max_tokens") -> int:
    low, high = MAX_TOKENS_RANGE
    if value is None:
        return DEFAULT_MAX_TOKENS
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadRequest(400, f"{name} must be an integer in {low}..{high}, got {value!r}")
    return value


def parse_chat_request(body: bytes, served: list[str]) -> ChatJob:
    """A chat completion request, or BadRequest saying what is wrong with it."""
    request = parse_json(body)
    if not isinstance(request, dict):
        raise BadRequest(400, "the request must be a JSON object")
    model = request.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest(400, f"model is required: one of {served}")
    if model not in served:
        raise BadRequest(404, f"unknown model {model!r}; served: {served}", "model_not_found")
    if request.get("stream"):
        raise BadRequest(400, "stream: streaming is not supported; send stream=false")
    if request.get("n", 1) != 1:
        raise BadRequest(400, "n: only one choice per request is supported")
    limit = request.get("max_completion_tokens", request.get("max_tokens"))
    metadata = request.get("metadata")
    probe = isinstance(metadata, dict) and metadata.get("rung_purpose") == "probe"
    return ChatJob(
        model, parse_messages(request.get("messages")), parse_max_tokens(limit), logged=not probe
    )


def completion(job: ChatJob, answer: Answer, version: str | None) -> dict[str, Any]:
    return {
        "id": job.request_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": job.model,
        "model_version": version,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer.text},
                "finish_reason": answer.finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": answer.prompt_tokens,
            "completion_tokens": answer.new_tokens,
            "total_tokens": answer.prompt_tokens + answer.new_tokens,
        },
    }


def invocation_jobs(body: bytes, model: str) -> tuple[list[ChatJob], bool]:
    """The `mlflow models serve` request forms: {"messages": [...], "max_new_tokens": N}
    (answered as a list) or {"dataframe_records": [{"messages": [...]}, ...], "params":
    {"max_new_tokens": N}} (answered as {"predictions": [...]})."""
    request = parse_json(body)
    if not isinstance(request, dict):
        raise BadRequest(400, "the request must be a JSON object")
    if "dataframe_records" in request:
        records = request["dataframe_records"]
        if not isinstance(records, list) or not records:
            raise BadRequest(400, "dataframe_records must be a non-empty list of {messages}")
        params = request.get("params") or {}
        if not isinstance(params, dict):
            raise BadRequest(400, 'params must be an object, e.g. {"max_new_tokens": 64}')
        limit = parse_max_tokens(params.get("max_new_tokens"), "max_new_tokens")
        return [
            ChatJob(
                model, parse_messages(r.get("messages") if isinstance(r, dict) else None), limit
            )
            for r in records
        ], True
    limit = parse_max_tokens(request.get("max_new_tokens"), "max_new_tokens")
    return [ChatJob(model, parse_messages(request.get("messages")), limit)], False


# --- the app ---------------------------------------------------------------------------


def build_app(engine: Engine, batcher: Batcher, base: dict[str, Any]) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    adapters = engine.adapters
    versions = {BASE: None, **{n: a.version for n, a in adapters.items()}}

    def error(exc: BadRequest) -> JSONResponse:
        body = {"error": {"message": exc.reason, "type": "invalid_request_error", "code": exc.code}}
        return JSONResponse(body, status_code=exc.status)

    async def answer_all(jobs: list[ChatJob]) -> list[tuple[Answer, float]]:
        futures = [asyncio.wrap_future(batcher.submit(job)) for job in jobs]
        return await asyncio.gather(*futures)

    async def chat(request: Request) -> Response:
        try:
            job = parse_chat_request(await read_body(request), engine.names)
            ((answer, _),) = await answer_all([job])
        except BadRequest as exc:
            return error(exc)
        except Exception as exc:  # noqa: BLE001 - a failed generation is a 500, not a crash
            return JSONResponse(
                {"error": {"message": f"generation failed: {exc}", "type": "server_error"}},
                status_code=500,
            )
        return JSONResponse(completion(job, answer, versions[job.model]))

    async def invocations(request: Request) -> Response:
        if len(adapters) != 1:
            return error(
                BadRequest(
                    400,
                    f"{len(adapters)} adapters are served: POST /v1/chat/completions with a "
                    f"model from {engine.names}",
                )
            )
        try:
            jobs, records = invocation_jobs(await read_body(request), next(iter(adapters)))
            texts = [answer.text for answer, _ in await answer_all(jobs)]
        except BadRequest as exc:
            return error(exc)
        return JSONResponse({"predictions": texts} if records else texts)

    async def models(request: Request) -> Response:
        data = [{"id": BASE, "object": "model", "owned_by": "rung", "base_model": base["id"]}]
        data += [
            {
                "id": name,
                "object": "model",
                "owned_by": "rung",
                "version": a.version,
                "model_uri": a.model_uri,
                "base_model": base["id"],
            }
            for name, a in adapters.items()
        ]
        return JSONResponse({"object": "list", "data": data})

    async def health(request: Request) -> Response:
        return JSONResponse(
            {
                "status": "ok",
                "base_model": {"id": base["id"], "sha256": base["sha256"]},
                "models": engine.names,
                "queued": batcher.jobs.qsize(),
                "shadows": batcher.shadows,
                "shadow_queued": batcher.shadow_jobs.qsize(),
                **batcher.stats,
            }
        )

    async def ping(request: Request) -> Response:
        return Response("\n", media_type="text/plain")

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            Route("/ping", ping, methods=["GET"]),
            Route("/invocations", invocations, methods=["POST"]),
        ]
    )


def load_spec(path: str | None) -> dict[str, Any]:
    if path:
        return json.loads(Path(path).read_text())
    if "RUNG_SERVE_SPEC" in os.environ:
        return json.loads(os.environ["RUNG_SERVE_SPEC"])
    raise ServeError("no spec: pass --spec FILE or set RUNG_SERVE_SPEC (rung serve does)")


def prepare(spec: dict[str, Any]) -> tuple[Engine, dict[str, Any]]:
    """Check the base model and the adapters, then load them (the slow part)."""
    adapters = adapters_from_spec(spec)
    base = dict(spec["base"])
    folder = Path(base["path"])
    if not (folder / "config.json").is_file():
        raise ServeError(f"base model {base['id']!r}: no config.json in {folder}")
    base["sha256"] = base_model_sha256(folder)
    check_base_models(adapters, base["id"], base["sha256"])
    return Engine(str(folder), adapters), base


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pipelines.worker.serve", description=__doc__)
    parser.add_argument("--spec", help="the serve spec (JSON file); default $RUNG_SERVE_SPEC")
    args = parser.parse_args(argv)
    try:
        spec = load_spec(args.spec)
        started = time.perf_counter()
        shadows = shadows_from_spec(spec, [BASE, *(a["name"] for a in spec.get("adapters", []))])
        engine, base = prepare(spec)
    except ServeError as exc:
        print(f"rung serve: {exc}", file=sys.stderr)
        return 2
    traffic = None
    if spec.get("traffic"):
        t = spec["traffic"]
        traffic = TrafficLog(Path(t["dir"]), int(float(t["max_mb"]) * 2**20), int(t["keep"]))
    versions = {BASE: None, **{n: a.version for n, a in engine.adapters.items()}}
    batcher = Batcher(
        engine,
        int(spec.get("max_batch", 8)),
        spec.get("batch_wait_ms", 10) / 1000,
        traffic,
        versions,
        int(spec.get("max_prompt_tokens", 2048)),
        shadows,
    )
    app = build_app(engine, batcher, base)
    host, port = spec.get("host", "127.0.0.1"), int(spec.get("port", 5001))
    print(
        f"rung serve: base {base['id']} + {len(engine.adapters)} adapter(s) "
        f"{sorted(engine.adapters)} loaded in {time.perf_counter() - started:.1f} s; "
        f"http://{host}:{port}/v1/chat/completions"
        + (f"; traffic log in {traffic.folder}" if traffic else "; traffic log off")
        + "".join(f"; {shadow} shadows {live}" for live, shadow in shadows.items()),
        flush=True,
    )
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
