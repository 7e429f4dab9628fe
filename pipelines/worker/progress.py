"""Progress lines with an ETA for long loops, e.g.

    answering: 120/480 requests (25%), 34 s elapsed, ETA 1 min 42 s

Standard library only: the trainer environment's workers (generation) and the
orchestrator (the HTTP teacher) both import it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable


def format_duration(seconds: float) -> str:
    """'7 s', '1 min 42 s', '2 h 05 min': whole seconds, the two largest units."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


def progress_line(
    done: int, total: int, elapsed_s: float, *, what: str = "answering", unit: str = "requests"
) -> str:
    """One line: done/total, percent, time elapsed and the estimated time left (the
    average pace so far, extrapolated; unknown before anything is done)."""
    percent = math.floor(100 * done / total) if total else 100
    line = f"{what}: {done}/{total} {unit} ({percent}%), {format_duration(elapsed_s)} elapsed"
    if done >= total:
        return line + ", done"
    if done <= 0:
        return line + ", ETA unknown"
    return line + f", ETA {format_duration(elapsed_s / done * (total - done))}"


class ProgressTicker:
    """Counts finished items and reports a `progress_line` about every `every` (a fraction)
    of `total`: when the count crosses into a new step, and once at the end. Works with
    uneven increments (a batch at a time): several steps crossed at once give one line."""

    def __init__(
        self,
        total: int,
        report: Callable[[str], None],
        *,
        every: float = 0.1,
        what: str = "answering",
        unit: str = "requests",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < every <= 1:
            raise ValueError(f"every must be a fraction in (0, 1], got {every}")
        self.total, self.done = total, 0
        self._report, self._what, self._unit, self._clock = report, what, unit, clock
        self._steps = max(1, math.floor(1 / every + 1e-9))
        self._reported_step = 0
        self._start = clock()

    def _step(self) -> int:
        return self._steps if self.done >= self.total else self.done * self._steps // self.total

    def advance(self, count: int = 1) -> str | None:
        """Add `count` finished items; returns the line when one was reported."""
        return self.update(self.done + count)

    def update(self, done: int) -> str | None:
        """Set the number of finished items; returns the line when one was reported."""
        if self.total <= 0 or done <= self.done:
            return None
        self.done = min(self.total, done)
        step = self._step()
        if step <= self._reported_step:
            return None
        self._reported_step = step
        line = progress_line(
            self.done, self.total, self._clock() - self._start, what=self._what, unit=self._unit
        )
        self._report(line)
        return line
