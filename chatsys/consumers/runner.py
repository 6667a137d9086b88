"""Runs consumers on RabbitMQ: manual acks after the effect is committed, bounded prefetch,
batches, poison dead-lettered, transient failures retried in place, reconnects, clean shutdown.

Policy per message:
- applied (or already applied)              → ack
- poison (undecodable, unknown type, a row
  that does not exist, rejected by the index) → record why, ``reject(requeue=False)`` → DLQ
- transient (MySQL / search down)           → keep it unacked, pause (serving heartbeats), retry;
                                              never requeued, so an outage never dead-letters
- an unexpected exception                   → retry the batch one message at a time; a message
                                              that still fails is requeued after a pause, and the
                                              queue's delivery limit dead-letters it if it never
                                              succeeds
``redelivered`` is never trusted: every consumer is idempotent.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from functools import partial

import pika
import pika.exceptions
import sqlalchemy.exc
from sqlalchemy import text
from sqlalchemy.engine import Engine

from chatsys.broker.topology import Topology
from chatsys.consumers.base import OK, RETRY, Consumer, Delivery, Event, Poison, Transient, decode
from chatsys.models import utcnow
from chatsys.runtime.process import Stopper, run_until_stopped
from chatsys.runtime.stats import RateLog

log = logging.getLogger(__name__)

RECORD_FAILURE = text(
    "INSERT INTO consumer_failures (consumer, message_id, error, failed_at) "
    "VALUES (:consumer, :message_id, :error, :now) "
    "ON DUPLICATE KEY UPDATE error = VALUES(error), failed_at = VALUES(failed_at)"
)


def failure_key(delivery: Delivery) -> str:
    return delivery.message_id or "sha256:" + hashlib.sha256(delivery.body).hexdigest()[:56]


class Runner:
    def __init__(
        self,
        parameters: pika.ConnectionParameters,
        topology: Topology,
        consumers: Sequence[Consumer],
        engine: Engine,
        stopper: Stopper | None = None,
        prefetch: int = 200,
        batch_size: int = 100,
        max_pause: float = 30.0,
        max_rounds: int = 5,
        retry_pause: float = 0.5,
    ):
        self.parameters = parameters
        self.topology = topology
        self.consumers = {c.name: c for c in consumers}
        self.engine = engine
        self.prefetch = prefetch
        self.batch_size = batch_size
        self.max_pause = max_pause
        self.max_rounds = max_rounds
        self.retry_pause = retry_pause
        self.stats = {name: RateLog(f"worker.{name}", log) for name in self.consumers}
        self.stopper = stopper or Stopper()
        self._buffers: dict[str, list[Delivery]] = {name: [] for name in self.consumers}
        # Delivery tags of this channel not yet acked, nacked or rejected, in arrival order.
        self._unsettled: dict[int, None] = {}
        self._connection: pika.BlockingConnection | None = None
        self._channel = None

    @property
    def _stopping(self) -> bool:
        return self.stopper.stopping

    def stop(self) -> None:
        self.stopper.stop()

    def keep_alive(self) -> None:
        """Serve the connection (heartbeats) from inside a long ``apply``: deliveries that arrive
        meanwhile only join their consumer's buffer."""
        connection = self._connection
        if connection is not None and connection.is_open:
            connection.process_data_events(time_limit=0)

    def run(self) -> None:
        """Consume until stopped; a lost broker connection is reopened after a backoff."""
        run_until_stopped("worker", self._run_connection, self.stopper)
        log.info("worker stopped")

    def _run_connection(self) -> None:
        try:
            self._connect()
            self._consume()
        finally:
            self._disconnect()

    # -- connection -------------------------------------------------------------------------------

    def _connect(self) -> None:
        self._connection = pika.BlockingConnection(self.parameters)
        channel = self._connection.channel()
        self.topology.declare(channel)
        channel.basic_qos(prefetch_count=self.prefetch)
        self._unsettled = {}
        for name in self.consumers:
            self._buffers[name] = []
            channel.basic_consume(self.topology.queue(name), on_message_callback=partial(self._on_message, name))
        self._channel = channel
        log.info("consuming %s (prefetch %d)", ", ".join(self.consumers), self.prefetch)

    def _disconnect(self) -> None:
        # Unacknowledged deliveries go back to their queue when the channel closes.
        if self._stopping:
            self._hand_back()
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            try:
                connection.close()
            except pika.exceptions.AMQPError:
                pass

    def _hand_back(self) -> None:
        """On a clean stop, give what is still in hand back to the queues as not processed.

        Closing the channel would return it too, but from RabbitMQ 4.3 a quorum queue counts a
        return by a closed channel as a failed delivery, so every restart (a deploy, say, during
        an Elasticsearch outage) would spend one of the delivery limit's attempts on each message
        in hand, and a few restarts would dead-letter good events.  ``basic.nack`` with
        ``requeue`` is the return that does not count.  Deliveries pika holds but has not yet
        dispatched are taken in first: cancelling a consumer makes pika *reject* those, which
        counts.  Then the consumers are cancelled, so the broker sends this channel nothing more
        (what it sent in the moment before the cancel reached it, pika rejects), and everything
        in hand goes back in one nack.  (Before 4.3 every return counts.)"""
        channel, connection = self._channel, self._connection
        if channel is None or not channel.is_open:
            return
        try:
            connection.process_data_events(time_limit=0)
            if not self._unsettled:
                return
            for tag in list(channel.consumer_tags):
                channel.basic_cancel(tag)
            channel.basic_nack(0, multiple=True, requeue=True)
            self._unsettled.clear()
        except pika.exceptions.AMQPError:
            pass  # the close that follows returns them all the same

    def _on_message(self, name, channel, method, properties, body) -> None:
        self._buffers[name].append(Delivery(method.delivery_tag, properties.message_id, body, method.redelivered))
        self._unsettled[method.delivery_tag] = None

    # -- settling ---------------------------------------------------------------------------------

    def _ack(self, tags: list[int]) -> None:
        """Acknowledge ``tags``: with one ``multiple`` ack when they are all the channel's unsettled
        deliveries up to the highest of them (the usual case: a batch taken whole from one queue),
        else one by one.  A quorum queue settles a multiple ack as one command, not one per message."""
        if not tags:
            return
        highest = max(tags)
        wanted = set(tags)
        covered = [tag for tag in self._unsettled if tag <= highest]
        if len(covered) == len(wanted) and wanted.issuperset(covered):
            self._channel.basic_ack(highest, multiple=True)
        else:
            for tag in tags:
                self._channel.basic_ack(tag)
        for tag in tags:
            self._unsettled.pop(tag, None)

    def _requeue(self, tag: int) -> None:
        """Give a delivery that failed back to the queue, counted as a failed attempt.

        ``basic.reject``, not ``basic.nack``: since RabbitMQ 4.3 a nack-requeue does not raise the
        message's delivery count, so the queue's delivery limit would never dead-letter a message
        that always fails, and it would loop forever.  A reject counts on every version."""
        self._channel.basic_reject(tag, requeue=True)
        self._unsettled.pop(tag, None)

    def _sleep(self, seconds: float) -> None:
        """Pause without starving the connection (heartbeats keep flowing)."""
        deadline = time.monotonic() + seconds
        while not self._stopping and time.monotonic() < deadline:
            if self._connection is not None and self._connection.is_open:
                self._connection.sleep(min(0.2, max(deadline - time.monotonic(), 0)))
            else:
                time.sleep(min(0.2, max(deadline - time.monotonic(), 0)))

    # -- the loop ---------------------------------------------------------------------------------

    def _consume(self) -> None:
        connection = self._connection
        while not self._stopping:
            if not any(self._buffers.values()):
                connection.process_data_events(time_limit=0.5)
            # Whatever has already arrived joins the batch.
            connection.process_data_events(time_limit=0)
            for name, buffer in self._buffers.items():
                while buffer and not self._stopping:
                    batch, buffer[:] = buffer[: self.batch_size], buffer[self.batch_size :]
                    self._handle(self.consumers[name], batch)

    def _handle(self, consumer: Consumer, batch: list[Delivery]) -> None:
        events: list[Event] = []
        for delivery in batch:
            try:
                events.append(decode(consumer, delivery))
            except Poison as poison:
                self._dead_letter(consumer, delivery, str(poison))
        pause, rounds = self.retry_pause, 0
        stats = self.stats[consumer.name]
        while events and not self._stopping:
            try:
                outcomes = consumer.apply(events)
            except Transient as exc:
                # A dependency is down: wait as long as it takes, nothing is dead-lettered.
                log.warning("%s: %s; retrying %d events in %.1fs", consumer.name, exc, len(events), pause)
                stats.add(transient=len(events))
                self._sleep(pause)
                pause = min(pause * 2, self.max_pause)
                continue
            except Exception:
                log.exception("%s: unexpected error on a batch of %d", consumer.name, len(events))
                self._one_by_one(consumer, events)
                return
            retry, applied = [], []
            for event in events:
                outcome = outcomes.get(event.delivery.tag, RETRY)
                if outcome == OK:
                    applied.append(event.delivery.tag)
                elif isinstance(outcome, Poison):
                    self._dead_letter(consumer, event.delivery, str(outcome))
                else:
                    retry.append(event)
            self._ack(applied)
            stats.add(applied=len(applied))
            if retry:
                # The dependency answered but refused these: not an outage.  After a few rounds
                # give them back to the queue, whose delivery limit dead-letters a hopeless one.
                rounds += 1
                if rounds >= self.max_rounds:
                    for event in retry:
                        self._requeue(event.delivery.tag)
                    stats.add(requeued=len(retry))
                    log.warning("%s: requeued %d events that keep failing", consumer.name, len(retry))
                    return
            events = retry
            if events:
                stats.add(transient=len(events))
                self._sleep(pause)
                pause = min(pause * 2, self.max_pause)

    def _one_by_one(self, consumer: Consumer, events: list[Event]) -> None:
        """Isolate the message that breaks a batch; requeue it (the delivery limit bounds this)."""
        for event in events:
            if self._stopping:
                return
            try:
                outcome = consumer.apply([event]).get(event.delivery.tag, RETRY)
            except Transient:
                outcome = RETRY
            except Exception as exc:
                log.exception("%s: event %s failed", consumer.name, event.event_id)
                self._record_failure(consumer, event.delivery, f"unexpected error: {exc.__class__.__name__}")
                self._sleep(1.0)
                self._requeue(event.delivery.tag)
                self.stats[consumer.name].add(failed=1)
                continue
            if outcome == OK:
                self._ack([event.delivery.tag])
                self.stats[consumer.name].add(applied=1)
            elif isinstance(outcome, Poison):
                self._dead_letter(consumer, event.delivery, str(outcome))
            else:
                self._requeue(event.delivery.tag)

    def _dead_letter(self, consumer: Consumer, delivery: Delivery, reason: str) -> None:
        log.error("%s: dead-lettering %s: %s", consumer.name, failure_key(delivery), reason)
        self._record_failure(consumer, delivery, reason)
        self._channel.basic_reject(delivery.tag, requeue=False)
        self._unsettled.pop(delivery.tag, None)
        self.stats[consumer.name].add(dead_lettered=1)

    def _record_failure(self, consumer: Consumer, delivery: Delivery, reason: str) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    RECORD_FAILURE,
                    {
                        "consumer": consumer.name,
                        "message_id": failure_key(delivery)[:64],
                        "error": reason,
                        "now": utcnow(),
                    },
                )
        except sqlalchemy.exc.DBAPIError as exc:
            log.warning("could not record the failure in MySQL (%s); it is in this log", exc.__class__.__name__)
