"""The purger consumer: ``chat.deleted`` and ``application.deleted`` → the deleted parent's
messages erased, and their search documents replaced by tombstones, in bounded batches.

A delete request only marks the parent (``deleted_at``), in one short transaction: from then on
no route reaches its children and no create can add one (a create locks its parent's row and
refuses a deleted one).  The content goes here, in the background:

- a chat: its messages, ``worker.purge_batch`` (1,000) at a time in number order, each batch one short transaction
  (``body`` emptied, ``version`` raised, ``deleted_at`` set; no lock on the chat row), then the
  batch's search documents written as tombstones at those versions (external versioning: no stale
  write can bring a message back); then ``chats.purged_at``;
- an application: each of its chats in id order, first marked deleted (so nothing more reaches
  it), then purged as above; then ``applications.purged_at``.

A purge is resumable: every step is idempotent (an erased message stays erased; a tombstone
written again is a 409, which counts as done), so an event redelivered after a crash, or a purge
stopped by a stop signal, starts again from the first batch and moves quickly past what is done.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy.exc
from sqlalchemy import bindparam, text
from sqlalchemy.engine import Engine

from chatsys.consumers.base import OK, RETRY, Event, Poison, Transient
from chatsys.domain import messages
from chatsys.models import utcnow
from chatsys.outbox.events import APPLICATION_DELETED, CHAT_DELETED
from chatsys.runtime.faults import PURGER_AFTER_BATCH, fault_point
from chatsys.runtime.process import Stopper
from chatsys.runtime.redact import fingerprint
from chatsys.search.interfaces import IndexOutcome, ISearch, MessageDocument, SearchUnavailable

log = logging.getLogger(__name__)


NEXT_MESSAGES = text(
    "SELECT number FROM messages WHERE chat_id = :chat_id AND number > :after ORDER BY number LIMIT :limit"
)
ERASE = text(
    "UPDATE messages SET body = '', version = version + 1, deleted_at = :now, updated_at = :now "
    "WHERE chat_id = :chat_id AND number IN :numbers AND deleted_at IS NULL"
).bindparams(bindparam("numbers", expanding=True))
TOMBSTONES = messages.typed(
    text(
        "SELECT " + "".join(f"m.{column}, " for column in messages.SHOWN) + "c.number AS chat_number, a.token "
        "FROM messages m JOIN chats c ON c.id = m.chat_id JOIN applications a ON a.id = c.application_id "
        "WHERE m.chat_id = :chat_id AND m.number IN :numbers"
    ).bindparams(bindparam("numbers", expanding=True))
)
MARK_CHAT_DELETED = text(
    "UPDATE chats SET deleted_at = COALESCE(deleted_at, :now), name = NULL, updated_at = :now "
    "WHERE id = :chat_id AND deleted_at IS NULL"
)
CHAT_PURGED = text("UPDATE chats SET purged_at = :now WHERE id = :chat_id AND purged_at IS NULL")
CHATS_TO_PURGE = text(
    "SELECT id FROM chats WHERE application_id = :application_id AND purged_at IS NULL AND id > :after "
    "ORDER BY id LIMIT :limit"
)
APPLICATION_PURGED = text("UPDATE applications SET purged_at = :now WHERE id = :application_id AND purged_at IS NULL")

TRANSIENT = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.DisconnectionError,
    sqlalchemy.exc.TimeoutError,
)


class Interrupted(Exception):
    """A stop was asked for in the middle of a purge: the event goes back, the purge resumes."""


class PurgerConsumer:
    name = "purger"
    event_types = (CHAT_DELETED, APPLICATION_DELETED)
    required = {"application_id": (int,)}

    def __init__(self, engine: Engine, search: ISearch, stopper: Stopper | None = None, batch: int = 1000):
        self.engine = engine
        self.search = search
        self.batch = batch
        self.stopper = stopper or Stopper()
        # Called between batches: the runner sets it to serve the broker connection's heartbeats
        # while a long purge holds the thread (Runner.keep_alive).
        self.keep_alive: Callable[[], None] = lambda: None

    def apply(self, events: Sequence[Event]) -> dict[int, str | Poison]:
        outcomes: dict[int, str | Poison] = {}
        for event in events:
            try:
                if event.type == CHAT_DELETED:
                    chat_id = event.data.get("chat_id")
                    if not isinstance(chat_id, int) or isinstance(chat_id, bool):
                        outcomes[event.delivery.tag] = Poison("data.chat_id is missing or of the wrong type")
                        continue
                    self.purge_chat(chat_id)
                else:
                    self.purge_application(event.data["application_id"])
            except Interrupted:
                outcomes[event.delivery.tag] = RETRY
                continue
            except TRANSIENT as exc:
                raise Transient(exc.__class__.__name__) from exc
            except SearchUnavailable as exc:
                raise Transient(str(exc) or "search unavailable") from exc
            outcomes[event.delivery.tag] = OK
        return outcomes

    def purge_application(self, application_id: int) -> None:
        after = 0
        while True:
            with self.engine.connect() as conn:
                page = {"application_id": application_id, "after": after, "limit": self.batch}
                chat_ids = conn.execute(CHATS_TO_PURGE, page).scalars().all()
            for chat_id in chat_ids:
                with self.engine.begin() as conn:
                    conn.execute(MARK_CHAT_DELETED, {"chat_id": chat_id, "now": utcnow()})
                self.purge_chat(chat_id)
            if len(chat_ids) < self.batch:
                break
            after = chat_ids[-1]
        with self.engine.begin() as conn:
            conn.execute(APPLICATION_PURGED, {"application_id": application_id, "now": utcnow()})
        log.info("application %d purged", application_id)

    def purge_chat(self, chat_id: int) -> None:
        after = 0
        erased = 0
        while True:
            if self.stopper.stopping:
                raise Interrupted()
            self.keep_alive()
            with self.engine.connect() as conn:
                page = {"chat_id": chat_id, "after": after, "limit": self.batch}
                numbers = conn.execute(NEXT_MESSAGES, page).scalars().all()
            if not numbers:
                break
            with self.engine.begin() as conn:
                erased += conn.execute(ERASE, {"chat_id": chat_id, "numbers": numbers, "now": utcnow()}).rowcount
            fault_point(PURGER_AFTER_BATCH)
            self._tombstones(chat_id, numbers)
            after = numbers[-1]
        with self.engine.begin() as conn:
            conn.execute(CHAT_PURGED, {"chat_id": chat_id, "now": utcnow()})
        log.info("chat %d purged: %d messages erased", chat_id, erased)

    def _tombstones(self, chat_id: int, numbers: list[int]) -> None:
        """Each message's search document, replaced by a tombstone at its current version."""
        with self.engine.connect() as conn:
            rows = conn.execute(TOMBSTONES, {"chat_id": chat_id, "numbers": numbers}).all()
        documents = [
            MessageDocument(
                messages.search_document({"app_token": r.token, **messages.representation(r.chat_number, r)}, True)
            )
            for r in rows
        ]
        results = self.search.index(documents)
        failed = [r for r in results if r.outcome not in (IndexOutcome.APPLIED, IndexOutcome.STALE)]
        if failed:
            raise SearchUnavailable(f"{len(failed)} tombstones not written, e.g. {failed[0].error}")


@dataclass(frozen=True)
class PendingPurge:
    kind: str  # "chat" or "application"
    key: str  # the application's token, redacted, and the chat's number
    deleted_at: datetime
    messages_left: int  # messages not yet erased


PENDING_CHATS = text(
    "SELECT c.id, c.number, a.token, c.deleted_at, "
    "(SELECT COUNT(*) FROM messages m WHERE m.chat_id = c.id AND m.deleted_at IS NULL) AS messages_left "
    "FROM chats c JOIN applications a ON a.id = c.application_id "
    "WHERE c.deleted_at IS NOT NULL AND c.purged_at IS NULL ORDER BY c.deleted_at LIMIT :limit"
)
PENDING_APPLICATIONS = text(
    "SELECT a.id, a.token, a.deleted_at, "
    "(SELECT COUNT(*) FROM messages m JOIN chats c ON c.id = m.chat_id "
    "WHERE c.application_id = a.id AND m.deleted_at IS NULL) AS messages_left "
    "FROM applications a WHERE a.deleted_at IS NOT NULL AND a.purged_at IS NULL ORDER BY a.deleted_at LIMIT :limit"
)
PENDING_COUNTS = text(
    "SELECT (SELECT COUNT(*) FROM chats WHERE deleted_at IS NOT NULL AND purged_at IS NULL) AS chats, "
    "(SELECT COUNT(*) FROM applications WHERE deleted_at IS NOT NULL AND purged_at IS NULL) AS applications"
)


def pending_counts(connection) -> tuple[int, int]:
    """(chats, applications) deleted and not yet purged."""
    row = connection.execute(PENDING_COUNTS).one()
    return row.chats, row.applications


def pending(engine: Engine, limit: int = 100) -> list[PendingPurge]:
    """The oldest purges still in progress, with how many messages each has left to erase."""
    with engine.connect() as conn:
        apps = conn.execute(PENDING_APPLICATIONS, {"limit": limit}).all()
        chats = conn.execute(PENDING_CHATS, {"limit": limit}).all()
    found = [PendingPurge("application", fingerprint(r.token), r.deleted_at, r.messages_left) for r in apps]
    found += [PendingPurge("chat", f"{fingerprint(r.token)}:{r.number}", r.deleted_at, r.messages_left) for r in chats]
    return found
