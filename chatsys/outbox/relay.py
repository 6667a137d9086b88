"""The outbox relay: moves committed outbox rows to RabbitMQ, at least once, oldest first.

One loop, on pika's SelectConnection I/O loop (so heartbeats are served while idle):

1. Claim up to ``batch_size`` due rows: ``SELECT … FOR UPDATE SKIP LOCKED`` in a READ COMMITTED
   transaction that stays open, so several relays never claim the same row.
2. Publish them all — persistent, ``mandatory``, ``message_id`` = event id — on a channel in
   confirm mode, then wait for the broker's confirms for the whole batch (one wait per batch).
3. In the same transaction, mark confirmed rows published and schedule the others again, then
   commit.  What failed decides how:

   - *refused* — the broker returned it (``mandatory``: no queue is bound to its event type).
     Only this counts as an attempt: ``attempts + 1``, exponential backoff, and after
     ``max_attempts`` the row is *parked*.
   - *transient* — nacked (a queue refusing publishes: back-pressure, ``reject-publish``), no
     confirm within ``confirm_timeout``, the channel or connection closed, the publish itself
     failed.  These say nothing about the event, so ``attempts`` is left alone; the row is simply
     due again after the relay's own backoff (``backoff_base`` doubling per troubled batch, up to
     ``transient_backoff_max``), and the relay claims nothing new until then.  A broker that stays
     in trouble for any length of time parks nothing.

   A parked row is not given up on either: it stays ``parked`` (so ``/metrics`` and
   ``chatsys-deadletters list`` show it) and is claimed again every ``parked_retry`` seconds, from
   its own range of the (status, next_attempt_at, id) index; once the broker takes it, it is
   published.  So an outage or a missing binding heals without anyone acting.

While the broker blocks the connection (``connection.blocked``: a memory or disk alarm) the relay
claims nothing; what it has in flight waits for its confirms as usual.  A relay whose publishes
have all been nacked for ``nacked_reconnect`` seconds opens a new connection: a quorum queue that
once told a channel to reject publishes does not always tell it to stop (rabbitmq-server#12206),
and a new channel asks the queue afresh.

Up to ``in_flight`` batches are open at once, each in its own transaction: while the broker
writes batch N to its quorum queues, batch N+1 is claimed (SKIP LOCKED passes over N's rows) and
published.  Waiting for confirms was most of a relay's time (a py-spy profile of a drain: 56 %
in the poller, 22 % waiting on MySQL, the rest CPU), so a second batch in flight overlaps the
waits instead of adding them.  A further batch is claimed at once only after a full claim (a
backlog); otherwise the relay polls with its idle back-off, one small batch at a time, and after
a batch that was not full it lingers ``linger`` seconds (20 ms) before the next claim, so that a
steady stream goes out in fewer, larger batches: every batch costs a claim, a commit and a round
of quorum-queue confirms whatever its size, and the consumers' batches grow with the relay's.

A crash anywhere before the commit rolls the claim back: the rows are published again later and
the consumers, which are idempotent, absorb the duplicates.  Idle polling backs off from a few
milliseconds to ``idle_max`` seconds and snaps back to the linger when there is work, which keeps
the commit-to-publish latency well under a second without hammering MySQL.  Published rows are purged
in bounded batches after ``retention`` seconds, on a thread of their own (chatsys.outbox.purge).
"""

from __future__ import annotations

import functools
import json
import logging
import random
import signal
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import timedelta
from typing import Any

import pika
import pika.exceptions
import sqlalchemy.exc
from pika.spec import Basic
from sqlalchemy import bindparam, text
from sqlalchemy.engine import Connection, Engine

from chatsys.broker import blocking_channel
from chatsys.broker.topology import Topology
from chatsys.models import utcnow
from chatsys.models.outbox import PARKED, PENDING, PUBLISHED
from chatsys.outbox.events import CONTENT_TYPE
from chatsys.outbox.purge import OutboxPurge
from chatsys.runtime.faults import RELAY_AFTER_CLAIM, RELAY_AFTER_CONFIRM, fault_point
from chatsys.runtime.settings import resolve_settings
from chatsys.runtime.stats import RateLog

log = logging.getLogger(__name__)

# Oldest due first, in index order: ORDER BY id alone would sort every due row on each claim
# (a filesort over the whole backlog), while (next_attempt_at, id) walks the index.  New rows
# get next_attempt_at = their creation time, so this is creation order but for retries.
# Pending and parked rows are claimed by two statements, one index range each: with
# ``status IN ('pending', 'parked')`` the order would no longer be the index's and every claim
# would sort all due rows again.
_CLAIM = (
    "SELECT id, event_id, type, payload, attempts, status FROM outbox_events "
    "WHERE status = '{status}' AND next_attempt_at <= :now "
    "ORDER BY next_attempt_at, id LIMIT :limit FOR UPDATE SKIP LOCKED"
)
CLAIM = text(_CLAIM.format(status=PENDING))
CLAIM_PARKED = text(_CLAIM.format(status=PARKED))
# How often at most a relay looks for parked rows that are due (capped by parked_retry): parked
# rows wait half an hour between tries, so a few seconds more cost nothing, and an idle relay
# does not double its claim queries.
PARKED_POLL = 5.0
MARK_PUBLISHED = text(
    f"UPDATE outbox_events SET status = '{PUBLISHED}', published_at = :now, next_attempt_at = :now WHERE id IN :ids"
).bindparams(bindparam("ids", expanding=True))
MARK_FAILED = text(
    "UPDATE outbox_events SET attempts = :attempts, status = :status, "
    "next_attempt_at = :next_attempt_at, last_error = :error WHERE id = :id"
)
# A transient failure: the attempt is not counted.  A pending row is due again after the relay's
# backoff and shows why it waits; a parked row keeps the refusal it was parked for and waits for
# its next try like after any other.
MARK_RETRY = text(
    "UPDATE outbox_events SET "
    f"next_attempt_at = IF(status = '{PARKED}', :parked_until, :retry_at), "
    f"last_error = IF(status = '{PARKED}', last_error, :error) WHERE id IN :ids"
).bindparams(bindparam("ids", expanding=True))
NACKED = "nacked by the broker"


@dataclass(frozen=True)
class RelaySettings:
    """The ``relay.*`` settings (defaults and checks: chatsys.runtime.settings)."""

    batch_size: int
    in_flight: int
    max_attempts: int
    confirm_timeout: float
    idle_max: float
    linger: float
    retention: float
    purge_interval: float
    purge_batch: int
    purge_duty: float
    purge_rate: float
    key_retention: float
    backoff_base: float
    backoff_max: float
    transient_backoff_max: float  # the relay's pause after broker trouble, at most
    parked_retry: float  # a parked row is tried again after this long (jittered: half to all)
    nacked_reconnect: float  # only nacks for this long: open a new connection

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> RelaySettings:
        names = {field.name: f"relay.{field.name}" for field in fields(cls)}
        names["key_retention"] = "relay.idempotency_retention"
        return cls(**{name: settings[key] for name, key in names.items()})


@dataclass
class Row:
    id: int
    event_id: str
    type: str
    payload: bytes
    attempts: int
    status: str = PENDING  # as claimed: pending, or parked and due for its periodic try
    error: str | None = None  # why it was not published (returned, nacked, no confirm, …)
    refused: bool = False  # the broker returned it: the one failure that counts as an attempt


@dataclass
class Batch:
    conn: Connection
    rows: dict[int, Row]  # by delivery tag: consecutive, first..last
    first: int
    last: int
    by_event: dict[str, Row] = field(default_factory=dict)
    confirmed: set[int] = field(default_factory=set)  # delivery tags acked or nacked
    low: int = 0  # every tag below this one is in ``confirmed`` (where a multiple ack stopped)
    timer: object = None

    def __post_init__(self) -> None:
        self.low = self.first

    @property
    def full(self) -> bool:
        return len(self.confirmed) == len(self.rows)


def backoff(attempts: int, settings: RelaySettings, cap: float | None = None) -> float:
    """Exponential backoff with jitter (half to all of the ceiling), so retried rows do not move
    in lockstep."""
    cap = settings.backoff_max if cap is None else cap
    ceiling = min(cap, settings.backoff_base * (2 ** max(attempts - 1, 0)))
    return random.uniform(ceiling / 2, ceiling)


def parked_delay(settings: RelaySettings) -> float:
    """When a parked row is tried again: half to all of ``parked_retry``, so rows parked together
    are not all tried at the same moment."""
    return random.uniform(settings.parked_retry / 2, settings.parked_retry)


class Relay:
    def __init__(
        self,
        engine: Engine,
        parameters: pika.ConnectionParameters,
        topology: Topology,
        settings: RelaySettings | None = None,
    ):
        self.engine = engine
        self.parameters = parameters
        self.topology = topology
        self.settings = settings or RelaySettings.from_settings(resolve_settings({}, environ={}))
        self.stats = RateLog("relay", log)
        self._stopping = False
        self._connection: pika.SelectConnection | None = None
        self._channel = None
        self._batches: list[Batch] = []  # in flight, oldest (lowest tags) first
        self._next_tag = 0
        self._timer = None  # the one pending tick
        self._idle = 0.0
        self._last_parked_claim = 0.0
        self._reconnect_delay = 0.5
        self._blocked = False  # the broker blocked this connection (a resource alarm)
        self._trouble_streak = 0  # batches in a row that met transient broker trouble
        self._nacked_since: float | None = None  # when a run of batches with nothing but nacks began

    # -- lifecycle ------------------------------------------------------------------------------

    def run(self) -> None:
        """Run until SIGTERM/SIGINT (or :meth:`stop`); reconnects by itself."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        log.info("relay starting (batch %d, exchange %s)", self.settings.batch_size, self.topology.events_exchange)
        purge = OutboxPurge(
            self.engine,
            retention=self.settings.retention,
            key_retention=self.settings.key_retention,
            interval=self.settings.purge_interval,
            batch=self.settings.purge_batch,
            duty=self.settings.purge_duty,
            rate=self.settings.purge_rate,
        ).start()
        try:
            self._run()
        finally:
            purge.stop()
        log.info("relay stopped")

    def _run(self) -> None:
        while not self._stopping:
            try:
                self._declare_topology()
                self._blocked = False
                self._nacked_since = None
                self._connection = pika.SelectConnection(
                    self.parameters,
                    on_open_callback=self._on_connection_open,
                    on_open_error_callback=self._on_connection_open_error,
                    on_close_callback=self._on_connection_closed,
                )
                self._connection.add_on_connection_blocked_callback(self._on_blocked)
                self._connection.add_on_connection_unblocked_callback(self._on_unblocked)
                self._connection.ioloop.start()
            except (pika.exceptions.AMQPError, OSError) as exc:
                log.warning("broker unavailable: %s", exc.__class__.__name__)
            # Normally the close callback has done this; if the loop ended any other way, batches
            # left in flight must not meet the next channel, whose delivery tags restart at 1.
            self._abandon_batches("connection lost before the broker confirmed")
            self._timer = None
            if not self._stopping:
                self._sleep(self._reconnect_delay)
                self._reconnect_delay = min(self._reconnect_delay * 2, 5.0)

    def stop(self) -> None:
        """Stop after the batch in flight is finished (thread- and signal-safe)."""
        self._stopping = True
        connection = self._connection
        if connection is not None:
            connection.ioloop.add_callback_threadsafe(self._stop_if_idle)

    def _on_signal(self, signum, frame) -> None:
        log.info("signal %d: finishing the batch in flight, then stopping", signum)
        self.stop()

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stopping and time.monotonic() < deadline:
            time.sleep(min(0.1, deadline - time.monotonic()))

    def _declare_topology(self) -> None:
        with blocking_channel(self.parameters) as channel:
            self.topology.declare(channel)

    def _stop_if_idle(self) -> None:
        if not self._batches:
            self._close()

    def _close(self) -> None:
        if self._connection is not None and self._connection.is_open:
            self._connection.close()
        elif self._connection is not None:
            self._connection.ioloop.stop()

    # -- connection callbacks --------------------------------------------------------------------

    def _on_connection_open(self, connection) -> None:
        connection.channel(on_open_callback=self._on_channel_open)

    def _on_connection_open_error(self, connection, error) -> None:
        log.warning("cannot connect to the broker: %s", error)
        connection.ioloop.stop()

    def _on_connection_closed(self, connection, reason) -> None:
        if not self._stopping:
            log.warning("broker connection closed: %s", reason)
        self._channel = None
        self._timer = None
        self._abandon_batches("connection closed before the broker confirmed")
        connection.ioloop.stop()

    def _on_channel_open(self, channel) -> None:
        self._channel = channel
        self._next_tag = 0
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_return_callback(self._on_return)
        channel.confirm_delivery(self._on_confirm, callback=self._on_confirm_mode)

    def _on_confirm_mode(self, frame) -> None:
        log.info("connected to the broker; publishing with confirms")
        self._reconnect_delay = 0.5
        self._schedule(0)

    def _on_channel_closed(self, channel, reason) -> None:
        log.warning("channel closed: %s", reason)
        self._channel = None
        self._abandon_batches(f"channel closed: {reason}")
        self._close()

    def _on_blocked(self, connection, frame) -> None:
        # Sent once the connection has published during a memory or disk alarm; the broker reads
        # nothing more from it until the alarm clears.  pika closes it after the parameters'
        # blocked_connection_timeout, and the relay then connects again.
        log.warning("the broker blocked the connection (%s): claiming nothing until it unblocks", frame.method.reason)
        self._blocked = True

    def _on_unblocked(self, connection, frame) -> None:
        log.info("the broker unblocked the connection: publishing again")
        self._blocked = False
        if not self._stopping:
            self._schedule(0)

    # -- the loop ---------------------------------------------------------------------------------

    def _schedule(self, delay: float) -> None:
        """(Re)arm the single tick timer: a later request replaces an earlier one, so there is
        never more than one claim loop however many batches finish."""
        if self._connection is None:
            return
        ioloop = self._connection.ioloop
        if self._timer is not None:
            ioloop.remove_timeout(self._timer)
        self._timer = ioloop.call_later(delay, self._tick)

    def _tick(self) -> None:
        self._timer = None
        if self._stopping:
            if not self._batches:
                self._close()
            return  # otherwise the last batch to finish closes
        if self._channel is None or self._blocked or len(self._batches) >= self.settings.in_flight:
            return  # a finishing batch, or the unblocking, schedules the next tick
        try:
            claimed = self._claim()
        except sqlalchemy.exc.DBAPIError as exc:
            log.warning("MySQL unavailable: %s", exc.__class__.__name__)
            if not self._batches:
                self._schedule(min(max(self._idle * 2, 1.0), 5.0))
            return
        if not claimed:
            if not self._batches:
                self._idle = min(max(self._idle * 2, 0.005), self.settings.idle_max)
                self._schedule(self._idle)
            return
        self._idle = 0.0
        if self._publish(claimed) and len(claimed.rows) >= self.settings.batch_size:
            self._schedule(0)  # a backlog: claim the next batch while this one is confirmed

    def _claim(self) -> Batch | None:
        conn = self.engine.connect()
        try:
            conn.begin()
            now, limit = utcnow(), self.settings.batch_size
            result = conn.execute(CLAIM, {"now": now, "limit": limit}).all()
            if len(result) < limit and self._parked_due():
                result += conn.execute(CLAIM_PARKED, {"now": now, "limit": limit - len(result)}).all()
        except BaseException:
            conn.close()
            raise
        if not result:
            conn.rollback()
            conn.close()
            return None
        rows = {}
        first = self._next_tag + 1
        for r in result:
            self._next_tag += 1
            payload = r.payload if isinstance(r.payload, bytes | str) else json.dumps(r.payload)
            rows[self._next_tag] = Row(r.id, r.event_id, r.type, _as_bytes(payload), r.attempts, r.status)
        batch = Batch(conn=conn, rows=rows, first=first, last=self._next_tag)
        batch.by_event = {row.event_id: row for row in rows.values()}
        self._batches.append(batch)
        fault_point(RELAY_AFTER_CLAIM)
        return batch

    def _parked_due(self) -> bool:
        """Whether to look for due parked rows in this claim (every few seconds at most)."""
        now = time.monotonic()
        if now - self._last_parked_claim < min(PARKED_POLL, self.settings.parked_retry):
            return False
        self._last_parked_claim = now
        return True

    def _publish(self, batch: Batch) -> bool:
        try:
            self._publish_rows(batch)
        except pika.exceptions.AMQPError as exc:
            log.warning("publish failed: %s", exc.__class__.__name__)
            self._abandon_batches(f"publish failed: {exc.__class__.__name__}")
            self._close()
            return False
        batch.timer = self._connection.ioloop.call_later(
            self.settings.confirm_timeout, functools.partial(self._on_confirm_timeout, batch)
        )
        return True

    def _publish_rows(self, batch: Batch) -> None:
        channel = self._channel
        for row in batch.rows.values():
            channel.basic_publish(
                exchange=self.topology.events_exchange,
                routing_key=row.type,
                body=row.payload,
                properties=pika.BasicProperties(
                    content_type=CONTENT_TYPE,
                    delivery_mode=pika.DeliveryMode.Persistent,
                    message_id=row.event_id,
                    type=row.type,
                    app_id="chatsys",
                ),
                mandatory=True,
            )

    def _on_return(self, channel, method: Basic.Return, properties, body) -> None:
        # A return always arrives before the ack of the same message.
        for batch in self._batches:
            row = batch.by_event.get(properties.message_id)
            if row is not None:
                row.error = f"returned by the broker: {method.reply_code} {method.reply_text}"
                row.refused = True
                return

    def _on_confirm(self, frame) -> None:
        method = frame.method
        tag = method.delivery_tag
        nacked = isinstance(method, Basic.Nack)
        for batch in list(self._batches):
            if batch.first > tag:
                break
            if method.multiple:
                tags = range(batch.low, min(batch.last, tag) + 1)
                batch.low = max(batch.low, min(batch.last, tag) + 1)
            else:
                tags = (tag,) if tag <= batch.last else ()
            for t in tags:
                if t in batch.confirmed:
                    continue
                row = batch.rows[t]
                if nacked and row.error is None:
                    row.error = NACKED
                batch.confirmed.add(t)
            if batch.full:
                self._finish(batch)

    def _on_confirm_timeout(self, batch: Batch) -> None:
        batch.timer = None
        if batch not in self._batches:
            return
        for tag, row in batch.rows.items():
            if tag not in batch.confirmed and row.error is None:
                row.error = f"no confirm within {self.settings.confirm_timeout:g}s"
        self._finish(batch)

    def _finish(self, batch: Batch) -> None:
        if batch.timer is not None and self._connection is not None:
            self._connection.ioloop.remove_timeout(batch.timer)
        batch.timer = None
        self._batches.remove(batch)
        fault_point(RELAY_AFTER_CONFIRM)
        published = [row for tag, row in batch.rows.items() if tag in batch.confirmed and not row.error]
        failed = [row for tag, row in batch.rows.items() if row.error or tag not in batch.confirmed]
        retry_in = self._troubled(any(not row.refused for row in failed))
        try:
            self._record(batch.conn, published, failed, retry_in)
        except sqlalchemy.exc.DBAPIError as exc:
            # The claim is rolled back: the rows go out again later (duplicates are absorbed).
            log.warning("could not record %d published rows: %s", len(published), exc.__class__.__name__)
        finally:
            batch.conn.close()
        if self._stopping:
            if not self._batches:
                self._close()
        elif self._nacks_persist(published, failed):
            self._nacked_since = None
            if self._connection is not None and self._connection.is_open:  # not already closing
                log.warning(
                    "every publish nacked for %gs: opening a new connection (the queues are asked afresh)",
                    self.settings.nacked_reconnect,
                )
                self._connection.close()
        elif retry_in:
            # Back off: this replaces any sooner tick, so nothing is claimed before the rows just
            # released are due again.
            self._schedule(retry_in)
        elif self._timer is None:
            # A backlog goes on at once; otherwise linger (this batch's claim reset the idle back-off).
            self._schedule(0 if len(batch.rows) >= self.settings.batch_size else self.settings.linger)

    def _troubled(self, trouble: bool) -> float:
        """The relay's backoff after a batch: 0 when the broker gave no transient trouble (even if
        it refused rows, which back off one by one), else ``backoff_base`` doubling per troubled
        batch in a row, up to ``transient_backoff_max``."""
        if not trouble:
            self._trouble_streak = 0
            return 0.0
        self._trouble_streak += 1
        return backoff(self._trouble_streak, self.settings, cap=self.settings.transient_backoff_max)

    def _nacks_persist(self, published: list[Row], failed: list[Row]) -> bool:
        """True once batches have been nacked whole for ``nacked_reconnect`` seconds."""
        if published or not failed or any(row.error != NACKED for row in failed):
            self._nacked_since = None
            return False
        now = time.monotonic()
        if self._nacked_since is None:
            self._nacked_since = now
        return now - self._nacked_since >= self.settings.nacked_reconnect

    def _record(self, conn: Connection, published: list[Row], failed: list[Row], retry_in: float) -> None:
        now = utcnow()
        if published:
            conn.execute(MARK_PUBLISHED, {"now": now, "ids": [row.id for row in published]})
        refused = [row for row in failed if row.refused]
        parked = 0
        for row in refused:
            attempts = row.attempts + 1
            park = row.status == PARKED or attempts >= self.settings.max_attempts
            parked += park and row.status != PARKED
            delay = parked_delay(self.settings) if park else backoff(attempts, self.settings)
            conn.execute(
                MARK_FAILED,
                {
                    "id": row.id,
                    "attempts": attempts,
                    "status": PARKED if park else PENDING,
                    "next_attempt_at": now + timedelta(seconds=delay),
                    "error": (row.error or "refused")[:1024],
                },
            )
        transient: dict[str, list[Row]] = defaultdict(list)
        for row in failed:
            if not row.refused:
                transient[row.error or "not confirmed"].append(row)
        for error, rows in transient.items():
            conn.execute(
                MARK_RETRY,
                {
                    "ids": [row.id for row in rows],
                    "retry_at": now + timedelta(seconds=retry_in),
                    "parked_until": now + timedelta(seconds=parked_delay(self.settings)),
                    "error": f"{error} (transient: not counted as an attempt)"[:1024],
                },
            )
        conn.commit()
        retried = sum(len(rows) for rows in transient.values())
        self.stats.add(
            published=len(published), failed=len(failed), refused=len(refused), transient=retried, parked=parked
        )
        for row in refused:
            log.warning(
                "event %s (%s) refused by the broker (attempt %d): %s",
                row.event_id,
                row.type,
                row.attempts + 1,
                row.error,
            )
        if transient:
            # One line per batch, not per row: an outage would otherwise log every event it holds up.
            log.warning(
                "%d events not published, due again in %.2fs (attempts not counted): %s",
                retried,
                retry_in,
                "; ".join(f"{len(rows)} {error}" for error, rows in transient.items()),
            )

    def _abandon_batches(self, reason: str) -> None:
        """The channel is gone: confirms of the batches in flight will never come, so their rows
        go back to be published again (even confirmed ones: their batch was not recorded).  The
        broker's trouble is no fault of the events: no attempt is counted, except for a row the
        broker returned before the channel went."""
        batches, self._batches = self._batches, []
        if not batches:
            return
        retry_in = self._troubled(True)
        for batch in batches:
            if batch.timer is not None and self._connection is not None:
                self._connection.ioloop.remove_timeout(batch.timer)
            for row in batch.rows.values():
                if row.error is None:
                    row.error = reason
            try:
                self._record(batch.conn, [], list(batch.rows.values()), retry_in)
            except sqlalchemy.exc.DBAPIError:
                pass  # rolled back by closing: the rows are simply claimed again later
            finally:
                batch.conn.close()


def _as_bytes(payload) -> bytes:
    return payload.encode("utf-8") if isinstance(payload, str) else payload
