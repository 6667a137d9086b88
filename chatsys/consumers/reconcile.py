"""The reconciler: recompute chats_count and messages_count from the rows themselves.

For each batch of parents, in one transaction: lock the parents (the counters consumer takes the
same locks in the same order), flag every live child as counted and every deleted one as not,
and set the count to the live children's ``COUNT(*)``.  An event still in flight for one of those
children then finds its flag where the event would put it and changes nothing, so the reconciler
is safe while traffic flows.  Returns how many counts it changed (drift repaired).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Engine

from chatsys.runtime.process import Stopper

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Level:
    parent: str
    child: str
    fk: str
    count_column: str


LEVELS = (
    Level("applications", "chats", "application_id", "chats_count"),
    Level("chats", "messages", "chat_id", "messages_count"),
)


def _ids(sql: str):
    return text(sql).bindparams(bindparam("ids", expanding=True))


def reconcile_level(
    engine: Engine,
    level: Level,
    batch: int = 100,
    progress: Callable[[int], None] | None = None,
    stopper: Stopper | None = None,
) -> int:
    """Reconcile every parent of ``level``, a batch at a time; a ``stopper`` asked to stop ends
    it between batches.  Returns how many counts it changed."""
    repaired = 0
    last_id = 0
    # Table and column names come from LEVELS, never from input.
    page = text(f"SELECT id FROM {level.parent} WHERE id > :last ORDER BY id LIMIT :batch")
    lock = _ids(f"SELECT id FROM {level.parent} WHERE id IN :ids ORDER BY id FOR UPDATE")
    # Live children are counted, deleted ones are not: an event still in flight for either then
    # finds its flag already where it would put it.
    flag = _ids(
        f"UPDATE {level.child} SET counted = (deleted_at IS NULL) "
        f"WHERE {level.fk} IN :ids AND counted <> (deleted_at IS NULL)"
    )
    counts = _ids(
        f"SELECT p.id, p.{level.count_column} AS stored, "
        f"(SELECT COUNT(*) FROM {level.child} c WHERE c.{level.fk} = p.id AND c.deleted_at IS NULL) AS actual "
        f"FROM {level.parent} p WHERE p.id IN :ids"
    )
    fix = text(f"UPDATE {level.parent} SET {level.count_column} = :actual WHERE id = :id")
    while stopper is None or not stopper.stopping:
        with engine.connect() as conn:
            ids = conn.execute(page, {"last": last_id, "batch": batch}).scalars().all()
        if not ids:
            return repaired
        with engine.begin() as conn:
            conn.execute(lock, {"ids": ids})
            conn.execute(flag, {"ids": ids})
            drift = [r for r in conn.execute(counts, {"ids": ids}).all() if r.stored != r.actual]
            if drift:
                conn.execute(fix, [{"id": r.id, "actual": r.actual} for r in drift])
        for r in drift:
            log.warning("%s %d: %s was %d, is %d", level.parent, r.id, level.count_column, r.stored, r.actual)
        repaired += len(drift)
        last_id = ids[-1]
        if progress is not None:
            progress(len(ids))
    return repaired


def total_parents(engine: Engine, level: Level) -> int:
    with engine.connect() as conn:
        return conn.execute(text(f"SELECT COUNT(*) FROM {level.parent}")).scalar_one()
