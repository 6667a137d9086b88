"""Client idempotency keys: a retried POST with the same key returns the resource it created."""

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from chatsys.models.meta import TABLE_OPTIONS, Base, Timestamp


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"
    __table_args__ = (
        Index("ix_idempotency_keys_created_at", "created_at"),
        TABLE_OPTIONS,
    )

    # The primary key is the UNIQUE(parent, key) of the brief, scoped by resource kind: the
    # numbering sequence's kind, "chat" or "message".
    scope: Mapped[str] = mapped_column(String(16), primary_key=True)
    parent_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    key: Mapped[str] = mapped_column("idem_key", String(255, collation="utf8mb4_bin"), primary_key=True)
    # SHA-256 of the request body: the same key with a different body is a client error.
    fingerprint: Mapped[str] = mapped_column(String(64), nullable=False)
    resource_number: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
