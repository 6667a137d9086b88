"""A message, numbered 1, 2, 3… within its chat; ``version`` rises by one on every edit.

The primary key is (chat_id, number), so InnoDB stores a chat's messages together and in order:
every read the API makes is within one chat.  ``id`` is a unique AUTO_INCREMENT surrogate that
events carry and the counters consumer flags messages by; clients never see it.
(docs/decisions.md, "Messages are stored by chat".)
"""

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Integer,
    PrimaryKeyConstraint,
    Text,
    UniqueConstraint,
    func,
    literal_column,
)
from sqlalchemy.orm import Mapped, mapped_column

from chatsys.models.meta import TABLE_OPTIONS, Base, Timestamp, shown_time


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
    # See Chat.counted: set once by the counters consumer with the chats.messages_count increment.
    counted: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)


_TABLE = Message.__table__
# What the API shows of a message (chatsys.representations.message_json, search hits), packed by
# MySQL into one text column that reads select and ``unpack_shown`` takes apart:
#
#     "<number> <version> <created_at> <updated_at> <body>"
#
# with the timestamps already in the API's text (shown_time).  None of the first four fields can
# hold a space and the body comes last, so one split with a limit recovers the body whole,
# spaces and all.  One column instead of five: PyMySQL parses a description packet per column of
# every result and a length-prefixed field per column of every row, in Python, and that was a
# third of a 50-message page's CPU.  The packed page cost 190 µs of CPU against 260 µs for five
# columns, the single message 70 against 95 µs (timeit, same rows).
#
# CONCAT, not CONCAT_WS: CONCAT_WS skips a NULL and would shift the fields after it, where
# CONCAT's NULL fails the read loudly (the columns are NOT NULL; this is for the day one isn't).
_SPACE = literal_column("' '")  # inline SQL, not a parameter per use
SHOWN = func.concat(
    _TABLE.c.number,
    _SPACE,
    _TABLE.c.version,
    _SPACE,
    shown_time(_TABLE.c.created_at),
    _SPACE,
    shown_time(_TABLE.c.updated_at),
    _SPACE,
    _TABLE.c.body,
).label("shown")


def shown_number(shown: str) -> int:
    """The message number at the head of a value of ``SHOWN``."""
    return int(shown.partition(" ")[0])


def unpack_shown(shown: str) -> tuple[int, str, int, str, str]:
    """A value of ``SHOWN`` as (number, body, version, created_at, updated_at)."""
    number, version, created_at, updated_at, body = shown.split(" ", 4)
    return int(number), body, int(version), created_at, updated_at
