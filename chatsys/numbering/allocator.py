"""The Redis number allocator.

Fast path: one Lua call that INCRs the parent's counter if the key exists.  On a miss (first use,
Redis restarted, FLUSHALL, failover to a replica without the key) the allocator reads
``MAX(number)`` from MySQL on its own connection — outside the request's transaction, so it sees
the latest committed rows — and runs a seed-if-missing / never-decrease / INCR script.

Redis can still hand out a number that is already taken: a replica that lags (the counter is
*below* the database maximum but present), or a row committed after the seed read.  The UNIQUE
constraint in MySQL catches that; the caller then calls :meth:`RedisAllocator.reseed` and retries
the request (:class:`NumberConflict` is retryable), a bounded number of times.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pyramid_retry import mark_error_retryable
from redis import Redis
from sqlalchemy import text
from sqlalchemy.engine import Engine
from zope.interface import Interface, implementer

log = logging.getLogger(__name__)

# KEYS[1] counter.  Returns the next number, or false when the key is missing.
INCR_IF_EXISTS = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.call('INCR', KEYS[1])
end
return false
"""

# KEYS[1] counter, ARGV[1] the database maximum.  Never lowers the counter.
SEED_AND_INCR = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local floor = tonumber(ARGV[1])
if current < floor then
  redis.call('SET', KEYS[1], floor)
end
return redis.call('INCR', KEYS[1])
"""

# KEYS[1] counter, ARGV[1] the database maximum.  Raises the counter to the floor, never lowers it.
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
    """One numbering sequence: the children of one parent row."""

    kind: str  # "chat" (children of an application) or "message" (children of a chat)
    parent_id: int
    table: str
    parent_column: str

    def key(self, prefix: str) -> str:
        return f"{prefix}:seq:{self.kind}:{self.parent_id}"


def chat_sequence(application_id: int) -> Sequence:
    return Sequence("chat", application_id, "chats", "application_id")


def message_sequence(chat_id: int) -> Sequence:
    return Sequence("message", chat_id, "messages", "chat_id")


class NumberConflict(Exception):
    """A number from Redis was already taken in MySQL; the request is retried after a reseed."""


mark_error_retryable(NumberConflict)


class IAllocator(Interface):
    def allocate(sequence: Sequence) -> int:
        """The next number of ``sequence``; never one that MySQL already had when Redis was seeded."""

    def reseed(sequence: Sequence) -> int:
        """Raise the counter to MySQL's current maximum (after a UNIQUE violation)."""


@implementer(IAllocator)
class RedisAllocator:
    def __init__(self, redis: Redis, engine: Engine, prefix: str):
        self.redis = redis
        self.engine = engine
        self.prefix = prefix
        self._incr = redis.register_script(INCR_IF_EXISTS)
        self._seed = redis.register_script(SEED_AND_INCR)
        self._raise = redis.register_script(RAISE_TO)

    def allocate(self, sequence: Sequence) -> int:
        key = sequence.key(self.prefix)
        number = self._incr(keys=[key])
        if number is None:
            floor = self.database_max(sequence)
            number = self._seed(keys=[key], args=[floor])
            log.info("seeded %s from MySQL maximum %d", key, floor)
        return int(number)

    def reseed(self, sequence: Sequence) -> int:
        key = sequence.key(self.prefix)
        floor = self.database_max(sequence)
        value = int(self._raise(keys=[key], args=[floor]))
        log.warning("number conflict on %s: counter raised to %d (MySQL maximum %d)", key, value, floor)
        return value

    def database_max(self, sequence: Sequence) -> int:
        # Its own pooled connection and transaction, not the request's: the request may already
        # hold a snapshot, and this read must see every committed row.
        query = text(
            f"SELECT COALESCE(MAX(number), 0) FROM {sequence.table} "  # names are constants
            f"WHERE {sequence.parent_column} = :parent_id"
        )
        with self.engine.connect() as conn:
            return int(conn.execute(query, {"parent_id": sequence.parent_id}).scalar_one())
