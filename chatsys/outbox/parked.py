"""Outbox rows the relay parked (the broker refused them ``relay.max_attempts`` times): count,
list, replay and purge them.  The relay also retries them on its own, every
``relay.parked_retry`` seconds; ``replay`` (``chatsys-deadletters``) makes them due at once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.engine import Engine

from chatsys.models import utcnow
from chatsys.models.outbox import PARKED, PENDING


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
        return conn.execute(text(f"SELECT COUNT(*) FROM outbox_events WHERE status = '{PARKED}'")).scalar_one()


def parked_rows(engine: Engine, limit: int = 100) -> list[ParkedRow]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT id, event_id, type, attempts, last_error, created_at, next_attempt_at FROM outbox_events "
                f"WHERE status = '{PARKED}' ORDER BY id LIMIT :limit"
            ),
            {"limit": limit},
        ).all()
    return [ParkedRow(*r) for r in rows]


def replay_parked(engine: Engine, limit: int | None = None) -> int:
    """Make parked rows pending again, with a fresh attempt budget."""
    sql = (
        f"UPDATE outbox_events SET status = '{PENDING}', attempts = 0, next_attempt_at = :now, "
        f"last_error = NULL WHERE status = '{PARKED}' ORDER BY id"
    )
    params: dict = {"now": utcnow()}
    if limit is not None:
        sql += " LIMIT :limit"
        params["limit"] = limit
    with engine.begin() as conn:
        return conn.execute(text(sql), params).rowcount


def purge_parked(engine: Engine) -> int:
    with engine.begin() as conn:
        return conn.execute(text(f"DELETE FROM outbox_events WHERE status = '{PARKED}'")).rowcount
