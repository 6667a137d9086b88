"""Creating a numbered child (a chat of an application, a message of a chat) in one transaction.

Steps: honour an ``Idempotency-Key``; take a number from the allocator; INSERT the row, the
idempotency record and the outbox event describing the row (a UNIQUE violation on the number
reseeds the allocator and retries the whole request).  pyramid_tm commits all of it together
after the view returns, or none of it.

The INSERTs are Core statements on the request's session rather than ORM objects: a create is
the hottest write of the service, and the unit of work (two flushes per request) cost more than
the statements themselves.  ``mark_changed`` tells zope.sqlalchemy that the session wrote.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from functools import cache
from types import SimpleNamespace
from typing import Any

from pyramid_retry import mark_error_retryable
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from zope.sqlalchemy import mark_changed

from chatsys.errors import IdempotencyKeyReused
from chatsys.models import IdempotencyKey, utcnow
from chatsys.numbering import NumberConflict, Sequence
from chatsys.outbox import writer
from chatsys.validation import idempotency_key


class IdempotencyRace(Exception):
    """Another request with the same Idempotency-Key committed first; retrying replays it."""


mark_error_retryable(IdempotencyRace)

INSERT_KEY = insert(IdempotencyKey.__table__)
# MySQL's ER_DUP_ENTRY.  Each INSERT of a create can break one unique key only, so the code alone
# says which: the row's (parent, number), since its id is the server's AUTO_INCREMENT, or the
# idempotency record's primary key.  Not the key's name: it changed when (chat_id, number) became
# the messages' primary key (an old name during a deploy must not turn a reseed into a 500), and
# the message around it is in the server's language.
DUPLICATE_ENTRY = 1062


def is_duplicate(exc: IntegrityError) -> bool:
    args = getattr(exc.orig, "args", ())
    return bool(args) and args[0] == DUPLICATE_ENTRY


@cache
def insert_row(model):
    """One INSERT statement per model, built once: its SQLAlchemy cache key is then remembered."""
    return insert(model.__table__)


def fingerprint(fields: dict[str, Any]) -> str:
    canonical = json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def create_numbered(
    request,
    *,
    scope: str,
    model,
    sequence: Sequence,
    fields: dict[str, Any],
    values: Callable[[int], dict[str, Any]],
    event: Callable[[SimpleNamespace], dict[str, Any]],
    existing: Callable[[int], Any],
):
    """Insert a ``model`` row numbered by ``sequence`` with ``values(number)``; return the row as
    a namespace of its columns (or, for a replayed Idempotency-Key, the original row)."""
    dbsession = request.dbsession
    key = idempotency_key(request)
    if key is not None:
        digest = fingerprint(fields)
        record = dbsession.get(IdempotencyKey, (scope, sequence.parent_id, key))
        if record is not None:
            if record.fingerprint != digest:
                raise IdempotencyKeyReused()
            request.response.headers["Idempotent-Replayed"] = "true"
            return existing(record.resource_number)

    allocator = request.allocator
    number = allocator.allocate(sequence)
    row = values(number)
    # Core statements on the session's connection (same transaction), past the ORM layer.
    connection = dbsession.connection()
    try:
        # lastrowid: the AUTO_INCREMENT id, which is not the primary key of every model (messages).
        row["id"] = connection.execute(insert_row(model), row).lastrowid
    except IntegrityError as exc:
        if is_duplicate(exc):
            allocator.reseed(sequence)
            raise NumberConflict(f"{sequence.kind} number {number} already taken") from exc
        raise
    if key is not None:
        try:
            connection.execute(
                INSERT_KEY,
                {
                    "scope": scope,
                    "parent_id": sequence.parent_id,
                    "idem_key": key,
                    "fingerprint": digest,
                    "resource_number": number,
                    "created_at": utcnow(),
                },
            )
        except IntegrityError as exc:
            if is_duplicate(exc):
                raise IdempotencyRace(key) from exc
            raise
    created = SimpleNamespace(**row)
    writer.record(dbsession, event(created))
    mark_changed(dbsession)
    return created
