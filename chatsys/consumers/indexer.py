"""The indexer consumer: message events → documents in the search index.

Writes use the message's version as an external version, so a redelivered or out-of-order event
can never overwrite a newer document (the backend reports it as STALE, which is success).  Within
one batch only the newest version of each message is sent.  A ``message.deleted`` event writes a
tombstone (no text, ``deleted: true``, the deletion's version), which searches never return and
which no older write can replace.
"""

from __future__ import annotations

from collections.abc import Sequence

from chatsys.consumers.base import OK, RETRY, Event, Poison, Transient
from chatsys.domain import messages
from chatsys.outbox.events import MESSAGE_CREATED, MESSAGE_DELETED, MESSAGE_UPDATED
from chatsys.search.interfaces import IndexOutcome, ISearch, MessageDocument, SearchUnavailable


def document(event: Event) -> MessageDocument:
    """The message's search document from its event (a tombstone for ``message.deleted``)."""
    deleted = event.type == MESSAGE_DELETED
    if not deleted and not isinstance(event.data.get("body"), str):
        raise Poison("data.body is missing or of the wrong type")
    try:
        return MessageDocument(messages.search_document(event.data, deleted=deleted))
    except (KeyError, TypeError) as exc:
        raise Poison(f"message event is malformed: {exc.__class__.__name__}") from None


class IndexerConsumer:
    name = "indexer"
    event_types = (MESSAGE_CREATED, MESSAGE_UPDATED, MESSAGE_DELETED)
    required = {
        "app_token": (str,),
        "chat_number": (int,),
        "message_number": (int,),
        "version": (int,),
        "created_at": (str,),
        "updated_at": (str,),
    }

    def __init__(self, search: ISearch):
        self.search = search

    def apply(self, events: Sequence[Event]) -> dict[int, str | Poison]:
        outcomes: dict[int, str | Poison] = {}
        newest: dict[str, tuple[MessageDocument, list[int]]] = {}
        for event in events:
            try:
                doc = document(event)
            except Poison as poison:
                outcomes[event.delivery.tag] = poison
                continue
            current = newest.get(doc.doc_id)
            tags = (current[1] if current else []) + [event.delivery.tag]
            newest[doc.doc_id] = (doc if current is None or doc.version > current[0].version else current[0], tags)
        if not newest:
            return outcomes
        try:
            results = self.search.index([doc for doc, _ in newest.values()])
        except SearchUnavailable as exc:
            raise Transient(str(exc) or "search unavailable") from exc
        for (_, tags), result in zip(newest.values(), results, strict=True):
            if result.outcome in (IndexOutcome.APPLIED, IndexOutcome.STALE):
                outcome: str | Poison = OK
            elif result.outcome is IndexOutcome.RETRY:
                outcome = RETRY
            else:
                outcome = Poison(f"rejected by the search index: {result.error}")
            for tag in tags:  # older versions folded into this write share its outcome
                outcomes[tag] = outcome
        return outcomes
