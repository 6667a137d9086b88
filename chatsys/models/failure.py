"""Why a consumer dead-lettered a message: shown by ``chatsys-deadletters list``."""

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from chatsys.models.meta import TABLE_OPTIONS, Base, Timestamp


class ConsumerFailure(Base):
    __tablename__ = "consumer_failures"
    __table_args__ = TABLE_OPTIONS

    consumer: Mapped[str] = mapped_column(String(32), primary_key=True)
    # The AMQP message_id (the event id), or a digest of the body when a message has none.
    message_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    error: Mapped[str] = mapped_column(Text, nullable=False)
    failed_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
