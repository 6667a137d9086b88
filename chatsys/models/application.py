"""An application: the tenant.  Identified to clients only by its token."""

from datetime import datetime

from sqlalchemy import BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from chatsys.models.meta import TABLE_OPTIONS, Base, Timestamp


class Application(Base):
    __tablename__ = "applications"
    __table_args__ = TABLE_OPTIONS

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    # Case-sensitive: a token in another case is not this one.  Trailing spaces still compare
    # equal under this collation (PAD SPACE); the lookup's shape check refuses them.
    token: Mapped[str] = mapped_column(String(64, collation="utf8mb4_bin"), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    chats_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    created_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
