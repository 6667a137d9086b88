"""Numbers from Redis, fenced by a high-water mark in MySQL.

Each parent row keeps the highest number ever committed among its children
(``applications.last_chat_number``, ``chats.last_message_number``).  A create, in its own
transaction:

1. locks the parent's row and reads its mark (:func:`lock_parent`; a deleted parent is
   :class:`ParentGone`; a message's create finds and locks its chat in one statement instead,
   ``chatsys.domain.chats.ChatKeys.lock``);
2. takes a number from Redis above the mark (:meth:`RedisAllocator.allocate`: one Lua call that
   raises a missing or lagging counter to the mark, then INCRs it);
3. raises the mark to that number (:func:`record_number`) and inserts its row.

The row lock, held until the commit, orders the creates of one parent: numbers go up in commit
order, and a reader paging with ``after=N`` never misses one committed later below N.  Redis can
lose its data, or come back behind MySQL (a restore from an older snapshot, an AOF ``everysec``
loss, a failover to a lagging replica): the mark is the floor, so a number is never handed out
twice, never below a committed one, and a deleted child's number (the mark keeps it) never comes
back.  Gaps remain only where a request failed after taking its number (Redis is then ahead of
the mark, and the next number is above the gap).  The UNIQUE key on (parent, number) stays as the
last line: a duplicate there (rows written without the mark, a bulk load say) reseeds the counter
from ``MAX(number)`` and the request is retried (:class:`NumberConflict` is retryable).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cache

from pyramid_retry import mark_error_retryable
from redis import Redis
from sqlalchemy import text
from sqlalchemy.engine import Engine
from zope.interface import Interface, implementer

log = logging.getLogger(__name__)

# KEYS[1] counter, ARGV[1] the floor.  Raises the counter to the floor (never lowers it), then INCRs.
ALLOCATE_ABOVE = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local floor = tonumber(ARGV[1])
if current < floor then
  redis.call('SET', KEYS[1], floor)
end
return redis.call('INCR', KEYS[1])
"""

# KEYS[1] counter, ARGV[1] the floor.  Raises the counter to the floor, never lowers it.
RAISE_TO = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local floor = tonumber(ARGV[1])
if current < floor then
  redis.call('SET', KEYS[1], floor)
  return floor
end
return current
"""


@dataclass(frozen=True)
class Sequence:
    """One numbering sequence: the children of one parent row.  Names are constants."""

    kind: str  # "chat" (children of an application) or "message" (children of a chat)
    parent_id: int
    parent_table: str
    mark: str  # the parent's high-water mark column
    table: str  # the children's table, and their column naming the parent
    parent_column: str

    def key(self, prefix: str) -> str:
        return f"{prefix}:seq:{self.kind}:{self.parent_id}"


def chat_sequence(application_id: int) -> Sequence:
    return Sequence("chat", application_id, "applications", "last_chat_number", "chats", "application_id")


def message_sequence(chat_id: int) -> Sequence:
    return Sequence("message", chat_id, "chats", "last_message_number", "messages", "chat_id")


class NumberConflict(Exception):
    """A number from Redis was already taken in MySQL; the request is retried after a reseed."""


mark_error_retryable(NumberConflict)


class ParentGone(Exception):
    """The parent was deleted (or never existed) when its child was to be numbered."""


@cache
def _lock_statement(table: str, mark: str):
    # Built once per kind (the names are the Sequence's constants): a statement built per request
    # costs its cache key on every execution.
    return text(f"SELECT {mark} FROM {table} WHERE id = :parent_id AND deleted_at IS NULL FOR UPDATE")


@cache
def _record_statement(table: str, mark: str):
    return text(f"UPDATE {table} SET {mark} = :number WHERE id = :parent_id")


def lock_parent(connection, sequence: Sequence) -> int:
    """Lock the parent's row until the create's transaction ends; return its high-water mark."""
    statement = _lock_statement(sequence.parent_table, sequence.mark)
    mark = connection.execute(statement, {"parent_id": sequence.parent_id}).scalar()
    if mark is None:
        raise ParentGone(sequence.kind)
    return int(mark)


def record_number(connection, sequence: Sequence, number: int) -> None:
    """Raise the parent's high-water mark to ``number`` (its row is locked: :func:`lock_parent`)."""
    connection.execute(
        _record_statement(sequence.parent_table, sequence.mark),
        {"number": number, "parent_id": sequence.parent_id},
    )


class IAllocator(Interface):
    def allocate(sequence: Sequence, floor: int) -> int:
        """The next number of ``sequence``, above ``floor`` (the parent's high-water mark)."""

    def reseed(sequence: Sequence) -> int:
        """Raise the counter to MySQL's highest number (after a UNIQUE violation)."""


@implementer(IAllocator)
class RedisAllocator:
    def __init__(self, redis: Redis, engine: Engine, prefix: str):
        self.redis = redis
        self.engine = engine
        self.prefix = prefix
        self._allocate = redis.register_script(ALLOCATE_ABOVE)
        self._raise = redis.register_script(RAISE_TO)

    def allocate(self, sequence: Sequence, floor: int) -> int:
        return int(self._allocate(keys=[sequence.key(self.prefix)], args=[floor]))

    def reseed(self, sequence: Sequence) -> int:
        key = sequence.key(self.prefix)
        floor = self.database_max(sequence)
        value = int(self._raise(keys=[key], args=[floor]))
        log.warning("number conflict on %s: counter raised to %d (MySQL maximum %d)", key, value, floor)
        return value

    def database_max(self, sequence: Sequence) -> int:
        """The highest number MySQL holds for the parent: its mark, or a child's number above it."""
        # Its own pooled connection and transaction, not the request's: the request may already
        # hold a snapshot, and this read must see every committed row.
        query = text(
            f"SELECT GREATEST(p.{sequence.mark}, COALESCE((SELECT MAX(c.number) FROM {sequence.table} c "
            f"WHERE c.{sequence.parent_column} = p.id), 0)) FROM {sequence.parent_table} p WHERE p.id = :parent_id"
        )
        with self.engine.connect() as conn:
            return int(conn.execute(query, {"parent_id": sequence.parent_id}).scalar() or 0)
