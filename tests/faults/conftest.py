"""Fault injection: each test in this folder injects one fault into the real components.

At the end of a session that ran any of them, one summary line:
"faults tried N, survived N, rows lost 0, versions wrongly registered 0". A fault is
tried when its test ran (an expected failure, a known gap, counts as tried and not
survived), survived when its test passed. Rows lost and versions wrongly registered are
what the tests measured and recorded (`record_property("rows_lost", n)`,
`record_property("versions_wrongly_registered", n)`) before asserting them zero.
"""

from __future__ import annotations

from pathlib import Path

import pytest

FAULTS_DIR = Path(__file__).parent
MEASURES = ("rows_lost", "versions_wrongly_registered")


def _is_fault(report: pytest.TestReport, rootpath: Path) -> bool:
    path = Path(rootpath, report.location[0]) if report.location else Path(report.fspath)
    return FAULTS_DIR in path.resolve().parents


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    outcomes: dict[str, str] = {}  # nodeid -> passed | failed | xfailed | skipped
    measured = dict.fromkeys(MEASURES, 0)
    rank = {"skipped": 0, "passed": 1, "xfailed": 2, "failed": 3}
    for category, reports in terminalreporter.stats.items():
        for report in reports:
            if not isinstance(report, pytest.TestReport):
                continue
            if not _is_fault(report, config.rootpath):
                continue
            outcome = {"error": "failed", "xpassed": "failed"}.get(category, category)
            if outcome not in rank:
                continue
            if outcome == "passed" and report.when != "call":
                continue  # a passing setup or teardown is not the test's result
            previous = outcomes.get(report.nodeid, "skipped")
            outcomes[report.nodeid] = max(previous, outcome, key=rank.__getitem__)
            for name, value in report.user_properties:
                if name in measured and report.when == "call":
                    measured[name] += int(value)
    tried = [node for node, outcome in outcomes.items() if outcome != "skipped"]
    if not tried:
        return
    survived = [node for node in tried if outcomes[node] == "passed"]
    terminalreporter.write_sep("=", "fault injection (tests/faults)")
    terminalreporter.write_line(
        f"faults tried {len(tried)}, survived {len(survived)}, "
        f"rows lost {measured['rows_lost']}, "
        f"versions wrongly registered {measured['versions_wrongly_registered']}"
    )
    gaps = sorted(node for node in tried if outcomes[node] == "xfailed")
    for node in gaps:
        terminalreporter.write_line(f"  known gap (xfail): {node}")
