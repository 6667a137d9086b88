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

What changes for whoever reads the log or configures it:

- a line appears up to one interval after its request ended; it carries the time the request
  ended and its request thread's name and id, but ``%(pathname)s``, ``%(lineno)d`` and
  ``%(funcName)s`` name this module, and logger and handler filters run on the writer thread
  (a filter that reads thread-local or context state sees the writer's);
- a worker writes what is pending before it exits (chatsys-web calls :func:`flush`; other
  runners, at a normal interpreter exit); a process killed outright loses up to one interval;
- a path is cut at :data:`MAX_PATH` characters in the line;
- if the log stream blocks, at most :data:`MAX_PENDING` lines wait per process (with the batch in
  hand, twice that: about 25 MB at the longest paths, well under 1 MB for this API's paths);
  further lines are dropped, counted in ``chatsys_access_log_dropped_total`` and reported in one
  warning once the stream moves again.  Before, a blocked stream blocked every request thread.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections import deque
from urllib.parse import quote

from prometheus_client import Counter

INTERVAL = 0.2
MAX_PENDING = 10_000
MAX_PATH = 1024  # characters of a path kept in the line
FORMAT = "%s %s route=%s status=%d ms=%.1f"

logger = logging.getLogger("chatsys.access")
DROPPED = Counter(
    "chatsys_access_log_dropped_total", "Access-log lines dropped because the log stream was not keeping up."
)

_pending: deque = deque()
_dropped = 0
_writer: threading.Thread | None = None  # a forked child starts its own (_after_fork_in_child)
_start_lock = threading.Lock()
_flush_lock = threading.Lock()


def configure(interval: float) -> None:
    """Seconds between writes (``chatsys.access_log_interval``), from the app's settings."""
    global INTERVAL
    INTERVAL = interval


def path_of(request) -> str:
    """The request's path for a log line.  One that is not UTF-8 once percent-decoded (which
    ``request.path`` cannot decode) is shown percent-encoded, byte by byte."""
    try:
        return request.path
    except UnicodeDecodeError:
        environ = request.environ
        raw = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        return quote(raw.encode("latin-1", "replace"), safe="/")


def record(method: str, path: str, route: str, status: int, ms: float) -> None:
    """Queue the access-log line of a request that has just been answered."""
    global _dropped
    if not logger.isEnabledFor(logging.INFO):
        return
    if len(_pending) >= MAX_PENDING:
        _dropped += 1  # a lost increment under a race only undercounts lines already lost
        return
    if len(path) > MAX_PATH:  # waitress admits request lines of up to 256 KB
        path = path[:MAX_PATH] + "..."
    thread = threading.current_thread()
    _pending.append((time.time(), thread.name, thread.ident, (method, path, route, status, ms)))
    if _writer is None or not _writer.is_alive():
        _start_writer()


def _start_writer() -> None:
    global _writer
    with _start_lock:
        if _writer is not None and _writer.is_alive():
            return
        thread = threading.Thread(target=_write_forever, name="access-log", daemon=True)
        _writer = thread
        thread.start()


def _write_forever() -> None:
    while True:
        time.sleep(INTERVAL)
        _write_round()


def _write_round() -> None:
    """One round of the writer thread: whatever a handler or filter raises, the thread goes on."""
    try:
        flush()
    except Exception:
        try:
            logging.getLogger(__name__).exception("writing a batch of access-log lines failed")
        except Exception:
            pass


def flush(timeout: float | None = None) -> None:
    """Write every pending line now (the writer thread's round, and a worker's exit).

    With ``timeout``, the write happens on a thread of its own and this returns after at most
    that many seconds, written or not (the exit path: a blocked log stream must not keep a
    stopping worker alive); exceptions are then that thread's and reported by its excepthook.
    """
    if timeout is not None:
        writer = threading.Thread(target=flush, name="access-log-exit", daemon=True)
        writer.start()
        writer.join(timeout)
        return
    global _dropped
    with _flush_lock:
        entries = [_pending.popleft() for _ in range(len(_pending))]
        dropped, _dropped = _dropped, 0
        records = [_make_record(*entry) for entry in entries]
        if dropped:
            DROPPED.inc(dropped)
            records.append(
                logger.makeRecord(
                    logger.name,
                    logging.WARNING,
                    __file__,
                    0,
                    "%d access-log lines dropped: the log stream was not keeping up",
                    (dropped,),
                    None,
                )
            )
        records = [r for r in records if logger.filter(r)]
        if not records or logger.disabled:
            return
        handlers = _handlers()
        if not handlers and logging.lastResort is not None:  # as Logger.callHandlers does
            handlers = [logging.lastResort]
        for handler in handlers:
            _emit(handler, records)


def _make_record(created: float, thread_name: str, thread_id: int | None, args: tuple) -> logging.LogRecord:
    rec = logger.makeRecord(logger.name, logging.INFO, __file__, 0, FORMAT, args, None)
    rec.relativeCreated += (created - rec.created) * 1000
    rec.created = created
    rec.msecs = int((created - int(created)) * 1000) + 0.0
    rec.threadName = thread_name
    rec.thread = thread_id
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
    """The records ``handler`` takes, in one write where it is a plain ``StreamHandler``.

    A subclass that overrides ``emit`` (a rotating file, a watched file, pytest's capture) gets
    them one by one through ``handle``, so its own logic runs for each.
    """
    try:
        mine = [r for r in records if r.levelno >= handler.level and handler.filter(r)]
    except Exception:
        handler.handleError(records[0])
        return
    if not mine:
        return
    if type(handler).emit is not logging.StreamHandler.emit:
        for r in mine:
            handler.handle(r)
        return
    handler.acquire()
    try:
        handler.stream.write("".join(handler.format(r) + handler.terminator for r in mine))
        handler.flush()
    except Exception:
        handler.handleError(mine[0])
    finally:
        handler.release()


def _after_fork_in_child() -> None:
    """A child forked after lines were queued: the parent writes those, and its locks may have
    been held by a thread that the child does not have."""
    global _dropped, _writer, _start_lock, _flush_lock
    _pending.clear()
    _dropped = 0
    _writer = None
    _start_lock = threading.Lock()
    _flush_lock = threading.Lock()


atexit.register(flush)
os.register_at_fork(after_in_child=_after_fork_in_child)
