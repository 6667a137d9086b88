"""A message, numbered 1, 2, 3… within its chat; ``version`` rises by one on every edit."""

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from chatsys.models.meta import TABLE_OPTIONS, Base, Timestamp, shown_time


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("chat_id", "number", name="uq_messages_chat_id_number"),
        TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    chat_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("chats.id"), nullable=False)
    number: Mapped[int] = mapped_column(Integer, nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    # See Chat.counted: set once by the counters consumer with the chats.messages_count increment.
    counted: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)


_TABLE = Message.__table__
# What the API shows of a message (chatsys.representations.message_json, search hits), with the
# timestamps formatted by MySQL (shown_time): reads select these and decode nothing else.
# Readers unpack rows of these by position (a Row's attribute access costs five times as much),
# so the order is part of the contract: number, body, version, created_at, updated_at.
SHOWN = (
    _TABLE.c.number,
    _TABLE.c.body,
    _TABLE.c.version,
    shown_time(_TABLE.c.created_at),
    shown_time(_TABLE.c.updated_at),
)
