"""Adds an outbox row to the caller's session: it commits or rolls back with the change itself."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from chatsys.models import OutboxEvent, utcnow
from chatsys.models.outbox import PENDING
from chatsys.outbox.events import aggregate_key


def record(dbsession: Session, event: dict[str, Any]) -> OutboxEvent:
    now = utcnow()
    row = OutboxEvent(
        event_id=event["event_id"],
        type=event["type"],
        aggregate_key=aggregate_key(event),
        payload=event,
        status=PENDING,
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    dbsession.add(row)
    return row
