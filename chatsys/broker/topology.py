"""The RabbitMQ topology, declared idempotently by every process at start and after each reconnect.

    <ns>.events   topic exchange, durable: every domain event, routing key = event type
    <ns>.dead     direct exchange, durable: dead letters, routing key = the queue they came from
    <ns>.indexer  quorum queue  ← message.created, message.updated, message.deleted
    <ns>.counters quorum queue  ← chat.created, chat.deleted, message.created, message.deleted
    <ns>.purger   quorum queue  ← chat.deleted, application.deleted
    <ns>.<consumer>.dead   quorum queue ← <ns>.dead with key <ns>.<consumer>
    <ns>.stream   stream queue ← every event (#): the history clients resume from through the
                  stream gateway, kept ``stream_max_age`` (and at most ``stream_max_bytes``)

Consumer queues dead-letter rejected messages, and messages delivered more than the delivery
limit, at-least-once (quorum queue ``at-least-once`` strategy, which needs ``reject-publish``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from chatsys.outbox.events import (
    APPLICATION_DELETED,
    CHAT_CREATED,
    CHAT_DELETED,
    MESSAGE_CREATED,
    MESSAGE_DELETED,
    MESSAGE_UPDATED,
)

if TYPE_CHECKING:
    from pika.adapters.blocking_connection import BlockingChannel

INDEXER = "indexer"
COUNTERS = "counters"
PURGER = "purger"

# Which event types each consumer's queue receives.
BINDINGS: dict[str, tuple[str, ...]] = {
    INDEXER: (MESSAGE_CREATED, MESSAGE_UPDATED, MESSAGE_DELETED),
    COUNTERS: (CHAT_CREATED, CHAT_DELETED, MESSAGE_CREATED, MESSAGE_DELETED),
    PURGER: (CHAT_DELETED, APPLICATION_DELETED),
}
CONSUMERS = tuple(BINDINGS)


@dataclass(frozen=True)
class Topology:
    namespace: str
    delivery_limit: int = 5
    stream_max_age: str = "24h"  # RabbitMQ's x-max-age: a number and a unit, Y M D h m s
    stream_max_bytes: int = 1 << 30
    stream_segment_bytes: int = 0  # 0: RabbitMQ's default, not sent

    @property
    def events_exchange(self) -> str:
        return f"{self.namespace}.events"

    @property
    def dead_exchange(self) -> str:
        return f"{self.namespace}.dead"

    def queue(self, consumer: str) -> str:
        return f"{self.namespace}.{consumer}"

    def dead_queue(self, consumer: str) -> str:
        return f"{self.namespace}.{consumer}.dead"

    @property
    def stream(self) -> str:
        return f"{self.namespace}.stream"

    def stream_arguments(self) -> dict:
        arguments = {
            "x-queue-type": "stream",
            "x-max-age": self.stream_max_age,
            "x-max-length-bytes": self.stream_max_bytes,
        }
        if self.stream_segment_bytes:
            arguments["x-stream-max-segment-size-bytes"] = self.stream_segment_bytes
        return arguments

    def queue_arguments(self, consumer: str) -> dict:
        return {
            "x-queue-type": "quorum",
            "x-delivery-limit": self.delivery_limit,
            "x-dead-letter-exchange": self.dead_exchange,
            "x-dead-letter-routing-key": self.queue(consumer),
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }

    def declare(self, channel: BlockingChannel) -> None:
        """Declare exchanges, queues and bindings (idempotent)."""
        channel.exchange_declare(self.events_exchange, exchange_type="topic", durable=True)
        channel.exchange_declare(self.dead_exchange, exchange_type="direct", durable=True)
        for consumer, event_types in BINDINGS.items():
            dead = self.dead_queue(consumer)
            channel.queue_declare(dead, durable=True, arguments={"x-queue-type": "quorum"})
            channel.queue_bind(dead, self.dead_exchange, routing_key=self.queue(consumer))
            queue = self.queue(consumer)
            channel.queue_declare(queue, durable=True, arguments=self.queue_arguments(consumer))
            for event_type in event_types:
                channel.queue_bind(queue, self.events_exchange, routing_key=event_type)
        # Every event routes somewhere, so the relay's mandatory publishes are never returned for
        # an event type that no consumer takes (application.*, chat.updated).
        channel.queue_declare(self.stream, durable=True, arguments=self.stream_arguments())
        channel.queue_bind(self.stream, self.events_exchange, routing_key="#")

    def delete(self, channel: BlockingChannel) -> None:
        """Remove everything :meth:`declare` made (test namespaces only)."""
        for consumer in CONSUMERS:
            channel.queue_delete(self.queue(consumer))
            channel.queue_delete(self.dead_queue(consumer))
        channel.queue_delete(self.stream)
        channel.exchange_delete(self.events_exchange)
        channel.exchange_delete(self.dead_exchange)
