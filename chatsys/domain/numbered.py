"""Creating a numbered child (a chat of an application, a message of a chat) in one transaction.

Steps: honour an ``Idempotency-Key``; lock the parent's row and take a number above its
high-water mark (``chatsys.numbering``: numbers go up in commit order, whatever Redis lost; a
deleted parent is a 404); raise the mark; INSERT the row, the idempotency record and the outbox
event describing the row.  The caller's transaction (pyramid_tm) commits all of it, or none.
A message's chat is locked by its caller, in the statement that finds it (``ChatKeys.lock``), so
there the lock comes before the Idempotency-Key.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from pyramid_retry import mark_error_retryable
from sqlalchemy import Table, insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from zope.sqlalchemy import mark_changed

from chatsys.domain.errors import IdempotencyKeyReused, NotFound
from chatsys.models import IdempotencyKey, utcnow
from chatsys.numbering import IAllocator, NumberConflict, ParentGone, Sequence, lock_parent, record_number
from chatsys.outbox import writer


class IdempotencyRace(Exception):
    """Another request with the same Idempotency-Key committed first; retrying replays it."""


mark_error_retryable(IdempotencyRace)

INSERT_KEY = insert(IdempotencyKey.__table__)
_insert = functools.cache(insert)  # one INSERT statement per table, built once
# MySQL's ER_DUP_ENTRY.  Each INSERT of a create can break one unique key only, so the code alone
# says which: the row's (parent, number), since its id is the server's AUTO_INCREMENT, or the
# idempotency record's primary key.  Not the key's name, which changed with migration 0003.
DUPLICATE_ENTRY = 1062


def is_duplicate(exc: IntegrityError) -> bool:
    args = getattr(exc.orig, "args", ())
    return bool(args) and args[0] == DUPLICATE_ENTRY


def fingerprint(fields: dict[str, Any]) -> str:
    canonical = json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Created:
    row: Any  # the new row's columns by name, or the original row for a replayed key
    replayed: bool


def create_numbered(
    session: Session,
    allocator: IAllocator,
    *,
    table: Table,
    sequence: Sequence,
    values: Callable[[int], dict[str, Any]],
    event: Callable[[SimpleNamespace], dict[str, Any]],
    existing: Callable[[int], Any],
    key: str | None = None,
    fields: dict[str, Any] | None = None,
    mark: int | None = None,
) -> Created:
    """Insert a ``table`` row numbered by ``sequence`` with ``values(number)``, and its event.

    With an idempotency ``key``, a key seen before with the same ``fields`` gives the row it
    created (``existing(number)``), and with other fields raises :class:`IdempotencyKeyReused`.
    ``mark`` is the parent's high-water mark when the caller has already locked the parent's row
    in this transaction (a message's chat: ``ChatKeys.lock``); otherwise it is locked here.
    """
    digest = fingerprint(fields or {}) if key is not None else None
    if key is not None:
        record = session.get(IdempotencyKey, (sequence.kind, sequence.parent_id, key))
        if record is not None:
            if record.fingerprint != digest:
                raise IdempotencyKeyReused()
            return Created(existing(record.resource_number), replayed=True)

    if mark is None:
        try:
            mark = lock_parent(session, sequence)
        except ParentGone:
            raise NotFound("application" if sequence.kind == "chat" else "chat") from None
    number = allocator.allocate(sequence, floor=mark)
    record_number(session, sequence, number)
    row = values(number)
    try:
        # lastrowid: the AUTO_INCREMENT id, which is not the primary key of every table (messages).
        row["id"] = session.execute(_insert(table), row).lastrowid
    except IntegrityError as exc:
        if is_duplicate(exc):
            allocator.reseed(sequence)
            raise NumberConflict(f"{sequence.kind} number {number} already taken") from exc
        raise
    if key is not None:
        try:
            session.execute(
                INSERT_KEY,
                {
                    "scope": sequence.kind,
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
    writer.record(session, event(created))
    mark_changed(session)
    return Created(created, replayed=False)
