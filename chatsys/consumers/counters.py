"""The counters consumer: ``chat.created`` → applications.chats_count, ``message.created`` →
chats.messages_count, exactly once in outcome.

Each child row has a ``counted`` flag — the inbox, kept on the row itself (docs/decisions.md).
One transaction per batch: lock the parent rows in a fixed order (applications, then chats, each
by id), find which children of the batch are still uncounted, flag them, and add that many to
each parent.  A redelivered event finds its child flagged and adds nothing; the reconciler takes
the same locks, so it can run at any time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import sqlalchemy.exc
from sqlalchemy import bindparam, text
from sqlalchemy.engine import Connection, Engine

from chatsys.consumers.base import OK, Event, Poison, Transient
from chatsys.outbox.events import CHAT_CREATED, MESSAGE_CREATED
from chatsys.runtime.faults import WORKER_AFTER_COMMIT, fault_point


def _q(sql: str):
    return text(sql).bindparams(bindparam("ids", expanding=True))


LOCK_APPLICATIONS = _q("SELECT id FROM applications WHERE id IN :ids ORDER BY id FOR UPDATE")
LOCK_CHATS = _q("SELECT id FROM chats WHERE id IN :ids ORDER BY id FOR UPDATE")
UNCOUNTED_CHATS = _q("SELECT id, application_id FROM chats WHERE id IN :ids AND counted = 0")
UNCOUNTED_MESSAGES = _q("SELECT id, chat_id FROM messages WHERE id IN :ids AND counted = 0")
EXISTING_CHATS = _q("SELECT id FROM chats WHERE id IN :ids")
EXISTING_MESSAGES = _q("SELECT id FROM messages WHERE id IN :ids")
FLAG_CHATS = _q("UPDATE chats SET counted = 1 WHERE id IN :ids")
FLAG_MESSAGES = _q("UPDATE messages SET counted = 1 WHERE id IN :ids")
ADD_CHATS = text("UPDATE applications SET chats_count = chats_count + :n WHERE id = :id")
ADD_MESSAGES = text("UPDATE chats SET messages_count = messages_count + :n WHERE id = :id")

TRANSIENT = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.DisconnectionError,
    sqlalchemy.exc.TimeoutError,
)


class CountersConsumer:
    name = "counters"
    event_types = (CHAT_CREATED, MESSAGE_CREATED)
    required = {"application_id": (int,), "chat_id": (int,)}

    def __init__(self, engine: Engine):
        self.engine = engine

    def apply(self, events: Sequence[Event]) -> dict[int, str | Poison]:
        chats = {e.data["chat_id"]: e.data["application_id"] for e in events if e.type == CHAT_CREATED}
        messages: dict[int, int] = {}
        outcomes: dict[int, str | Poison] = {}
        for e in events:
            if e.type == MESSAGE_CREATED:
                message_id = e.data.get("message_id")
                if not isinstance(message_id, int) or isinstance(message_id, bool):
                    outcomes[e.delivery.tag] = Poison("data.message_id is missing or of the wrong type")
                else:
                    messages[message_id] = e.data["chat_id"]
        try:
            with self.engine.begin() as conn:
                missing = self._count(conn, chats, messages)
        except TRANSIENT as exc:
            raise Transient(exc.__class__.__name__) from exc
        fault_point(WORKER_AFTER_COMMIT)
        for e in events:
            if e.delivery.tag in outcomes:
                continue
            child = ("chat", e.data["chat_id"]) if e.type == CHAT_CREATED else ("message", e.data["message_id"])
            outcomes[e.delivery.tag] = Poison(f"{child[0]} {child[1]} does not exist") if child in missing else OK
        return outcomes

    def _count(self, conn: Connection, chats: dict[int, int], messages: dict[int, int]) -> set:
        # Lock order: applications, then chats, each by id — the same as the reconciler's.
        app_ids = sorted(set(chats.values()))
        chat_ids = sorted(set(chats) | set(messages.values()))
        if app_ids:
            conn.execute(LOCK_APPLICATIONS, {"ids": app_ids})
        if chat_ids:
            conn.execute(LOCK_CHATS, {"ids": chat_ids})
        missing: set = set()
        if chats:
            new = conn.execute(UNCOUNTED_CHATS, {"ids": list(chats)}).all()
            if new:
                conn.execute(FLAG_CHATS, {"ids": [r.id for r in new]})
                per_app = Counter(r.application_id for r in new)
                conn.execute(ADD_CHATS, [{"id": k, "n": v} for k, v in sorted(per_app.items())])
            if len(new) < len(chats):
                existing = set(conn.execute(EXISTING_CHATS, {"ids": list(chats)}).scalars())
                missing |= {("chat", i) for i in chats if i not in existing}
        if messages:
            new = conn.execute(UNCOUNTED_MESSAGES, {"ids": list(messages)}).all()
            if new:
                conn.execute(FLAG_MESSAGES, {"ids": [r.id for r in new]})
                per_chat = Counter(r.chat_id for r in new)
                conn.execute(ADD_MESSAGES, [{"id": k, "n": v} for k, v in sorted(per_chat.items())])
            if len(new) < len(messages):
                existing = set(conn.execute(EXISTING_MESSAGES, {"ids": list(messages)}).scalars())
                missing |= {("message", i) for i in messages if i not in existing}
        return missing
