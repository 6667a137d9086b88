"""Messages, numbered 1, 2, 3… within their chat, ``version`` rising by one on every edit: the
table, its SQL, its events, its representation and its search document.

A field of a message is defined here once: a column of the table, listed in ``SHOWN`` if clients
see it.  The /v1 representation, the data of the message's events (which the stream gateway
sends as they are), the search document and the search hits are all built from ``SHOWN``, so a
new field needs its migration, its column here, its schema in the OpenAPI document and its
property in the search mapping (``chatsys.search.mapping``, which refuses unknown fields).

The primary key is (chat_id, number), so InnoDB stores a chat's messages together and in order:
every read the API makes is within one chat.  ``id`` is a unique AUTO_INCREMENT surrogate that
events carry and the counters consumer flags messages by; clients never see it.
(docs/decisions.md, "Messages are stored by chat".)
"""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Integer,
    PrimaryKeyConstraint,
    Text,
    UniqueConstraint,
    bindparam,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from chatsys.domain import chats, packed
from chatsys.domain.applications import APPLICATIONS
from chatsys.domain.chats import CHATS, ChatKeys, ChatRef
from chatsys.domain.errors import Deleted, NotFound
from chatsys.domain.fields import json_value
from chatsys.domain.keyset import Keyset
from chatsys.domain.numbered import Created, create_numbered
from chatsys.models.meta import TABLE_OPTIONS, Base, Timestamp, utcnow
from chatsys.numbering import IAllocator, message_sequence
from chatsys.outbox import events, writer


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        PrimaryKeyConstraint("chat_id", "number", name="pk_messages"),
        UniqueConstraint("id", name="uq_messages_id"),
        TABLE_OPTIONS,
    )

    # AUTO_INCREMENT in the migrations (SQLAlchemy gives it only to primary key columns).
    id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    chat_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("chats.id"), nullable=False)
    number: Mapped[int] = mapped_column(Integer, nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    # Set once by the counters consumer with the chats.messages_count increment (see Chat.counted).
    counted: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    # Set when the message is deleted: the row stays, a tombstone with no text.
    deleted_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)


MESSAGES = Message.__table__
# The columns clients see, in the order they see them (``number`` shows as ``message_number``).
SHOWN = ("number", "body", "version", "created_at", "updated_at")
# The keys of a message's representation, event data and search document alike, and of what is
# left of a deleted one.
KEYS = ("chat_number", "message_number", *SHOWN[1:])
TOMBSTONE_KEYS = ("chat_number", "message_number", "version", "deleted_at")

COLUMNS = [MESSAGES.c[name] for name in SHOWN]
BY_NUMBER = (MESSAGES.c.chat_id == bindparam("chat_id"), MESSAGES.c.number == bindparam("number"))
READ_ONE = select(*COLUMNS, MESSAGES.c.deleted_at).where(*BY_NUMBER)
LOCK_ONE = select(MESSAGES.c.id, *COLUMNS, MESSAGES.c.deleted_at).where(*BY_NUMBER).with_for_update()
LIVE = MESSAGES.c.deleted_at.is_(None)
# Reads (GET) name their chat by its keys inside their own statement (chats.ChatKeys): a chat's
# messages joined to the chat and its application, both live, by token and chat number.
WITH_CHAT = MESSAGES.join(CHATS, MESSAGES.c.chat_id == CHATS.c.id).join(
    APPLICATIONS, CHATS.c.application_id == APPLICATIONS.c.id
)
READ_BY_KEYS = (
    select(*COLUMNS, MESSAGES.c.deleted_at)
    .select_from(WITH_CHAT)
    .where(*chats.LIVE_BY_KEYS, MESSAGES.c.number == bindparam("number"))
)
PAGES = Keyset(select(*COLUMNS).select_from(WITH_CHAT).where(*chats.LIVE_BY_KEYS, LIVE), MESSAGES.c.number)
# The /v1 list's pages, each row its representation as JSON that MySQL builds (chatsys.domain.packed),
# the one column of the row: the page's cursor is the last representation's message_number.
SHOWN_PAGES = Keyset(
    select(packed.json_object(MESSAGES, SHOWN, KEYS[1:])).select_from(WITH_CHAT).where(*chats.LIVE_BY_KEYS, LIVE),
    MESSAGES.c.number,
)


def representation(chat_number: int, row: Any) -> dict[str, Any]:
    """What clients see of a message: the /v1 JSON, an event's data, a search hit."""
    shown = {name: json_value(getattr(row, name)) for name in SHOWN}
    return {"chat_number": chat_number, "message_number": shown.pop("number"), **shown}


def event(event_type: str, chat: ChatRef, row: Any) -> dict[str, Any]:
    """An outbox event: the representation, plus the keys the consumers work by."""
    data = {
        "application_id": chat.application.id,
        "chat_id": chat.id,
        "message_id": row.id,
        "app_token": chat.application.token,
        **representation(chat.number, row),
    }
    return events.envelope(event_type, data, row.updated_at)


def typed(statement):
    """A text() statement whose result columns named like the shown columns get the table's types
    (a Boolean comes back a bool, as from a Core select, not MySQL's 0 or 1)."""
    return statement.columns(**{name: MESSAGES.c[name].type for name in SHOWN})


def search_document(data: dict[str, Any], deleted: bool = False) -> dict[str, Any]:
    """What the search index holds of a message: its representation (from an event's data, or a
    row's representation with ``app_token``), its application's token, and whether it is a
    tombstone (a deleted message: no text)."""
    fields = {key: "" if deleted and key == "body" else data[key] for key in KEYS}
    return {"app_token": data["app_token"], **fields, "deleted": deleted}


def find(session: Session, chat: ChatRef, number: int) -> Any:
    """The message; raises NotFound, or Deleted for a deleted one."""
    return _live(session.execute(READ_ONE, {"chat_id": chat.id, "number": number}).one_or_none())


def read(session: Session, chat: ChatKeys, number: int) -> Any:
    """:func:`find` for a chat named by its keys, in one statement while the message is there."""
    row = session.execute(READ_BY_KEYS, {**chat.params, "number": number}).one_or_none() if chat.well_formed else None
    if row is None:  # which of the application, the chat and the message is missing decides the answer
        return find(session, chat.resolve(session), number)
    return _live(row)


def _live(row: Any) -> Any:
    if row is None:
        raise NotFound("message")
    if row.deleted_at is not None:
        raise Deleted("message")
    return row


def _page(pages: Keyset, session: Session, chat: ChatKeys, direction: str, cursor: int, limit: int) -> list[Any]:
    rows = pages.fetch(session, chat.params, direction, cursor, limit) if chat.well_formed else []
    if not rows:  # a missing or deleted chat raises; a chat with nothing there is an empty page
        chat.resolve(session)
    return rows


def page(session: Session, chat: ChatKeys, direction: str, cursor: int, limit: int) -> list[Any]:
    """A page of the chat's messages, their shown columns (the chat resolved in the same statement)."""
    return _page(PAGES, session, chat, direction, cursor, limit)


def shown_page(session: Session, chat: ChatKeys, direction: str, cursor: int, limit: int) -> list[dict[str, Any]]:
    """A page of the chat's messages, each its :func:`representation`, read as :data:`SHOWN_PAGES`."""
    rows = _page(SHOWN_PAGES, session, chat, direction, cursor, limit)
    return [{"chat_number": chat.number, **packed.unpack(row)} for row in rows]


def create(
    session: Session, allocator: IAllocator, keys: ChatKeys, body: str, idempotency_key: str | None = None
) -> Created:
    """A new message in the chat ``keys`` name, which is found and locked for its number in one
    statement (``ChatKeys.lock``)."""
    chat, mark = keys.lock(session)
    now = utcnow()
    return create_numbered(
        session,
        allocator,
        table=MESSAGES,
        sequence=message_sequence(chat.id),
        mark=mark,
        values=lambda number: {
            "chat_id": chat.id,
            "number": number,
            "body": body,
            "version": 1,
            "counted": False,
            "created_at": now,
            "updated_at": now,
        },
        event=lambda row: event(events.MESSAGE_CREATED, chat, row),
        existing=lambda number: find(session, chat, number),
        key=idempotency_key,
        fields={"body": body},
    )


def edit(session: Session, chat: ChatRef, number: int, body: str) -> Any:
    """A new body and the next version.  FOR UPDATE: concurrent edits of one message serialise
    here, so each gets its own version and each event carries the body of that version."""
    current = _live(session.execute(LOCK_ONE, {"chat_id": chat.id, "number": number}).one_or_none())
    edited = SimpleNamespace(
        **{**current._asdict(), "body": body, "version": current.version + 1, "updated_at": utcnow()}
    )
    session.execute(
        update(MESSAGES)
        .where(MESSAGES.c.chat_id == chat.id, MESSAGES.c.number == number)
        .values(body=edited.body, version=edited.version, updated_at=edited.updated_at)
    )
    writer.record(session, event(events.MESSAGE_UPDATED, chat, edited))
    return edited


def delete(session: Session, chat: ChatRef, number: int) -> None:
    """Delete the message: its body is erased in this transaction, and a tombstone stays with its
    number (never handed out again), a raised version and ``deleted_at``.  The event takes it out
    of the search index (a tombstone document at that version, which no stale write can undo)
    and out of ``messages_count`` (once)."""
    current = _live(session.execute(LOCK_ONE, {"chat_id": chat.id, "number": number}).one_or_none())
    now = utcnow()
    erased = SimpleNamespace(**{**current._asdict(), "body": "", "version": current.version + 1, "updated_at": now})
    session.execute(
        update(MESSAGES)
        .where(MESSAGES.c.chat_id == chat.id, MESSAGES.c.number == number)
        .values(body=erased.body, version=erased.version, deleted_at=now, updated_at=now)
    )
    deleted = event(events.MESSAGE_DELETED, chat, erased)
    deleted["data"]["deleted_at"] = json_value(now)
    writer.record(session, deleted)
