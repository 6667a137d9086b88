"""Assertions on the state of the whole pipeline: MySQL truth vs counts, outbox, queues."""

from __future__ import annotations

from sqlalchemy import text

from tests.support.wait import wait_for

# Every live parent's count against its live children (I5); deleted parents are out of sight.
COUNT_DRIFT = """
SELECT 'application' AS kind, a.id, a.chats_count AS stored,
       (SELECT COUNT(*) FROM chats c WHERE c.application_id = a.id AND c.deleted_at IS NULL) AS actual
FROM applications a WHERE a.deleted_at IS NULL
UNION ALL
SELECT 'chat', c.id, c.messages_count,
       (SELECT COUNT(*) FROM messages m WHERE m.chat_id = c.id AND m.deleted_at IS NULL)
FROM chats c WHERE c.deleted_at IS NULL
"""


def count_drift(engine) -> list:
    with engine.connect() as conn:
        return [r for r in conn.execute(text(COUNT_DRIFT)).all() if r.stored != r.actual]


def outbox_status(engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT status, COUNT(*) FROM outbox_events GROUP BY status")).all()
    return dict(rows)


def queue_depth(channel, queue: str) -> int:
    return channel.queue_declare(queue, passive=True).method.message_count


def wait_drained(engine, timeout: float = 60.0) -> None:
    """Wait until nothing is pending in the outbox and every count equals COUNT(*)."""
    wait_for(lambda: outbox_status(engine).get("pending", 0) == 0, timeout, message="outbox drained")
    wait_for(lambda: not count_drift(engine), timeout, message="counts equal COUNT(*)")


def message_truth(engine) -> dict[str, tuple[int, str]]:
    """What the search index must hold: doc id → (version, body) of every message in MySQL."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT a.token, c.number AS chat, m.number, m.version, m.body FROM messages m "
                "JOIN chats c ON c.id = m.chat_id JOIN applications a ON a.id = c.application_id"
            )
        ).all()
    return {f"{r.token}:{r.chat}:{r.number}": (r.version, r.body) for r in rows}


def indexed(es_double, alias: str) -> dict[str, tuple[int, str]]:
    """doc id → (version, body) as the Elasticsearch double holds them."""
    return {k: (d.version, d.source["body"]) for k, d in es_double.documents(alias).items()}
