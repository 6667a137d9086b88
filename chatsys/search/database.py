"""The database search backend: SQL within one chat, newest first.

Every word narrows the rows with ``LIKE '%word%'`` (``%``, ``_`` and ``\\`` escaped), which the
column's ``utf8mb4_unicode_ci`` collation makes case- and accent-insensitive; that is the whole
rule for words of 3+ characters.  Shorter words must also start a word of the body, which SQL
cannot say portably with accent folding, so those candidate rows are checked in Python with the
reference semantics (``chatsys.search.query``), fetching further chunks until the page is full.
The scan is confined to one chat by the (chat_id, number) index.  There is no relevance score:
``sort=relevance`` gives newest first too.
"""

from __future__ import annotations

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
from chatsys.search.query import MIN_SUBSTRING, matches_all

CHUNK = 500  # candidate rows per query when short words need checking in Python
MESSAGES = Message.__table__


def escape_like(word: str) -> str:
    return word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@implementer(ISearch)
class DatabaseSearch:
    name = "database"

    def __init__(self, dbsession: Session):
        self.dbsession = dbsession

    def search(self, request: SearchRequest) -> SearchPage:
        before = cursors.decode(request, 1)[0] if request.cursor else None
        if not request.words:
            return SearchPage(hits=[], next_cursor=None)
        query = select(MESSAGES).where(MESSAGES.c.chat_id == request.chat.chat_id)
        for word in request.words:
            query = query.where(MESSAGES.c.body.like(f"%{escape_like(word)}%", escape="\\"))
        query = query.order_by(MESSAGES.c.number.desc())
        short = tuple(w for w in request.words if len(w) < MIN_SUBSTRING)
        chunk = max(request.limit + 1, CHUNK) if short else request.limit + 1

        rows: list = []
        while len(rows) <= request.limit:
            page = query if before is None else query.where(MESSAGES.c.number < before)
            candidates = self.dbsession.execute(page.limit(chunk)).all()
            rows.extend(row for row in candidates if not short or matches_all(row.body, short))
            if len(candidates) < chunk:
                break
            before = candidates[-1].number
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
        next_cursor = cursors.encode(request, [rows[-1].number]) if more else None
        return SearchPage(hits=hits, next_cursor=next_cursor)

    def index(self, documents: Sequence[MessageDocument]) -> list[IndexResult]:
        # The rows are the index: nothing to write.
        return [IndexResult(doc.doc_id, IndexOutcome.APPLIED) for doc in documents]

    def check(self) -> None:
        """MySQL is checked by /readyz on its own."""

    def ensure_index(self) -> None:
        """Nothing to create: the messages table and its index come from the migrations."""
