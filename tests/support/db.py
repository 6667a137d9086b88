"""Per-run test databases: created with Alembic, emptied between tests, dropped at the end."""

from __future__ import annotations

import os

from alembic.config import Config
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from alembic import command

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TESTING_INI = os.path.join(ROOT, "testing.ini")
# Children first, so foreign keys never block the DELETEs.
TABLES = ("messages", "chats", "applications", "idempotency_keys", "outbox_events", "consumer_failures")


def server_engine(url: str):
    return create_engine(make_url(url).set(database=""), isolation_level="AUTOCOMMIT")


def create_database(settings: dict) -> None:
    """Drop and recreate the database, then migrate it to head with Alembic (as deployments do)."""
    url = settings["sqlalchemy.url"]
    name = make_url(url).database
    engine = server_engine(url)
    with engine.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
    engine.dispose()
    config = Config(TESTING_INI)
    config.set_main_option("script_location", os.path.join(ROOT, "alembic"))
    config.attributes["settings"] = settings
    command.upgrade(config, "head")


def drop_database(url: str) -> None:
    engine = server_engine(url)
    with engine.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS `{make_url(url).database}`"))
    engine.dispose()


def empty_tables(engine) -> None:
    with engine.begin() as conn:
        for table in TABLES:
            conn.execute(text(f"DELETE FROM {table}"))
