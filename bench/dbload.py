"""The raw database baseline: concurrent PyMySQL transactions, each one message row + one outbox row.

What the web's create does in MySQL, and nothing else: lock the chat's row and read its numbering
high-water mark, raise the mark, ``INSERT INTO messages`` and ``INSERT INTO outbox_events`` (a
``message.created`` payload of the same shape and size) in one READ COMMITTED transaction, then
COMMIT.  ``--connections`` transactions are in flight at once, spread over
``--processes`` processes (PyMySQL is pure Python: one process would measure the GIL, not the
database).  Each connection owns its chats, so numbers never collide; outbox rows get the status
``baseline``, which the relay ignores.

Run by the harness as ``python -m bench.dbload …``; prints one JSON line: commits, errors,
latency percentiles (ms) and the client's CPU seconds.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import threading
import time
from types import SimpleNamespace

from bench.services import mysql_connect
from bench.stats import percentile
from chatsys.domain import messages
from chatsys.domain.applications import ApplicationRef
from chatsys.domain.chats import ChatRef
from chatsys.models import utcnow
from chatsys.outbox.events import MESSAGE_CREATED

LOCK_CHAT = "SELECT last_message_number FROM chats WHERE id = %s AND deleted_at IS NULL FOR UPDATE"
RAISE_MARK = "UPDATE chats SET last_message_number = %s WHERE id = %s"
INSERT_MESSAGE = (
    "INSERT INTO messages (chat_id, number, body, version, counted, created_at, updated_at) "
    "VALUES (%s, %s, %s, 1, 1, %s, %s)"
)
INSERT_OUTBOX = (
    "INSERT INTO outbox_events (event_id, type, aggregate_key, payload, status, attempts, "
    "next_attempt_at, created_at) VALUES (%s, 'message.created', %s, %s, 'baseline', 0, %s, %s)"
)
BODY = "baseline message: the quick brown fox jumps over the lazy dog, number {n}"


def message_created(app_id, token, chat_id, chat_number, message_id, number, body, now) -> dict:
    """The ``message.created`` envelope the web writes, built by the service's own code."""
    chat = ChatRef(chat_id, chat_number, ApplicationRef(app_id, token))
    message = SimpleNamespace(id=message_id, number=number, body=body, version=1, created_at=now, updated_at=now)
    return messages.event(MESSAGE_CREATED, chat, message)


def connection_loop(url: str, chats: list[tuple[int, int, str, int]], start: int, deadline: float, out: dict) -> None:
    """One connection: transactions until ``deadline``; latencies (s) and errors into ``out``."""
    latencies: list[float] = out.setdefault("latencies", [])
    conn = None
    while conn is None and time.monotonic() < deadline:
        try:
            conn = connect(url)
        except Exception as exc:  # refused, too many connections…: count it, try again
            note_error(out, exc)
            time.sleep(0.2)
    if conn is None:
        return
    numbers = {chat[0]: start for chat in chats}
    i = 0
    while time.monotonic() < deadline:
        chat_id, app_id, token, chat_number = chats[i % len(chats)]
        i += 1
        number = numbers[chat_id]
        numbers[chat_id] += 1
        now = utcnow()
        body = BODY.format(n=number)
        t0 = time.perf_counter()
        try:
            with conn.cursor() as cur:
                cur.execute(LOCK_CHAT, (chat_id,))
                cur.execute(RAISE_MARK, (number, chat_id))
                cur.execute(INSERT_MESSAGE, (chat_id, number, body, now, now))
                payload = message_created(app_id, token, chat_id, chat_number, cur.lastrowid, number, body, now)
                cur.execute(
                    INSERT_OUTBOX,
                    (payload["event_id"], f"{token}:{chat_number}:{number}", json.dumps(payload), now, now),
                )
            conn.commit()
            latencies.append(time.perf_counter() - t0)
        except Exception as exc:  # a blip: count it, reconnect, go on
            note_error(out, exc)
            try:
                conn.close()
            except Exception:
                pass
            time.sleep(0.05)
            try:
                conn = connect(url)
            except Exception as exc2:
                note_error(out, exc2)
                time.sleep(0.5)
    conn.close()


def connect(url: str):
    conn = mysql_connect(url, autocommit=False)
    with conn.cursor() as cur:
        cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
    return conn


def note_error(out: dict, exc: Exception) -> None:
    out["errors"] = out.get("errors", 0) + 1
    out.setdefault("first_error", f"{exc.__class__.__name__}: {exc}"[:300])


def process_main(url: str, assignments: list[list], start: int, begin_at: float, duration: float, queue) -> None:
    """One process: a thread per connection; puts its totals on ``queue``."""
    outs = [dict() for _ in assignments]
    # Every process starts at the same wall-clock instant, so the measured window is shared.
    time.sleep(max(0.0, begin_at - time.time()))
    deadline = time.monotonic() + duration
    threads = [
        threading.Thread(target=connection_loop, args=(url, chats, start, deadline, out))
        for chats, out in zip(assignments, outs, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    queue.put(
        {
            "latencies": [x for o in outs for x in o.get("latencies", [])],
            "errors": sum(o.get("errors", 0) for o in outs),
            "first_error": next((o["first_error"] for o in outs if "first_error" in o), ""),
            "cpu_s": usage.ru_utime + usage.ru_stime,
        }
    )


def run(
    url: str, chats: list[tuple[int, int, str, int]], connections: int, processes: int, duration: float, start: int
) -> dict:
    """Run the baseline; returns the summary the harness records."""
    if len(chats) < connections:
        raise ValueError(f"need at least {connections} chats (one set per connection), got {len(chats)}")
    per_connection = [chats[i::connections] for i in range(connections)]
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    begin_at = time.time() + 1.0  # time for every process to connect first
    procs = []
    for p in range(processes):
        assignments = per_connection[p::processes]
        procs.append(ctx.Process(target=process_main, args=(url, assignments, start, begin_at, duration, queue)))
    for proc in procs:
        proc.start()
    results = [queue.get(timeout=duration + 120) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
    latencies = sorted(x for r in results for x in r["latencies"])
    commits = len(latencies)
    return {
        "label": "db",
        "duration_s": duration,
        "requests": commits,
        "throughput": commits / duration,
        "errors": {"db": sum(r["errors"] for r in results)},
        "error_total": sum(r["errors"] for r in results),
        "first_error": next((r["first_error"] for r in results if r["first_error"]), ""),
        "latency_ms": {
            **{f"p{q:g}": (percentile(latencies, q) or 0.0) * 1000 for q in (50, 75, 90, 95, 99, 99.9)},
            "max": (latencies[-1] * 1000) if latencies else 0.0,
            "mean": (sum(latencies) / commits * 1000) if commits else 0.0,
        },
        "cpu_s": sum(r["cpu_s"] for r in results),
        "cpu_cores": sum(r["cpu_s"] for r in results) / duration,
        "processes": processes,
        "connections": connections,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True, help="mysql+pymysql:// URL of the benchmark database")
    p.add_argument("--chats", required=True, help="JSON list of [chat_id, application_id, token, chat_number]")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--start", type=int, default=1, help="first message number in every chat")
    args = p.parse_args(argv)
    chats = [tuple(c) for c in json.loads(args.chats)]
    result = run(args.url, chats, args.connections, args.processes, args.duration, args.start)
    print("BENCH-JSON " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
