"""Fixtures of the fault-injection suite: a whole system per scenario, and the scenario report.

Every scenario appends one JSON line to the report (``CHATSYS_FAULT_REPORT``, by default a file
in the run's, or the xdist worker's, temporary directory) and a row to the table printed at the
end of the run (``summary.py``).
"""

from __future__ import annotations

import os
import uuid

import pytest

from testkit.processes import Processes, write_ini
from tests.conftest import amqp_channel, process_overrides
from tests.faults.harness import Report, System, WireTap
from tests.faults.summary import record
from tests.support.db import TESTING_INI
from tests.support.net import free_port


@pytest.fixture
def scenario(request, settings, clean, broker, es_double, engine, tmp_path, tmp_path_factory):
    """Everything one scenario needs; the system's processes are stopped afterwards."""
    alias = f"chatsys-faults-{uuid.uuid4().hex[:8]}"
    port = free_port()
    overrides = process_overrides(
        settings,
        **{
            "search.backend": "elasticsearch",
            "elasticsearch.url": es_double.url,
            "elasticsearch.index": alias,
            "worker.retry_pause": "0.05",
            "worker.max_rounds": "2",
            "relay.backoff_base": "0.05",
            # Small purge batches: a purge of a few hundred messages takes several, so a scenario
            # can kill the purger between two of them.
            "worker.purge_batch": "50",
            "relay.backoff_max": "0.5",
        },
    )
    ini = write_ini(tmp_path / "faults.ini", TESTING_INI, overrides, listen=f"127.0.0.1:{port}")
    procs = Processes(ini, tmp_path)
    name = request.node.name.removeprefix("test_")
    report = Report(name)

    def channel():
        return amqp_channel(settings)

    class Scenario:
        pass

    s = Scenario()
    s.settings, s.engine, s.topology, s.double, s.alias = settings, engine, broker, es_double, alias
    s.ini, s.procs, s.report, s.channel = ini, procs, report, channel
    s.system = System(procs, ini, f"http://127.0.0.1:{port}")
    s.tap = WireTap(channel, broker)
    yield s
    procs.stop_all()
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        print(procs.dump())
    record(request.node, report.line())  # the table at the end of the run (summary.py)
    path = os.environ.get("CHATSYS_FAULT_REPORT") or str(tmp_path_factory.getbasetemp() / "faults.jsonl")
    with open(path, "a") as handle:
        handle.write(report.line() + "\n")
