"""Housekeeping of the outbox: published rows past ``relay.retention`` and idempotency keys past
``relay.idempotency_retention`` deleted in bounded batches, on a thread of the relay's own.

**Never in the relay's way.**  A batch is one short READ COMMITTED transaction:

    SELECT id FROM outbox_events WHERE status = 'published' AND next_attempt_at < :cutoff
    ORDER BY next_attempt_at, id LIMIT :batch FOR UPDATE SKIP LOCKED;
    DELETE FROM outbox_events WHERE id IN (…those ids…);

The SELECT walks the ``(status, next_attempt_at, id)`` index inside its ``'published'`` range
only (the index is covering: no row is read to decide), so it never meets a pending or parked
row, the ones the relay claims with its own ``FOR UPDATE SKIP LOCKED`` in the ``'pending'`` and
``'parked'`` ranges.  A row the relay is marking published in a transaction still open is locked
by it, and ``SKIP LOCKED`` passes over it; a published row never changes again, so what is
selected stays a published row.  The DELETE names rows by primary key, rows this transaction
already holds, and READ COMMITTED takes no gap locks: nothing else is locked.  Two relays'
purges skip each other's batches the same way.

**Keeping up.**  The relay's claim loop used to purge inline, half a second of every
``relay.purge_interval`` (10 s) at most, in the I/O loop that serves the broker: at 1,000
creates/s (10,000 published rows every 10 s) it fell behind as soon as a batch took over 50 ms,
and while it purged nothing was published.  On its own thread it deletes batch after batch
until less than a full batch is due, then waits ``purge_interval``; publishing goes on meanwhile
on the I/O loop (the two share nothing but the engine's pool).

**Out of the creates' way.**  Through a backlog it deletes at most ``relay.purge_rate`` rows a
second (2,000: twice what 1,000 creates/s publish, so even then a backlog shrinks by 1,000 rows
a second) and spends at most ``relay.purge_duty`` (half) of its time deleting, resting after each
full batch as long as the stricter of the two asks.  What it costs the creates is CPU, not
locks: beside a million-row purge every InnoDB lock wait was a create queueing on its chat's row
behind a holder idle between two statements (none on an outbox row, no free-page waits), on a
2-core machine with no idle CPU, where anything else running stretches those holds.  Bounded by
its duty alone it ran at 6,600–10,000 rows/s in batches of 1,000 and the create p99 beside it
was 112 ms (bench ``--bigchat``); at 2,000 rows/s in batches of ``relay.purge_batch`` (250) it
costs under a tenth of a core (docs/decisions.md, issue 27).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta

import sqlalchemy.exc
from sqlalchemy import bindparam, text
from sqlalchemy.engine import Engine

from chatsys.models import utcnow
from chatsys.models.outbox import PUBLISHED

log = logging.getLogger(__name__)

DUE_EVENTS = text(
    f"SELECT id FROM outbox_events WHERE status = '{PUBLISHED}' AND next_attempt_at < :cutoff "
    "ORDER BY next_attempt_at, id LIMIT :limit FOR UPDATE SKIP LOCKED"
)
DELETE_EVENTS = text("DELETE FROM outbox_events WHERE id IN :ids").bindparams(bindparam("ids", expanding=True))
# Idempotency keys are promised for at least a day (the OpenAPI document); the relay is the one
# process that always runs, so it does this housekeeping too.  Nobody else locks them in bulk.
PURGE_KEYS = text("DELETE FROM idempotency_keys WHERE created_at < :cutoff ORDER BY created_at LIMIT :limit")


def purge_events(
    engine: Engine,
    retention: float,
    batch: int,
    stopping: Callable[[], bool] = lambda: False,
    duty: float = 1.0,
    wait: Callable[[float], object] = time.sleep,
    rate: float = 0.0,
) -> int:
    """Delete published rows older than ``retention`` seconds, ``batch`` at a time, until fewer than
    a full batch are due (or ``stopping()``); returns how many.  After each full batch it waits so
    that it spends at most ``duty`` of its time deleting and deletes at most ``rate`` rows a second
    (0: no such bound), whichever rests longer (``wait(seconds)``)."""
    cutoff = utcnow() - timedelta(seconds=retention)
    total = 0
    while not stopping():
        started = time.monotonic()
        with engine.begin() as conn:
            ids = conn.execute(DUE_EVENTS, {"cutoff": cutoff, "limit": batch}).scalars().all()
            if ids:
                conn.execute(DELETE_EVENTS, {"ids": ids})
        total += len(ids)
        if len(ids) < batch:
            break
        took = time.monotonic() - started
        rest = took * (1.0 - duty) / duty
        if rate:
            rest = max(rest, len(ids) / rate - took)
        if rest > 0:
            wait(rest)
    return total


def purge_keys(engine: Engine, retention: float, batch: int, stopping: Callable[[], bool] = lambda: False) -> int:
    cutoff = utcnow() - timedelta(seconds=retention)
    total = 0
    while not stopping():
        with engine.begin() as conn:
            deleted = conn.execute(PURGE_KEYS, {"cutoff": cutoff, "limit": batch}).rowcount
        total += deleted
        if deleted < batch:
            break
    return total


class OutboxPurge:
    """The purge loop, on a daemon thread: ``start()``, ``stop()``."""

    def __init__(
        self,
        engine: Engine,
        retention: float,
        key_retention: float,
        interval: float,
        batch: int,
        duty: float = 1.0,
        rate: float = 0.0,
    ):
        self.engine = engine
        self.duty = duty
        self.rate = rate
        self.retention = retention
        self.key_retention = key_retention
        self.interval = interval
        self.batch = batch
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> OutboxPurge:
        self._thread = threading.Thread(target=self.run, name="outbox-purge", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                events = purge_events(
                    self.engine, self.retention, self.batch, self._stop.is_set, self.duty, self._stop.wait, self.rate
                )
                keys = purge_keys(self.engine, self.key_retention, self.batch, self._stop.is_set)
            except sqlalchemy.exc.DBAPIError as exc:
                log.warning("outbox purge: MySQL unavailable: %s", exc.__class__.__name__)
            else:
                if events or keys:
                    log.info(
                        "purged %d published outbox rows older than %gs and %d idempotency keys in %.1fs",
                        events,
                        self.retention,
                        keys,
                        time.monotonic() - started,
                    )
            self._stop.wait(self.interval)
