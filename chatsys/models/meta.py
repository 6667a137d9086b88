"""Declarative base with a naming convention, so Alembic and error handling see stable names."""

from datetime import UTC, datetime

from sqlalchemy import MetaData
from sqlalchemy.dialects.mysql import DATETIME
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

TABLE_OPTIONS = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_unicode_ci",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# Microsecond precision: ordering by time and external versions need more than seconds.
Timestamp = DATETIME(fsp=6)


def utcnow() -> datetime:
    """Naive UTC 'now' (MySQL DATETIME has no zone; every timestamp in the database is UTC)."""
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    metadata = metadata
