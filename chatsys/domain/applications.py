"""Applications, the tenants: the table, its SQL, its events and its representation.

An application is known to clients by its token only: 192 bits from the OS CSPRNG, URL-safe.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String, bindparam, insert, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from chatsys.domain.errors import Deleted, NotFound
from chatsys.domain.fields import isoformat
from chatsys.models.meta import TABLE_OPTIONS, Base, Timestamp, utcnow
from chatsys.outbox import events, writer

TOKEN_BYTES = 24  # 32 URL-safe characters
MAX_TOKEN_LENGTH = 64
# What ``secrets.token_urlsafe`` generates.  Anything else names no application, without a query.
# It is also what refuses a token with trailing spaces, which the column's collation ignores
# (PAD SPACE): keep it strict.
TOKEN_SHAPE = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_TOKEN_LENGTH}}}")


class Application(Base):
    __tablename__ = "applications"
    __table_args__ = (Index("ix_applications_deleted_at", "deleted_at"), TABLE_OPTIONS)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    # Case-sensitive: a token in another case is not this one (migration 0004).
    token: Mapped[str] = mapped_column(String(64, collation="utf8mb4_bin"), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    chats_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # The highest chat number ever committed here (chatsys.numbering): never handed out again.
    last_chat_number: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    created_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    deleted_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    purged_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)


APPLICATIONS = Application.__table__
SHOWN = (APPLICATIONS.c.token, APPLICATIONS.c.name, APPLICATIONS.c.chats_count, APPLICATIONS.c.created_at,
         APPLICATIONS.c.updated_at)  # fmt: skip
BY_TOKEN = select(APPLICATIONS.c.id, APPLICATIONS.c.token, APPLICATIONS.c.deleted_at).where(
    APPLICATIONS.c.token == bindparam("token")
)
LOAD = select(*SHOWN).where(APPLICATIONS.c.id == bindparam("id"))


@dataclass(frozen=True)
class ApplicationRef:
    """An application as the other aggregates know it: its id inside, its token outside."""

    id: int
    token: str


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


# The keys of an application's representation (and of its events' public part), and of what
# is left of a deleted one.
KEYS = ("app_token", "name", "chats_count", "created_at", "updated_at")
TOMBSTONE_KEYS = ("app_token", "deleted_at")


def representation(row: Any) -> dict[str, Any]:
    """What clients see of an application (the /v1 API; the original API shows the same keys)."""
    return {
        "app_token": row.token,
        "name": row.name,
        "chats_count": row.chats_count,
        "created_at": isoformat(row.created_at),
        "updated_at": isoformat(row.updated_at),
    }


def find(session: Session, token: str) -> ApplicationRef:
    """The application of ``token``; raises NotFound, or Deleted once it was deleted."""
    if not TOKEN_SHAPE.fullmatch(token):
        raise NotFound("application")
    row = session.execute(BY_TOKEN, {"token": token}).one_or_none()
    if row is None:
        raise NotFound("application")
    if row.deleted_at is not None:
        raise Deleted("application")
    # The stored spelling: it becomes the events' keys and Elasticsearch's chat key.
    return ApplicationRef(row.id, row.token)


def load(session: Session, application: ApplicationRef) -> Any:
    return session.execute(LOAD, {"id": application.id}).one()


def delete(session: Session, application: ApplicationRef) -> datetime:
    """Delete the application: from this transaction's commit on its token names nothing (every
    route answers 404).  Its name is erased now; its chats, messages and search documents are
    purged in the background (``application.deleted``: chatsys.consumers.purger)."""
    now = utcnow()
    deleted = session.execute(
        update(APPLICATIONS)
        .where(APPLICATIONS.c.id == application.id, APPLICATIONS.c.deleted_at.is_(None))
        .values(name="", deleted_at=now, updated_at=now)
    ).rowcount
    if not deleted:
        raise Deleted("application")  # a concurrent delete committed first
    data = {"application_id": application.id, "app_token": application.token, "deleted_at": isoformat(now)}
    writer.record(session, events.envelope(events.APPLICATION_DELETED, data, now))
    return now


def _event(event_type: str, application_id: int, row: Any) -> dict[str, Any]:
    return events.envelope(event_type, {"application_id": application_id, **representation(row)}, row.updated_at)


def create(session: Session, name: str) -> Any:
    now = utcnow()
    values = {"token": new_token(), "name": name, "chats_count": 0, "created_at": now, "updated_at": now}
    application_id = session.execute(insert(APPLICATIONS), values).lastrowid
    row = load(session, ApplicationRef(application_id, values["token"]))
    writer.record(session, _event(events.APPLICATION_CREATED, application_id, row))
    return row


def rename(session: Session, application: ApplicationRef, name: str) -> Any:
    session.execute(
        update(APPLICATIONS).where(APPLICATIONS.c.id == application.id).values(name=name, updated_at=utcnow())
    )
    row = load(session, application)
    writer.record(session, _event(events.APPLICATION_UPDATED, application.id, row))
    return row
