"""The database search backend: SQL within one chat.

A word of 3+ characters matches as a substring (``LIKE '%w%'`` with ``%``, ``_`` and ``\\``
escaped); a shorter word matches at the start of a word (``REGEXP``).  Comparisons use the
column's ``utf8mb4_unicode_ci`` collation, so they ignore case (and, for LIKE, accents).
The scan is confined to one chat by the (chat_id, number) index, newest first.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session
from zope.interface import implementer

from chatsys.models import Message
from chatsys.search import cursor as cursors
from chatsys.search.highlight import fragment
from chatsys.search.interfaces import (
    IndexOutcome,
    IndexResult,
    ISearch,
    MessageDocument,
    SearchHit,
    SearchPage,
    SearchRequest,
)
from chatsys.search.query import MIN_SUBSTRING


def escape_like(word: str) -> str:
    return word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def word_prefix_regex(word: str) -> str:
    # PCRE (MariaDB) / ICU (MySQL 8): the word at the start of the body or after a non-word
    # character.  Words hold only \w characters; re.escape guards the pattern all the same.
    return rf"(^|[^[:alnum:]_]){re.escape(word)}"


@implementer(ISearch)
class DatabaseSearch:
    name = "database"

    def __init__(self, dbsession: Session):
        self.dbsession = dbsession

    def search(self, request: SearchRequest) -> SearchPage:
        # The database has no relevance score: both sorts are newest first.
        if not request.words:
            return SearchPage(hits=[], next_cursor=None)
        query = select(Message).where(Message.chat_id == request.chat.chat_id)
        if request.cursor is not None:
            (before,) = cursors.decode(request.cursor, 1)
            query = query.where(Message.number < int(before))
        for word in request.words:
            if len(word) >= MIN_SUBSTRING:
                query = query.where(Message.body.like(f"%{escape_like(word)}%", escape="\\"))
            else:
                query = query.where(Message.body.regexp_match(word_prefix_regex(word)))
        query = query.order_by(Message.number.desc()).limit(request.limit + 1)
        rows = self.dbsession.execute(query).scalars().all()
        more = len(rows) > request.limit
        rows = rows[: request.limit]
        hits = [
            SearchHit(
                chat_number=request.chat.chat_number,
                message_number=row.number,
                body=row.body,
                version=row.version,
                created_at=row.created_at,
                updated_at=row.updated_at,
                highlight=fragment(row.body, request.words),
            )
            for row in rows
        ]
        next_cursor = cursors.encode([rows[-1].number]) if more else None
        return SearchPage(hits=hits, next_cursor=next_cursor)

    def index(self, documents: Sequence[MessageDocument]) -> list[IndexResult]:
        # The rows are the index: nothing to write.
        return [IndexResult(doc.doc_id, IndexOutcome.APPLIED) for doc in documents]

    def check(self) -> None:
        """MySQL is checked by /readyz on its own."""

    def ensure_index(self) -> None:
        """Nothing to create: the messages table and its index come from the migrations."""
