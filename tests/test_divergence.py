import math

from pipelines.worker.divergence import (
    describe_divergence,
    divergence_signs,
    read_divergence,
    write_divergence,
)


def test_nan_or_infinite_loss_or_gradient_norm_is_a_divergence():
    assert divergence_signs({"loss": math.nan, "grad_norm": 1.0}) == {"loss": "nan"}
    assert divergence_signs({"loss": 2.0, "grad_norm": math.inf}) == {"grad_norm": "inf"}
    assert divergence_signs({"loss": -math.inf, "grad_norm": math.nan}) == {
        "loss": "-inf",
        "grad_norm": "nan",
    }


def test_no_gradient_left_with_a_positive_loss_is_a_divergence():
    assert divergence_signs({"loss": 10.8, "grad_norm": 0.0}) == {
        "loss": "10.8",
        "grad_norm": "0.0 (no gradient left)",
    }


def test_a_live_training_step_is_not():
    assert divergence_signs({"loss": 1.94, "grad_norm": 796.7, "learning_rate": 0.99}) == {}
    assert divergence_signs({"loss": 0.0, "grad_norm": 0.0}) == {}  # nothing left to learn
    assert divergence_signs({"train_runtime": 12.0, "epoch": 1.0}) == {}  # the final summary
    assert divergence_signs({"loss": "nan", "grad_norm": True}) == {}  # not numbers


def test_the_record_round_trips_and_reads_as_one_line(tmp_path):
    assert read_divergence(tmp_path) is None
    write_divergence(tmp_path, 4, 6, {"loss": "nan"})
    record = read_divergence(tmp_path)
    assert describe_divergence(record) == "training diverged at step 4 of 6 (loss nan)"
    (tmp_path / "divergence.json").write_text('{"step": ')  # torn: still a divergence
    assert describe_divergence(read_divergence(tmp_path)) == "training diverged"
