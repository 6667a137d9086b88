"""Adds an outbox row to the caller's session: it commits or rolls back with the change itself."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session
from zope.sqlalchemy import mark_changed

from chatsys.models import OutboxEvent, utcnow
from chatsys.models.outbox import PENDING
from chatsys.outbox.events import aggregate_key

INSERT = insert(OutboxEvent.__table__)


def record(dbsession: Session, event: dict[str, Any]) -> None:
    now = utcnow()
    dbsession.connection().execute(
        INSERT,
        {
            "event_id": event["event_id"],
            "type": event["type"],
            "aggregate_key": aggregate_key(event),
            "payload": event,
            "status": PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        },
    )
    mark_changed(dbsession)
