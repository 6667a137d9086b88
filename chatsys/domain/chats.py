"""Chats, numbered 1, 2, 3… within their application: the table, its SQL, its events and its
representation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    bindparam,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from chatsys.domain import applications
from chatsys.domain.applications import APPLICATIONS, ApplicationRef
from chatsys.domain.errors import Deleted, NotFound
from chatsys.domain.fields import isoformat
from chatsys.domain.keyset import Keyset
from chatsys.domain.numbered import Created, create_numbered
from chatsys.models.meta import TABLE_OPTIONS, Base, Timestamp, utcnow
from chatsys.numbering import IAllocator, chat_sequence
from chatsys.outbox import events, writer


class Chat(Base):
    __tablename__ = "chats"
    __table_args__ = (
        UniqueConstraint("application_id", "number", name="uq_chats_application_id_number"),
        Index("ix_chats_deleted_at", "deleted_at"),
        TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    application_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("applications.id"), nullable=False)
    number: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    messages_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # Set by the counters consumer in the same transaction as the increment of
    # applications.chats_count: the per-row inbox that makes the increment exactly-once and lets
    # the reconciler run while traffic flows (docs/decisions.md).
    counted: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    # The highest message number ever committed here (chatsys.numbering): never handed out again.
    last_message_number: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    created_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    deleted_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    purged_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)


CHATS = Chat.__table__
SHOWN = (CHATS.c.number, CHATS.c.name, CHATS.c.messages_count, CHATS.c.created_at, CHATS.c.updated_at)
BY_NUMBER = (CHATS.c.application_id == bindparam("application_id"), CHATS.c.number == bindparam("number"))
LOAD = select(*SHOWN).where(*BY_NUMBER)
# A chat by its public keys, in one query: the application's token and the chat's number.
BY_KEYS = (
    select(
        CHATS.c.id,
        CHATS.c.number,
        CHATS.c.deleted_at,
        APPLICATIONS.c.id.label("application_id"),
        APPLICATIONS.c.token,
        APPLICATIONS.c.deleted_at.label("application_deleted_at"),
    )
    .join_from(CHATS, APPLICATIONS, CHATS.c.application_id == APPLICATIONS.c.id)
    .where(APPLICATIONS.c.token == bindparam("token"), CHATS.c.number == bindparam("number"))
)
# A live chat of a live application by its public keys, for a statement that joins ``CHATS`` and
# ``APPLICATIONS``: a read of a chat's messages names its chat with these in its own statement
# rather than looking it up first (:class:`ChatKeys`).
LIVE_BY_KEYS = (
    APPLICATIONS.c.token == bindparam("token"),
    CHATS.c.number == bindparam("chat_number"),
    APPLICATIONS.c.deleted_at.is_(None),
    CHATS.c.deleted_at.is_(None),
)
# A live chat of a live application by its public keys, its row locked until the transaction ends
# and its high-water mark read (chatsys.numbering): a create of a message finds and fences its
# chat in one statement.  The application is read in a subquery, which locks nothing at READ
# COMMITTED, so creates in the application's other chats do not wait for this one.
LOCK_BY_KEYS = (
    select(CHATS.c.id, CHATS.c.application_id, CHATS.c.last_message_number)
    .where(
        CHATS.c.application_id
        == select(APPLICATIONS.c.id)
        .where(APPLICATIONS.c.token == bindparam("token"), APPLICATIONS.c.deleted_at.is_(None))
        .scalar_subquery(),
        CHATS.c.number == bindparam("chat_number"),
        CHATS.c.deleted_at.is_(None),
    )
    .with_for_update()
)
PAGES = Keyset(
    select(*SHOWN).where(CHATS.c.application_id == bindparam("application_id"), CHATS.c.deleted_at.is_(None)),
    CHATS.c.number,
)


@dataclass(frozen=True)
class ChatRef:
    """A chat as the other aggregates know it."""

    id: int
    number: int
    application: ApplicationRef

    @property
    def key(self) -> str:
        """The chat's key outside MySQL (events, Elasticsearch routing): token and number."""
        return f"{self.application.token}:{self.number}"


@dataclass(frozen=True)
class ChatKeys:
    """A chat as a request names it, not looked up: its application's token and its number.

    A read of the chat's messages resolves these inside its own statement (:data:`LIVE_BY_KEYS`),
    one statement where a lookup and then the read were two; only a read that finds nothing asks
    :func:`find` whether the chat is there, to tell a 404 from an empty page.  Nothing is cached:
    a deleted application or chat stops matching at its delete's commit, on every process.
    (docs/decisions.md, "Reads name their chat inside their own statement".)
    """

    token: str
    number: int

    @property
    def params(self) -> dict[str, Any]:
        """The bound parameters of :data:`LIVE_BY_KEYS`."""
        return {"token": self.token, "chat_number": self.number}

    @property
    def well_formed(self) -> bool:
        """Whether the token can name an application at all (see ``applications.TOKEN_SHAPE``):
        one that cannot is not looked up, since the column's collation ignores trailing spaces."""
        return applications.TOKEN_SHAPE.fullmatch(self.token) is not None

    def resolve(self, session: Session) -> ChatRef:
        """The chat (one query); raises NotFound or Deleted saying which of the two is missing."""
        return find(session, self.token, self.number)

    def lock(self, session: Session) -> tuple[ChatRef, int]:
        """The chat, its row locked until the transaction ends, and its high-water mark, in one
        statement (:data:`LOCK_BY_KEYS`); raises as :meth:`resolve` when it is not there."""
        row = self._lock(session)
        if row is None:
            self.resolve(session)  # raises for a missing or deleted application or chat
            row = self._lock(session)  # it is there: committed between the two statements
            if row is None:
                raise NotFound("chat")
        return ChatRef(row.id, self.number, ApplicationRef(row.application_id, self.token)), row.last_message_number

    def _lock(self, session: Session) -> Any:
        return session.execute(LOCK_BY_KEYS, self.params).one_or_none() if self.well_formed else None


# The keys of a chat's representation (and of its events' public part), and of what is left of a
# deleted one.
KEYS = ("chat_number", "name", "messages_count", "created_at", "updated_at")
TOMBSTONE_KEYS = ("chat_number", "deleted_at")


def representation(row: Any) -> dict[str, Any]:
    """What clients see of a chat (the /v1 API)."""
    return {
        "chat_number": row.number,
        "name": row.name,
        "messages_count": row.messages_count,
        "created_at": isoformat(row.created_at),
        "updated_at": isoformat(row.updated_at),
    }


def find(session: Session, token: str, number: int) -> ChatRef:
    """The chat ``number`` of the application ``token`` (one query); raises NotFound or Deleted
    saying which of the two is missing."""
    if applications.TOKEN_SHAPE.fullmatch(token):
        row = session.execute(BY_KEYS, {"token": token, "number": number}).one_or_none()
        if row is not None:
            if row.application_deleted_at is not None:
                raise Deleted("application")
            if row.deleted_at is not None:
                raise Deleted("chat")
            return ChatRef(row.id, row.number, ApplicationRef(row.application_id, row.token))
    applications.find(session, token)  # raises for a missing or deleted application
    raise NotFound("chat")


def load(session: Session, chat: ChatRef) -> Any:
    return session.execute(LOAD, {"application_id": chat.application.id, "number": chat.number}).one()


def page(session: Session, application: ApplicationRef, direction: str, cursor: int, limit: int) -> list[Any]:
    return PAGES.fetch(session, {"application_id": application.id}, direction, cursor, limit)


def _event(event_type: str, chat: ChatRef, row: Any) -> dict[str, Any]:
    data = {"application_id": chat.application.id, "chat_id": chat.id, "app_token": chat.application.token}
    return events.envelope(event_type, {**data, **representation(row)}, row.updated_at)


def create(
    session: Session,
    allocator: IAllocator,
    application: ApplicationRef,
    name: str | None,
    idempotency_key: str | None = None,
) -> Created:
    now = utcnow()
    return create_numbered(
        session,
        allocator,
        table=CHATS,
        sequence=chat_sequence(application.id),
        values=lambda number: {
            "application_id": application.id,
            "number": number,
            "name": name,
            "messages_count": 0,
            "counted": False,
            "created_at": now,
            "updated_at": now,
        },
        event=lambda row: _event(events.CHAT_CREATED, ChatRef(row.id, row.number, application), row),
        existing=lambda number: load(session, ChatRef(0, number, application)),
        key=idempotency_key,
        fields={} if name is None else {"name": name},
    )


def rename(session: Session, chat: ChatRef, name: str) -> Any:
    session.execute(update(CHATS).where(CHATS.c.id == chat.id).values(name=name, updated_at=utcnow()))
    row = load(session, chat)
    writer.record(session, _event(events.CHAT_UPDATED, chat, row))
    return row


def delete(session: Session, chat: ChatRef) -> None:
    """Delete the chat: from this transaction's commit on no route reaches it or its messages, and
    no message can be created in it (a create locks the chat's row and refuses a deleted one).  Its
    name is erased now; its messages and their search documents are purged in the background
    (``chat.deleted``: chatsys.consumers.purger); the application's chats_count goes down once
    (the counters consumer).  One row changes here, whatever the chat's size."""
    now = utcnow()
    deleted = session.execute(
        update(CHATS)
        .where(CHATS.c.id == chat.id, CHATS.c.deleted_at.is_(None))
        .values(name=None, deleted_at=now, updated_at=now)
    ).rowcount
    if not deleted:
        raise Deleted("chat")  # a concurrent delete committed first
    data = {
        "application_id": chat.application.id,
        "chat_id": chat.id,
        "app_token": chat.application.token,
        "chat_number": chat.number,
        "deleted_at": isoformat(now),
    }
    writer.record(session, events.envelope(events.CHAT_DELETED, data, now))
