"""The Alembic migrations produce exactly the schema the models describe."""

import os

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from alembic import command
from chatsys.models import metadata
from tests.support.db import ROOT, TESTING_INI, drop_database, server_engine


def test_migrated_schema_matches_models(engine):
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata())
    assert diff == []


def primary_key(conn, table: str) -> list[str]:
    return inspect(conn).get_pk_constraint(table)["constrained_columns"]


def unique_keys(conn, table: str) -> dict[str, list[str]]:
    return {u["name"]: u["column_names"] for u in inspect(conn).get_unique_constraints(table)}


def test_messages_are_stored_by_chat_and_number(engine):
    with engine.connect() as conn:
        assert primary_key(conn, "messages") == ["chat_id", "number"]
        assert unique_keys(conn, "messages") == {"uq_messages_id": ["id"]}


@pytest.fixture
def scratch(settings):
    """A database of its own, for migrating down and up without disturbing the run's."""
    url = make_url(settings["sqlalchemy.url"])
    url = url.set(database=f"{url.database}_migrations").render_as_string(hide_password=False)
    config = Config(TESTING_INI)
    config.set_main_option("script_location", os.path.join(ROOT, "alembic"))
    config.attributes["settings"] = {**settings, "sqlalchemy.url": url}
    drop_database(url)
    with server_engine(url).connect() as conn:
        conn.execute(text(f"CREATE DATABASE `{make_url(url).database}` CHARACTER SET utf8mb4"))
    engine = create_engine(url)
    yield config, engine
    engine.dispose()
    drop_database(url)


def test_moving_the_messages_primary_key_keeps_rows_and_uniqueness(scratch):
    config, engine = scratch
    command.upgrade(config, "0002")
    now = "2026-11-28 00:00:00"
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO applications (id, token, name, created_at, updated_at) VALUES (1, 't', 'a', :t, :t)"),
            {"t": now},
        )
        conn.execute(
            text(
                "INSERT INTO chats (id, application_id, number, created_at, updated_at) "
                "VALUES (1, 1, 1, :t, :t), (2, 1, 2, :t, :t)"
            ),
            {"t": now},
        )
        for chat_id, number in ((2, 1), (1, 1), (1, 2)):
            conn.execute(
                text(
                    "INSERT INTO messages (chat_id, number, body, created_at, updated_at) VALUES (:c, :n, 'b', :t, :t)"
                ),
                {"c": chat_id, "n": number, "t": now},
            )

    command.upgrade(config, "head")
    with engine.begin() as conn:
        assert primary_key(conn, "messages") == ["chat_id", "number"]
        rows = conn.execute(text("SELECT chat_id, number, id FROM messages ORDER BY chat_id, number")).all()
        assert rows == [(1, 1, 2), (1, 2, 3), (2, 1, 1)]  # ids kept
        new_id = conn.execute(
            text("INSERT INTO messages (chat_id, number, body, created_at, updated_at) VALUES (1, 3, 'b', :t, :t)"),
            {"t": now},
        ).lastrowid
        assert new_id == 4  # still AUTO_INCREMENT
    with pytest.raises(IntegrityError, match="Duplicate entry '1-3'"), engine.begin() as conn:
        conn.execute(
            text("INSERT INTO messages (chat_id, number, body, created_at, updated_at) VALUES (1, 3, 'c', :t, :t)"),
            {"t": now},
        )

    command.downgrade(config, "0002")
    with engine.connect() as conn:
        assert primary_key(conn, "messages") == ["id"]
        assert unique_keys(conn, "messages") == {"uq_messages_chat_id_number": ["chat_id", "number"]}
        assert conn.execute(text("SELECT COUNT(*) FROM messages")).scalar_one() == 4
