"""The reconciler: bring chats_count and messages_count back to the rows, without long locks.

A create locks its parent's row (the number fence, ``chatsys.numbering``), so any lock the reconciler
holds on a parent stalls every create into it.  The reconciler used to lock a batch of parents
and flag and count all their children inside that lock: 0.8 s for a chat of a million messages,
during which no message could be created in it (issue 27).  Now no parent row stays locked longer
than it takes to flip the flags of one chunk of children (``chunk`` rows, 200 by default: a few
milliseconds), whatever the parent's size.

**The state it repairs.**  Each child has a ``counted`` flag (docs/decisions.md, "Per-row inbox").
Every writer of a flag changes the parent's count by the same amount in the same transaction,
under the parent's lock: the counters consumer (+1 for 0 → 1, −1 for 1 → 0) and the reconciler's
own flips.  Creates insert children with ``counted = 0`` and leave the count alone; deletions and
the purger change ``deleted_at`` and leave flag and count alone.  So, per parent,

    D = count − (number of children with counted = 1)

changes in no committed transaction but a deliberate repair of it.  Two things can be wrong:

- *flags behind the rows* (A): a live child not counted, or a deleted one still counted, whose
  event is still in flight or was lost;
- *a count off its flags* (B): D ≠ 0, which no code path produces (an edit by hand, a restore).

**A, in chunks.**  A non-locking read (READ COMMITTED) finds the next ``chunk`` children of the
batch's parents whose flag disagrees with their ``deleted_at``, in (parent, number) order after
the last one seen.  Then, per parent of the chunk, one short transaction: lock the parent
(``FOR UPDATE``, as the counters consumer does), then two UPDATEs of those children by their key,
each with the condition re-stated (``counted = 0 AND deleted_at IS NULL`` → 1; ``counted = 1 AND
deleted_at IS NOT NULL`` → 0).  An UPDATE evaluates its condition on each row as it is now and
locks the rows it changes, so the rows it reports changed are exactly the flips made; add that
difference to the parent (+1 per 0 → 1, −1 per 1 → 0).  Commit.

Why a chunk can be neither lost nor counted twice against the live counters consumer: the
consumer, in one transaction per batch, locks the parents, then reads which of its children are
still to flip (a READ COMMITTED read after the lock: it sees every chunk committed before it got
the lock), flips them and adds the difference.  A chunk holds the same lock from before its
UPDATEs to its commit.  So the two never interleave on one parent; each flips a flag only after
reading it under the lock, and adds to the count exactly the flips it made; whichever comes
second finds the flag already where it wants it and adds nothing.  A flag therefore goes 0 → 1
once for every +1 on the count and 1 → 0 once for every −1: D unchanged.  Deletions take no
parent lock; the child's row lock orders them with a chunk: a delete committed before the
UPDATE reaches the row is seen by it (the flip is the right one), a delete that comes later waits
for the chunk's commit and its ``message.deleted`` event takes the child out as usual.  A child
created after the lock-free read is not in the chunk: its own event counts it.  Lock order is
the same everywhere (a parent, then its children); a create holds one parent and inserts one
child, an edit or a delete holds one child, so a chunk waits at most for a request's transaction
(or one batch of the purger's) and cannot deadlock with them.

**B, measured without a lock.**  One SELECT reads each parent's count and the sum of its
children's flags: a single statement sees one snapshot, and every committed transaction changes
both or neither, so it measures D exactly, without locking anything (for a million-message chat
it reads the chat's rows for about a second, holding nothing).  Since D is unchanged by every
write since that snapshot, a short transaction subtracts D from the count under the parent's
lock.  Two reconcilers subtracting the same D would be wrong, so a run holds a MySQL named lock
(``GET_LOCK``) for its whole length, checked again before each repair: a second
``chatsys-recount`` meanwhile does nothing and says so.

After A and B every count equals its live children, except for events still in flight, which
the consumer applies as usual.  Deleted parents are skipped: their counts are out of sight (I5),
and the purger erases a deleted chat's messages without touching flags or counts.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

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


@dataclass
class Outcome:
    """What a reconciliation did."""

    repaired: int = 0  # parents whose count was off its flags (B) and was set right
    flipped: int = 0  # children whose flag was set to their liveness (A), their parents' counts with them
    holds: list[float] = field(default_factory=list)  # seconds each parent's row was held, grant to commit
    skipped: bool = False  # another reconciler held the named lock

    @property
    def longest_lock(self) -> float:
        return max(self.holds, default=0.0)

    def lock_percentile(self, q: float) -> float:
        ordered = sorted(self.holds)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0

    def add(self, other: Outcome) -> None:
        self.repaired += other.repaired
        self.flipped += other.flipped
        self.holds += other.holds
        self.skipped |= other.skipped


def _ids(sql: str, *names: str):
    return text(sql).bindparams(*(bindparam(n, expanding=True) for n in names or ("ids",)))


@dataclass(frozen=True)
class Statements:
    page: object
    mismatched: object
    lock_parents: object
    count_in: object
    count_out: object
    add: object
    flagged: object

    @classmethod
    def of(cls, level: Level) -> Statements:
        # Table and column names come from LEVELS, never from input.
        p, c, fk, count = level.parent, level.child, level.fk, level.count_column
        return cls(
            page=text(f"SELECT id FROM {p} WHERE id > :last AND deleted_at IS NULL ORDER BY id LIMIT :batch"),
            # (fk, number) is the messages' primary key and a unique key of chats: one index range.
            mismatched=_ids(
                f"SELECT {fk} AS parent, number FROM {c} "
                f"WHERE {fk} IN :ids AND ({fk} > :after_parent OR ({fk} = :after_parent AND number > :after_number)) "
                f"AND counted <> (deleted_at IS NULL) ORDER BY {fk}, number LIMIT :chunk"
            ),
            lock_parents=_ids(f"SELECT id FROM {p} WHERE id IN :ids ORDER BY id FOR UPDATE"),
            # By (fk, number): the messages' primary key, a unique key of chats.
            count_in=_ids(
                f"UPDATE {c} SET counted = 1 WHERE {fk} = :parent AND number IN :numbers "
                "AND counted = 0 AND deleted_at IS NULL",
                "numbers",
            ),
            count_out=_ids(
                f"UPDATE {c} SET counted = 0 WHERE {fk} = :parent AND number IN :numbers "
                "AND counted = 1 AND deleted_at IS NOT NULL",
                "numbers",
            ),
            add=text(f"UPDATE {p} SET {count} = {count} + :n WHERE id = :id"),
            # One statement, one snapshot: each parent's count beside the sum of its flags.
            flagged=_ids(
                f"SELECT p.id, p.{count} AS stored, "
                f"(SELECT COALESCE(SUM(c.counted), 0) FROM {c} c WHERE c.{fk} = p.id) AS flagged "
                f"FROM {p} p WHERE p.id IN :ids"
            ),
        )


LOCK_NAME = "CONCAT('chatsys.recount.', DATABASE())"


@contextlib.contextmanager
def exclusive(engine: Engine) -> Iterator[Callable[[], bool] | None]:
    """Hold the reconciler's named lock on a connection of its own while the block runs; yields a
    function telling whether it is still held (a lost connection loses it), or None when another
    reconciler holds it."""
    with engine.connect() as guard:
        got = guard.execute(text(f"SELECT GET_LOCK({LOCK_NAME}, 0)")).scalar()
        guard.commit()
        if got != 1:
            yield None
            return
        try:
            yield lambda: guard.execute(text(f"SELECT IS_USED_LOCK({LOCK_NAME}) = CONNECTION_ID()")).scalar() == 1
        finally:
            with contextlib.suppress(Exception):
                guard.execute(text(f"SELECT RELEASE_LOCK({LOCK_NAME})"))


class LockLost(RuntimeError):
    """The named lock went with its connection: another reconciler may be running."""


def reconcile_level(
    engine: Engine,
    level: Level,
    batch: int = 100,
    chunk: int = 200,
    progress: Callable[[int], None] | None = None,
    stopper: Stopper | None = None,
    still_exclusive: Callable[[], bool] | None = None,
) -> Outcome:
    """Reconcile every live parent of ``level``, ``batch`` parents at a time; a ``stopper`` asked
    to stop ends it between batches.  Run it inside :func:`exclusive` and pass the function it
    yields as ``still_exclusive``."""
    q = Statements.of(level)
    outcome = Outcome()
    last_id = 0
    while stopper is None or not stopper.stopping:
        with engine.connect() as conn:
            ids = conn.execute(q.page, {"last": last_id, "batch": batch}).scalars().all()
        if not ids:
            break
        _flip_flags(engine, q, ids, chunk, outcome, stopper)
        _repair_drift(engine, level, q, ids, outcome, still_exclusive)
        last_id = ids[-1]
        if progress is not None:
            progress(len(ids))
    return outcome


def _flip_flags(
    engine: Engine, q: Statements, ids: list[int], chunk: int, outcome: Outcome, stopper: Stopper | None
) -> None:
    """A: every flag of these parents' children set to its row's liveness, one chunk per short
    transaction."""
    after = {"after_parent": 0, "after_number": 0}
    while True:
        with engine.connect() as conn:
            found = conn.execute(q.mismatched, {"ids": ids, "chunk": chunk, **after}).all()
        if not found:
            return
        numbers: dict[int, list[int]] = {}
        for r in found:
            numbers.setdefault(r.parent, []).append(r.number)
        for parent, chunk_numbers in sorted(numbers.items()):
            # One parent per transaction, so a chunk over many small parents holds each briefly.
            with engine.begin() as conn:
                conn.execute(q.lock_parents, {"ids": [parent]})
                started = time.monotonic()  # held from here to the commit
                # Each UPDATE reads its rows as they are now, and locks them: what it changes is
                # exactly what the count must follow.
                key = {"parent": parent, "numbers": chunk_numbers}
                counted_now = conn.execute(q.count_in, key).rowcount
                uncounted_now = conn.execute(q.count_out, key).rowcount
                if counted_now != uncounted_now:
                    conn.execute(q.add, {"id": parent, "n": counted_now - uncounted_now})
            outcome.holds.append(time.monotonic() - started)
            outcome.flipped += counted_now + uncounted_now
        if len(found) < chunk or (stopper is not None and stopper.stopping):
            return
        after = {"after_parent": found[-1].parent, "after_number": found[-1].number}


def _repair_drift(
    engine: Engine,
    level: Level,
    q: Statements,
    ids: list[int],
    outcome: Outcome,
    still_exclusive: Callable[[], bool] | None,
) -> None:
    """B: each parent's count minus the sum of its flags, measured in one snapshot and taken off
    the count under a short lock (D is the same now as in the snapshot)."""
    with engine.connect() as conn:
        drift = [(r.id, r.stored - int(r.flagged)) for r in conn.execute(q.flagged, {"ids": ids})]
    drift = [(parent, d) for parent, d in drift if d]
    if not drift:
        return
    if still_exclusive is not None and not still_exclusive():
        raise LockLost("the reconciler's named lock was lost; not repairing counts")
    for parent, d in drift:
        with engine.begin() as conn:
            conn.execute(q.lock_parents, {"ids": [parent]})
            started = time.monotonic()
            conn.execute(q.add, {"id": parent, "n": -d})
        outcome.holds.append(time.monotonic() - started)
        log.warning("%s %d: %s was off its rows by %+d, repaired", level.parent, parent, level.count_column, d)
    outcome.repaired += len(drift)


def total_parents(engine: Engine, level: Level) -> int:
    with engine.connect() as conn:
        return conn.execute(text(f"SELECT COUNT(*) FROM {level.parent} WHERE deleted_at IS NULL")).scalar_one()
