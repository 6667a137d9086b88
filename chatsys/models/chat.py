"""A chat, numbered 1, 2, 3… within its application."""

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from chatsys.models.meta import TABLE_OPTIONS, Base, Timestamp


class Chat(Base):
    __tablename__ = "chats"
    __table_args__ = (
        UniqueConstraint("application_id", "number", name="uq_chats_application_id_number"),
        TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    application_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("applications.id"), nullable=False)
    number: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    messages_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # Set by the counters consumer in the same transaction as the increment of
    # applications.chats_count: the per-row inbox that makes the increment exactly-once and lets
    # the reconciler run while traffic flows (see docs/decisions.md).
    counted: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
