"""Alembic environment: reads the app's settings from the same ini (plus CHATSYS_* overrides)."""

from logging.config import fileConfig

import plaster
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from alembic import context
from chatsys.models import metadata
from chatsys.runtime.services import make_engine
from chatsys.runtime.settings import resolve_settings

config = context.config
if config.config_file_name and config.get_section("loggers"):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

# Callers that drive Alembic from Python (the test suite) may hand over resolved settings.
settings = config.attributes.get("settings") or resolve_settings(
    plaster.get_settings(config.config_file_name, "app:main")
)


def ensure_database(url: str) -> None:
    """Create the database named in the URL if it does not exist yet (first run on a machine)."""
    parsed = make_url(url)
    server = create_engine(parsed.set(database=""), isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as conn:
            conn.execute(
                text(
                    f"CREATE DATABASE IF NOT EXISTS `{parsed.database}` "
                    "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
                )
            )
    finally:
        server.dispose()


def run_migrations_offline() -> None:
    context.configure(url=settings["sqlalchemy.url"], target_metadata=metadata(), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    ensure_database(settings["sqlalchemy.url"])
    engine = make_engine(settings)
    try:
        with engine.connect() as connection:
            context.configure(connection=connection, target_metadata=metadata())
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
