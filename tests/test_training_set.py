import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pandas as pd
import pytest

from pipelines.lib.axolotl_config import render_axolotl_config
from pipelines.lib.metrics import ExtractionScorer
from pipelines.lib.teacher import TeacherError, ask_http_teacher, resolve_teacher
from pipelines.lib.training_set import (
    as_sft,
    distilled_records,
    on_policy_pairs,
    preference_records,
    rehearsal_prompts,
    rehearsal_records,
    within_length,
)
from pipelines.recipe import DistillSection, TrainSection

SYSTEM = {"role": "system", "content": "Extract."}
GOLD = json.dumps({"ZipCode": "60601"})


def rows() -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "id": "a",
                "messages": [
                    SYSTEM,
                    {"role": "user", "content": "Chicago 60601"},
                    {"role": "assistant", "content": GOLD},
                ],
            },
            {
                "id": "b",
                "messages": [
                    SYSTEM,
                    {"role": "user", "content": "IL 60601"},
                    {"role": "assistant", "content": GOLD},
                ],
            },
        ]
    )


def test_on_policy_pairs_reject_the_base_models_wrong_answers_only():
    answers = {"a": GOLD, "b": "Sure! The zip is 60601."}
    pairs, already_right = on_policy_pairs(rows(), answers, ExtractionScorer())
    assert already_right == 1
    (pair,) = pairs
    assert pair["id"] == "b" and pair["chosen"] == GOLD
    assert pair["rejected"] == "Sure! The zip is 60601."
    assert [m["role"] for m in pair["messages"]] == ["system", "user"]  # the prompt only


def test_distilled_rows_carry_the_teachers_answer_and_provenance():
    records = distilled_records(
        rows(),
        {"a": '{"ZipCode": "1"}', "b": "  "},
        {"teacher": "models:/address@champion", "model_version": "3"},
    )
    (record,) = records  # an empty teacher answer is not a training row
    assert record["messages"][-1] == {"role": "assistant", "content": '{"ZipCode": "1"}'}
    assert record["provenance"]["teacher"] == "models:/address@champion"
    assert record["provenance"]["model_version"] == "3" and record["provenance"]["labelled_at"]


def test_preference_rows_round_trip_to_sft_and_dpo_records():
    frame = pd.DataFrame(
        [
            {
                "id": "p",
                "messages": [{"role": "user", "content": "Hi"}],
                "chosen": "Hello!",
                "rejected": "Go away.",
            }
        ]
    )
    (record,) = preference_records(frame)
    assert record == {
        "id": "p",
        "messages": [{"role": "user", "content": "Hi"}],
        "chosen": "Hello!",
        "rejected": "Go away.",
    }
    assert as_sft(frame)["messages"][0][-1] == {"role": "assistant", "content": "Hello!"}


def test_dpo_and_qlora_render_into_axolotl_settings(tmp_path):
    def render(**train):
        return render_axolotl_config(
            TrainSection(**train),
            base_model_dir=tmp_path,
            train_file=tmp_path / "t.jsonl",
            output_dir=tmp_path,
            mlflow_tracking_uri="sqlite:///x.db",
            mlflow_experiment="rung",
            init_adapter_dir=tmp_path / "sft-adapter",
        )

    dpo = render(method="dpo", dpo={"beta": 0.2})
    assert (dpo["rl"], dpo["rl_beta"], dpo["sample_packing"]) == ("dpo", 0.2, False)
    assert dpo["datasets"][0]["type"] == "chat_template.default"
    assert dpo["datasets"][0]["field_chosen"] == "chosen"
    assert dpo["lora_model_dir"] == str(tmp_path / "sft-adapter")
    assert "dpo_loss_type" not in dpo  # plain DPO unless asked
    rpo = render(method="dpo", dpo={"sft_weight": 0.5})
    assert (rpo["dpo_loss_type"], rpo["dpo_loss_weights"]) == (["sigmoid", "sft"], [1.0, 0.5])
    qlora = render(adapter="qlora")
    assert qlora["adapter"] == "qlora" and qlora["load_in_4bit"] is True
    assert qlora["bnb_4bit_quant_type"] == "nf4" and qlora["bnb_4bit_use_double_quant"] is True
    assert qlora["bf16"] == "auto" and dpo["bf16"] is False  # CPU runs stay in fp32


class _Teacher(BaseHTTPRequestHandler):
    """A stand-in for a remote OpenAI-compatible endpoint (none is reachable here)."""

    seen: list[dict] = []

    def do_POST(self):  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Teacher.seen.append({"auth": self.headers.get("Authorization"), **body})
        answer = body["messages"][-1]["content"].upper()
        payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": answer}}]})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(payload.encode())

    def log_message(self, *args):
        pass


@pytest.fixture()
def teacher_url():
    server = HTTPServer(("127.0.0.1", 0), _Teacher)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()


def test_http_teacher_answers_with_the_key_from_the_environment(teacher_url, monkeypatch):
    monkeypatch.setenv("RUNG_TEST_TEACHER_KEY", "s3cret")
    cfg = DistillSection(
        teacher=teacher_url,
        teacher_model="big-model",
        api_key_env="RUNG_TEST_TEACHER_KEY",
        max_new_tokens=16,
    )
    assert resolve_teacher(cfg) == {"kind": "http", "id": "big-model", "url": teacher_url}
    answers = ask_http_teacher(cfg, [[{"role": "user", "content": "hello"}]])
    assert answers == ["HELLO"]
    sent = _Teacher.seen[-1]
    assert sent["auth"] == "Bearer s3cret" and sent["model"] == "big-model"
    assert sent["max_tokens"] == 16 and sent["temperature"] == 0.0


def test_http_teacher_errors_are_clear_and_never_show_the_key(monkeypatch):
    cfg = DistillSection(teacher="http://127.0.0.1:9/v1", api_key_env="RUNG_TEST_MISSING_KEY")
    monkeypatch.delenv("RUNG_TEST_MISSING_KEY", raising=False)
    with pytest.raises(TeacherError, match=r"\$RUNG_TEST_MISSING_KEY is not set"):
        ask_http_teacher(cfg, [[{"role": "user", "content": "x"}]])
    monkeypatch.setenv("RUNG_TEST_MISSING_KEY", "s3cret")
    monkeypatch.setattr("pipelines.lib.teacher.BACKOFF_S", 0.01)  # retries, but quickly
    with pytest.raises(TeacherError) as err:
        ask_http_teacher(cfg, [[{"role": "user", "content": "x"}]], timeout_s=2)
    assert "teacher endpoint http://127.0.0.1:9/v1 failed" in str(err.value)
    assert "s3cret" not in str(err.value)


def test_unknown_teacher_is_refused(tmp_path):
    with pytest.raises(TeacherError, match="neither a LoRA adapter folder"):
        resolve_teacher(DistillSection(teacher=str(tmp_path)))


def test_length_bias_of_preference_pairs():
    from pipelines.lib.training_set import length_bias

    stats = length_bias([{"chosen": "a b c", "rejected": "a"}, {"chosen": "a", "rejected": "a b"}])
    assert stats == {
        "pairs": 2.0,
        "chosen_mean_words": 2.0,
        "rejected_mean_words": 1.5,
        "chosen_longer_share": 0.5,
    }
    assert length_bias([]) == {}


def test_rehearsal_samples_prompts_deterministically_and_names_bad_fields(tmp_path):
    source = tmp_path / "prompts.csv"
    lines = (
        ["text,other"]
        + [f"prompt {i}  with   spaces,x" for i in range(50)]
        + ["prompt 3 with spaces,x"]
    )
    source.write_text("\n".join(lines) + "\n")
    first = rehearsal_prompts(source, "text", 10, seed=7)
    assert first == rehearsal_prompts(source, "text", 10, seed=7)  # same seed, same sample
    assert first != rehearsal_prompts(source, "text", 10, seed=8)
    assert len(first) == 10 and len({p["prompt"] for p in first}) == 10
    assert all("  " not in p["prompt"] for p in first)  # whitespace normalized
    every = rehearsal_prompts(source, "text", 100, seed=7)
    assert len(every) == 50  # the repeated prompt counts once
    assert {p["id"] for p in first} <= {p["id"] for p in every}  # a larger sample holds a smaller
    with pytest.raises(ValueError, match=r"prompts.csv:2: train.rehearsal.field 'txt'"):
        rehearsal_prompts(source, "txt", 10, seed=7)


def test_rehearsal_rows_are_the_base_models_answers_without_the_task_prompt():
    prompts = [
        {"id": "rehearsal-2", "prompt": "A fine film."},
        {"id": "rehearsal-3", "prompt": "Dull."},
    ]
    records = rehearsal_records(
        prompts, {"rehearsal-2": "Glad you liked it!", "rehearsal-3": " "}, {"model": "base"}
    )
    (record,) = records  # an empty answer teaches nothing and is left out
    assert record["messages"] == [
        {"role": "user", "content": "A fine film."},
        {"role": "assistant", "content": "Glad you liked it!"},
    ]
    assert record["provenance"] == {"model": "base"}


def test_rehearsal_rows_over_the_sequence_length_are_dropped_not_truncated():
    from pipelines.lib.base_model import embedded_model_dir
    from pipelines.lib.token_length import ChatTokenCounter

    count = ChatTokenCounter(embedded_model_dir()).count
    short = {
        "id": "s",
        "messages": [
            {"role": "user", "content": "Hi."},
            {"role": "assistant", "content": "Hello!"},
        ],
    }
    long = {
        "id": "l",
        "messages": [
            {"role": "user", "content": "word " * 300},
            {"role": "assistant", "content": "ok"},
        ],
    }
    kept = within_length([short, long], count, sequence_len=256)
    assert kept == [short]  # the long row is gone, the short one untouched
