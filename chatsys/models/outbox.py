"""The transactional outbox: one row per domain event, written with the change it describes."""

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from chatsys.models.meta import TABLE_OPTIONS, Base, Timestamp

PENDING = "pending"
PUBLISHED = "published"
PARKED = "parked"


class OutboxEvent(Base):
    __tablename__ = "outbox_events"
    __table_args__ = (
        # The relay's claim query and the purge of published rows both walk this index.
        # For published rows next_attempt_at holds the publish time.
        Index("ix_outbox_events_status_next_attempt_at_id", "status", "next_attempt_at", "id"),
        TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36), nullable=False, unique=True)
    type: Mapped[str] = mapped_column(String(64), nullable=False)
    aggregate_key: Mapped[str] = mapped_column(String(191), nullable=False)
    payload: Mapped[dict] = mapped_column(JSON, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    last_error: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    published_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
