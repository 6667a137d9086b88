"""Access-log lines are queued by the request threads and written in batches (chatsys.accesslog):
through the handlers, levels and formats the logging configuration gives ``chatsys.access``,
with each request's own time and thread, and bounded when the stream does not keep up."""

from __future__ import annotations

import io
import logging
import os
import threading
import time
import uuid
from logging.handlers import RotatingFileHandler
from types import SimpleNamespace

import pytest
from prometheus_client import REGISTRY

from chatsys import accesslog
from tests.support.wait import wait_for


class Capture(logging.StreamHandler):
    """A stream handler on a StringIO, as the ini's console handler is on stderr."""

    def __init__(self, fmt: str, level: int = logging.NOTSET):
        super().__init__(io.StringIO())
        self.setFormatter(logging.Formatter(fmt))
        self.setLevel(level)
        self.writes = 0
        write = self.stream.write

        def counted(text: str) -> int:
            self.writes += 1
            return write(text)

        self.stream.write = counted

    def lines(self, marker: str) -> list[str]:
        return [line for line in self.stream.getvalue().splitlines() if marker in line]


@pytest.fixture
def handlers():
    """Handlers on chatsys.access alone (no propagation), at INFO, for one test."""
    added: list[logging.Handler] = []
    saved = accesslog.logger.level, accesslog.logger.propagate
    accesslog.logger.setLevel(logging.INFO)
    accesslog.logger.propagate = False

    def add(handler: logging.Handler) -> logging.Handler:
        accesslog.logger.addHandler(handler)
        added.append(handler)
        return handler

    yield add
    accesslog.flush()
    for handler in added:
        accesslog.logger.removeHandler(handler)
    accesslog.logger.setLevel(saved[0])
    accesslog.logger.propagate = saved[1]


def test_lines_carry_their_request_thread_and_time_and_come_out_in_one_write(handlers, monkeypatch):
    capture = handlers(Capture("%(asctime)s %(levelname)s [%(name)s][%(threadName)s] %(message)s"))
    marker = uuid.uuid4().hex
    moments = iter([1_700_000_000.25, 1_700_000_001.5, 1_700_000_002.75])
    monkeypatch.setattr(accesslog, "time", SimpleNamespace(time=lambda: next(moments), sleep=time.sleep))
    threads = [
        threading.Thread(
            target=accesslog.record, args=("GET", f"/{marker}/{i}", "messages.item", 200, 1.25), name=f"waitress-{i}"
        )
        for i in range(3)
    ]
    with accesslog._flush_lock:  # the writer thread waits: all three go out in the next batch
        for thread in threads:  # one after the other: the times above are taken in this order
            thread.start()
            thread.join()
        capture.writes = 0
    accesslog.flush()

    lines = capture.lines(marker)
    expected_times = [
        logging.Formatter().formatTime(logging.makeLogRecord({"created": t, "msecs": ms}))
        for t, ms in ((1_700_000_000.25, 250), (1_700_000_001.5, 500), (1_700_000_002.75, 750))
    ]
    assert lines == [
        f"{expected_times[i]} INFO [chatsys.access][waitress-{i}] GET /{marker}/{i} route=messages.item "
        "status=200 ms=1.2"
        for i in range(3)
    ]
    assert capture.writes == 1


def test_nothing_is_queued_when_the_configuration_turns_the_access_log_off(handlers):
    capture = handlers(Capture("%(message)s"))
    accesslog.logger.setLevel(logging.WARNING)
    marker = uuid.uuid4().hex
    accesslog.record("GET", f"/{marker}", "unmatched", 404, 0.5)
    assert not any(marker in entry[2][1] for entry in list(accesslog._pending))
    accesslog.flush()
    assert capture.lines(marker) == []


def test_a_handlers_own_level_still_applies(handlers):
    everything = handlers(Capture("%(levelname)s %(message)s"))
    warnings_only = handlers(Capture("%(levelname)s %(message)s", level=logging.WARNING))
    marker = uuid.uuid4().hex
    accesslog.record("POST", f"/{marker}", "messages.collection", 201, 3.0)
    accesslog.flush()
    assert everything.lines(marker) == [f"INFO POST /{marker} route=messages.collection status=201 ms=3.0"]
    assert warnings_only.lines(marker) == []


def test_a_stream_that_does_not_keep_up_drops_lines_past_the_bound_and_says_how_many(handlers, monkeypatch):
    capture = handlers(Capture("%(levelname)s %(message)s"))
    accesslog.flush()  # whatever earlier tests left
    monkeypatch.setattr(accesslog, "MAX_PENDING", 2)
    before = REGISTRY.get_sample_value("chatsys_access_log_dropped_total") or 0.0
    marker = uuid.uuid4().hex
    with accesslog._flush_lock:  # the writer is stuck, as on a blocked stderr
        for i in range(5):
            accesslog.record("GET", f"/{marker}/{i}", "unmatched", 404, 0.1)
    accesslog.flush()

    assert capture.lines(marker) == [f"INFO GET /{marker}/{i} route=unmatched status=404 ms=0.1" for i in range(2)]
    assert "WARNING 3 access-log lines dropped: the log stream was not keeping up" in capture.stream.getvalue()
    assert REGISTRY.get_sample_value("chatsys_access_log_dropped_total") == before + 3


def test_a_filter_that_raises_costs_one_batch_and_the_writer_goes_on(handlers, monkeypatch):
    capture = handlers(Capture("%(message)s"))
    marker = uuid.uuid4().hex

    class Broken(logging.Filter):
        def filter(self, record):
            raise RuntimeError("a broken filter")

    broken = Broken()
    accesslog.logger.addFilter(broken)
    try:
        accesslog.record("GET", f"/{marker}/lost", "unmatched", 404, 0.1)
        accesslog._write_round()  # the writer thread's round: it must not raise
    finally:
        accesslog.logger.removeFilter(broken)
    accesslog.record("GET", f"/{marker}/kept", "unmatched", 404, 0.1)
    accesslog.flush()
    assert capture.lines(marker) == [f"GET /{marker}/kept route=unmatched status=404 ms=0.1"]


def test_a_writer_thread_that_died_is_started_again(handlers, monkeypatch):
    capture = handlers(Capture("%(message)s"))
    dead = threading.Thread(target=lambda: None)
    dead.start()
    dead.join()
    monkeypatch.setattr(accesslog, "_writer", dead)
    marker = uuid.uuid4().hex
    accesslog.record("GET", f"/{marker}", "unmatched", 404, 0.1)
    assert accesslog._writer is not dead and accesslog._writer.is_alive()
    wait_for(lambda: capture.lines(marker), 10, message="the new writer wrote the line")


def test_a_rotating_file_still_rotates(handlers, tmp_path):
    path = tmp_path / "access.log"
    rotating = RotatingFileHandler(path, maxBytes=200, backupCount=3)
    rotating.setFormatter(logging.Formatter("%(message)s"))
    handlers(rotating)
    marker = uuid.uuid4().hex
    for i in range(6):
        accesslog.record("GET", f"/{marker}/{i}", "unmatched", 404, 0.1)
    accesslog.flush()
    rotating.close()
    files = sorted(tmp_path.iterdir())
    assert len(files) > 1 and all(f.stat().st_size <= 200 for f in files)
    written = [line for f in files for line in f.read_text().splitlines() if marker in line]
    assert len(written) == 6


def test_a_long_path_is_cut_in_the_line(handlers):
    capture = handlers(Capture("%(message)s"))
    marker = uuid.uuid4().hex
    accesslog.record("GET", f"/{marker}" + "x" * 5000, "unmatched", 404, 0.1)
    accesslog.flush()
    [line] = capture.lines(marker)
    assert f"GET /{marker}" in line and "x" * 900 in line and "x" * 1100 not in line and "...route" not in line
    assert line.endswith("... route=unmatched status=404 ms=0.1")


def test_the_exit_flush_does_not_wait_for_a_stuck_writer(handlers):
    capture = handlers(Capture("%(message)s"))
    marker = uuid.uuid4().hex
    accesslog.record("GET", f"/{marker}", "unmatched", 404, 0.1)
    with accesslog._flush_lock:  # the writer is stuck in a write to a blocked stream
        started = time.monotonic()
        accesslog.flush(timeout=0.2)
        assert time.monotonic() - started < 5
        assert capture.lines(marker) == []
    wait_for(lambda: capture.lines(marker), 10, message="written once the stream moved")


def test_a_process_forked_while_the_writer_holds_its_lock_starts_clean(handlers):
    capture = handlers(Capture("%(message)s"))
    marker = uuid.uuid4().hex
    accesslog.record("GET", f"/{marker}/parent", "unmatched", 404, 0.1)
    with accesslog._flush_lock:  # the parent's writer is mid-batch as the fork happens
        pid = os.fork()
        if pid == 0:  # the child: nothing of the parent's to write, and a lock it can take
            code = 3
            try:
                clean = not accesslog._pending and accesslog._flush_lock.acquire(timeout=5)
                code = 0 if clean else 1
            finally:
                os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    accesslog.flush()
    assert capture.lines(marker) == [f"GET /{marker}/parent route=unmatched status=404 ms=0.1"]  # once
