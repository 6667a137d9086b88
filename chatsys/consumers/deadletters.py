"""Inspect, replay and purge the messages the consumers dead-lettered (with the reason each was
rejected).  (Outbox rows the relay parked: ``chatsys.outbox.parked``.)

Dead letters are only ever moved by ``replay``, which moves what the dead queue holds when it
starts, once each, and then reports the ones the consumer rejected straight back."""

from __future__ import annotations

import contextlib
import time
import uuid
from dataclasses import dataclass, field

import pika
from sqlalchemy import bindparam, text
from sqlalchemy.engine import Engine

from chatsys.broker import blocking_channel
from chatsys.broker.topology import Topology


@dataclass
class DeadLetter:
    consumer: str
    message_id: str | None
    type: str | None
    reason: str  # why the broker dead-lettered it: rejected, delivery_limit, …
    deaths: int
    error: str | None  # what the consumer recorded, if anything
    body: bytes
    replays: int = 0  # how many times ``replay`` has moved it back
    replay_id: str | None = None  # the last replay that moved it back


@dataclass
class Replayed:
    """What one ``replay`` of a consumer's dead queue did."""

    consumer: str
    # Set as a header on every message this replay moves; dead-lettering keeps headers, so a
    # message that comes back carries it.  (Not x-death's count: from RabbitMQ 4.0 the broker
    # ignores the x-death a client publishes, so that count starts again at 1.)
    replay_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    count: int = 0  # messages moved
    left: int = 0  # dead letters not moved (past the limit)
    came_back: list[DeadLetter] = field(default_factory=list)  # rejected again, left in the dead queue
    checked: bool = False  # False: no consumer was attached, so whether they came back is unknown


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
# Headers ``replay`` sets (not x-: those belong to the broker).
REPLAY_ID = "chatsys-replay-id"
REPLAYS = "chatsys-replays"


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
                headers = properties.headers or {}
                replay_id = headers.get(REPLAY_ID)
                found.append(
                    DeadLetter(
                        consumer,
                        properties.message_id,
                        properties.type,
                        reason,
                        deaths,
                        None,
                        body,
                        int(headers.get(REPLAYS) or 0),
                        replay_id.decode() if isinstance(replay_id, bytes) else replay_id,
                    )
                )
                channel.basic_publish("", queue, body, _as_republished(properties), mandatory=True)
                channel.basic_ack(method.delivery_tag)
        errors = _errors(self.engine, consumer, [d.message_id for d in found if d.message_id])
        for d in found:
            d.error = errors.get(d.message_id or "")
        return found

    def replay(self, consumer: str, limit: int | None = None) -> Replayed:
        """Move the dead letters the queue holds now (at most ``limit``) back to the consumer's
        queue, once each (confirmed publish, then ack).

        Only those there at the start: the queue is FIFO, so its depth then is exactly how many to
        take from its head.  What the consumer rejects again goes to the back and is not taken a
        second time; going on until the queue was empty moved poison round and round, thousands of
        times a minute, each time a database row and an ERROR line.  :meth:`came_back` reports it."""
        replayed = Replayed(consumer)
        dead = self.topology.dead_queue(consumer)
        with self._channel() as channel:
            channel.confirm_delivery()
            depth = channel.queue_declare(dead, passive=True).method.message_count
            for _ in range(depth if limit is None else min(limit, depth)):
                method, properties, body = channel.basic_get(dead)
                if method is None:
                    break
                copy = _as_republished(properties)
                copy.headers = {
                    **(copy.headers or {}),
                    REPLAY_ID: replayed.replay_id,
                    REPLAYS: int((copy.headers or {}).get(REPLAYS) or 0) + 1,
                }
                # The default exchange routes straight to the one queue that rejected it.
                channel.basic_publish("", self.topology.queue(consumer), body, copy, mandatory=True)
                channel.basic_ack(method.delivery_tag)
                replayed.count += 1
        replayed.left = depth - replayed.count
        return replayed

    def came_back(self, replays: list[Replayed], wait: float) -> None:
        """Find the replayed dead letters that their consumer rejected straight back.

        Waits up to ``wait`` seconds (less if as many dead letters arrived as were moved), then
        lists each dead queue (without spending deliveries, see :meth:`peek`) for messages that
        carry this replay's id: dead once more since.  They stay where they are: replaying them
        again before a fix would only send them round again."""
        watched = [r for r in replays if r.count]
        with self._channel() as channel:
            for r in watched:
                queue = channel.queue_declare(self.topology.queue(r.consumer), passive=True)
                r.checked = queue.method.consumer_count > 0
            watched = [r for r in watched if r.checked]

            def arrived(r: Replayed) -> int:  # dead letters since the snapshot: any that came back, and new ones
                dead = channel.queue_declare(self.topology.dead_queue(r.consumer), passive=True)
                return dead.method.message_count - r.left

            deadline = time.monotonic() + wait
            while watched and time.monotonic() < deadline and any(arrived(r) < r.count for r in watched):
                channel.connection.sleep(0.1)
        for r in watched:
            r.came_back = [
                letter for letter in self.peek(r.consumer, limit=1_000_000) if letter.replay_id == r.replay_id
            ]

    def purge(self, consumer: str) -> int:
        with self._channel() as channel:
            return channel.queue_purge(self.topology.dead_queue(consumer)).method.message_count
