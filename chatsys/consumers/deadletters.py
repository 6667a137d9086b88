"""Inspect, replay and purge what the pipeline parked: outbox rows the broker kept refusing, and
messages the consumers dead-lettered (with the reason each was rejected).

Parked outbox rows are also retried by the relay on their own, every ``relay.parked_retry``
seconds; ``replay`` makes them due at once."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime

import pika
from sqlalchemy import bindparam, text
from sqlalchemy.engine import Engine

from chatsys.broker import blocking_channel
from chatsys.broker.topology import CONSUMERS, Topology
from chatsys.models import utcnow


@dataclass
class DeadLetter:
    consumer: str
    message_id: str | None
    type: str | None
    reason: str  # why the broker dead-lettered it: rejected, delivery_limit, …
    deaths: int
    error: str | None  # what the consumer recorded, if anything
    body: bytes


@dataclass
class ParkedRow:
    id: int
    event_id: str
    type: str
    attempts: int
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime  # when the relay tries it again by itself


def parked_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT COUNT(*) FROM outbox_events WHERE status = 'parked'")).scalar_one()


def parked_rows(engine: Engine, limit: int = 100) -> list[ParkedRow]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT id, event_id, type, attempts, last_error, created_at, next_attempt_at FROM outbox_events "
                "WHERE status = 'parked' ORDER BY id LIMIT :limit"
            ),
            {"limit": limit},
        ).all()
    return [ParkedRow(*r) for r in rows]


def replay_parked(engine: Engine, limit: int | None = None) -> int:
    """Make parked rows pending again, with a fresh attempt budget."""
    sql = (
        "UPDATE outbox_events SET status = 'pending', attempts = 0, next_attempt_at = :now, "
        "last_error = NULL WHERE status = 'parked' ORDER BY id"
    )
    params: dict = {"now": utcnow()}
    if limit is not None:
        sql += " LIMIT :limit"
        params["limit"] = limit
    with engine.begin() as conn:
        return conn.execute(text(sql), params).rowcount


def purge_parked(engine: Engine) -> int:
    with engine.begin() as conn:
        return conn.execute(text("DELETE FROM outbox_events WHERE status = 'parked'")).rowcount


def _errors(engine: Engine, consumer: str, ids: list[str]) -> dict[str, str]:
    if not ids:
        return {}
    query = text(
        "SELECT message_id, error FROM consumer_failures WHERE consumer = :c AND message_id IN :ids"
    ).bindparams(bindparam("ids", expanding=True))
    with engine.connect() as conn:
        return dict(conn.execute(query, {"c": consumer, "ids": ids}).all())


def _death(properties) -> tuple[str, int]:
    deaths = (properties.headers or {}).get("x-death") or []
    if not deaths:
        return "unknown", 0
    latest = deaths[0]
    reason = latest.get("reason")
    reason = reason.decode() if isinstance(reason, bytes) else str(reason)
    return reason, sum(int(d.get("count", 1)) for d in deaths)


# Headers the broker sets on a delivery; a copy published again starts without them.
DELIVERY_HEADERS = ("x-delivery-count", "x-acquired-count")


def _as_republished(properties: pika.BasicProperties) -> pika.BasicProperties:
    headers = {k: v for k, v in (properties.headers or {}).items() if k not in DELIVERY_HEADERS}
    copy = pika.BasicProperties(**{k: v for k, v in vars(properties).items() if k != "headers"})
    copy.headers = headers or None
    return copy


class DeadLetterQueues:
    def __init__(self, parameters: pika.ConnectionParameters, topology: Topology, engine: Engine):
        self.parameters = parameters
        self.topology = topology
        self.engine = engine

    @contextlib.contextmanager
    def _channel(self):
        with blocking_channel(self.parameters) as channel:
            self.topology.declare(channel)
            yield channel

    def depths(self) -> dict[str, int]:
        with self._channel() as channel:
            return {
                c: channel.queue_declare(self.topology.dead_queue(c), passive=True).method.message_count
                for c in CONSUMERS
            }

    def peek(self, consumer: str, limit: int = 100) -> list[DeadLetter]:
        """Read up to ``limit`` dead letters, the oldest first, without losing any.

        Each one read is published again at the back of its dead queue (confirmed) and only then
        acknowledged, so a listing moves those it shows behind the rest, in the same order.  Not
        read and handed back, as a peek usually is: a quorum queue counts every such return as a
        delivery (on RabbitMQ 4.0 to 4.2; from 4.3, a return by closing the channel), and dead
        queues get the broker's default delivery limit of 20 on 4.x, past which the broker drops
        a message.  Twenty listings would have lost every dead letter."""
        found = []
        queue = self.topology.dead_queue(consumer)
        with self._channel() as channel:
            channel.confirm_delivery()
            # Only those there now: the copies go to the back of the same queue.
            depth = channel.queue_declare(queue, passive=True).method.message_count
            for _ in range(min(limit, depth)):
                method, properties, body = channel.basic_get(queue)
                if method is None:
                    break
                reason, deaths = _death(properties)
                found.append(DeadLetter(consumer, properties.message_id, properties.type, reason, deaths, None, body))
                channel.basic_publish("", queue, body, _as_republished(properties), mandatory=True)
                channel.basic_ack(method.delivery_tag)
        errors = _errors(self.engine, consumer, [d.message_id for d in found if d.message_id])
        for d in found:
            d.error = errors.get(d.message_id or "")
        return found

    def replay(self, consumer: str, limit: int | None = None) -> int:
        """Move dead letters back to the consumer's queue (confirmed publish, then ack)."""
        moved = 0
        with self._channel() as channel:
            channel.confirm_delivery()
            while limit is None or moved < limit:
                method, properties, body = channel.basic_get(self.topology.dead_queue(consumer))
                if method is None:
                    break
                # The default exchange routes straight to the one queue that rejected it.
                channel.basic_publish("", self.topology.queue(consumer), body, properties, mandatory=True)
                channel.basic_ack(method.delivery_tag)
                moved += 1
        return moved

    def purge(self, consumer: str) -> int:
        with self._channel() as channel:
            return channel.queue_purge(self.topology.dead_queue(consumer)).method.message_count
