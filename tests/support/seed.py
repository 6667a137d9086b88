"""Rows straight into MySQL, for tests that need many of them fast (not through the API)."""

from __future__ import annotations

from sqlalchemy import text

INSERT_APPLICATION = text(
    "INSERT INTO applications (token, name, created_at, updated_at) VALUES (:token, 'seeded', NOW(6), NOW(6))"
)
INSERT_CHAT = text(
    "INSERT INTO chats (application_id, number, created_at, updated_at) "
    "VALUES (:application_id, :number, NOW(6), NOW(6))"
)
INSERT_MESSAGE = text(
    "INSERT INTO messages (chat_id, number, body, created_at, updated_at) "
    "VALUES (:chat_id, :number, :body, NOW(6), NOW(6))"
)


def application(conn, token: str) -> int:
    return conn.execute(INSERT_APPLICATION, {"token": token}).lastrowid


def chat(conn, application_id: int, number: int) -> int:
    return conn.execute(INSERT_CHAT, {"application_id": application_id, "number": number}).lastrowid


def messages(conn, rows: list[dict]) -> None:
    """``rows``: dicts of chat_id, number, body (one multi-row INSERT)."""
    conn.execute(INSERT_MESSAGE, rows)
