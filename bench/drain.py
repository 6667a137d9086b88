"""W5 relay drain: N pending outbox rows, inserted directly, until the relay has published them all.

The rows are ``message.created`` events of the usual shape and size.  They are inserted with a
``next_attempt_at`` far in the future (invisible to the relay's claim query), then made due by one
UPDATE; the clock starts when that UPDATE commits, so the insert speed is not part of the figure.
The relay alone is running (web and consumers stopped): it publishes with confirms into the real
quorum queues, which the harness purges afterwards.  Progress is polled from MySQL twice a second
(an index-only count: the first version's COUNT with a LIKE took ~60 ms of MySQL per poll, a
quarter of a core stolen from the relay); the rate is also computed from the rows' own
``published_at`` (first to last publish), which no polling affects.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pymysql

from bench.dbload import message_created
from chatsys.models import utcnow

BODY = "Drain event body of a typical length: kaloren torvek sami dunbel ex."
# Placeholders only in VALUES, so that executemany sends multi-row INSERTs.
INSERT = (
    "INSERT INTO outbox_events (event_id, type, aggregate_key, payload, status, attempts, "
    "next_attempt_at, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
)


def insert_rows(conn: pymysql.Connection, tag: str, count: int, chat, chunk: int = 5000) -> float:
    """Insert ``count`` not-yet-due pending rows tagged ``bench-drain:<tag>:``; returns seconds."""
    t0 = time.monotonic()
    now = utcnow()
    later = now + timedelta(days=1)
    with conn.cursor() as cur:
        for first in range(0, count, chunk):
            rows = []
            for i in range(first, min(first + chunk, count)):
                number = 10_000_000 + i
                payload = message_created(
                    chat.application_id, chat.token, chat.chat_id, chat.number, number, number, BODY, now
                )
                rows.append(
                    (
                        payload["event_id"],
                        "message.created",
                        f"bench-drain:{tag}:{i}",
                        json.dumps(payload),
                        "pending",
                        0,
                        later,
                        now,
                    )
                )
            cur.executemany(INSERT, rows)
            conn.commit()
    return time.monotonic() - t0


def release(conn: pymysql.Connection, tag: str) -> float:
    """Make the rows due in one transaction; returns time.time() of the commit."""
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE outbox_events SET next_attempt_at = %s WHERE status = 'pending' AND aggregate_key LIKE %s",
            (utcnow() - timedelta(seconds=1), f"bench-drain:{tag}:%"),
        )
    conn.commit()
    return time.time()


def pending(conn: pymysql.Connection) -> int:
    """Pending rows: an index-only count (the relay's own index), cheap because the poll shares
    MySQL with the relay under test.  Only W5's rows are pending: web and consumers are stopped
    and the outbox was drained first."""
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM outbox_events WHERE status = 'pending'")
        return int(cur.fetchone()[0])


def outcome(conn: pymysql.Connection, tag: str) -> dict:
    """Status counts and the first/last publish instants of the tagged rows."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT status, COUNT(*), MIN(published_at), MAX(published_at) FROM outbox_events "
            "WHERE aggregate_key LIKE %s GROUP BY status",
            (f"bench-drain:{tag}:%",),
        )
        rows = cur.fetchall()
    result = {"status": {r[0]: int(r[1]) for r in rows}}
    published = next((r for r in rows if r[0] == "published"), None)
    if published and published[2] and published[3]:
        result["publish_span_s"] = (published[3] - published[2]).total_seconds()
    return result


def delete_rows(conn: pymysql.Connection, tag: str, chunk: int = 20000) -> None:
    with conn.cursor() as cur:
        while cur.execute(
            "DELETE FROM outbox_events WHERE aggregate_key LIKE %s LIMIT %s", (f"bench-drain:{tag}:%", chunk)
        ):
            conn.commit()
    conn.commit()


def drain(conn: pymysql.Connection, tag: str, count: int, chat, timeout: float, poll: float = 0.5) -> dict:
    """One W5 run; returns events/s (wall clock and publish span), progress series, outcome."""
    insert_s = insert_rows(conn, tag, count, chat)
    started = release(conn, tag)
    series = [[0.0, count]]
    left = count
    while left > 0 and time.time() - started < timeout:
        time.sleep(poll)
        left = pending(conn)
        series.append([round(time.time() - started, 2), left])
    finished = time.time()
    result = outcome(conn, tag)
    published = result["status"].get("published", 0)
    wall = finished - started
    span = result.get("publish_span_s")
    return {
        "rows": count,
        "insert_s": round(insert_s, 2),
        "wall_s": round(wall, 2),
        "complete": left == 0,
        "published": published,
        "events_per_s": published / wall if wall else 0.0,
        # Steady-state rate: from the first publish to the last (excludes the poll granularity).
        "events_per_s_span": (published / span) if span else None,
        "status": result["status"],
        "series": series,
    }
