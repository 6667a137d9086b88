"""What the runner needs from a consumer, and the outcomes a consumer reports."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Delivery:
    tag: int
    message_id: str | None
    body: bytes
    redelivered: bool


@dataclass(frozen=True)
class Event:
    delivery: Delivery
    event_id: str
    type: str
    data: dict[str, Any]


class Poison(Exception):
    """This message can never be processed: dead-letter it and carry on."""


class Transient(Exception):
    """A dependency is unavailable: keep the messages and try again after a pause."""


OK = "ok"
RETRY = "retry"


class Consumer(Protocol):
    name: str
    event_types: tuple[str, ...]
    required: dict[str, tuple[type, ...]]

    def apply(self, events: Sequence[Event]) -> dict[int, str | Poison]:
        """Apply a batch; return an outcome per delivery tag: OK, RETRY or a Poison.

        Raises Transient when nothing could be done because a dependency is down.
        """


def decode(consumer: Consumer, delivery: Delivery) -> Event:
    """Parse and check one message, or raise Poison saying what is wrong with it."""
    try:
        envelope = json.loads(delivery.body)
    except (ValueError, UnicodeDecodeError):
        raise Poison("payload is not JSON") from None
    if not isinstance(envelope, dict):
        raise Poison("payload is not a JSON object")
    event_id, event_type, data = envelope.get("event_id"), envelope.get("type"), envelope.get("data")
    if not isinstance(event_id, str) or not isinstance(data, dict):
        raise Poison("payload lacks event_id or data")
    if event_type not in consumer.event_types:
        raise Poison(f"unknown event type {event_type!r} for consumer {consumer.name}")
    for key, types in consumer.required.items():
        value = data.get(key)
        if not isinstance(value, types) or isinstance(value, bool):
            raise Poison(f"data.{key} is missing or of the wrong type")
    return Event(delivery, event_id, event_type, data)
