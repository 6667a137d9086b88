"""Declarative base with a naming convention, so Alembic and error handling see stable names."""

from datetime import UTC, datetime

from sqlalchemy import ColumnElement, MetaData, func, literal
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


# The API's text for a timestamp (chatsys.outbox.events.isoformat), spelled for DATE_FORMAT.
SQL_TIME_FORMAT = "%Y-%m-%dT%H:%i:%s.%fZ"


def shown_time(column) -> ColumnElement[str]:
    """``column`` formatted by MySQL as the API shows it.

    Reads of many rows select this instead of the DATETIME: PyMySQL parsing each value into a
    datetime and Python formatting it back was a quarter of the CPU of a 50-message page.
    """
    return func.date_format(column, literal(SQL_TIME_FORMAT))


def utcnow() -> datetime:
    """Naive UTC 'now' (MySQL DATETIME has no zone; every timestamp in the database is UTC)."""
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    metadata = metadata
