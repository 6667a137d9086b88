"""The fault-injection scenarios' table at the end of a run.

A pytest plugin of the root conftest: with xdist the scenarios run in workers, and only the
controller prints a summary.  Each scenario's report travels with its test report as a user
property, which xdist carries to the controller.
"""

from __future__ import annotations

import json

import pytest

PROPERTY = "fault_scenario"
_LINES: list[str] = []


def record(node: pytest.Item, line: str) -> None:
    """Attach a scenario's report (``Report.line()``) to the test's report."""
    node.user_properties.append((PROPERTY, line))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "teardown":
        _LINES.extend(line for name, line in report.user_properties if name == PROPERTY)


def pytest_terminal_summary(terminalreporter) -> None:
    if not _LINES:
        return
    write = terminalreporter.write_line
    terminalreporter.section("fault-injection scenarios")
    write(f"{'scenario':44} {'requests':>8} {'acked':>6} {'failed':>7} {'wire dup':>8} {'settle s':>8}  invariants")
    for r in map(json.loads, _LINES):
        held = sum(r["invariants"].values())
        write(
            f"{r['scenario']:44} {r['requests']:8d} {r['acknowledged']:6d} {sum(r['failed'].values()):7d} "
            f"{r['duplicates_on_wire']:8d} {r['settle_seconds']:8.1f}  {held}/{len(r['invariants'])} held"
        )
        write(f"    faults: {'; '.join(r['faults']) or '-'}")
        if r["measured"]:
            write(f"    measured: {json.dumps(r['measured'])}")
