"""The counters consumer: applications.chats_count and chats.messages_count, exactly once in
outcome, deletions included.

Each child row has a ``counted`` flag — the inbox, kept on the row itself (docs/decisions.md):
1 while the child is in its parent's count.  A ``*.created`` event counts a live child that is
not counted yet (0 → 1, +1); a ``*.deleted`` event takes out a deleted child that is still
counted (1 → 0, −1).  A deleted child is never counted again, so a create event that arrives
after its delete (reordered, redelivered) changes nothing, and every event applied twice changes
nothing the second time.

One transaction per batch: lock the parent rows in a fixed order (applications, then chats, each
by id), find the batch's children whose flag must change, change it, and add the difference to
each parent.  The reconciler takes the same locks, so it can run at any time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy.exc
from sqlalchemy import bindparam, text
from sqlalchemy.engine import Connection, Engine

from chatsys.consumers.base import OK, Event, Poison, Transient
from chatsys.outbox.events import CHAT_CREATED, CHAT_DELETED, MESSAGE_CREATED, MESSAGE_DELETED
from chatsys.runtime.faults import WORKER_AFTER_COMMIT, fault_point


def _q(sql: str):
    return text(sql).bindparams(bindparam("ids", expanding=True))


@dataclass(frozen=True)
class Level:
    """One count: a parent table, its children and their events.  Names are constants."""

    parent: str
    child: str
    fk: str
    count: str
    created: str
    deleted: str

    def statements(self):
        children = f"SELECT id, {self.fk} AS parent FROM {self.child} WHERE id IN :ids"
        return (
            # (child, parent) of the children to count, and of those to take out of the count.
            _q(children + " AND counted = 0 AND deleted_at IS NULL"),
            _q(children + " AND counted = 1 AND deleted_at IS NOT NULL"),
            _q(f"SELECT id FROM {self.child} WHERE id IN :ids"),
            _q(f"UPDATE {self.child} SET counted = :flag WHERE id IN :ids"),
            text(f"UPDATE {self.parent} SET {self.count} = {self.count} + :n WHERE id = :id"),
        )


CHATS = Level("applications", "chats", "application_id", "chats_count", CHAT_CREATED, CHAT_DELETED)
MESSAGES = Level("chats", "messages", "chat_id", "messages_count", MESSAGE_CREATED, MESSAGE_DELETED)
LOCK_APPLICATIONS = _q("SELECT id FROM applications WHERE id IN :ids ORDER BY id FOR UPDATE")
LOCK_CHATS = _q("SELECT id FROM chats WHERE id IN :ids ORDER BY id FOR UPDATE")

TRANSIENT = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.DisconnectionError,
    sqlalchemy.exc.TimeoutError,
)


class CountersConsumer:
    name = "counters"
    event_types = (CHAT_CREATED, CHAT_DELETED, MESSAGE_CREATED, MESSAGE_DELETED)
    required = {"application_id": (int,), "chat_id": (int,)}

    def __init__(self, engine: Engine):
        self.engine = engine

    def apply(self, events: Sequence[Event]) -> dict[int, str | Poison]:
        outcomes: dict[int, str | Poison] = {}
        children: dict[Level, dict[int, int]] = {CHATS: {}, MESSAGES: {}}  # child id: parent id
        for e in events:
            if e.type in (CHAT_CREATED, CHAT_DELETED):
                children[CHATS][e.data["chat_id"]] = e.data["application_id"]
                continue
            message_id = e.data.get("message_id")
            if not isinstance(message_id, int) or isinstance(message_id, bool):
                outcomes[e.delivery.tag] = Poison("data.message_id is missing or of the wrong type")
            else:
                children[MESSAGES][message_id] = e.data["chat_id"]
        try:
            with self.engine.begin() as conn:
                missing = self._count(conn, children)
        except TRANSIENT as exc:
            raise Transient(exc.__class__.__name__) from exc
        fault_point(WORKER_AFTER_COMMIT)
        for e in events:
            if e.delivery.tag in outcomes:
                continue
            if e.type in (CHAT_CREATED, CHAT_DELETED):
                child = ("chat", e.data["chat_id"])
            else:
                child = ("message", e.data["message_id"])
            outcomes[e.delivery.tag] = Poison(f"{child[0]} {child[1]} does not exist") if child in missing else OK
        return outcomes

    def _count(self, conn: Connection, children: dict[Level, dict[int, int]]) -> set:
        # Lock order: applications, then chats, each by id — the same as the reconciler's.
        app_ids = sorted(set(children[CHATS].values()))
        chat_ids = sorted(set(children[CHATS]) | set(children[MESSAGES].values()))
        if app_ids:
            conn.execute(LOCK_APPLICATIONS, {"ids": app_ids})
        if chat_ids:
            conn.execute(LOCK_CHATS, {"ids": chat_ids})
        missing: set = set()
        for level, kind in ((CHATS, "chat"), (MESSAGES, "message")):
            ids = list(children[level])
            if not ids:
                continue
            to_count, to_uncount, existing, flag, add = level.statements()
            delta: Counter[int] = Counter()
            for query, new_flag, step in ((to_count, 1, 1), (to_uncount, 0, -1)):
                rows = conn.execute(query, {"ids": ids}).all()
                if rows:
                    conn.execute(flag, {"flag": new_flag, "ids": [r.id for r in rows]})
                    for r in rows:
                        delta[r.parent] += step
            updates = [{"id": parent, "n": n} for parent, n in sorted(delta.items()) if n]
            if updates:
                conn.execute(add, updates)
            found = set(conn.execute(existing, {"ids": ids}).scalars())
            missing |= {(kind, i) for i in ids if i not in found}
        return missing
