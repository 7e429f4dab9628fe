"""rung's terminal log: a failed step prints its cause in a line, not a stack trace."""

import dagster as dg

from pipelines.defs.console import rung_console


@dg.op
def says_hello(context: dg.OpExecutionContext) -> int:
    context.log.info("hello\nsecond line")
    return 1


@dg.op
def fails(value: int) -> None:
    raise dg.Failure(f"recipe x: {value} of 1 rows are bad; see /tmp/quarantine.jsonl")


@dg.job(logger_defs={"console": rung_console})
def broken():
    fails(says_hello())


def test_a_failed_step_prints_its_cause_in_one_line_without_the_trace(capfd):
    # as `rung run` launches (pipelines/launch.py): the console logger configured
    config = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
    result = broken.execute_in_process(run_config=config, raise_on_error=False)
    assert not result.success
    err = capfd.readouterr().err
    lines = err.splitlines()
    assert any(line.endswith("INFO    says_hello: hello") for line in lines), err
    assert "second line" not in err  # one line per event
    assert any(
        " ERROR   fails: recipe x: 1 of 1 rows are bad; see /tmp/quarantine.jsonl" in line
        for line in lines
    ), err
    assert "Stack Trace" not in err and 'File "' not in err and "Failure:" not in err
    assert all(len(line) < 300 for line in lines)
    # the event log keeps the whole error, trace included
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    assert failure.step_failure_data.error.stack
