"""One access-log line per request, written off the request threads in batches.

A request thread only appends a tuple to a deque.  A daemon thread per process, every
``chatsys.access_log_interval`` seconds (0.2), turns the pending entries into ``chatsys.access``
log records and hands them to the handlers the logging configuration gives that logger (levels,
filters and formatters apply as to any record), writing a stream handler's share of a batch
in one call.

Why not ``logger.info()`` in the request thread: with eight waitress threads per worker, a line
per request written there cost the read mix about a tenth of its throughput (paired runs in
docs/decisions.md), far more than the call's 11 µs on one thread.  The likely cause is the
handler's lock held across an unbuffered ``write(2)`` that lets go of the GIL, so threads queue
for both; written from one thread in batches, most of that cost is gone.

What changes for whoever reads the log: a line appears up to one interval after its request
ended, with the time the request ended and the name of its thread, not the writer's.  A worker
writes what is pending before it exits (chatsys-web calls :func:`flush`; other runners, at exit);
a process killed outright loses at most one interval's lines.  If the log stream blocks, at most
:data:`MAX_PENDING` lines wait per process; further lines are dropped, counted in
``chatsys_access_log_dropped_total`` and reported in one warning once the stream moves again.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections import deque

from prometheus_client import Counter

INTERVAL = 0.2
MAX_PENDING = 10_000
FORMAT = "%s %s route=%s status=%d ms=%.1f"

logger = logging.getLogger("chatsys.access")
DROPPED = Counter(
    "chatsys_access_log_dropped_total", "Access-log lines dropped because the log stream was not keeping up."
)

_pending: deque = deque()
_dropped = 0
_writer: tuple[int, threading.Thread] | None = None  # (pid, thread): a forked child starts its own
_start_lock = threading.Lock()
_flush_lock = threading.Lock()


def configure(interval: float) -> None:
    """Seconds between writes (``chatsys.access_log_interval``), from the app's settings."""
    global INTERVAL
    INTERVAL = interval


def record(method: str, path: str, route: str, status: int, ms: float) -> None:
    """Queue the access-log line of a request that has just been answered."""
    global _dropped
    if not logger.isEnabledFor(logging.INFO):
        return
    if len(_pending) >= MAX_PENDING:
        _dropped += 1  # a lost increment under a race only undercounts lines already lost
        return
    _pending.append((time.time(), threading.current_thread().name, (method, path, route, status, ms)))
    if _writer is None or _writer[0] != os.getpid():
        _start_writer()


def _start_writer() -> None:
    global _writer
    with _start_lock:
        if _writer is not None and _writer[0] == os.getpid():
            return
        thread = threading.Thread(target=_write_forever, name="access-log", daemon=True)
        _writer = (os.getpid(), thread)
        thread.start()


def _write_forever() -> None:
    while True:
        time.sleep(INTERVAL)
        flush()


def flush() -> None:
    """Write every pending line now (the writer thread's round; also at a worker's exit)."""
    global _dropped
    with _flush_lock:
        entries = [_pending.popleft() for _ in range(len(_pending))]
        dropped, _dropped = _dropped, 0
        records = [_make_record(*entry) for entry in entries]
        if dropped:
            DROPPED.inc(dropped)
            warning = logger.makeRecord(
                logger.name,
                logging.WARNING,
                __file__,
                0,
                "%d access-log lines dropped: the log stream was not keeping up",
                (dropped,),
                None,
            )
            records.append(warning)
        records = [r for r in records if logger.filter(r)]
        if records:
            for handler in _handlers():
                _emit(handler, records)


def _make_record(created: float, thread_name: str, args: tuple) -> logging.LogRecord:
    rec = logger.makeRecord(logger.name, logging.INFO, __file__, 0, FORMAT, args, None)
    rec.relativeCreated += (created - rec.created) * 1000
    rec.created = created
    rec.msecs = int((created - int(created)) * 1000) + 0.0
    rec.threadName = thread_name
    return rec


def _handlers() -> list[logging.Handler]:
    """The handlers a record of ``chatsys.access`` reaches (as ``Logger.callHandlers`` walks them)."""
    found: list[logging.Handler] = []
    current: logging.Logger | None = logger
    while current is not None:
        found += current.handlers
        if not current.propagate:
            break
        current = current.parent
    return found


def _emit(handler: logging.Handler, records: list[logging.LogRecord]) -> None:
    mine = [r for r in records if r.levelno >= handler.level and handler.filter(r)]
    if not mine:
        return
    stream = getattr(handler, "stream", None) if isinstance(handler, logging.StreamHandler) else None
    if stream is None:  # not a stream, or a FileHandler that opens its file on first use
        for r in mine:
            handler.handle(r)
        return
    handler.acquire()
    try:
        stream.write("".join(handler.format(r) + handler.terminator for r in mine))
        handler.flush()
    except Exception:
        handler.handleError(mine[0])
    finally:
        handler.release()


atexit.register(flush)
