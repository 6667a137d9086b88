"""The purge of published outbox rows at scale (chatsys.outbox.purge, issue 27): a backlog of
50,000 rows past a short retention goes while creates run beside it and the relay holds claims
on pending rows; the pending rows and the creates are untouched."""

from __future__ import annotations

import threading
import time
import uuid

from sqlalchemy import text

from chatsys.outbox.purge import purge_events
from tests.support.api import create_application, create_chat, messages_url
from tests.support.pipeline import outbox_status
from tests.support.wait import wait_for

INSERT = text(
    "INSERT INTO outbox_events (event_id, type, aggregate_key, payload, status, attempts, next_attempt_at, "
    "created_at, published_at) VALUES (:event_id, :type, :key, :payload, :status, :attempts, :at, :at, :published)"
)
PAYLOAD = '{"type": "message.created", "data": {"body": "' + "x" * 300 + '"}}'


def backlog(engine, count: int, status: str, age_seconds: int, first: int = 0) -> None:
    """``count`` rows at once, in multi-row INSERTs (placeholders only in VALUES)."""
    with engine.begin() as conn:
        at = conn.execute(text("SELECT UTC_TIMESTAMP(6) - INTERVAL :s SECOND"), {"s": age_seconds}).scalar_one()
        for start in range(first, first + count, 5000):
            rows = [
                {
                    "event_id": f"{status}-{i:08d}",
                    "type": "message.created",
                    "key": "bulk",
                    "payload": PAYLOAD,
                    "status": status,
                    "attempts": 0,
                    "at": at,
                    "published": at if status == "published" else None,
                }
                for i in range(start, min(start + 5000, first + count))
            ]
            conn.execute(INSERT, rows)


def ids_of(engine, sql: str) -> list:
    with engine.connect() as conn:
        return conn.execute(text(sql)).scalars().all()


def test_a_large_backlog_is_purged_beside_creates_without_touching_claimed_rows(
    testapp, procs, engine, settings, tmp_path
):
    from testkit.processes import write_ini
    from tests.conftest import process_overrides
    from tests.support.db import TESTING_INI

    total = 50_000
    backlog(engine, total, "published", age_seconds=3600)
    # Rows the relay would claim: pending (not yet due, so the test's relay leaves them alone) and
    # parked; one of them held by an open claim, as a relay's batch in flight holds its rows.
    backlog(engine, 500, "pending", age_seconds=-3600)
    backlog(engine, 500, "parked", age_seconds=-3600)
    claim = engine.connect()
    claimed = (
        claim.execute(
            text(
                "SELECT id FROM outbox_events WHERE status = 'pending' ORDER BY next_attempt_at, id "
                "LIMIT 200 FOR UPDATE SKIP LOCKED"
            )
        )
        .scalars()
        .all()
    )
    assert len(claimed) == 200
    token = create_application(testapp, "purge")["app_token"]
    create_chat(testapp, token)
    statuses: list[int] = []
    latencies: list[float] = []
    stop = threading.Event()

    def creates() -> None:
        while not stop.is_set():
            started = time.monotonic()
            res = testapp.post_json(messages_url(token, 1), {"body": f"beside the purge {uuid.uuid4()}"}, status="*")
            latencies.append(time.monotonic() - started)
            statuses.append(res.status_int)

    overrides = {"relay.retention": "600", "relay.purge_interval": "0.2", "relay.purge_batch": "1000"}
    writer = threading.Thread(target=creates)
    writer.start()
    try:
        wait_for(lambda: len(statuses) >= 20, message="creates running")
        started = time.monotonic()
        procs.relay(ini=write_ini(tmp_path / "purge.ini", TESTING_INI, process_overrides(settings, **overrides)))
        wait_for(
            lambda: ids_of(engine, "SELECT COUNT(*) FROM outbox_events WHERE event_id LIKE 'published-%'") == [0],
            120,
            interval=0.2,
            message="the backlog purged",
        )
        took = time.monotonic() - started
        during = len(statuses)
        wait_for(lambda: len(statuses) >= during + 20, message="creates after the purge")
    finally:
        stop.set()
        writer.join(30)
        claim.close()
    assert ids_of(engine, "SELECT COUNT(*) FROM outbox_events WHERE event_id LIKE 'published-%'") == [0]
    # The rows the relay claims were neither deleted nor waited for (the claim was held throughout).
    bulk_claimable = (
        "SELECT COUNT(*) FROM outbox_events WHERE aggregate_key = 'bulk' AND status IN ('pending', 'parked')"
    )
    assert ids_of(engine, bulk_claimable) == [1000]
    # Every create succeeded, and its row and its event are there (younger than the retention).
    assert set(statuses) == {201}
    assert ids_of(engine, "SELECT COUNT(*) FROM messages") == [len(statuses)]
    creates_events = ids_of(
        engine, "SELECT COUNT(*) FROM outbox_events WHERE type = 'message.created' AND aggregate_key <> 'bulk'"
    )
    assert creates_events == [len(statuses)]
    # The purge's pace is the benchmark's to measure (python -m bench --bigchat: its rows/s beside
    # creates on a quiet machine); the deadline above only says that it finishes.  With two test
    # workers and other processes sharing two cores this ran at 730 rows/s.
    print(
        f"purged {total} rows in {took:.1f}s ({total / took:.0f}/s) beside {len(statuses)} creates, "
        f"max {max(latencies):.3f}s"
    )


def test_the_purge_takes_published_rows_only_and_skips_locked_ones(engine, clean):
    backlog(engine, 30, "published", age_seconds=3600)
    backlog(engine, 10, "pending", age_seconds=3600, first=100)
    backlog(engine, 10, "parked", age_seconds=3600, first=200)
    backlog(engine, 5, "published", age_seconds=0, first=300)  # within the retention
    with engine.connect() as other:
        # A batch of another purge (or a relay marking rows published) holds these.
        held = (
            other.execute(
                text(
                    "SELECT id FROM outbox_events WHERE status = 'published' "
                    "ORDER BY next_attempt_at, id LIMIT 7 FOR UPDATE"
                )
            )
            .scalars()
            .all()
        )
        assert purge_events(engine, retention=60, batch=4) == 23
        old = "SELECT id FROM outbox_events WHERE status = 'published' AND event_id < 'published-00000300'"
        assert set(ids_of(engine, old)) == set(held)
        other.rollback()
    assert purge_events(engine, retention=60, batch=4) == 7
    assert outbox_status(engine) == {"published": 5, "pending": 10, "parked": 10}


def test_through_a_backlog_the_purge_rests_for_its_duty(engine, clean):
    backlog(engine, 10, "published", age_seconds=3600)
    rests: list[float] = []
    # A quarter of its time deleting: after each full batch, three times as long as it took.
    assert purge_events(engine, retention=60, batch=3, duty=0.25, wait=rests.append) == 10
    assert len(rests) == 3 and all(r > 0 for r in rests)  # after the three full batches only
    rests.clear()
    backlog(engine, 4, "published", age_seconds=3600, first=100)
    assert purge_events(engine, retention=60, batch=3, duty=1.0, wait=rests.append) == 4
    assert rests == []  # flat out


def test_through_a_backlog_the_purge_keeps_to_its_rate(engine, clean):
    backlog(engine, 10, "published", age_seconds=3600)
    rests: list[float] = []
    # Two rows a second at most: a full batch of three and the rest after it take 1.5 s, however
    # short the batch (half duty alone would rest only as long as the batch took).
    assert purge_events(engine, retention=60, batch=3, duty=0.5, rate=2, wait=rests.append) == 10
    assert len(rests) == 3 and all(0.75 <= r <= 1.5 for r in rests)
