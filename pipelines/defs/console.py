"""rung's terminal log: one line per Dagster event, a failure as its cause.

Dagster's default console logger prints every failed step with the framework's stack
trace (20 lines of executor frames around one line of cause) and every event with the
job name and run id. This one prints `time level step: message`, first line only, and a
step failure as the first lines of its error message, without the trace; the whole
event, trace included, stays in the Dagster event log (the UI's run page, `rung ui`).
"""

from __future__ import annotations

import logging
import re
import sys

import dagster as dg

# "dagster._core.definitions.events.Failure: recipe x: ..." -> "recipe x: ..."
_ERROR_CLASS = re.compile(r"^[\w.]+(Error|Exception|Failure)\w*: ")


def cause_of(event: dg.DagsterEvent) -> str | None:
    """A failed step's error message, without the exception's class path."""
    if not event.is_step_failure or event.step_failure_data is None:
        return None
    error = event.step_failure_data.error
    while error is not None and error.cause is not None and not error.message.strip():
        error = error.cause
    return _ERROR_CLASS.sub("", error.message.strip()) if error is not None else None


class OneLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        meta = getattr(record, "dagster_meta", None)
        if meta is None:
            return super().format(record)
        event = meta.get("dagster_event")
        cause = cause_of(event) if event is not None else None
        # a failure keeps a few lines (a stage error may end with a log tail), others one
        lines = (cause or meta["orig_message"]).strip().splitlines()[: 4 if cause else 1]
        where = meta.get("step_key") or meta.get("job_name") or "rung"
        stamp = self.formatTime(record, "%H:%M:%S")
        return f"{stamp} {record.levelname:<7} {where}: " + "\n    ".join(lines or [""])


@dg.logger(
    config_schema={
        "log_level": dg.Field(str, is_required=False, default_value="INFO"),
        "name": dg.Field(str, is_required=False, default_value="rung"),
    },
    description="One line per event on stderr; a failed step shows its cause, not a trace.",
)
def rung_console(init_context: dg.InitLoggerContext) -> logging.Logger:
    config = init_context.logger_config
    logger = logging.Logger(config["name"], level=config["log_level"].upper())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLineFormatter())
    logger.addHandler(handler)
    return logger
