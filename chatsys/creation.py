"""Creating a numbered child (a chat of an application, a message of a chat) in one transaction.

Steps: honour an ``Idempotency-Key``; take a number from the allocator; add the row, the
idempotency record and flush (a UNIQUE violation on the number reseeds the allocator and retries
the whole request); add the outbox event describing the new row.  pyramid_tm commits all of it
together after the view returns, or none of it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any, TypeVar

from pyramid_retry import mark_error_retryable
from sqlalchemy.exc import IntegrityError

from chatsys.errors import IdempotencyKeyReused
from chatsys.models import IdempotencyKey, utcnow
from chatsys.numbering import IAllocator, NumberConflict, Sequence
from chatsys.outbox import writer
from chatsys.validation import idempotency_key

Row = TypeVar("Row")


class IdempotencyRace(Exception):
    """Another request with the same Idempotency-Key committed first; retrying replays it."""


mark_error_retryable(IdempotencyRace)


def fingerprint(fields: dict[str, Any]) -> str:
    canonical = json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def create_numbered(
    request,
    *,
    scope: str,
    sequence: Sequence,
    fields: dict[str, Any],
    build: Callable[[int], Row],
    event: Callable[[Row], dict[str, Any]],
    existing: Callable[[int], Row],
) -> Row:
    """Create a row numbered by ``sequence``; returns it (or, for a replayed key, the original)."""
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

    allocator = request.find_service(IAllocator)
    number = allocator.allocate(sequence)
    row = build(number)
    dbsession.add(row)
    if key is not None:
        dbsession.add(
            IdempotencyKey(
                scope=scope,
                parent_id=sequence.parent_id,
                key=key,
                fingerprint=digest,
                resource_number=number,
                created_at=utcnow(),
            )
        )
    try:
        dbsession.flush()
    except IntegrityError as exc:
        reason = str(exc.orig)
        if sequence.unique_constraint in reason:
            allocator.reseed(sequence)
            raise NumberConflict(f"{sequence.kind} number {number} already taken") from exc
        if key is not None and "PRIMARY" in reason:
            raise IdempotencyRace(key) from exc
        raise
    writer.record(dbsession, event(row))
    return row
